"""Config tokens: a validated document sealed as a compact JWE (``dir`` + A256GCM) or, when asked, a JWS (HS256).

Keys come from the key schedule (:class:`~tokenward.keys.Keyring`): ``kid`` is the time code's
key id, so a token made before a rotation still opens while the previous code's grace lasts.
Pure functions: the caller passes the keyring and ``now``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from typing import Any, Literal

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.forwardauth.schema import ConfigDocument, parse_document
from tokenward.keys import Keyring, Purpose

__all__ = ["MAX_TOKEN_LENGTH", "DecodedToken", "decode_token", "encode_token", "peek_header"]

MAX_TOKEN_LENGTH = 32_768
"""Longer tokens are refused before any parsing."""

JWE_TYPE = "tokenward-config+jwe"
JWS_TYPE = "tokenward-config+jws"


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedToken:
    document: ConfigDocument
    kind: Literal["jwe", "jws"]
    key_id: str


def _invalid(detail: str) -> BadRequest:
    return BadRequest(detail, code=ErrorCode.CONFIG_TOKEN_INVALID)


def encode_token(document: ConfigDocument | dict[str, Any], keyring: Keyring, *, signed_only: bool = False) -> str:
    """Validate ``document`` and seal it: a JWE, or a JWS (readable, not forgeable) when ``signed_only``."""
    doc = document if isinstance(document, ConfigDocument) else parse_document(document)
    payload = doc.model_dump_json(exclude_none=True, exclude_defaults=True).encode("utf-8")
    if signed_only:
        kid, key = keyring.key(Purpose.CONFIG_TOKEN_SIGNING)
        header = {"alg": "HS256", "kid": kid, "typ": JWS_TYPE}
        return jws.serialize_compact(header, payload, OctKey.import_key(key.reveal()), algorithms=["HS256"])
    kid, key = keyring.key(Purpose.CONFIG_TOKEN_ENCRYPTION)
    protected = {"alg": "dir", "enc": "A256GCM", "kid": kid, "typ": JWE_TYPE}
    return jwe.encrypt_compact(protected, payload, OctKey.import_key(key.reveal()), algorithms=["dir", "A256GCM"])


def peek_header(token: str) -> dict[str, Any]:
    """The unverified protected header of a compact token (400 ``config_token_invalid`` if unreadable)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise _invalid(f"a config token is 1-{MAX_TOKEN_LENGTH} characters")
    first = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: a header of 20,000 nested "["
        raise _invalid("the config token is not a JWE or JWS (unreadable header)") from None
    if not isinstance(header, dict):
        raise _invalid("the config token header is not a JSON object")
    return header


def decode_token(token: str, keyring: Keyring, *, now: float, check_expiry: bool = True) -> DecodedToken:
    """Open and validate a config token.

    400 ``config_token_invalid`` (garbage, truncated, tampered, wrong key), ``config_token_key_unknown``
    (made under a time code this server no longer holds), ``config_token_expired``, ``config_token_schema``.
    Revocation is the caller's business (it needs the database).
    """
    token = token.strip()
    header = peek_header(token)
    parts = token.count(".") + 1
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _invalid("the config token names no key (kid)")
    if parts == 5 and header.get("alg") == "dir" and header.get("enc") == "A256GCM":
        kind: Literal["jwe", "jws"] = "jwe"
        purpose = Purpose.CONFIG_TOKEN_ENCRYPTION
    elif parts == 3 and header.get("alg") == "HS256":
        kind = "jws"
        purpose = Purpose.CONFIG_TOKEN_SIGNING
    else:
        raise _invalid("the config token is neither a dir/A256GCM JWE nor an HS256 JWS")
    key = keyring.key_by_id(purpose, kid, now=now)
    if key is None:
        raise BadRequest(
            "the config token was made under a time code this server no longer accepts; create it again",
            code=ErrorCode.CONFIG_TOKEN_KEY_UNKNOWN,
        )
    oct_key = OctKey.import_key(key.reveal())
    try:
        if kind == "jwe":
            plaintext = jwe.decrypt_compact(token, oct_key, algorithms=["dir", "A256GCM"]).plaintext
        else:
            plaintext = jws.deserialize_compact(token, oct_key, algorithms=["HS256"]).payload
    except (JoseError, ValueError, TypeError):
        raise _invalid("the config token does not verify (tampered, truncated or made for another server)") from None
    try:
        data = json.loads(plaintext or b"")
    except (ValueError, RecursionError):
        raise _invalid("the config token does not hold JSON") from None
    document = parse_document(data)
    if check_expiry and document.exp is not None and now >= document.exp:
        raise BadRequest("the config token has expired", code=ErrorCode.CONFIG_TOKEN_EXPIRED)
    return DecodedToken(document=document, kind=kind, key_id=kid)
