"""No issued secret reaches the logs, even at DEBUG (issue 15, "keep finding it" c).

A real `tokenward serve` at ``TOKENWARD_LOG_LEVEL=DEBUG`` (JSON lines, into a file) goes through
the main flows: enrolment, captcha sign-in, resource machine login, a client token, app tokens
made by the CLI and by the API, a config token, and ``/verify`` with good and wrong credentials.
Every secret those flows issued or were sent (tokens, codes, PKCE verifiers, source identifiers,
Basic headers, the time code and the app-token key) is then looked for in everything the server
and the CLI wrote to their logs: as written, and in its base64, base64url and hex forms.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.e2e.processes import env_for, free_port, stop, tokenward, wait_ready
from tests.helpers import basic_auth as _basic
from tests.helpers import enrollment_code_in, init_data_dir, resource_login_body, write_policy_files
from tokenward.identity.captcha import open_captcha, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public

pytestmark = pytest.mark.slow

SERVER = "auth.example.com"
ORIGIN = "https://app.example.com"
ADMIN = "admin@example.com"
ALICE = "alice@example.com"
API = "api.example.com"


class Secrets:
    """Every secret seen in the flows, and the logs they must stay out of."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.cli_logs: list[str] = []

    def add(self, name: str, value: str | bytes) -> None:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        assert len(text) >= 8, f"{name} is too short to look for"
        self.values[name] = text

    def forms(self) -> Iterator[tuple[str, str]]:
        for name, text in self.values.items():
            raw = text.encode("latin-1") if all(ord(c) < 256 for c in text) else text.encode()
            yield name, text
            for label, form in (
                ("base64", base64.b64encode(raw).decode()),
                ("base64url", base64.urlsafe_b64encode(raw).decode().rstrip("=")),
                ("hex", raw.hex()),
                ("HEX", raw.hex().upper()),
            ):
                yield f"{name} ({label})", form[:-4] if len(form) > 24 else form  # padding may differ at the end

    def cli(self, *args: str, env: dict[str, str], stdin: str | None = None) -> str:
        done = tokenward(*args, env=env, stdin=stdin)
        assert done.returncode == 0, done.stderr
        self.cli_logs.append(done.stderr)  # stdout is where the CLI hands secrets over on purpose
        return done.stdout


def _policies(data: Path, client_id: str) -> None:
    files = {
        "captchapolicy.csv": f"p, *@example.com, {SERVER}, CAPTCHA, enable\n",
        "userpolicy.csv": (
            f"p, {ADMIN}, {SERVER}, TOKENWARD, admin\n"
            f"p, *@example.com, {SERVER}, {client_id}, login\n"
            f"p, *@example.com, {API}, {client_id}, ask\n"
            f"p, *@example.com, *@example.com, {client_id}, poke\n"
        ),
        "resourcepolicy.csv": f"p, {API}, {SERVER}, {client_id}, login\n",
        "clientscopespolicy.csv": f"p, *@example.com, *, {client_id}, DEFAULT\n",
    }
    write_policy_files(data, files)


def _forwarded(host: str = "wiki.example.com") -> dict[str, str]:
    return {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": "/page?x=1",
        "X-Forwarded-Method": "GET",
    }


