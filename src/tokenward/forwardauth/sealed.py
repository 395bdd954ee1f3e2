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
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenward.keys import Keyring, Purpose, derive_key

__all__ = ["MAX_SEALED_LENGTH", "Sealer", "open_value", "seal_value"]

PREFIX = "TWC1"
NONCE_BYTES = 12
#: Browsers keep at least 4096 bytes per cookie (RFC 6265 §6.1), name and attributes included.
MAX_SEALED_LENGTH = 3800


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Sealer:
    """Seals and opens values with the keyring's ``forward-auth-cookie`` keys.

    The keys are derived once per time code, not per call (HKDF and the key id cost more than the
    AES-GCM itself): the cache is rebuilt when the keyring holds other time codes.
    """

    def __init__(self, keyring: Callable[[], Keyring]) -> None:
        self.keyring = keyring
        self._codes: tuple[object, object, float | None] | None = None
        self._current: tuple[str, AESGCM] = ("", AESGCM(bytes(32)))
        self._previous: tuple[str, AESGCM, float] | None = None

    def _load(self) -> None:
        ring = self.keyring()
        codes = self._codes
        if (
            codes is not None
            and codes[0] is ring.current
            and codes[1] is ring.previous
            and codes[2] == ring.previous_until
        ):
            return
        kid, key = ring.key(Purpose.FORWARD_AUTH_COOKIE)
        self._current = (kid, AESGCM(key.reveal()))
        self._previous = None
        if ring.previous is not None and ring.previous_until is not None:
            old = derive_key(ring.previous, Purpose.FORWARD_AUTH_COOKIE)
            self._previous = (ring.previous.key_id, AESGCM(old.reveal()), ring.previous_until)
        self._codes = (ring.current, ring.previous, ring.previous_until)

    def seal(self, data: dict[str, Any], *, aad: str) -> str:
        """``data`` as a sealed string (the caller checks the length against :data:`MAX_SEALED_LENGTH`)."""
        self._load()
        kid, aead = self._current
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(data, separators=(",", ":")).encode("utf-8")
        sealed = aead.encrypt(nonce, plain, f"{PREFIX}.{kid}.{aad}".encode())
        return f"{PREFIX}.{kid}.{_b64(nonce + sealed)}"

    def open(self, value: str, *, aad: str, now: float) -> dict[str, Any] | None:
        """The object sealed in ``value``, or None when it is malformed, forged, or under a key no longer held."""
        if not value or len(value) > MAX_SEALED_LENGTH * 2:
            return None
        prefix, _, rest = value.partition(".")
        kid, _, body = rest.partition(".")
        if prefix != PREFIX or not kid or not body:
            return None
        self._load()
        aead = None
        if kid == self._current[0]:
            aead = self._current[1]
        elif self._previous is not None and kid == self._previous[0] and now < self._previous[2]:
            aead = self._previous[1]
        if aead is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{PREFIX}.{kid}.{aad}".encode())
            data = json.loads(plain)
        except (InvalidTag, ValueError, binascii.Error):
            return None
        return data if isinstance(data, dict) else None


def seal_value(data: dict[str, Any], keyring: Keyring, *, aad: str) -> str:
    """One-off :meth:`Sealer.seal` (tools and tests; the plugin keeps a :class:`Sealer`)."""
    return Sealer(lambda: keyring).seal(data, aad=aad)


def open_value(value: str, keyring: Keyring, *, aad: str, now: float) -> dict[str, Any] | None:
    """One-off :meth:`Sealer.open`."""
    return Sealer(lambda: keyring).open(value, aad=aad, now=now)
