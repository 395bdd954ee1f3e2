"""Reading credentials from the Authorization header, shared by the Basic and Bearer plugins."""

from __future__ import annotations

from collections.abc import Mapping

from tokenward.errors import Unauthorized
from tokenward.httpauth import parse_basic

__all__ = ["basic_challenge", "basic_credentials", "bearer_token"]


def basic_challenge(realm: str) -> str:
    return f'Basic realm="{realm}", charset="UTF-8"'


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | Unauthorized | None:
    """``(user, password)``; ``None`` when there is no Basic header; the error when it is malformed."""
    header = headers.get("authorization")
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return parse_basic(credentials)
    except Unauthorized as exc:
        return exc


def bearer_token(headers: Mapping[str, str], *, header: str = "authorization", scheme: str = "Bearer") -> str | None:
    value = headers.get(header)
    if value is None or len(value) > 16384:
        return None
    if not scheme:
        return value.strip() or None
    given, _, token = value.partition(" ")
    if given.lower() != scheme.lower():
        return None
    return token.strip() or None
