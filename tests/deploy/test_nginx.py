"""deploy/nginx/tokenward.conf in a real nginx: TLS, the HTTP redirect, headers tokenward relies on, /metrics kept off.

The file runs as shipped except for what a test must change: loopback ports instead of 80/443, no IPv6 listens,
a certificate made on the spot, and a stub upstream that echoes what it received in place of tokenward.
Outside CI a missing nginx skips with an install hint; under ``CI=true`` it fails.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

import httpx

from tests.e2e.processes import free_port, stop
from tests.e2e.proxies import NGINX, NGINX_HEAD, echo_upstream, require_binary, wait_port
from tests.e2e.test_tls import make_cert

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "tokenward.conf"


def for_test(text: str, *, plain: int, tls: int, upstream: int, cert: Path, key: Path) -> str:
    changes = {
        "server 127.0.0.1:8080 ": f"server 127.0.0.1:{upstream} ",
        "    listen 80;\n": f"    listen 127.0.0.1:{plain};\n",
        "    listen [::]:80;\n": "",
        "    listen 443 ssl http2;\n": f"    listen 127.0.0.1:{tls} ssl http2;\n",
        "    listen [::]:443 ssl http2;\n": "",
        "/etc/ssl/certs/auth.example.com.pem": str(cert),
        "/etc/ssl/private/auth.example.com.key": str(key),
    }
    for old, new in changes.items():
        assert text.count(old) == 1, f"{CONF.name} no longer has {old!r}: update this test with it"
        text = text.replace(old, new)
    return text


def test_shipped_nginx_config_terminates_tls_and_forwards_what_tokenward_needs(tmp_path: Path) -> None:
    binary = require_binary(NGINX)
    cert, key = make_cert(tmp_path)
    plain, tls = free_port(), free_port()
    with echo_upstream() as upstream:
        site = for_test(CONF.read_text(encoding="utf-8"), plain=plain, tls=tls, upstream=upstream, cert=cert, key=key)
        (tmp_path / "tokenward.conf").write_text(site, encoding="utf-8")
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_HEAD.format(tmp=tmp_path) + f"  include {tmp_path / 'tokenward.conf'};\n}}\n")
        check = subprocess.run([binary, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        log = tmp_path / "stderr.log"
        with log.open("wb") as err:
            proc = subprocess.Popen([binary, "-p", str(tmp_path), "-c", str(conf)], stdout=err, stderr=err)
        try:
            wait_port(tls, proc, tmp_path / "error.log")
            trust = ssl.create_default_context(cafile=str(cert))
            with httpx.Client(verify=trust, timeout=30) as client:
                answer = client.get(f"https://127.0.0.1:{tls}/readyz", headers={"Host": "auth.example.com"})
                assert answer.status_code == 200
                assert answer.headers["strict-transport-security"].startswith("max-age=")
                seen = answer.json()
                assert seen["path"] == "/readyz"
                headers = seen["headers"]
                assert headers["host"] == "auth.example.com"
                assert headers["x-forwarded-proto"] == "https"
                assert headers["x-forwarded-for"] == "127.0.0.1"
                assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
                # A client-sent X-Forwarded-For is kept left of the address nginx saw, which tokenward reads.
                spoofed = client.get(f"https://127.0.0.1:{tls}/x", headers={"X-Forwarded-For": "203.0.113.9"})
                assert spoofed.json()["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
                assert client.get(f"https://127.0.0.1:{tls}/metrics").status_code == 404  # the stub answers 200
                too_big = client.post(f"https://127.0.0.1:{tls}/api/app-tokens", content=b"x" * (1024 * 1024 + 1))
                assert too_big.status_code == 413
                redirect = client.get(f"http://127.0.0.1:{plain}/login?next=/x", headers={"Host": "auth.example.com"})
                assert redirect.status_code == 301
                assert redirect.headers["location"] == "https://auth.example.com/login?next=/x"
        finally:
            stop(proc)
