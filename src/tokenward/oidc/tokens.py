"""ID tokens and access tokens: JWTs signed with the keys ``/.well-known/jwks.json`` publishes.

Both are signed like client tokens (:mod:`tokenward.keys.signing`: Ed25519, ``alg`` ``EdDSA``,
``kid`` = time code key id), so any instance sharing the time code signs and verifies them and a
relying party needs nothing but the JWKS. Access tokens follow RFC 9068 (``typ: at+jwt``); the userinfo endpoint
is their resource server. Pure: keys and ``now`` are passed in.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.keys import Keyring, Purpose
from tokenward.keys.signing import SIGNING_ALGORITHM, public_jwks, sign_compact, verify_compact

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "half_hash",
    "sign_jwt",
    "signing_algorithm",
    "verify_access_token",
    "verify_id_token_hint",
]

ACCESS_TOKEN_TYPE = "at+jwt"
MAX_TOKEN_LENGTH = 8192


def signing_algorithm(keyring: Keyring) -> str:
    """The JWS ``alg`` ID tokens and access tokens are signed with (the JWKS keys declare it too)."""
    return SIGNING_ALGORITHM


def sign_jwt(claims: dict[str, Any], keyring: Keyring, *, typ: str = "JWT") -> str:
    kid, seed = keyring.key(Purpose.CLIENT_TOKEN_SIGNING)
    return sign_compact({"typ": typ}, claims, key_id=kid, seed=seed)


def half_hash(value: str) -> str:
    """``at_hash`` / ``c_hash`` for EdDSA over Ed25519: SHA-512, left half (OpenID Connect Core §3.1.3.6)."""
    digest = hashlib.sha512(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def _verified(token: str, keyring: Keyring, *, now: float, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized(f"the {what} is missing or too long", code=ErrorCode.INVALID_TOKEN)
    jwks = public_jwks(keyring.verification_keys(Purpose.CLIENT_TOKEN_SIGNING, now=now))
    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    try:
        header, payload = verify_compact(token, keys)
        claims = json.loads(payload)
    except (JoseError, ValueError):
        raise Unauthorized(f"the {what} is not valid here", code=ErrorCode.INVALID_TOKEN) from None
    if not isinstance(claims, dict):
        raise Unauthorized(f"the {what} is not valid here", code=ErrorCode.INVALID_TOKEN)
    return header, claims


def verify_access_token(token: str, keyring: Keyring, *, issuer: str, now: float) -> dict[str, Any]:
    """The claims of a valid access token this issuer made, or 401 ``invalid_token``."""
    header, claims = _verified(token, keyring, now=now, what="access token")
    if header.get("typ") != ACCESS_TOKEN_TYPE or claims.get("iss") != issuer:
        raise Unauthorized("the access token is not valid here", code=ErrorCode.INVALID_TOKEN)
    exp = claims.get("exp")
    if not isinstance(exp, int) or now >= exp:
        raise Unauthorized("the access token has expired", code=ErrorCode.INVALID_TOKEN)
    return claims


def verify_id_token_hint(token: str, keyring: Keyring, *, issuer: str, now: float) -> dict[str, Any]:
    """The claims of an ID token this issuer signed, expired or not (RP-Initiated Logout §2)."""
    header, claims = _verified(token, keyring, now=now, what="id_token_hint")
    if header.get("typ") == ACCESS_TOKEN_TYPE or claims.get("iss") != issuer:
        raise Unauthorized("the id_token_hint was not issued here", code=ErrorCode.INVALID_TOKEN)
    return claims
