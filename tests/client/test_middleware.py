"""TokenwardMiddleware in front of a real FastAPI app: every refusal the issue lists, and what passes.

The issuer is a Starlette app serving the JWKS of a real keyring; the resource app is reached
through httpx's ASGI transport; clocks are injected and moved by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.client.resource import ISSUER, ORIGIN, RESOURCE, Clock, Issuer, Peer, make_verifier, resource_app
from tokenward.client import (
    JWKSCache,
    MemoryReplayGuard,
    RedisReplayGuard,
    SessionKeys,
    TokenwardMiddleware,
    Verifier,
)
from tokenward.client.channel import SEALED_CONTENT_TYPE, open_response, seal_request
from tokenward.client.regulation import FailureRegulator
from tokenward.identity.apps import app_hash_of_origin
from tokenward.identity.client_tokens import channel_key, jwks
from tokenward.identity.encoding import b64u_encode
from tokenward.keys import Keyring, TimeCode
from tokenward.storage.redisstate import connect_redis

AppFactory = Callable[..., Awaitable[httpx.AsyncClient]]


def _keyring(now: float) -> Keyring:
    return Keyring(TimeCode.generate(now=now, random_bytes=secrets.token_bytes(32)))


class World:
    def __init__(self) -> None:
        self.clock = Clock(time.time())
        self.keyring = _keyring(self.clock.now)
        self.issuer = Issuer(self.keyring, clock=self.clock)
        self.resource_key = X25519PrivateKey.generate()
        self.keys = SessionKeys(self.resource_key)
        self.peer = Peer(self.keyring, self.clock, self.resource_key)
        self._closing: list[httpx.AsyncClient] = []
        self.verifier: Verifier | None = None

    async def app(self, *, middleware: dict[str, Any] | None = None, **verifier_options: Any) -> httpx.AsyncClient:
        verifier, http = make_verifier(self.issuer, self.keys, self.clock, **verifier_options)
        self.verifier = verifier
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=resource_app(verifier, **(middleware or {}))), base_url="http://api"
        )
        self._closing += [http, client]
        return client

    async def get(self, client: httpx.AsyncClient, path: str = "/whoami", **claims: Any) -> httpx.Response:
        c = self.peer.claims(**claims)
        token = self.peer.token(c)
        return await client.get(path, headers=self.peer.headers(token, c, "GET", path))

    async def close(self) -> None:
        for client in self._closing:
            await client.aclose()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    try:
        yield w
    finally:
        await w.close()


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert body["detail"]


async def test_a_good_request_reaches_the_app_with_the_caller(world: World) -> None:
    client = await world.app()
    r = await world.get(client, app_hash=app_hash_of_origin(ORIGIN), scopes=("DEFAULT", "READER"))
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == "alice@example.com"
    assert r.json()["scopes"] == ["DEFAULT", "READER"]
    assert r.json()["app_hash"] == app_hash_of_origin(ORIGIN)
    assert r.json()["sealed"] is False
    # Exempt paths pass without a token; the same token serves many requests (one proof each).
    assert (await client.get("/health")).status_code == 200
    c = world.peer.claims()
    token = world.peer.token(c)
    for _ in range(3):
        assert (await client.get("/whoami?x=1", headers=world.peer.headers(token, c, "GET", "/whoami?x=1"))).is_success


async def test_missing_or_non_bearer_credentials_are_refused(world: World) -> None:
    client = await world.app()
    r = await client.get("/whoami")
    _refused(r, 401, "client_token_missing")
    assert r.headers["www-authenticate"].startswith("Bearer")
    _refused(await client.get("/whoami", headers={"authorization": "Basic YTpi"}), 401, "client_token_missing")


async def test_tampered_token_is_refused(world: World) -> None:
    client = await world.app()
    c = world.peer.claims()
    head, payload, sig = world.peer.token(c).split(".")
    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc["scp"] = ["ADMIN"]
    forged = f"{head}.{b64u_encode(json.dumps(doc).encode())}.{sig}"
    _refused(
        await client.get("/whoami", headers=world.peer.headers(forged, c, "GET", "/whoami")),
        401,
        "client_token_invalid",
    )
    _refused(await client.get("/whoami", headers={"authorization": "Bearer not.a.token"}), 401, "client_token_invalid")
    _refused(
        await client.get("/whoami", headers={"authorization": "Bearer " + "x" * 9000}), 401, "client_token_invalid"
    )


async def test_expiry_and_not_yet_valid_with_bounded_skew(world: World) -> None:
    client = await world.app(leeway_seconds=30)
    c = world.peer.claims(lifetime=900)
    token = world.peer.token(c)
    world.clock.now += 900 + 29  # inside the skew allowance
    assert (await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami"))).is_success
    world.clock.now += 2  # the cached verdict expires with the token too
    r = await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami"))
    _refused(r, 401, "client_token_expired")

    early = world.peer.claims()
    world.clock.now -= 900 + 31 + 31
    _refused(
        await client.get("/whoami", headers=world.peer.headers(world.peer.token(early), early, "GET", "/whoami")),
        401,
        "client_token_not_yet_valid",
    )


async def test_wrong_destination_and_foreign_session_key_are_refused(world: World) -> None:
    client = await world.app()
    _refused(await world.get(client, destination="other.example.com"), 401, "client_token_wrong_destination")
    stranger = b64u_encode(X25519PrivateKey.generate().public_key().public_bytes_raw())
    _refused(await world.get(client, destination_key=stranger), 401, "client_token_not_for_me")


async def test_wrong_issuer_is_refused(world: World) -> None:
    client = await world.app()
    _refused(await world.get(client, issuer="evil.example.com"), 401, "client_token_foreign")


async def test_replayed_stale_missing_and_misdirected_proofs_are_refused(world: World) -> None:
    client = await world.app(proof_window_seconds=60)
    c = world.peer.claims()
    token = world.peer.token(c)
    headers = world.peer.headers(token, c, "GET", "/whoami")
    assert (await client.get("/whoami", headers=headers)).is_success
    _refused(await client.get("/whoami", headers=headers), 401, "request_replayed")
    # A proof made for another request line does not carry over.
    _refused(
        await client.post("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami")),
        401,
        "request_proof_invalid",
    )
    _refused(
        await client.get("/admin", headers=world.peer.headers(token, c, "GET", "/whoami")), 401, "request_proof_invalid"
    )
    # Someone holding the token but not the session key cannot make a proof.
    guess = ChaCha20Poly1305(secrets.token_bytes(32))
    _refused(
        await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami", aead=guess)),
        401,
        "request_proof_invalid",
    )
    _refused(await client.get("/whoami", headers={"authorization": f"Bearer {token}"}), 401, "request_proof_missing")
    _refused(
        await client.get("/whoami", headers={"authorization": f"Bearer {token}", "tokenward-proof": "1.2"}),
        401,
        "request_proof_invalid",
    )
    old = world.peer.headers(token, c, "GET", "/whoami")
    world.clock.now += 61
    _refused(await client.get("/whoami", headers=old), 401, "request_stale")


async def test_unknown_kid_is_refused_and_a_rotation_is_picked_up(world: World) -> None:
    client = await world.app()
    rotated = _keyring(world.clock.now)
    c = world.peer.claims()
    token = world.peer.token(c, keyring=rotated)
    _refused(
        await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami")), 401, "timecode_mismatch"
    )
    # The issuer starts publishing the new key: the next unknown kid (after the refetch interval) fetches it.
    world.issuer.keyrings.append(rotated)
    world.clock.now += 31
    assert (await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami"))).is_success
    # The issuer drops the old key: at the next refresh its tokens stop verifying, even cached ones.
    old_claims = world.peer.claims()
    old = world.peer.token(old_claims)
    assert (await client.get("/whoami", headers=world.peer.headers(old, old_claims, "GET", "/whoami"))).is_success
    world.issuer.keyrings = [rotated]
    world.clock.now += 301
    r = await client.get("/whoami", headers=world.peer.headers(old, old_claims, "GET", "/whoami"))
    _refused(r, 401, "timecode_mismatch")


def _hs256(claims: dict[str, Any], key: bytes, header: dict[str, Any]) -> str:
    def enc(doc: dict[str, Any]) -> str:
        return b64u_encode(json.dumps(doc).encode())

    signing_input = f"{enc(header)}.{enc(claims)}"
    return f"{signing_input}.{b64u_encode(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


async def test_algorithm_confusion_is_refused(world: World) -> None:
    client = await world.app()
    c = world.peer.claims()
    jwk = jwks(world.keyring, now=world.clock.now)["keys"][0]
    public = base64.urlsafe_b64decode(jwk["x"] + "==")
    for header, key in (
        ({"alg": "HS256", "kid": jwk["kid"], "typ": "tw-client+jws"}, public),  # the public key as an HMAC secret
        ({"alg": "HS256", "kid": jwk["kid"], "typ": "tw-client+jws"}, jwk["x"].encode()),
    ):
        token = _hs256(c.to_claims(), key, header)
        r = await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami"))
        _refused(r, 401, "client_token_invalid")
    head = b64u_encode(json.dumps({"alg": "none", "kid": jwk["kid"], "typ": "tw-client+jws"}).encode())
    unsigned = f"{head}.{b64u_encode(json.dumps(c.to_claims()).encode())}."
    _refused(
        await client.get("/whoami", headers=world.peer.headers(unsigned, c, "GET", "/whoami")),
        401,
        "client_token_invalid",
    )


async def test_jwks_down_serves_cached_keys_up_to_the_bound_then_503(world: World) -> None:
    world.issuer.down = True
    client = await world.app()
    r = await world.get(client)
    _refused(r, 503, "jwks_unavailable")
    world.issuer.down = False
    _refused(await world.get(client), 503, "jwks_unavailable")  # retries are spaced: no fetch yet
    world.clock.now += 31
    c = world.peer.claims(lifetime=7200)
    token = world.peer.token(c)
    assert (await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami"))).is_success
    fetches = world.issuer.fetches
    world.issuer.down = True
    world.clock.now += 1800  # refresh due, the issuer is down: the last good keys still serve
    assert (await world.get(client)).is_success
    assert (await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami"))).is_success
    assert world.issuer.fetches == fetches + 1  # one retry, not one per request
    world.clock.now += 1801  # more than an hour since the last good fetch
    _refused(await world.get(client), 503, "jwks_unavailable")
    _refused(
        await client.get("/whoami", headers=world.peer.headers(token, c, "GET", "/whoami")), 503, "jwks_unavailable"
    )


async def test_an_unreachable_issuer_is_503_not_500(world: World) -> None:
    verifier_http = httpx.AsyncClient(timeout=2.0)
    cache = JWKSCache("http://127.0.0.1:9/.well-known/jwks.json", http=verifier_http, clock=world.clock)
    verifier = Verifier(issuer=ISSUER, resource=RESOURCE, jwks=cache, session_keys=world.keys, clock=world.clock)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=resource_app(verifier)), base_url="http://api")
    try:
        _refused(await world.get(client), 503, "jwks_unavailable")
    finally:
        await client.aclose()
        await verifier_http.aclose()


def _sealed_post(
    world: World,
    token: str,
    claims: Any,
    target: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    method: str = "POST",
) -> tuple[dict[str, str], bytes, str, ChaCha20Poly1305]:
    aead = ChaCha20Poly1305(channel_key(world.peer.key, claims))
    nonce = secrets.token_bytes(12)
    sealed = seal_request(
        aead,
        client_token=token,
        token_id=claims.token_id,
        ts=int(world.clock.now),
        nonce=nonce,
        method=method,
        target=target,
        content_type=content_type,
        body=body,
    )
    headers = {"authorization": f"Bearer {token}", "content-type": SEALED_CONTENT_TYPE}
    return headers, sealed, b64u_encode(nonce), aead


async def test_sealed_bodies_are_opened_and_answers_sealed(world: World) -> None:
    client = await world.app()
    c = world.peer.claims()
    token = world.peer.token(c)
    headers, sealed, nonce, aead = _sealed_post(world, token, c, "/whoami", b'{"hello": "api"}')
    r = await client.post("/whoami", headers=headers, content=sealed)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == SEALED_CONTENT_TYPE
    assert b"alice" not in r.content
    content_type, plain = open_response(aead, token_id=c.token_id, request_nonce=nonce, status=200, data=r.content)
    assert content_type == "application/json"
    answer = json.loads(plain)
    assert answer["body"] == '{"hello": "api"}' and answer["sealed"] is True
    assert answer["content_type"] == "application/json"
    _refused(await client.post("/whoami", headers=headers, content=sealed), 401, "request_replayed")
    # A 204 answer must stay without a body: it is not sealed.
    headers, sealed, nonce, aead = _sealed_post(world, token, c, "/whoami", b"", method="DELETE")
    r = await client.request("DELETE", "/whoami", headers=headers, content=sealed)
    assert r.status_code == 204 and r.content == b"" and r.headers.get("content-type") != SEALED_CONTENT_TYPE


async def test_a_sealed_body_that_does_not_open_is_refused(world: World) -> None:
    client = await world.app(middleware={"max_body_bytes": 4096})
    c = world.peer.claims()
    token = world.peer.token(c)
    # Sealed for another path: the associated data differs.
    headers, sealed, _, _ = _sealed_post(world, token, c, "/elsewhere", b"{}")
    _refused(await client.post("/whoami", headers=headers, content=sealed), 401, "sealed_body_unreadable")
    # One flipped ciphertext byte.
    headers, sealed, _, _ = _sealed_post(world, token, c, "/whoami", b"{}")
    doc = json.loads(sealed)
    doc["ciphertext"] = ("B" if doc["ciphertext"][0] != "B" else "C") + doc["ciphertext"][1:]
    _refused(await client.post("/whoami", headers=headers, content=json.dumps(doc)), 401, "sealed_body_unreadable")
    # Sealed by someone else (another session key) under this token.
    other = World()
    other.peer.key = X25519PrivateKey.generate()
    forged = seal_request(
        ChaCha20Poly1305(secrets.token_bytes(32)),
        client_token=token,
        token_id=c.token_id,
        ts=int(world.clock.now),
        nonce=secrets.token_bytes(12),
        method="POST",
        target="/whoami",
        content_type="",
        body=b"{}",
    )
    _refused(await client.post("/whoami", headers=headers, content=forged), 401, "sealed_body_unreadable")
    for junk in (b"not json", b"[]", b'{"client_token": "x"}', json.dumps({**doc, "nonce": "short"}).encode()):
        _refused(await client.post("/whoami", headers=headers, content=junk), 400, "sealed_body_malformed")
    _refused(await client.post("/whoami", headers=headers, content=b"x" * 5000), 413, "payload_too_large")


async def test_sealing_can_be_required(world: World) -> None:
    client = await world.app(middleware={"require_sealed": True})
    _refused(await world.get(client), 403, "sealing_required")


async def test_scopes_roles_clients_and_origins(world: World) -> None:
    client = await world.app(roles={"MANAGER": ["ADMIN", "READER"]})
    _refused(await world.get(client, "/admin"), 403, "scope_missing")
    assert (await world.get(client, "/admin", scopes=("ADMIN",))).is_success
    r = await world.get(client, scopes=("MANAGER",))
    assert r.json()["scopes"] == ["ADMIN", "MANAGER", "READER"]
    assert (await world.get(client, "/admin", scopes=("MANAGER",))).is_success

    strict = await world.app(required_scopes=["READER"], allowed_origins=[ORIGIN])
    _refused(await world.get(strict, scopes=("READER",)), 403, "origin_not_allowed")
    _refused(await world.get(strict, app_hash=app_hash_of_origin(ORIGIN)), 403, "scope_missing")
    assert (await world.get(strict, scopes=("READER",), app_hash=app_hash_of_origin(ORIGIN))).is_success

    clients = await world.app(allowed_client_ids=["F" * 40])
    _refused(await world.get(clients), 403, "client_not_allowed")


async def test_memory_replay_guard_forgets_only_what_has_expired() -> None:
    guard = MemoryReplayGuard()
    assert await guard.first_use("a", now=0, until=10)
    assert not await guard.first_use("a", now=5, until=15)
    assert await guard.first_use("a", now=10, until=20)
    for i in range(3000):
        assert guard.check(f"id{i}", now=100, until=101 + i % 2)
    assert not guard.check("id2999", now=100.5, until=102)


async def test_redis_replay_guard_shares_the_window_between_replicas(world: World, redis_client: Any) -> None:
    prefix = f"tokenward:test-{secrets.token_hex(4)}:"
    one = await world.app(replay=RedisReplayGuard(redis_client, prefix=prefix))
    two = await world.app(replay=RedisReplayGuard(redis_client, prefix=prefix))
    c = world.peer.claims()
    token = world.peer.token(c)
    headers = world.peer.headers(token, c, "GET", "/whoami")
    assert (await one.get("/whoami", headers=headers)).is_success
    _refused(await two.get("/whoami", headers=headers), 401, "request_replayed")


async def test_websockets_are_refused_not_let_through(world: World) -> None:
    verifier, http = make_verifier(world.issuer, world.keys, world.clock)
    world._closing.append(http)
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    middleware = TokenwardMiddleware(inner, verifier=verifier)
    await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert reached == [] and sent[0]["type"] == "websocket.close" and sent[0]["code"] == 1008
    await middleware({"type": "lifespan"}, receive, send)
    assert reached == ["lifespan"]


async def test_redis_down_is_503_not_a_silent_pass(world: World) -> None:
    down = connect_redis("redis://127.0.0.1:9/0", timeout=1.0)
    try:
        client = await world.app(replay=RedisReplayGuard(down))
        _refused(await world.get(client), 503, "replay_store_unavailable")
    finally:
        await down.aclose()


async def test_failed_first_sight_checks_are_regulated_per_address(world: World) -> None:
    client = await world.app(regulator=FailureRegulator(limit=3, window_seconds=60))
    good = world.peer.claims()
    good_token = world.peer.token(good)
    assert (await client.get("/whoami", headers=world.peer.headers(good_token, good, "GET", "/whoami"))).is_success
    for _ in range(3):
        _refused(await world.get(client, issuer="evil.example.com"), 401, "client_token_foreign")
    r = await world.get(client)  # a new token, even a good one, waits out the window
    _refused(r, 429, "too_many_attempts")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    # A token verified before keeps working; the limit is per address and lifts with the window.
    assert (await client.get("/whoami", headers=world.peer.headers(good_token, good, "GET", "/whoami"))).is_success
    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=client._transport.app, client=("10.0.0.2", 1)))  # type: ignore[attr-defined]
    world._closing.append(elsewhere)
    c = world.peer.claims()
    r = await elsewhere.get("http://api/whoami", headers=world.peer.headers(world.peer.token(c), c, "GET", "/whoami"))
    assert r.is_success, r.text
    world.clock.now += 61
    assert (await world.get(client)).is_success
