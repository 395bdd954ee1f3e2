"""Captcha regulation across two instances: hard limits per IP and per (e-mail, IP), a soft per-e-mail limit on
wrong answers that a device token lifts, 429 + Retry-After (docs/regulation.md; issue 15 #1).

Each instance counts in memory and writes its counts once a second (``Runtime.flush_regulation``, which a
serving process runs in the background): the tests call it where a second passes, so what one instance
learns from the other's counts is deterministic."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.identity.helpers import ORIGIN, Instance, enrol_user, prepare_data_dir
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
        data_dir=data,
        captcha_max_requests=3,
        captcha_max_failures=3,
        captcha_account_max_failures=3,
        trusted_proxies="127.0.0.1/32",
    )
    # listen=False: no background flush, so each instance learns the other's counts exactly where a test flushes
    # (an instance's view of the shared count is refreshed only by its own flushes).
    rt_a, rt_b = await open_runtime(settings, listen=False), await open_runtime(settings, listen=False)
    a = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_a)), base_url="http://a")
    b = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_b)), base_url="http://b")
    try:
        yield Instance(a, rt_a), Instance(b, rt_b), client_id, data
    finally:
        await a.aclose()
        await b.aclose()
        await rt_a.close()
        await rt_b.close()


async def _ask(node: Instance, client_id: str, email: str, ip: str, verifier: str = "v" * 43) -> httpx.Response:
    body = {"email": email, "client_id": client_id, "origin": ORIGIN, "code_challenge": pkce_challenge(verifier)}
    return await node.http.post("/api/captcha", json=body, headers={"x-forwarded-for": ip})


async def _flush(*nodes: Instance) -> None:
    """What every instance does once a second: write its counts and bans, read the others' bans."""
    for node in nodes:
        assert node.runtime is not None
        await node.runtime.flush_regulation()


async def _bans(data: Path) -> list[str]:
    runtime = await open_runtime(Settings.load(data_dir=data))
    try:
        events = await SqlAuditLog(runtime.database).list(action="regulation.ban")
    finally:
        await runtime.close()
    return [str(e.subject) for e in events]


async def test_captcha_requests_are_limited_per_ip_and_per_email_and_ip_never_per_email(cluster: Cluster) -> None:
    a, b, client_id, data = cluster
    await enrol_user(a, data, "alice@example.com")
    # The audit's attack: a stranger asks for captchas for alice's address until refused ...
    for node in (a, b, a):
        assert (await _ask(node, client_id, "alice@example.com", "198.51.100.66")).status_code == 200
    await _flush(a, b)  # B now knows the three requests: its next one is past the limit at once
    r = await _ask(b, client_id, "alice@example.com", "198.51.100.66")
    assert r.status_code == 429 and r.json()["error"] == "captcha_rate_limited"
    assert 0 < int(r.headers["retry-after"]) <= 600
    await _flush(b, a)  # ... and A honours B's ban after its next refresh
    r = await _ask(a, client_id, "alice@example.com", "198.51.100.66")
    assert r.status_code == 429 and r.json()["error"] == "captcha_rate_limited"
    # ... and alice, from her own address, on either instance, is not refused.
    for i, node in enumerate((a, b)):
        r = await _ask(node, client_id, "alice@example.com", f"192.0.2.{i}")
        assert r.status_code == 200, r.text
    # Per IP: unknown and unenrolled addresses count too (no free probing), then the IP is refused for anyone.
    for email in ("x@example.com", "y@example.com", "z@example.com"):
        assert (await _ask(a, client_id, email, "198.51.100.7")).json()["error"] == "not_enrolled"
    # B never counted this address: it answers the fourth request and bans at its flush, from both counts.
    assert (await _ask(b, client_id, "bob@example.com", "198.51.100.7")).json()["error"] == "not_enrolled"
    await _flush(a, b)
    r = await _ask(b, client_id, "bob@example.com", "198.51.100.7")
    assert r.status_code == 429 and r.json()["error"] == "captcha_rate_limited"
    assert (await _ask(b, client_id, "bob@example.com", "198.51.100.8")).json()["error"] == "not_enrolled"
    bans = await _bans(data)
    assert "ip:captcha-request:198.51.100.7" in bans
    assert "ip:captcha-request:198.51.100.66" in bans
    assert not [ban for ban in bans if ban.startswith("pair:")]  # with an address, the address alone is counted
    assert not [ban for ban in bans if ban.startswith("user:")]