def _flows(url: str, data: Path, env: dict[str, str], found: Secrets, client_id: str) -> None:
    http = httpx.Client(base_url=url, timeout=60)
    # Enrolment with a one-time code issued by the CLI.
    code = enrollment_code_in(found.cli("user", "enroll", ALICE, env=env))
    found.add("enrolment code", code)
    authenticator = X25519PrivateKey.generate()
    found.add("authenticator private key", authenticator.private_bytes_raw())
    r = http.post("/api/enroll", json={"email": ALICE, "code": code, "public_key": b64u_of_public(authenticator)})
    assert r.status_code == 200, r.text

    # Captcha sign-in: a wrong code first, then the right one.
    verifier = secrets.token_urlsafe(48)
    found.add("PKCE verifier", verifier)
    body = {"email": ALICE, "client_id": client_id, "origin": ORIGIN, "code_challenge": pkce_challenge(verifier)}
    r = http.post("/api/captcha", json=body)
    assert r.status_code == 200, r.text
    captcha = r.json()
    plain = open_captcha(captcha["captcha"], authenticator)
    session = X25519PrivateKey.generate()
    answer = {
        "captcha_id": captcha["captcha_id"],
        "code": plain.code,
        "code_verifier": verifier,
        "session_key": b64u_of_public(session),
    }
    wrong = "".join("A" if c != "A" else "B" for c in plain.code)
    r = http.post("/api/captcha/verify", json={**answer, "code": wrong})
    assert r.status_code in (400, 401, 403), r.text
    r = http.post("/api/captcha/verify", json=answer)
    assert r.status_code == 200, r.text
    source_identifier = r.json()["source_identifier"]
    found.add("source identifier", source_identifier)

    # Resource machine login, then a client token from alice to the resource.
    signing = Ed25519PrivateKey.generate()
    pem = signing.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (data.parent / "api.pem").write_bytes(pem)
    found.cli("resource", "register", API, "--public-key", str(data.parent / "api.pem"), env=env)
    r = http.post("/api/resource/challenge", json={"resource": API, "client_id": client_id})
    assert r.status_code == 200, r.text
    challenge = r.json()
    api_session = X25519PrivateKey.generate()
    body = resource_login_body(
        challenge, signing, client_id=client_id, session_key=b64u_of_public(api_session), server=SERVER
    )
    r = http.post("/api/resource/login", json=body)
    assert r.status_code == 200, r.text
    found.add("resource source identifier", r.json()["source_identifier"])
    bearer = {"Authorization": f"Bearer {source_identifier}"}
    r = http.post("/api/client-token", json={"destination": API}, headers=bearer)
    assert r.status_code == 200, r.text
    found.add("client token", r.json()["client_token"])
    assert http.get("/api/poke", params={"subject": ALICE}, headers=bearer).status_code == 200

    # App tokens: the admin's from the CLI, one more through the API, and a wrong one.
    admin_token = found.cli(
        "app-token", "create", "--user-name", ADMIN, "--scope", "tokenward:manage", "--label", "logs", env=env
    ).strip()
    found.add("admin app token", admin_token)
    r = http.post("/api/app-tokens", json={"label": "script"}, headers={"Authorization": _basic(ADMIN, admin_token)})
    assert r.status_code == 201, r.text
    app_token = r.json()["token"]
    found.add("app token", app_token)
    forged = app_token[:-12] + "".join(secrets.choice("abcdefghjk") for _ in range(12))
    found.add("wrong app token", forged)
    assert http.get("/api/app-tokens", headers={"Authorization": _basic(ADMIN, admin_token)}).status_code == 200

    # A config token for /verify, used with the good and the wrong app token (Basic and Bearer).
    doc = "tokenward:\n  plugins:\n    - type: app_token\n      realm: wiki\n"
    config_token = found.cli("config-token", "create", "-", env=env, stdin=doc).splitlines()[0]
    found.add("config token", config_token)
    verify = "/verify?config_token=" + config_token
    r = http.get(verify, headers={**_forwarded(), "Authorization": _basic(ADMIN, app_token)})
    assert r.status_code == 200, r.text
    r = http.get(verify, headers={**_forwarded(), "Authorization": f"Bearer {app_token}"})
    assert r.status_code == 200, r.text
    r = http.get(verify, headers={**_forwarded(), "Authorization": _basic(ADMIN, forged)})
    assert r.status_code == 401, r.text
    found.add("Basic header", _basic(ADMIN, app_token).split()[1])

    # Sign out: the identifier is refused afterwards.
    assert http.delete("/api/session", headers=bearer).status_code == 204
    http.close()


def _scan(logs: Iterable[tuple[str, str]], found: Secrets) -> list[str]:
    leaks = []
    for where, text in logs:
        for name, form in found.forms():
            if form in text:
                line = next(line for line in text.splitlines() if form in line)
                leaks.append(f"{name} in {where}: {line[:300]}")
    return leaks


def test_no_issued_secret_in_debug_logs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, SERVER)
    env = env_for(data, TOKENWARD_LOG_LEVEL="DEBUG", TOKENWARD_LOG_FORMAT="json")
    found = Secrets()
    out = found.cli("client", "register", "--name", "App", "--origin", ORIGIN, env=env)
    client_id = out.split("client_id:")[1].split()[0]
    _policies(data, client_id)
    found.add("time code", json.loads((data / "timecode.json").read_text())["current"])

    log = tmp_path / "serve.log"
    port = free_port()
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenward", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(proc, url)
            _flows(url, data, env, found, client_id)
        finally:
            stop(proc)
    for name in ("apptoken.key",):
        if (data / name).exists():
            found.add(name, (data / name).read_bytes())

    served = log.read_text(errors="replace")
    records = [json.loads(line) for line in served.splitlines() if line.startswith("{")]
    # The run really logged at DEBUG and really served the flows (else finding nothing proves nothing).
    assert any(r["level"] == "DEBUG" for r in records), served[-2000:]
    paths = {r.get("path") for r in records if r.get("logger") == "tokenward.access"}
    assert {"/api/captcha/verify", "/api/client-token", "/api/app-tokens", "/verify"} <= paths
    assert len(found.values) >= 12

    leaks = _scan([("the server log", served), *((f"CLI stderr {i}", t) for i, t in enumerate(found.cli_logs))], found)
    assert not leaks, "\n".join(leaks)


def test_the_scan_finds_a_secret_in_any_form() -> None:
    found = Secrets()
    probe = "twa_" + secrets.token_urlsafe(15)  # generated: no token-shaped literal in the repository
    found.add("probe", probe)
    for form in (probe, base64.b64encode(probe.encode()).decode(), probe.encode().hex()):
        assert _scan([("log", f'{{"msg": "x {form} y"}}')], found), form
    assert not _scan([("log", "nothing here")], found)
