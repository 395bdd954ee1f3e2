"""Captchas sealed for WebCrypto authenticators: HPKE with AES-256-GCM (docs/protocol.md §4).

The browser authenticator (``web/static/authenticator.js``) opens captchas by composing RFC 9180's
key schedule from HMAC-SHA256, X25519 and AES-GCM. :func:`_open_like_webcrypto` is the same
composition in Python, checked here against ``cryptography``'s HPKE, so a mistake in the recipe
shows up without a browser; tests/ui/test_authenticator.py runs the page's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenward.errors import TokenwardError
from tokenward.identity import captcha
from tokenward.identity.encoding import b64u_decode

PLAIN = captcha.CaptchaPlaintext(
    "AAAAAAAAAAAAAAAAAAAAAA", "K7MXA", "auth.example.com", "alice@example.com", "App", "https://app.example.com", 1
)
KEM_SUITE = b"KEM\x00\x20"  # DHKEM(X25519, HKDF-SHA256)
HPKE_SUITE = b"HPKE\x00\x20\x00\x01\x00\x02"  # + HKDF-SHA256 + AES-256-GCM


def _extract(salt: bytes, ikm: bytes) -> bytes:
    # An empty HMAC key equals HashLen zero bytes (RFC 2104 pads keys with zeros).
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info, length)


def _open_like_webcrypto(payload: str, private: X25519PrivateKey) -> bytes:
    """RFC 9180 base mode SetupBaseR + Open, from the primitives WebCrypto offers."""
    _, aead, captcha_id, data = payload.split(".")
    assert aead == "aes256gcm"
    sealed = b64u_decode(data, field="captcha")
    enc, ciphertext = sealed[:32], sealed[32:]
    dh = private.exchange(X25519PublicKey.from_public_bytes(enc))
    kem_context = enc + private.public_key().public_bytes_raw()
    eae_prk = _labeled_extract(KEM_SUITE, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(KEM_SUITE, eae_prk, b"shared_secret", kem_context, 32)
    info = f"tokenward/v1/captcha|{captcha_id}".encode()
    context = (
        b"\x00"
        + _labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"")
        + _labeled_extract(HPKE_SUITE, b"", b"info_hash", info)
    )
    secret = _labeled_extract(HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(HPKE_SUITE, secret, b"key", context, 32)
    nonce = _labeled_expand(HPKE_SUITE, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(nonce, ciphertext, b"")


def test_aes_captcha_opens_with_the_reference_and_with_the_webcrypto_recipe() -> None:
    private = X25519PrivateKey.generate()
    payload = captcha.seal_captcha(PLAIN, private.public_key().public_bytes_raw(), aead="aes256gcm")
    assert payload.startswith(f"TWC2.aes256gcm.{PLAIN.captcha_id}.")
    assert captcha.open_captcha(payload, private) == PLAIN
    assert json.loads(_open_like_webcrypto(payload, private)) == json.loads(PLAIN.to_json())


def test_the_default_suite_keeps_the_twc1_format() -> None:
    private = X25519PrivateKey.generate()
    payload = captcha.seal_captcha(PLAIN, private.public_key().public_bytes_raw())
    assert payload.startswith(f"TWC1.{PLAIN.captcha_id}.") and payload.count(".") == 2
    assert captcha.open_captcha(payload, private) == PLAIN
    named = payload.replace("TWC1.", "TWC2.chacha20poly1305.", 1)
    assert captcha.open_captcha(named, private) == PLAIN


@pytest.mark.parametrize(
    "payload",
    [
        "TWC2.aes128gcm.AAAAAAAAAAAAAAAAAAAAAA.AAAA",
        "TWC2.AAAAAAAAAAAAAAAAAAAAAA.AAAA",
        "TWC1.aes256gcm.AAAAAAAAAAAAAAAAAAAAAA.AAAA",
        "TWC3.aes256gcm.AAAAAAAAAAAAAAAAAAAAAA.AAAA",
    ],
)
def test_unknown_suites_and_shapes_are_unreadable(payload: str) -> None:
    with pytest.raises(TokenwardError) as info:
        captcha.open_captcha(payload, X25519PrivateKey.generate())
    assert info.value.error_code == "captcha_unreadable"


def test_enrolment_aead_names_are_checked() -> None:
    assert captcha.validate_aead("aes256gcm") == "aes256gcm"
    with pytest.raises(TokenwardError) as info:
        captcha.validate_aead("aes128gcm")
    assert info.value.error_code == "aead_unsupported"
    with pytest.raises(TokenwardError):
        captcha.seal_captcha(PLAIN, bytes(32), aead="none")
