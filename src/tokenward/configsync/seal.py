"""Sealing bundle objects with the config key (``TOKENWARD_CONFIG_KEY``).

The config key is 32 random bytes written as base64url without padding (43 characters),
given to every instance out of band. Generate one with ``tokenward config keygen`` (or
``python -c "import secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode())"``).

A sealed object is ``TWS1 || nonce(12) || ChaCha20-Poly1305(key, nonce, plaintext, aad)`` with
``aad = "tokenward-config/1|<server>|<kind>"``: an object cannot be replayed under another
server name or as another file. The key id (8 hex characters of a hash of the key) is public
and lets a reader say "sealed with another key" instead of a bare failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BundleError, ConfigError
from tokenward.keys import Secret

__all__ = ["KEY_BYTES", "ConfigKey", "is_sealed"]

KEY_BYTES = 32
MAGIC = b"TWS1"
NONCE_BYTES = 12


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def _aad(server: str, kind: str) -> bytes:
    return f"tokenward-config/1|{server}|{kind}".encode()


class ConfigKey:
    """The AEAD key that seals bundle objects. Its repr shows only the public key id."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise ConfigError(
                f"TOKENWARD_CONFIG_KEY must be {KEY_BYTES} bytes (43 base64url characters); "
                "make one with `tokenward config keygen`",
                code=ErrorCode.CONFIG_KEY_INVALID,
            )
        self._secret = Secret(raw)
        self.key_id = hashlib.sha256(b"tokenward-config-key-id\0" + raw).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"ConfigKey(key_id={self.key_id!r})"

    @classmethod
    def parse(cls, text: str) -> ConfigKey:
        """Parse the base64url text of ``TOKENWARD_CONFIG_KEY``."""
        text = text.strip()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise ConfigError(
                "TOKENWARD_CONFIG_KEY is not base64url text; make one with `tokenward config keygen`",
                code=ErrorCode.CONFIG_KEY_INVALID,
            ) from None
        return cls(raw)

    @classmethod
    def generate(cls) -> str:
        """A new key as the text to put in ``TOKENWARD_CONFIG_KEY``."""
        return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")

    def seal(self, plaintext: bytes, *, server: str, kind: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = ChaCha20Poly1305(self._secret.reveal()).encrypt(nonce, plaintext, _aad(server, kind))
        return MAGIC + nonce + sealed

    def open(self, data: bytes, *, server: str, kind: str, sealed_with: str | None = None) -> bytes:
        """Decrypt a sealed object; a wrong key or altered bytes raise ``config_key_wrong``/``bundle_mismatch``."""
        if not is_sealed(data) or len(data) < len(MAGIC) + NONCE_BYTES + 16:
            raise BundleError(f"bundle object {kind} is not a sealed object", code=ErrorCode.BUNDLE_MISMATCH)
        nonce = data[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return ChaCha20Poly1305(self._secret.reveal()).decrypt(
                nonce, data[len(MAGIC) + NONCE_BYTES :], _aad(server, kind)
            )
        except InvalidTag:
            if sealed_with is not None and sealed_with != self.key_id:
                raise BundleError(
                    f"bundle object {kind} was sealed with config key {sealed_with}, but TOKENWARD_CONFIG_KEY is "
                    f"key {self.key_id}: give every instance the same key",
                    code=ErrorCode.CONFIG_KEY_WRONG,
                ) from None
            raise BundleError(
                f"bundle object {kind} does not open with TOKENWARD_CONFIG_KEY (key {self.key_id}): "
                "wrong key or altered object",
                code=ErrorCode.CONFIG_KEY_WRONG,
            ) from None
