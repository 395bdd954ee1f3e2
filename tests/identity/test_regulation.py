"""Captcha regulation across two instances: requests and failures per e-mail and per IP, 429 + Retry-After."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.identity.test_e2e import ORIGIN, Instance, _enrol, prepare_data_dir
from tokenward.identity.captcha import open_captcha, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import SqlAuditLog
from tokenward.web.app import create_app

Cluster = tuple[Instance, Instance, str, Path]


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    settings = Settings.load(
        data_dir=data, captcha_max_requests=3, captcha_max_failures=3, trusted_proxies="127.0.0.1/32"
    )
    rt_a, rt_b = await open_runtime(settings), await open_runtime(settings)
    a = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_a)), base_url="http://a")
    b = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_b)), base_url="http://b")
    try:
        yield Instance(a), Instance(b), client_id, data
    finally:
        await a.aclose()
        await b.aclose()
        await rt_a.close()
        await rt_b.close()


async def _ask(node: Instance, client_id: str, email: str, ip: str, verifier: str = "v" * 43) -> httpx.Response:
    body = {"email": email, "client_id": client_id, "origin": ORIGIN, "code_challenge": pkce_challenge(verifier)}
    return await node.http.post("/api/captcha", json=body, headers={"x-forwarded-for": ip})


async def _bans(data: Path) -> list[str]:
    runtime = await open_runtime(Settings.load(data_dir=data))
    try:
        events = await SqlAuditLog(runtime.database).list(action="regulation.ban")
    finally:
        await runtime.close()
    return [str(e.subject) for e in events]


async def test_captcha_requests_are_limited_per_email_and_per_ip(cluster: Cluster) -> None:
    a, b, client_id, data = cluster
    await _enrol(a, data, "alice@example.com")
    # Per e-mail: three requests from three addresses, on either instance; the fourth is refused on the other.
    for i, node in enumerate((a, b, a)):
        r = await _ask(node, client_id, "alice@example.com", f"192.0.2.{i}")
        assert r.status_code == 200, r.text
    r = await _ask(b, client_id, "alice@example.com", "192.0.2.99")
    assert r.status_code == 429 and r.json()["error"] == "captcha_rate_limited"
    assert 0 < int(r.headers["retry-after"]) <= 600
    # Per IP: unknown and unenrolled addresses count too (no free probing), then the IP is refused for anyone.
    for email in ("x@example.com", "y@example.com", "z@example.com"):
        assert (await _ask(a, client_id, email, "198.51.100.7")).json()["error"] == "not_enrolled"
    r = await _ask(b, client_id, "bob@example.com", "198.51.100.7")
    assert r.status_code == 429 and r.json()["error"] == "captcha_rate_limited"
    assert (await _ask(b, client_id, "bob@example.com", "198.51.100.8")).json()["error"] == "not_enrolled"
    bans = await _bans(data)
    assert "user:captcha-request:alice@example.com" in bans and "ip:captcha-request:198.51.100.7" in bans


async def test_captcha_failures_ban_the_user_across_instances(cluster: Cluster) -> None:
    a, b, client_id, data = cluster
    key = await _enrol(a, data, "carol@example.com")
    verifier = secrets.token_urlsafe(48)
    r = await _ask(a, client_id, "carol@example.com", "203.0.113.1", verifier)
    code = open_captcha(r.json()["captcha"], key).code
    answer = {
        "captcha_id": r.json()["captcha_id"],
        "code": "AAAAA" if code != "AAAAA" else "CCCCC",
        "code_verifier": verifier,
        "session_key": b64u_of_public(X25519PrivateKey.generate()),
    }
    # _enrol tried its used code once more: that was carol's first failure. Two wrong codes from other
    # addresses on either instance make three, and the e-mail key is banned.
    for i, node in enumerate((a, b)):
        r = await node.http.post("/api/captcha/verify", json=answer, headers={"x-forwarded-for": f"203.0.113.{10 + i}"})
        assert r.json()["error"] == "captcha_wrong_code"
    r = await b.http.post("/api/captcha/verify", json={**answer, "code": code})
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts" and "retry-after" in r.headers
    await asyncio.sleep(1.1)  # another instance honours a ban at its next snapshot refresh (at most 1 s)
    r = await _ask(a, client_id, "carol@example.com", "203.0.113.50")
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    assert "user:captcha:carol@example.com" in await _bans(data)


async def test_enrolment_code_guessing_is_regulated(cluster: Cluster) -> None:
    a, b, _, _ = cluster
    body = {"email": "eve@example.com", "code": "0" * 32, "public_key": b64u_of_public(X25519PrivateKey.generate())}
    for node in (a, b, b):
        assert (await node.post("/api/enroll", body)).json()["error"] == "enrollment_code_invalid"
    r = await b.post("/api/enroll", body)
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
