"""Sessions across real instances: a source identifier from A is accepted by C; a time-code mismatch is named.

Same cluster as tests/e2e/test_multi_instance.py (three `tokenward serve` processes, one
PostgreSQL, one moto S3). A user is enrolled and logs in over HTTP on A exactly as the reference
authenticator would (``open_captcha`` on the captcha text); the ``tw1si.…`` it gets is then used
on C, which only knows the cluster through the saved bundle. A fourth instance D with its own
data dir and its own time code (no S3, its own SQLite) answers 401 ``timecode_mismatch`` to the
same identifier. With Redis on 127.0.0.1:6379 the cluster also runs with ``TOKENWARD_REDIS_URL``
and a revocation on A is refused by B (skipped without Redis, failed under ``CI=true``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.e2e import test_multi_instance as mi
from tests.e2e.processes import env_for, serving, tokenward
from tests.helpers import enrollment_code_in
from tokenward.identity.captcha import open_captcha, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public

SERVER = mi.SERVER
ADMIN = "root@example.com"
USER = "alice@example.com"
REDIS_URL = "redis://127.0.0.1:6379/0"
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# The cluster fixtures of test_multi_instance, reused by name.
moto = mi.moto
cluster = mi.cluster


def _first_party_client(data: Path) -> str:
    clients = json.loads((data / "clientids.json").read_text())["clients"]
    return str(next(c["client_id"] for c in clients if c.get("first_party")))


def _login_policies(data: Path, client_id: str) -> None:
    """Captcha enable, login, poke and the DEFAULT scope for *@example.com on the first-party client."""
    rows = {
        "captchapolicy.csv": f"p, *@example.com, {SERVER}, CAPTCHA, enable\n",
        "userpolicy.csv": (
            f"p, *@example.com, {SERVER}, {client_id}, login\np, *@example.com, *@example.com, {client_id}, poke\n"
        ),
        "clientscopespolicy.csv": f"p, *@example.com, *, {client_id}, DEFAULT\n",
    }
    for name, text in rows.items():
        with (data / name).open("a") as f:
            f.write(text)


def _init_and_save(c: mi.Cluster) -> str:
    c.cli("a", "init", "--server-name", SERVER, "--admin", ADMIN)
    client_id = _first_party_client(c.data("a"))
    _login_policies(c.data("a"), client_id)
    out = c.cli("a", "config", "save")
    assert "- Time Code Saved Successfully. (sealed)" in out, out
    return client_id


def _login(c: mi.Cluster, name: str, email: str, client_id: str) -> str:
    """Enrol ``email`` (CLI code + POST /api/enroll) and log in on instance ``name``; the ``tw1si.…``."""
    code = enrollment_code_in(c.cli(name, "user", "enroll", email))
    authenticator = X25519PrivateKey.generate()
    with httpx.Client(base_url=c.urls[name], timeout=5) as http:
        r = http.post("/api/enroll", json={"email": email, "code": code, "public_key": b64u_of_public(authenticator)})
        assert r.status_code == 200, r.text
        verifier = secrets.token_urlsafe(48)
        body = {
            "email": email,
            "client_id": client_id,
            "origin": f"https://{SERVER}",
            "code_challenge": pkce_challenge(verifier),
        }
        r = http.post("/api/captcha", json=body)
        assert r.status_code == 200, r.text
        plain = open_captcha(r.json()["captcha"], authenticator)
        assert plain.server == SERVER and plain.subject == email
        answer = {
            "captcha_id": r.json()["captcha_id"],
            "code": plain.code,
            "code_verifier": verifier,
            "session_key": b64u_of_public(X25519PrivateKey.generate()),
        }
        r = http.post("/api/captcha/verify", json=answer)
        assert r.status_code == 200, r.text
    si = str(r.json()["source_identifier"])
    assert si.startswith("tw1si."), si
    return si


def _bearer(si: str) -> dict[str, str]:
    return {"authorization": f"Bearer {si}"}


def _error(r: httpx.Response) -> object:
    body = r.json()
    return body.get("error") if isinstance(body, dict) else None


def test_session_from_a_is_accepted_by_c_and_refused_with_a_clear_code_on_another_time_code(
    cluster: mi.Cluster, tmp_path: Path
) -> None:
    client_id = _init_and_save(cluster)
    cluster.start_all("a", "c")
    si = _login(cluster, "a", ADMIN, client_id)

    # C (bundle only) accepts A's session: the admin lists app tokens, and the user-level routes work
    listed = httpx.get(cluster.urls["c"] + "/api/app-tokens", headers=_bearer(si), timeout=5)
    assert listed.status_code == 200, listed.text
    poke = httpx.get(cluster.urls["c"] + "/api/poke", params={"subject": ADMIN}, headers=_bearer(si), timeout=5)
    assert poke.status_code == 200, poke.text

    # D: its own data dir and time code, no S3, its own SQLite: a named mismatch, not a generic 401
    d_env = env_for(tmp_path / "d", TOKENWARD_SERVER_NAME=SERVER)
    done = tokenward("init", "--server-name", SERVER, env=d_env)
    assert done.returncode == 0, done.stderr
    with serving(d_env) as (url, _):
        assert httpx.get(url + "/readyz", timeout=2).json()["timecode"] != cluster.ready("a")["timecode"]
        r = httpx.get(url + "/api/app-tokens", headers=_bearer(si), timeout=5)
        assert r.status_code == 401 and _error(r) == "timecode_mismatch", r.text
        r = httpx.delete(url + "/api/session", headers=_bearer(si), timeout=5)
        assert r.status_code == 401 and _error(r) == "timecode_mismatch", r.text

    # ending the session on C is refused by A (one database) within 1 s: A's change feed reads it
    assert httpx.delete(cluster.urls["c"] + "/api/session", headers=_bearer(si), timeout=5).status_code == 204
    took = mi.wait_for(
        lambda: httpx.get(cluster.urls["a"] + "/api/app-tokens", headers=_bearer(si), timeout=5).status_code == 401,
        5.0,
    )
    assert took <= 1.0
    r = httpx.get(cluster.urls["a"] + "/api/app-tokens", headers=_bearer(si), timeout=5)
    assert r.status_code == 401 and _error(r) == "session_revoked", r.text


def _redis_or_skip() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.settimeout(1)
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
            reason = "no PONG"
    except OSError as exc:
        reason = type(exc).__name__
    start = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
    message = f"Redis is not reachable on 127.0.0.1:6379 ({reason}); start one: {start}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def test_revocations_on_a_are_refused_by_b_with_redis(cluster: mi.Cluster) -> None:
    _redis_or_skip()
    cluster.env["TOKENWARD_REDIS_URL"] = REDIS_URL
    client_id = _init_and_save(cluster)
    cluster.start_all("a", "b")
    for name in ("a", "b"):
        assert cluster.ready(name)["status"] == "ready"

    # an app token revoked on A is refused by B within 1 s
    token = cluster.cli("a", "app-token", "create", "-u", USER, "-s", "tokenward:manage").strip()
    auth = (USER, token)
    assert httpx.get(cluster.urls["b"] + "/auth-app/tokens", auth=auth, timeout=5).status_code == 200
    deleted = httpx.delete(cluster.urls["a"] + "/auth-app/tokens", params={"token": token}, auth=auth, timeout=5)
    assert deleted.status_code == 200, deleted.text
    took = mi.wait_for(
        lambda: httpx.get(cluster.urls["b"] + "/auth-app/tokens", auth=auth, timeout=5).status_code == 401, 1.5
    )
    assert took <= 1.0

    # a session ended on A is refused by B
    si = _login(cluster, "a", USER, client_id)
    r = httpx.get(cluster.urls["b"] + "/api/poke", params={"subject": USER}, headers=_bearer(si), timeout=5)
    assert r.status_code == 200, r.text
    assert httpx.delete(cluster.urls["a"] + "/api/session", headers=_bearer(si), timeout=5).status_code == 204
    took = mi.wait_for(
        lambda: (
            httpx.get(
                cluster.urls["b"] + "/api/poke", params={"subject": USER}, headers=_bearer(si), timeout=5
            ).status_code
            == 401
        ),
        5.0,
    )
    assert took <= 1.0
    r = httpx.get(cluster.urls["b"] + "/api/poke", params={"subject": USER}, headers=_bearer(si), timeout=5)
    assert r.status_code == 401 and _error(r) == "session_revoked", r.text
