"""System-login latency through real PAM (root only): pamtester logins, each with a fresh code.

    sudo .venv/bin/python bench/pam_login.py              # 20 logins per configuration
    sudo .venv/bin/python bench/pam_login.py --logins 50

Sets up what tests/hostpam does (a `tokenward serve`, a host made with `tokenward host init|install`,
an enrolled user with a unix account), then times `pamtester SERVICE USER authenticate` end to end:

* **baseline** — a PAM service with `pam_permit.so` only: pamtester's own start and PAM's;
* **cached** — `pam_exec.so` with the tokenward helper and the host's session cached (one request,
  verify; the code is made before the clock starts);
* **fresh** — the same without the session cache (machine login every time: four requests);
* **server** — the verify request alone (httpx, kept-alive connection): the server's share.

Each code is made by the user's side (`POST /api/system-login/user-captcha`, opened with the
authenticator key) before its login's clock starts. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hostpam.test_pam_logins import HOST, PASSPHRASE, Setup, _auth_lines, host_setup, pam_service

from tokenward.identity.captcha import open_captcha
from tokenward.identity.keyfile import open_key_file
from tokenward.keys import Secret


def _time_logins(setup: Setup, service: str, count: int, *, code: bool) -> list[float]:
    key = open_key_file(setup.key_file.read_bytes(), Secret(PASSPHRASE.encode()))
    times = []
    for _ in range(count):
        password = "x"
        if code:
            r = httpx.post(f"{setup.url}/api/system-login/user-captcha", json={"email": setup.alice, "host": HOST})
            r.raise_for_status()
            password = open_captcha(r.json()["captcha"], key).code
        start = time.perf_counter()
        result = subprocess.run(
            ["pamtester", service, setup.alice_unix, "authenticate"],
            input=password + "\n",
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"login failed: {result.stdout}{result.stderr}")
    return times


def _time_verify_calls(setup: Setup, token: str, count: int) -> list[float]:
    """The server's share: the verify request alone, with the host's session, over one kept-alive connection."""
    key = open_key_file(setup.key_file.read_bytes(), Secret(PASSPHRASE.encode()))
    times = []
    with httpx.Client(base_url=setup.url, headers={"authorization": f"Bearer {token}"}) as http:
        for _ in range(count):
            r = http.post("/api/system-login/user-captcha", json={"email": setup.alice, "host": HOST})
            code = open_captcha(r.json()["captcha"], key).code
            start = time.perf_counter()
            r = http.post("/api/system-login/verify", json={"user": setup.alice, "code": code})
            times.append(time.perf_counter() - start)
            if r.status_code != 200:
                raise SystemExit(f"verify failed: {r.text}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark writes /etc/pam.d/tokenward-test-* and adds unix users")
    with tempfile.TemporaryDirectory() as tmp, host_setup(Path(tmp), TOKENWARD_CAPTCHA_MAX_REQUESTS="100000") as setup:
        conf = setup.etc / "pam.conf"
        fresh = setup.etc / "pam-fresh.conf"
        fresh.write_text(re.sub(r"(?m)^session_cache = .*$", "session_cache = ", conf.read_text()))
        rows = []
        with pam_service(["auth required pam_permit.so"]) as service:
            rows.append(("baseline (pam_permit)", _time_logins(setup, service, args.logins, code=False)))
        with pam_service(_auth_lines(setup, "exec")) as service:
            rows.append(("tokenward, cached session", _time_logins(setup, service, args.logins, code=True)))
        with pam_service(_auth_lines(setup, "exec", fresh)) as service:
            rows.append(("tokenward, fresh host login", _time_logins(setup, service, args.logins, code=True)))
        token = (setup.etc.parent / "run" / "session").read_text()
        rows.append(("server: verify request alone", _time_verify_calls(setup, token, args.logins)))
    base = statistics.median(rows[0][1])
    print(f"{args.logins} pamtester logins each (ms; ratio = median / baseline median)")
    print(f"{'configuration':<30} {'median':>8} {'p90':>8} {'max':>8} {'ratio':>7}")
    for name, times in rows:
        ms = sorted(t * 1000 for t in times)
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        median = statistics.median(ms)
        print(f"{name:<30} {median:8.1f} {p90:8.1f} {ms[-1]:8.1f} {median / base / 1000:7.1f}")


if __name__ == "__main__":
    main()
