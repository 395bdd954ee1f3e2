"""The client library against a real tokenward app (in process) and a real resource app with the middleware.

A user logs in with the captcha (the authenticator is a callback holding the enrolled key), the
resource logs in with its Ed25519 key, and requests go through ``TokenwardAuth``: sealed and
unsealed, with token caching, refresh, and the retry after the resource logged in again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from tests.client.resource import RESOURCE, Clock, resource_app
from tests.helpers import enrollment_code_in
from tests.identity.helpers import ORIGIN, SERVER, prepare_data_dir
from tokenward.cli.main import app as cli
from tokenward.client import (
    AsyncTokenward,
    CaptchaChallenge,
    JWKSCache,
    SessionKeys,
    Tokenward,
    Verifier,
    key_authenticator,
    prompt_authenticator,
)
from tokenward.errors import ServiceUnavailable, TokenwardError, Unauthorized
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app


@dataclass
class Setup:
    http: httpx.AsyncClient
    client_id: str
    alice: X25519PrivateKey
    resource_signing: Ed25519PrivateKey
    clock: Clock


async def _cli(data: Path, *args: str) -> str:
    # The CLI runs its own event loop: give it a thread.
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["-d", str(data), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    signing = Ed25519PrivateKey.generate()
    pem = tmp_path / "api.pem"
    pem.write_bytes(
        signing.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    await _cli(data, "resource", "register", RESOURCE, "--public-key", str(pem))
    code = enrollment_code_in(await _cli(data, "user", "enroll", "alice@example.com"))
    settings = Settings.load(data_dir=data)
    runtime = await open_runtime(settings)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, runtime=runtime)), base_url="http://tw"
    )
    alice = X25519PrivateKey.generate()
    enrolled = await http.post(
        "/api/enroll", json={"email": "alice@example.com", "code": code, "public_key": b64u_of_public(alice)}
    )
    assert enrolled.status_code == 200, enrolled.text
    try:
        yield Setup(http, client_id, alice, signing, Clock(time.time()))
    finally:
        await http.aclose()
        await runtime.close()


async def _resource(s: Setup, keys: SessionKeys) -> tuple[AsyncTokenward, httpx.ASGITransport]:
    rs = AsyncTokenward("http://tw", client_id=s.client_id, http=s.http, session_keys=keys, clock=s.clock)
    session = await rs.login_resource(RESOURCE, signing_key=s.resource_signing)
    assert session.kind == "resource" and session.subject == RESOURCE
    assert keys.find(b64u_of_public(session.session_key)) is session.session_key
    jwks = JWKSCache("http://tw/.well-known/jwks.json", http=s.http, clock=s.clock)
    verifier = Verifier(issuer=SERVER, resource=RESOURCE, jwks=jwks, session_keys=keys, clock=s.clock)
    return rs, httpx.ASGITransport(app=resource_app(verifier))


async def test_login_then_sealed_and_proven_requests_through_the_middleware(setup: Setup) -> None:
    s = setup
    _, transport = await _resource(s, SessionKeys())
    tw = AsyncTokenward("http://tw", client_id=s.client_id, http=s.http, clock=s.clock)
    session = await tw.login_captcha("alice@example.com", authenticator=key_authenticator(s.alice), origin=ORIGIN)
    assert session.subject == "alice@example.com" and session.kind == "user"
    assert "tw1si" not in repr(session)  # the source identifier stays out of reprs and logs

    async with httpx.AsyncClient(transport=transport, base_url="http://api", auth=tw.auth(RESOURCE)) as api:
        r = await api.post("/whoami?x=1", json={"n": 1})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        answer = r.json()
        assert answer["subject"] == "alice@example.com" and answer["sealed"] is True
        assert answer["body"] == '{"n":1}' and answer["content_type"] == "application/json"
        assert answer["client_id"] == s.client_id
        gone = await api.delete("/whoami")  # an answer without a body stays without one
        assert gone.status_code == 204 and gone.content == b""
        refused = await api.get("/admin")  # the middleware's refusals are not sealed
        assert refused.status_code == 403 and refused.json()["error"] == "scope_missing"

    async with httpx.AsyncClient(transport=transport, base_url="http://api", auth=tw.auth(RESOURCE, seal=False)) as api:
        r = await api.get("/whoami")
        assert r.status_code == 200 and r.json()["sealed"] is False


async def test_tokens_are_cached_per_destination_until_shortly_before_expiry(setup: Setup) -> None:
    s = setup
    await _resource(s, SessionKeys())
    tw = AsyncTokenward("http://tw", client_id=s.client_id, http=s.http, clock=s.clock, refresh_margin_seconds=60)

    async def authenticator(challenge: CaptchaChallenge) -> str:  # an async callback works too
        await asyncio.sleep(0)
        return key_authenticator(s.alice)(challenge)

    await tw.login_captcha("alice@example.com", authenticator=authenticator, origin=ORIGIN)
    first = await tw.client_token(RESOURCE)
    assert await tw.client_token(RESOURCE) is first
    s.clock.now = first.claims.expires_at - 61
    assert await tw.client_token(RESOURCE) is first
    s.clock.now = first.claims.expires_at - 60
    second = await tw.client_token(RESOURCE)
    assert second.claims.token_id != first.claims.token_id
    # A user session past its expiry is not renewed silently.
    assert tw.session is not None
    s.clock.now = tw.session.expires_at
    with pytest.raises(Unauthorized) as info:
        await tw.client_token(RESOURCE)
    assert info.value.error_code == "session_expired"


async def test_a_resource_that_logged_in_again_gets_a_new_token_transparently(setup: Setup) -> None:
    s = setup
    keys = SessionKeys(keep=1)  # the old session key is dropped at once
    rs, transport = await _resource(s, keys)
    tw = AsyncTokenward("http://tw", client_id=s.client_id, http=s.http, clock=s.clock)
    await tw.login_captcha("alice@example.com", authenticator=key_authenticator(s.alice), origin=ORIGIN)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", auth=tw.auth(RESOURCE)) as api:
        assert (await api.get("/whoami")).is_success
        old = await tw.client_token(RESOURCE)
        await rs.login_resource(RESOURCE, signing_key=s.resource_signing)
        r = await api.post("/whoami", content=b"again")
        assert r.status_code == 200, r.text
        assert r.json()["body"] == "again"
        assert (await tw.client_token(RESOURCE)).claims.token_id != old.claims.token_id


async def test_client_errors_carry_the_servers_code(setup: Setup) -> None:
    s = setup
    tw = AsyncTokenward("http://tw", client_id=s.client_id, http=s.http, clock=s.clock)
    with pytest.raises(Unauthorized) as info:
        await tw.client_token(RESOURCE)
    assert info.value.error_code == "not_logged_in"
    with pytest.raises(TokenwardError) as wrong:
        await tw.login_captcha("alice@example.com", authenticator=lambda _: "AAAAA", origin=ORIGIN)
    assert wrong.value.error_code == "captcha_wrong_code" and wrong.value.status == 401
    with pytest.raises(TokenwardError) as unknown:
        await tw.login_captcha(
            "alice@example.com", authenticator=key_authenticator(s.alice), origin="https://evil.example"
        )
    assert unknown.value.error_code == "origin_not_allowed" and unknown.value.status == 403
    bob = X25519PrivateKey.generate()
    with pytest.raises(TokenwardError) as mismatch:  # a captcha this key cannot open is not answered
        await tw.login_captcha("alice@example.com", authenticator=key_authenticator(bob), origin=ORIGIN)
    assert mismatch.value.error_code in ("captcha_unreadable", "captcha_mismatch")
    await tw.login_captcha("alice@example.com", authenticator=key_authenticator(s.alice), origin=ORIGIN)
    with pytest.raises(TokenwardError) as nobody:
        await tw.client_token("nobody.example.com")
    assert nobody.value.error_code in ("ask_not_allowed", "destination_unknown")
    await tw.logout()
    assert tw.session is None


def test_an_unreachable_issuer_is_a_clear_error() -> None:
    with Tokenward("http://127.0.0.1:9", client_id="A" * 40) as tw:
        with pytest.raises(ServiceUnavailable) as info:
            tw.login_resource(RESOURCE, signing_key=Ed25519PrivateKey.generate())
    assert info.value.error_code == "issuer_unreachable"


def test_the_prompt_authenticator_shows_the_qr_code_and_returns_the_typed_code() -> None:
    shown: list[str] = []
    answer = prompt_authenticator(read=lambda prompt: "  k3m7p \n", write=lambda text: shown.append(str(text)))
    challenge = CaptchaChallenge(
        email="alice@example.com", captcha_id="id", captcha="TWC1.id.payload", qr_svg="", expires_at=0
    )
    assert answer(challenge) == "k3m7p"
    assert "alice@example.com" in shown[0]
    assert len(shown[1].splitlines()) > 10  # the QR code, drawn with block characters


async def test_a_resource_session_renews_itself_before_it_expires(setup: Setup) -> None:
    s = setup
    keys = SessionKeys()
    rs, _ = await _resource(s, keys)
    first = rs.session
    assert first is not None
    assert await rs.ensure_session() is first
    s.clock.now = first.expires_at - 60  # inside the refresh margin: a new login, a new session key
    renewed = await rs.ensure_session()
    assert renewed is not first and renewed.session_key is not first.session_key
    assert keys.find(b64u_of_public(renewed.session_key)) is renewed.session_key
    assert keys.find(b64u_of_public(first.session_key)) is first.session_key  # kept for live tokens


async def test_a_captcha_login_keeps_its_device_token_and_sends_it_next_time(setup: Setup) -> None:
    """The SDK's side of docs/regulation.md: a client that logged in before is not locked out by strangers."""
    s = setup
    sent: list[dict[str, object]] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path in ("/api/captcha", "/api/captcha/verify"):
            sent.append(json.loads(request.content))

    s.http.event_hooks["request"].append(record)
    tw = AsyncTokenward("http://tw", client_id=s.client_id, http=s.http, clock=s.clock)
    first = await tw.login_captcha("alice@example.com", authenticator=key_authenticator(s.alice), origin=ORIGIN)
    assert first.device and first.device not in repr(first)
    assert all("device" not in body for body in sent)
    sent.clear()
    await tw.login_captcha("alice@example.com", authenticator=key_authenticator(s.alice), origin=ORIGIN)
    assert [body.get("device") for body in sent] == [first.device, first.device]
