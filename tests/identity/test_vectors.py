"""docs/protocol.md test vectors (tests/identity/vectors/*.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from joserfc.jwk import KeySet

from tokenward.errors import TokenwardError
from tokenward.identity import apps, captcha, client_tokens, source
from tokenward.identity.encoding import b64u_decode
from tokenward.keys import Keyring, Purpose, TimeCode

VECTORS = Path(__file__).parent / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def test_app_hash_vectors_match_an_independent_sha512() -> None:
    for case in _load("app_hash.json"):
        assert apps.origin_host(case["origin"]) == case["host"]
        assert apps.app_hash_of_origin(case["origin"]) == case["app_hash"]
        assert hashlib.sha512(case["host"].encode()).hexdigest().upper() == case["app_hash"]
    # Seed 002's own example.
    assert _load("app_hash.json")[0]["app_hash"].startswith("5CB6AB6D1DC04DA24255C828D0310A2102F03A35F48CD2B7")
    assert apps.hashes_equal(case["app_hash"].lower(), case["app_hash"])


def test_pkce_vector() -> None:
    for case in _load("pkce.json"):
        assert captcha.pkce_challenge(case["code_verifier"]) == case["code_challenge"]
        captcha.check_pkce(case["code_verifier"], case["code_challenge"])


def test_captcha_vector_decrypts_with_the_recipient_key() -> None:
    v = _load("captcha.json")
    private = X25519PrivateKey.from_private_bytes(b64u_decode(v["recipient_private_key"], field="k"))
    plain = captcha.open_captcha(v["payload"], private)
    assert json.loads(plain.to_json()) == v["plaintext"]
    key = Keyring(TimeCode.parse(v["timecode"])).key(Purpose.CAPTCHA)[1]
    assert captcha.code_mac(key, plain.captcha_id, plain.code) == v["code_mac"]
    other = X25519PrivateKey.from_private_bytes(bytes(32))
    with pytest.raises(TokenwardError) as info:
        captcha.open_captcha(v["payload"], other)
    assert info.value.error_code == "captcha_unreadable"


def test_source_identifier_vector() -> None:
    v = _load("source_identifier.json")
    keyring = Keyring(TimeCode.parse(v["timecode"]))
    identity = source.SourceIdentity.from_json(json.dumps(v["identity"]).encode())
    key_id, key = keyring.key(Purpose.SOURCE_IDENTIFIER)
    assert key_id == v["key_id"]
    sealed = source.seal_source_identifier(identity, key_id=key_id, key=key, nonce=bytes.fromhex(v["nonce"]))
    assert sealed == v["source_identifier"]
    assert source.open_source_identifier(sealed, keyring=keyring, now=v["now"]) == identity


def test_client_token_vector_signature_jwks_and_channel_key() -> None:
    v = _load("client_token.json")
    keyring = Keyring(TimeCode.parse(v["timecode"]))
    claims = client_tokens.verify_client_token(
        v["client_token"], KeySet.import_key_set(v["jwks"]), now=v["now"], issuer=v["claims"]["iss"]
    )
    assert claims.to_claims() == v["claims"]
    assert client_tokens.sign_client_token(claims, keyring) == v["client_token"]  # Ed25519 is deterministic
    assert client_tokens.jwks(keyring, now=v["now"]) == v["jwks"]
    header = json.loads(b64u_decode(v["client_token"].split(".")[0], field="header"))
    assert header == {"alg": "EdDSA", "kid": keyring.current.key_id, "typ": "tw-client+jws"}
    # Tokens signed before 0.2 (alg "Ed25519", no app/aud claims) still verify against the same JWKS.
    legacy = client_tokens.verify_client_token(
        v["legacy_client_token"], KeySet.import_key_set(v["jwks"]), now=v["now"], issuer=v["claims"]["iss"]
    )
    assert legacy.app_hash == "" and legacy.token_id == claims.token_id
    for name in ("source_private_key", "destination_private_key"):
        private = X25519PrivateKey.from_private_bytes(b64u_decode(v[name], field=name))
        assert client_tokens.channel_key(private, claims).hex() == v["channel_key"]


def test_captcha_aes256gcm_vector_decrypts_with_the_recipient_key() -> None:
    v = _load("captcha_aes256gcm.json")
    assert v["payload"].startswith("TWC2.aes256gcm.")
    private = X25519PrivateKey.from_private_bytes(b64u_decode(v["recipient_private_key"], field="k"))
    assert json.loads(captcha.open_captcha(v["payload"], private).to_json()) == v["plaintext"]
    # The payload names its suite: read as ChaCha20-Poly1305 it does not open.
    relabelled = v["payload"].replace("TWC2.aes256gcm.", "TWC2.chacha20poly1305.", 1)
    with pytest.raises(TokenwardError) as info:
        captcha.open_captcha(relabelled, private)
    assert info.value.error_code == "captcha_unreadable"
