"""Client tokens (JWS EdDSA) and the channel key both peers derive from them (docs/protocol.md §6, §7).

The signing key is Ed25519 with the 32-byte seed ``Keyring.key(Purpose.CLIENT_TOKEN_SIGNING)``;
its ``kid`` is the time code's key id, so every instance sharing the time code signs and
verifies with the same keys, and ``/.well-known/jwks.json`` lists current and previous ones.
Signing and the accepted algorithms live in :mod:`tokenward.keys.signing`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tokenward.errorcodes import ErrorCode
from tokenward.errors import TokenwardError, Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Keyring, Purpose
from tokenward.keys.keyring import TIMECODE_MISMATCH
from tokenward.keys.signing import ACCEPTED_ALGORITHMS, public_jwks, sign_compact, verify_compact

__all__ = [
    "TOKEN_LIFETIME_SECONDS",
    "TOKEN_TYPE",
    "ClientTokenClaims",
    "b64u_of_public",
    "channel_key",
    "claims_from_payload",
    "is_weak_x25519",
    "jwks",
    "key_id_of",
    "sign_client_token",
    "verify_client_token",
]

TOKEN_LIFETIME_SECONDS = 900
TOKEN_TYPE = "tw-client+jws"


def jwks(keyring: Keyring, *, now: float) -> dict[str, Any]:
    """The public JWKS: one OKP/Ed25519 key (``alg`` ``EdDSA``) per time code still accepted."""
    return public_jwks(keyring.verification_keys(Purpose.CLIENT_TOKEN_SIGNING, now=now))


@dataclass(frozen=True, slots=True)
class ClientTokenClaims:
    issuer: str
    source: str
    destination: str
    source_key: str  # base64url X25519 public key of the source session
    destination_key: str  # base64url X25519 public key of the destination (certified)
    client_id: str
    scopes: tuple[str, ...]
    token_id: str
    issued_at: int
    expires_at: int
    #: App hash of the source's client app (docs/protocol.md §2); "" for resources and for tokens made before 0.2.
    app_hash: str = ""

    def to_claims(self) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "app": self.app_hash,
            "sub": self.source,
            "dst": self.destination,
            "aud": self.destination,  # the registered claim (RFC 7519) generic JWT libraries check
            "spk": self.source_key,
            "dpk": self.destination_key,
            "cid": self.client_id,
            "scp": list(self.scopes),
            "jti": self.token_id,
            "iat": self.issued_at,
            "nbf": self.issued_at,
            "exp": self.expires_at,
        }


def sign_client_token(claims: ClientTokenClaims, keyring: Keyring) -> str:
    kid, seed = keyring.key(Purpose.CLIENT_TOKEN_SIGNING)
    return sign_compact({"typ": TOKEN_TYPE}, claims.to_claims(), key_id=kid, seed=seed)


def claims_from_payload(doc: Any) -> ClientTokenClaims:
    """The claims of a verified payload; ``KeyError``/``TypeError``/``ValueError`` when one is missing or ill-typed."""
    if not isinstance(doc, dict):
        raise TypeError("claims")
    scopes = doc["scp"]
    if not isinstance(scopes, list):
        raise TypeError("scp")
    return ClientTokenClaims(
        issuer=str(doc["iss"]),
        source=str(doc["sub"]),
        destination=str(doc["dst"]),
        source_key=str(doc["spk"]),
        destination_key=str(doc["dpk"]),
        client_id=str(doc["cid"]),
        scopes=tuple(str(s) for s in scopes),
        token_id=str(doc["jti"]),
        issued_at=int(doc["iat"]),
        expires_at=int(doc["exp"]),
        app_hash=str(doc.get("app", "")),
    )


def verify_client_token(token: str, key_set: KeySet, *, now: float, issuer: str, leeway: int = 0) -> ClientTokenClaims:
    """Check signature (against a JWKS), type, issuer and window; what a peer does on receipt.

    ``leeway`` (seconds) widens the window on both sides for clocks that disagree a little:
    before ``iat - leeway`` the token is ``client_token_not_yet_valid``, from ``exp + leeway`` on
    ``client_token_expired``.

    A well-formed token whose ``kid`` is not in ``key_set`` was signed under another time code:
    ``timecode_mismatch``, not ``client_token_invalid``.
    """
    kid = key_id_of(token)
    if kid is not None and all(key.kid != kid for key in key_set.keys):
        raise Unauthorized(
            f"the client token was signed under time code {kid}, which is not in this JWKS "
            f"({', '.join(str(key.kid) for key in key_set.keys) or 'empty'}): the signing instance and the one "
            "serving the JWKS have different time codes. Operator: run `tokenward timecode show` on both "
            "instances and sync them with `tokenward timecode set -`",
            code=TIMECODE_MISMATCH,
        )
    try:
        header, payload = verify_compact(token, key_set)
        if header.get("typ") != TOKEN_TYPE or header.get("alg") not in ACCEPTED_ALGORITHMS:
            raise ValueError("typ")
        claims = claims_from_payload(json.loads(payload))
    except (JoseError, ValueError, KeyError, TypeError):
        raise Unauthorized(
            "the client token is malformed or its signature is wrong", code=ErrorCode.CLIENT_TOKEN_INVALID
        ) from None
    if claims.issuer != issuer:
        raise Unauthorized("the client token was issued by another server", code=ErrorCode.CLIENT_TOKEN_FOREIGN)
    if now < claims.issued_at - leeway:
        raise Unauthorized(
            "the client token is not valid yet: compare this clock with the issuer's",
            code=ErrorCode.CLIENT_TOKEN_NOT_YET_VALID,
        )
    if now >= claims.expires_at + leeway:
        raise Unauthorized(
            "the client token has expired: ask the issuer for a new one", code=ErrorCode.CLIENT_TOKEN_EXPIRED
        )
    return claims


def key_id_of(token: str) -> str | None:
    """The ``kid`` of a compact JWS header, or None when the header cannot be read (left to the verifier)."""
    head = token.split(".", 1)[0]
    if len(head) > 1024:
        return None
    try:
        header = json.loads(b64u_decode(head, field="header"))
    except (TokenwardError, ValueError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def channel_key(own_private: X25519PrivateKey, claims: ClientTokenClaims) -> bytes:
    """The 32-byte channel key for the pair named in ``claims`` (either side computes the same).

    ``HKDF-SHA256(ikm=X25519(own, peer), salt="tokenward/v1/channel", info=jti|spk|dpk|cid)``.
    """
    own_public = b64u_of_public(own_private)
    if own_public == claims.source_key:
        peer = claims.destination_key
    elif own_public == claims.destination_key:
        peer = claims.source_key
    else:
        raise Unauthorized("this client token does not name this key", code=ErrorCode.CLIENT_TOKEN_NOT_FOR_ME)
    shared = own_private.exchange(X25519PublicKey.from_public_bytes(b64u_decode(peer, field="peer key", length=32)))
    info = f"tokenward/v1/channel|{claims.token_id}|{claims.source_key}|{claims.destination_key}|{claims.client_id}"
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tokenward/v1/channel", info=info.encode()).derive(shared)


_PROBE = X25519PrivateKey.from_private_bytes(b"tokenward/v1/x25519-order-probe!")


def is_weak_x25519(raw: bytes) -> bool:
    """Whether the X25519 public key ``raw`` is of low order: every private key's shared secret with it is
    all zero (RFC 7748 §6.1 says to check for that). Such a key binds nothing: whoever learns a
    channel key derived from it knows every other one."""
    try:
        return _PROBE.exchange(X25519PublicKey.from_public_bytes(raw)) == bytes(32)
    except ValueError:  # the library itself refuses an all-zero result
        return True


def b64u_of_public(private: X25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64u_encode(raw)