async def test_wrong_answers_hold_the_account_for_strangers_but_not_for_its_devices(cluster: Cluster) -> None:
    a, b, client_id, data = cluster
    key = await enrol_user(a, data, "carol@example.com")
    verifier = secrets.token_urlsafe(48)
    r = await _ask(a, client_id, "carol@example.com", "203.0.113.1", verifier)
    code = open_captcha(r.json()["captcha"], key).code
    answer = {
        "captcha_id": r.json()["captcha_id"],
        "code": "AAAAA" if code != "AAAAA" else "CCCCC",
        "code_verifier": verifier,
        "session_key": b64u_of_public(X25519PrivateKey.generate()),
    }
    # Carol signs in once from her browser and keeps the device token it is given.
    r = await _ask(a, client_id, "carol@example.com", "192.0.2.5", verifier)
    own = {**answer, "captcha_id": r.json()["captcha_id"], "code": open_captcha(r.json()["captcha"], key).code}
    r = await a.http.post("/api/captcha/verify", json=own, headers={"x-forwarded-for": "192.0.2.5"})
    assert r.status_code == 200, r.text
    device = r.json()["device"]
    # Three wrong answers from three addresses (each under its own limit) put the account over its soft limit.
    for i, node in enumerate((b, a, b)):
        r = await node.http.post("/api/captcha/verify", json=answer, headers={"x-forwarded-for": f"203.0.113.{10 + i}"})
        assert r.json()["error"] == "captcha_wrong_code"
    await _flush(a, b)  # B's flush counts three (two of its own, one of A's): the account is over its limit
    r = await b.http.post("/api/captcha/verify", json={**answer, "code": code})
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts" and "retry-after" in r.headers
    # Another instance honours a ban at its next snapshot refresh (once a second while it serves): A's is now.
    await _flush(a)
    r = await _ask(a, client_id, "carol@example.com", "203.0.113.50")
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    assert "user:captcha:carol@example.com" in await _bans(data)
    # Carol's browser is not locked out: with its device token she asks and answers as usual, on either instance.
    body = {"email": "carol@example.com", "client_id": client_id, "origin": ORIGIN, "device": device}
    r = await b.http.post(
        "/api/captcha",
        json={**body, "code_challenge": pkce_challenge(verifier)},
        headers={"x-forwarded-for": "192.0.2.5"},
    )
    assert r.status_code == 200, r.text
    mine = {**own, "captcha_id": r.json()["captcha_id"], "code": open_captcha(r.json()["captcha"], key).code}
    r = await a.http.post(
        "/api/captcha/verify", json={**mine, "device": device}, headers={"x-forwarded-for": "192.0.2.5"}
    )
    assert r.status_code == 200, r.text
    # A device token proves only the account it was issued for, and a forged one proves nothing.
    for other in (device[:-2] + "AA", "x.y.z"):
        r = await _ask_with(b, body, other, verifier)
        assert r.status_code == 429


async def _ask_with(node: Instance, body: dict[str, str], device: str, verifier: str) -> httpx.Response:
    full = {**body, "device": device, "code_challenge": pkce_challenge(verifier)}
    return await node.http.post("/api/captcha", json=full, headers={"x-forwarded-for": "192.0.2.9"})


async def test_enrolment_code_guessing_is_regulated(cluster: Cluster) -> None:
    a, b, _, _ = cluster
    body = {"email": "eve@example.com", "code": "0" * 32, "public_key": b64u_of_public(X25519PrivateKey.generate())}
    for node in (a, b, b):
        assert (await node.post("/api/enroll", body)).json()["error"] == "enrollment_code_invalid"
    await _flush(a, b)
    r = await b.post("/api/enroll", body)
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
