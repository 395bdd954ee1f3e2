"""A session (Bearer tw1si.…) calls the management API: app tokens created and listed with a login."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.identity.helpers import ORIGIN, SERVER, Instance, enrol_user, prepare_data_dir
from tokenward.identity.captcha import open_captcha, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app

Cluster = tuple[Instance, Instance, str, Path]


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    with (data / "clientscopespolicy.csv").open("a") as f:
        f.write(f"p, alice@example.com, *, {client_id}, TOKENWARD_MANAGE\n")
    with (data / "userpolicy.csv").open("a") as f:
        f.write(f"p, root@example.com, {SERVER}, TOKENWARD, admin\n")
    settings = Settings.load(data_dir=data)
    rt_a, rt_b = await open_runtime(settings), await open_runtime(settings)
    a = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_a)), base_url="http://a")
    b = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_b)), base_url="http://b")
    try:
        yield Instance(a, rt_a), Instance(b, rt_b), client_id, data
    finally:
        await a.aclose()
        await b.aclose()
        await rt_a.close()
        await rt_b.close()


async def _session(node: Instance, data: Path, client_id: str, email: str, scopes: list[str]) -> str:
    key = await enrol_user(node, data, email)
    verifier = secrets.token_urlsafe(48)
    body = {"email": email, "client_id": client_id, "origin": ORIGIN, "code_challenge": pkce_challenge(verifier)}
    captcha = (await node.post("/api/captcha", body)).json()
    answer = {
        "captcha_id": captcha["captcha_id"],
        "code": open_captcha(captcha["captcha"], key).code,
        "code_verifier": verifier,
        "session_key": b64u_of_public(X25519PrivateKey.generate()),
        "scopes": scopes,
    }
    r = await node.post("/api/captcha/verify", answer)
    assert r.status_code == 200, r.text
    return str(r.json()["source_identifier"])


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_session_with_manage_scope_creates_app_tokens(cluster: Cluster) -> None:
    a, b, client_id, data = cluster
    alice = await _session(a, data, client_id, "alice@example.com", ["TOKENWARD_MANAGE"])
    r = await b.http.post(
        "/api/app-tokens", json={"label": "ci", "scopes": ["tokenward:manage"]}, headers=_bearer(alice)
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    listed = await a.http.get("/api/app-tokens", headers=_bearer(alice))
    assert listed.status_code == 200 and [t["label"] for t in listed.json()] == ["ci"]
    # The app token made with the session works on its own, as Basic credentials.
    basic = base64.b64encode(f"alice@example.com:{token}".encode()).decode()
    assert (await a.http.get("/api/app-tokens", headers={"authorization": f"Basic {basic}"})).status_code == 200

    # Logged out on one instance: refused by the management API of the other once its change feed reads the
    # log (every 0.2 s in the background; read here without waiting for it).
    assert (await a.http.delete("/api/session", headers=_bearer(alice))).status_code == 204
    assert b.runtime is not None
    await b.runtime.changes.poll()
    r = await b.http.get("/api/app-tokens", headers=_bearer(alice))
    assert r.status_code == 401 and r.json()["error"] == "session_revoked" and "www-authenticate" in r.headers


async def test_session_scopes_map_onto_manage(cluster: Cluster) -> None:
    a, _, client_id, data = cluster
    bob = await _session(a, data, client_id, "bob@example.com", [])  # DEFAULT only, not an admin
    r = await a.http.get("/api/app-tokens", headers=_bearer(bob))
    assert r.status_code == 403 and r.json()["error"] == "scope_missing"
    root = await _session(a, data, client_id, "root@example.com", [])  # an admin by policy
    assert (await a.http.get("/api/app-tokens", headers=_bearer(root))).status_code == 200
    tampered = root[:-4] + ("AAAA" if not root.endswith("AAAA") else "BBBB")
    r = await a.http.get("/api/app-tokens", headers=_bearer(tampered))
    assert r.status_code == 401 and r.json()["error"] == "source_identifier_tampered"
