"""The reference authenticator's key file: an X25519 private key sealed under a passphrase.

Pure functions (the caller reads/writes the file and passes salt and nonce). Format, a small
JSON document::

    {"v": 1, "kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": b64u(16),
     "aead": "chacha20-poly1305", "nonce": b64u(12), "public_key": b64u(32), "sealed": b64u(32 + 16)}

The key is ``scrypt(passphrase, salt, n, r, p, length=32)`` (RFC 7914); the private key bytes are
sealed with ChaCha20-Poly1305 (RFC 8439) with the header fields (everything but ``sealed``) as
associated data, so a changed public key or weakened KDF parameter is refused, not trusted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError, Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Secret

__all__ = ["DEFAULT_SCRYPT_N", "KeyFile", "open_key_file", "parse_key_file", "seal_key_file"]

DEFAULT_SCRYPT_N = 2**15
_MIN_N, _MAX_N = 2**14, 2**20
MAX_KEY_FILE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class KeyFile:
    """The parsed, still sealed document."""

    n: int
    r: int
    p: int
    salt: bytes
    nonce: bytes
    public_key: str
    sealed: bytes

    def header(self) -> dict[str, object]:
        return {
            "v": 1,
            "kdf": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": b64u_encode(self.salt),
            "aead": "chacha20-poly1305",
            "nonce": b64u_encode(self.nonce),
            "public_key": self.public_key,
        }

    def associated_data(self) -> bytes:
        return json.dumps(self.header(), separators=(",", ":"), sort_keys=True).encode()

    def to_bytes(self) -> bytes:
        return (
            json.dumps({**self.header(), "sealed": b64u_encode(self.sealed)}, indent=2, sort_keys=True) + "\n"
        ).encode()


def _derive(passphrase: Secret, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.reveal())


def seal_key_file(
    private_key: X25519PrivateKey, passphrase: Secret, *, salt: bytes, nonce: bytes, n: int = DEFAULT_SCRYPT_N
) -> bytes:
    """The key file's bytes; pass 16 random bytes as ``salt`` and 12 as ``nonce``."""
    if not passphrase.reveal():
        raise BadRequest("the passphrase must not be empty", code=ErrorCode.PASSPHRASE_EMPTY)
    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc = KeyFile(n=n, r=8, p=1, salt=salt, nonce=nonce, public_key=b64u_encode(public), sealed=b"")
    sealed = ChaCha20Poly1305(_derive(passphrase, salt, n, 8, 1)).encrypt(nonce, raw, doc.associated_data())
    return KeyFile(n=n, r=8, p=1, salt=salt, nonce=nonce, public_key=doc.public_key, sealed=sealed).to_bytes()


def parse_key_file(data: bytes) -> KeyFile:
    """The document, without the passphrase (enough to read the public key); ConfigError ``keyfile_invalid``."""
    bad = ConfigError(
        "the authenticator key file is damaged or not a tokenward key file", code=ErrorCode.KEYFILE_INVALID
    )
    if len(data) > MAX_KEY_FILE_BYTES:
        raise bad
    try:
        doc = json.loads(data)
        if doc["v"] != 1 or doc["kdf"] != "scrypt" or doc["aead"] != "chacha20-poly1305":
            raise bad
        n, r, p = int(doc["n"]), int(doc["r"]), int(doc["p"])
        if not (_MIN_N <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
            raise bad
        return KeyFile(
            n=n,
            r=r,
            p=p,
            salt=b64u_decode(str(doc["salt"]), field="salt", length=16),
            nonce=b64u_decode(str(doc["nonce"]), field="nonce", length=12),
            public_key=b64u_encode(b64u_decode(str(doc["public_key"]), field="public_key", length=32)),
            sealed=b64u_decode(str(doc["sealed"]), field="sealed", length=48),
        )
    except (ValueError, KeyError, TypeError, BadRequest):
        raise bad from None


def open_key_file(data: bytes, passphrase: Secret) -> X25519PrivateKey:
    """The private key; Unauthorized ``passphrase_wrong`` when the passphrase (or the file) does not match."""
    doc = parse_key_file(data)
    try:
        raw = ChaCha20Poly1305(_derive(passphrase, doc.salt, doc.n, doc.r, doc.p)).decrypt(
            doc.nonce, doc.sealed, doc.associated_data()
        )
    except InvalidTag:
        raise Unauthorized(
            "wrong passphrase for the authenticator key file (or the file was altered)", code=ErrorCode.PASSPHRASE_WRONG
        ) from None
    key = X25519PrivateKey.from_private_bytes(raw)
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if b64u_encode(public) != doc.public_key:
        raise ConfigError("the authenticator key file's public key does not match", code=ErrorCode.KEYFILE_INVALID)
    return key
