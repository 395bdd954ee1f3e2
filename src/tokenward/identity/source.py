"""Source identifiers: the session credential only instances sharing the time code can read (docs/protocol.md §5).

``tw1si.<key_id>.<base64url(nonce || ciphertext)>`` — ChaCha20-Poly1305 under
``Keyring.key(Purpose.SOURCE_IDENTIFIER)``, 96-bit random nonce, AAD = ``"tw1si." + key_id``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Keyring, Purpose, Secret

__all__ = ["PREFIX", "SourceIdentity", "open_source_identifier", "seal_source_identifier"]

PREFIX = "tw1si"
MAX_LENGTH = 4096
_SHAPE = re.compile(r"^tw1si\.(\d{1,12}-[0-9a-f]{8})\.([A-Za-z0-9_-]{40,4000})$")


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """Who a source identifier speaks for. ``kind`` is ``user`` or ``resource``."""

    session_id: str
    kind: str
    subject: str
    client_id: str
    app_hash: str
    scopes: tuple[str, ...]
    session_key: str  # base64url X25519 public key certified by the server
    issued_at: int
    expires_at: int

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "sid": self.session_id,
                "typ": self.kind,
                "sub": self.subject,
                "cid": self.client_id,
                "app": self.app_hash,
                "scp": list(self.scopes),
                "spk": self.session_key,
                "iat": self.issued_at,
                "exp": self.expires_at,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SourceIdentity:
        doc = json.loads(data)
        if doc.get("v") != 1:
            raise ValueError("version")
        return cls(
            session_id=str(doc["sid"]),
            kind=str(doc["typ"]),
            subject=str(doc["sub"]),
            client_id=str(doc["cid"]),
            app_hash=str(doc["app"]),
            scopes=tuple(str(s) for s in doc["scp"]),
            session_key=str(doc["spk"]),
            issued_at=int(doc["iat"]),
            expires_at=int(doc["exp"]),
        )


def seal_source_identifier(identity: SourceIdentity, *, key_id: str, key: Secret, nonce: bytes) -> str:
    """Encrypt ``identity``; ``nonce`` is 12 random bytes (``secrets.token_bytes(12)``)."""
    if len(nonce) != 12:
        raise ValueError("nonce must be 12 bytes")
    header = f"{PREFIX}.{key_id}"
    sealed = ChaCha20Poly1305(key.reveal()).encrypt(nonce, identity.to_json(), header.encode("ascii"))
    return f"{header}.{b64u_encode(nonce + sealed)}"


def open_source_identifier(token: str, *, keyring: Keyring, now: float) -> SourceIdentity:
    """Decrypt and check a source identifier; each failure has its own code (never says why in more detail)."""
    match = _SHAPE.match(token) if len(token) <= MAX_LENGTH else None
    if match is None:
        raise Unauthorized("the source identifier is malformed", code=ErrorCode.SOURCE_IDENTIFIER_MALFORMED)
    key_id, body = match.groups()
    key = keyring.key_by_id(Purpose.SOURCE_IDENTIFIER, key_id, now=now)
    if key is None:
        raise keyring.mismatch(key_id, what="source identifier", now=now)
    raw = b64u_decode(body, field="source identifier", code=ErrorCode.SOURCE_IDENTIFIER_MALFORMED)
    try:
        plain = ChaCha20Poly1305(key.reveal()).decrypt(raw[:12], raw[12:], f"{PREFIX}.{key_id}".encode("ascii"))
        identity = SourceIdentity.from_json(plain)
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise Unauthorized(
            "the source identifier was altered or forged", code=ErrorCode.SOURCE_IDENTIFIER_TAMPERED
        ) from None
    if now >= identity.expires_at:
        raise Unauthorized("the source identifier has expired; log in again", code=ErrorCode.SOURCE_IDENTIFIER_EXPIRED)
    return identity
