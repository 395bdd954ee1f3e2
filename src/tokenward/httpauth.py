"""Authorization-header parsing shared by the web layer and the /verify plugins: pure, no I/O, no framework.

It sits below both (docs/architecture.md), so :mod:`tokenward.forwardauth` need not import :mod:`tokenward.web`.
"""

from __future__ import annotations

import binascii
import re

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized

__all__ = ["CHALLENGE", "MAX_AUTHORIZATION_LENGTH", "AuthenticationRequired", "parse_basic"]

MAX_AUTHORIZATION_LENGTH = 1024
"""Longer Authorization headers are refused before decoding."""

CHALLENGE = 'Basic realm="tokenward", charset="UTF-8"'
_CONTROL = re.compile(r"[\x00-\x1f]")


class AuthenticationRequired(Unauthorized):
    """401 carrying a ``WWW-Authenticate`` challenge."""

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": CHALLENGE}


def _malformed(detail: str) -> AuthenticationRequired:
    return AuthenticationRequired(detail, code=ErrorCode.AUTHORIZATION_MALFORMED)


def parse_basic(value: str) -> tuple[str, str]:
    """``(user, password)`` from the credentials part of a Basic header (RFC 7617), strictly.

    Raises 401 ``authorization_malformed`` for bad base64, no colon, an empty user or password,
    or more than :data:`MAX_AUTHORIZATION_LENGTH` characters.
    """
    if len(value) > MAX_AUTHORIZATION_LENGTH:
        raise _malformed("the Authorization header is too long")
    try:
        decoded = binascii.a2b_base64(value.strip(), strict_mode=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _malformed("Basic credentials are not valid base64 of UTF-8 user:password") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise _malformed("Basic credentials must be user:password (no colon found)")
    if not user or not password:
        raise _malformed("Basic credentials need a non-empty user and password")
    if _CONTROL.search(user):
        raise _malformed("the user name holds control characters")
    return user, password
