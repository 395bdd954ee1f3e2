"""Reading credentials from the Authorization header, shared by the Basic and Bearer plugins."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.forwardauth.plugins.base import Outcome
from tokenward.httpauth import parse_basic

__all__ = ["VerifiedCache", "basic_challenge", "basic_credentials", "basic_or_failure", "bearer_token"]

#: At most this many verified ``user:password`` pairs are remembered; past it the cache starts afresh.
CACHE_SIZE = 10_000


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


def basic_or_failure(headers: Mapping[str, str], challenge: str) -> tuple[str, str] | Outcome:
    """``(user, password)``, or the 401 failure (with ``challenge``) when they are missing or malformed."""
    creds = basic_credentials(headers)
    if isinstance(creds, Unauthorized):
        return Outcome.failure(creds.error_code, creds.detail, challenge=challenge)
    if creds is None:
        return Outcome.failure(ErrorCode.CREDENTIALS_MISSING, "no Basic credentials given", challenge=challenge)
    return creds


class VerifiedCache:
    """The outcomes of verified ``user:password`` pairs, keyed by a MAC of the pair under a per-process
    random key: keyed BLAKE2b is a MAC (RFC 7693 §2.9), so the cache never holds anything a password can
    be read from. Times are the caller's monotonic clock."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[float, Outcome]] = {}

    def fingerprint(self, user: str, password: str) -> bytes:
        return hashlib.blake2b(f"{user}\0{password}".encode(), key=self._key, digest_size=32).digest()

    def get(self, fingerprint: bytes, now: float) -> Outcome | None:
        cached = self._entries.get(fingerprint)
        return cached[1] if cached is not None and cached[0] > now else None

    def put(self, fingerprint: bytes, until: float, outcome: Outcome) -> None:
        if len(self._entries) >= CACHE_SIZE:
            self._entries.clear()
        self._entries[fingerprint] = (until, outcome)


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
