"""Done means: the whole session flow across two instances sharing a time code and a database.

Register a client app (CLI), enrol an authenticator (admin code + /api/enroll), request a
captcha on instance A, read the QR PNG back (zxing-cpp) and decrypt it with the authenticator
key, verify on instance B, get a client token for a resource server that logged in by machine
login, exchange an AEAD message with no server in the path; plus the bad inputs.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from joserfc.jwk import KeySet

from tests.helpers import enrollment_code
from tests.identity.helpers import (
    ORIGIN,
    SERVER,
    Instance,
    ask_captcha,
    captcha_login,
    enrol_user,
    key_fingerprint,
    prepare_data_dir,
    resource_login,
)
from tokenward.identity.captcha import open_captcha, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public, channel_key, verify_client_token
from tokenward.identity.encoding import b64u_encode
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import Database
from tokenward.storage.audit import SqlAuditLog
from tokenward.storage.identity import SqlIdentityStore
from tokenward.web.app import create_app


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Instance, Instance, str]]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    settings = Settings.load(data_dir=data, max_body_bytes=4096)
    rt_a, rt_b = await open_runtime(settings), await open_runtime(settings)
    a = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_a)), base_url="http://a")
    b = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, runtime=rt_b)), base_url="http://b")
    try:
        yield Instance(a, rt_a), Instance(b, rt_b), client_id
    finally:
        await a.aclose()
        await b.aclose()
        await rt_a.close()
        await rt_b.close()


async def test_whole_flow_across_two_instances(cluster: tuple[Instance, Instance, str], tmp_path: Path) -> None:
    a, b, client_id = cluster
    data_dir = tmp_path / "data"
    alice_key = await enrol_user(a, data_dir, "alice@example.com")
    alice_si, alice_session = await captcha_login(a, b, client_id, "alice@example.com", alice_key)
    _, api_session = await resource_login(b, data_dir, client_id)

    r = await a.post("/api/client-token", {"destination": "api.example.com"}, token=alice_si)
    assert r.status_code == 200, r.text
    token = r.json()["client_token"]

    # The resource server checks the token against B's JWKS and derives the same channel key.
    keys = KeySet.import_key_set((await b.http.get("/.well-known/jwks.json")).json())
    claims = verify_client_token(token, keys, now=time.time(), issuer=SERVER)
    assert claims.destination_key == b64u_of_public(api_session)
    sent_nonce = secrets.token_bytes(12)
    sealed = ChaCha20Poly1305(channel_key(alice_session, claims)).encrypt(sent_nonce, b"hello api", None)
    assert ChaCha20Poly1305(channel_key(api_session, claims)).decrypt(sent_nonce, sealed, None) == b"hello api"

    poke = await b.http.get(
        "/api/poke", params={"subject": "alice@example.com"}, headers={"authorization": f"Bearer {alice_si}"}
    )
    assert poke.status_code == 200 and poke.json()["enrolled"] is True
    assert poke.json()["fingerprint"] == key_fingerprint(alice_key)

    # `tokenward user enroll` issued an admin code: the enrolment and its audit event say so.
    async with Database.connect(Settings.load(data_dir=data_dir).database_url_or_default) as db:
        enrollment = await SqlIdentityStore(db).get_enrollment("alice@example.com")
        assert enrollment is not None and enrollment.method == "admin-code"
        [issued] = await SqlAuditLog(db).list(action="enrollment.code_issued")
        assert (issued.actor, issued.detail) == ("cli", {"method": "admin-code"})
        [completed] = await SqlAuditLog(db).list(action="enrollment.completed")
        assert completed.detail == {"method": "admin-code", "aead": "chacha20poly1305"}

    # Logout on A is refused by A at once, and by B (which holds the session in memory) as soon as its
    # change feed reads the log (every 0.2 s in the background; read here without waiting for it).
    r = await a.http.delete("/api/session", headers={"authorization": f"Bearer {alice_si}"})
    assert r.status_code == 204
    r = await a.post("/api/client-token", {"destination": "api.example.com"}, token=alice_si)
    assert r.status_code == 401 and r.json()["error"] == "session_revoked"
    assert b.runtime is not None
    await b.runtime.changes.poll()
    r = await b.post("/api/client-token", {"destination": "api.example.com"}, token=alice_si)
    assert r.status_code == 401 and r.json()["error"] == "session_revoked"
    openapi = (await a.http.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/captcha",
        "/api/captcha/verify",
        "/api/scopes",
        "/api/client-token",
        "/api/poke",
        "/api/session",
    ):
        assert path in openapi


async def test_bad_inputs_each_have_their_own_code(cluster: tuple[Instance, Instance, str], tmp_path: Path) -> None:
    a, b, client_id = cluster
    data_dir = tmp_path / "data"
    carol_key = await enrol_user(a, data_dir, "carol@example.com")
    verifier = secrets.token_urlsafe(48)

    async def code_of(r: httpx.Response) -> str:
        return str(r.json()["error"])

    body = {
        "email": "carol@example.com",
        "client_id": "AB" * 20,
        "origin": ORIGIN,
        "code_challenge": pkce_challenge(verifier),
    }
    assert await code_of(await a.post("/api/captcha", body)) == "client_unknown"
    body["client_id"] = client_id
    assert (
        await code_of(await a.post("/api/captcha", {**body, "origin": "https://evil.example.com"}))
        == "origin_not_allowed"
    )
    assert await code_of(await a.post("/api/captcha", {**body, "email": "dave@example.com"})) == "not_enrolled"
    assert await code_of(await a.post("/api/captcha", {**body, "email": "mallory@example.com"})) == "captcha_denied"
    assert await code_of(await a.post("/api/captcha", {**body, "extra": 1})) == "invalid_request"
    r = await a.http.post("/api/captcha", content=b"{not json", headers={"content-type": "application/json"})
    assert await code_of(r) == "invalid_request"
    r = await a.http.post("/api/captcha", content=b"x" * 10_000, headers={"content-type": "application/json"})
    assert r.status_code == 413

    r = await a.post("/api/captcha", body)
    captcha_id = r.json()["captcha_id"]
    code = open_captcha(r.json()["captcha"], carol_key).code
    session = b64u_of_public(X25519PrivateKey.generate())
    verify = {"captcha_id": captcha_id, "code": code, "code_verifier": verifier, "session_key": session}
    # A low-order X25519 session key (all-zero shared secret) binds nothing: refused before an attempt is spent.
    for weak in (bytes(32), b"\x01" + bytes(31)):
        r = await b.post("/api/captcha/verify", {**verify, "session_key": b64u_encode(weak)})
        assert r.status_code == 400 and await code_of(r) == "session_key_weak", r.text
    assert (
        await code_of(await b.post("/api/captcha/verify", {**verify, "session_key": "A" * 5})) == "session_key_invalid"
    )
    assert await code_of(await b.post("/api/captcha/verify", {**verify, "code_verifier": "x" * 43})) == "pkce_mismatch"
    assert await code_of(await b.post("/api/captcha/verify", {**verify, "scopes": ["ADMIN"]})) == "scope_not_granted"
    wrong = "AAAAA" if code != "AAAAA" else "CCCCC"
    for _ in range(3):
        assert await code_of(await a.post("/api/captcha/verify", {**verify, "code": wrong})) == "captcha_wrong_code"
    r = await b.post("/api/captcha/verify", verify)  # sixth attempt, right code: refused
    assert r.status_code == 429 and await code_of(r) == "captcha_attempts_exhausted"
    assert r.headers["retry-after"] == "1"  # every 429 says when to come back (issue 15 #6)
    assert await code_of(await b.post("/api/captcha/verify", {**verify, "captcha_id": "Z" * 22})) == "captcha_unknown"

    carol_si, _ = await captcha_login(a, b, client_id, "carol@example.com", carol_key)
    r = await a.post("/api/client-token", {"destination": "api.example.com"}, token=carol_si)
    assert r.status_code == 403 and await code_of(r) == "ask_denied_by_rule"
    assert r.json()["rule"] == "userpolicy.csv:4"  # the carol … deny row, named by file and line
    assert "userpolicy.csv:4" in r.json()["detail"]
    r = await a.post("/api/client-token", {"destination": "nobody.example.com"}, token=carol_si)
    assert r.status_code == 403 and await code_of(r) == "ask_not_allowed"
    assert "rule" not in r.json()
    for bad, code_ in [
        ("garbage", "source_identifier_malformed"),
        (carol_si[:-4] + ("AAAA" if not carol_si.endswith("AAAA") else "BBBB"), "source_identifier_tampered"),
    ]:
        r = await a.post("/api/client-token", {"destination": "api.example.com"}, token=bad)
        assert r.status_code == 401 and await code_of(r) == code_
    r = await a.post("/api/client-token", {"destination": "api.example.com"})
    assert await code_of(r) == "source_identifier_missing"
    assert json.loads((data_dir / "clientids.json").read_text())["clients"][0]["client_id"] == client_id


async def test_a_webcrypto_authenticator_enrols_with_aes256gcm(
    cluster: tuple[Instance, Instance, str], tmp_path: Path
) -> None:
    a, b, client_id = cluster
    code = await enrollment_code(tmp_path / "data", "erin@example.com")
    key = X25519PrivateKey.generate()
    body = {"email": "erin@example.com", "code": code, "public_key": b64u_of_public(key)}
    bad = await a.post("/api/enroll", {**body, "aead": "aes128gcm"})
    assert bad.status_code in (400, 422) and "aead" in bad.text
    assert (await a.post("/api/enroll", {**body, "aead": "aes256gcm"})).status_code == 200
    verifier = secrets.token_urlsafe(48)
    r = await ask_captcha(b, client_id, "erin@example.com", verifier)
    payload = r.json()["captcha"]
    assert payload.startswith("TWC2.aes256gcm.")
    assert (await a.http.get("/api/captcha/qr.png", params={"captcha": payload})).status_code == 200
    answer = {
        "captcha_id": r.json()["captcha_id"],
        "code": open_captcha(payload, key).code,
        "code_verifier": verifier,
        "session_key": b64u_of_public(X25519PrivateKey.generate()),
    }
    assert (await a.post("/api/captcha/verify", answer)).status_code == 200
