"""base64url without padding, strict on input (docs/protocol.md §1)."""

from __future__ import annotations

import base64
import binascii
import re

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest

__all__ = ["b64u_decode", "b64u_encode"]

_B64U = re.compile(r"^[A-Za-z0-9_-]*$")


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str, *, field: str, length: int | None = None, code: ErrorCode = ErrorCode.MALFORMED) -> bytes:
    """Decode ``text``; raise BadRequest naming ``field`` when it is not base64url (or not ``length`` bytes)."""
    if not _B64U.match(text) or len(text) % 4 == 1:
        raise BadRequest(f"{field} is not base64url", code=code)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field} is not base64url", code=code) from None
    if length is not None and len(raw) != length:
        raise BadRequest(f"{field} must be {length} bytes", code=code)
    return raw
