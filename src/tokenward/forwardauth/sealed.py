"""Sealed cookie values: a JSON object encrypted with AES-256-GCM under a time-code key.

Format: ``TWC1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``. The key is the keyring's
``forward-auth-cookie`` key (HKDF from the time code, docs/keys.md), so every instance sharing the
time code reads every cookie, and a cookie made under the previous code is read during its grace
period. The associated data binds a value to its use (cookie name, provider, client): a cookie
sealed for one config cannot be replayed to another. Pure: keys, ``now`` and randomness come in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenward.keys import Keyring, Purpose

__all__ = ["MAX_SEALED_LENGTH", "open_value", "seal_value"]

PREFIX = "TWC1"
NONCE_BYTES = 12
#: Browsers keep at least 4096 bytes per cookie (RFC 6265 §6.1), name and attributes included.
MAX_SEALED_LENGTH = 3800


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def seal_value(data: dict[str, Any], keyring: Keyring, *, aad: str) -> str:
    """``data`` as a sealed string (the caller checks the length against :data:`MAX_SEALED_LENGTH`)."""
    kid, key = keyring.key(Purpose.FORWARD_AUTH_COOKIE)
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(data, separators=(",", ":")).encode("utf-8")
    sealed = AESGCM(key.reveal()).encrypt(nonce, plain, f"{PREFIX}.{kid}.{aad}".encode())
    return f"{PREFIX}.{kid}.{_b64(nonce + sealed)}"


def open_value(value: str, keyring: Keyring, *, aad: str, now: float) -> dict[str, Any] | None:
    """The object sealed in ``value``, or None when it is malformed, forged, or under a key no longer held."""
    if not value or len(value) > MAX_SEALED_LENGTH * 2:
        return None
    prefix, _, rest = value.partition(".")
    kid, _, body = rest.partition(".")
    if prefix != PREFIX or not kid or not body:
        return None
    key = keyring.key_by_id(Purpose.FORWARD_AUTH_COOKIE, kid, now=now)
    if key is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        plain = AESGCM(key.reveal()).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{PREFIX}.{kid}.{aad}".encode())
        data = json.loads(plain)
    except (InvalidTag, ValueError, binascii.Error):
        return None
    return data if isinstance(data, dict) else None
