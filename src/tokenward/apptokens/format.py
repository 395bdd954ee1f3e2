"""The app token format: ``twa_<id>_<secret><check>``.

::

    twa_3kT9bQx2LmZp_Vq8r0YtGk2JwE5sNc7uXh4d1a9Zb2
    └─┘ └──────────┘ └────────────────────┘└────┘
    prefix  id (12)       secret (22)      check (6)

- ``twa_`` lets secret scanners (GitHub, gitleaks) recognise a leaked token.
- ``id``: 12 base62 characters (~71 bits), public, the primary key: lookup is O(1).
- ``secret``: 22 base62 characters from :mod:`secrets` (~131 bits).
- ``check``: CRC32 of everything before it, 6 base62 characters (GitHub's scheme), so a
  mistyped or truncated token is refused before any lookup.

Only ``HMAC-SHA256(app-token key, "tokenward/apptoken/v1" || id || secret)`` is stored. The
key is the data dir's ``apptoken.key``, not derived from the time code, so rotating the time
code leaves app tokens valid. One HMAC per request (~1 µs), never a slow password hash: the
secret has 131 bits of entropy, so a keyed fast hash is enough (docs/app-tokens.md).

Every check that is not answered from memory parses (:func:`split`), and hashes when the id is known, so
both are kept cheap: the checksum's base62 digits come two at a time from a table, and the HMAC starts from
SHA-256 states that have already absorbed the key's pads (``hmac.digest`` set up OpenSSL's HMAC afresh each call:
~4 µs, now ~1.3). An unknown id is not hashed: the id is public, and what it costs to find out that an id is
unknown (a bit of the filter of known ids) already differs from what a known one costs (a record, read once).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.keys import Secret

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "ALPHABET",
    "ID_LENGTH",
    "MAX_TOKEN_LENGTH",
    "PREFIX",
    "SECRET_LENGTH",
    "TOKEN_LENGTH",
    "ParsedToken",
    "generate",
    "hash_secret",
    "is_token_id",
    "key_id",
    "parse",
    "split",
]

PREFIX = "twa_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 12
SECRET_LENGTH = 22
CHECK_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECK_LENGTH
MAX_TOKEN_LENGTH = 256
"""Anything longer is refused without further parsing."""

_TOKEN = re.compile(
    rf"^{PREFIX}([0-9A-Za-z]{{{ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECK_LENGTH}}})$"
)
_ID = re.compile(rf"^[0-9A-Za-z]{{{ID_LENGTH}}}$")
_HASH_LABEL = b"tokenward/apptoken/v1\x00"
#: Every pair of base62 digits, in order: a number below 62**6 is three lookups, not six divisions.
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)
_PAIR = len(_PAIRS)
#: HMAC's inner and outer pads (RFC 2104 §2) as byte translations, SHA-256's block size.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_BLOCK = 64


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split into its public id and its secret (masked in reprs)."""

    id: str
    secret: Secret

    @property
    def prefix(self) -> str:
        """The public, displayable part: ``twa_<id>``."""
        return PREFIX + self.id


def _check(body: str) -> str:
    """The checksum: CRC32 of ``body`` as 6 base62 digits, most significant first (2**32 < 62**6)."""
    high, low = divmod(zlib.crc32(body.encode("ascii")), _PAIR)
    top, middle = divmod(high, _PAIR)
    return _PAIRS[top] + _PAIRS[middle] + _PAIRS[low]


def _random(n: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def generate() -> tuple[str, ParsedToken]:
    """A new token string (show it once) and its parsed form."""
    token_id, secret = _random(ID_LENGTH), _random(SECRET_LENGTH)
    body = f"{PREFIX}{token_id}_{secret}"
    return body + _check(body), ParsedToken(token_id, Secret(secret.encode("ascii")))


def parse(token: str) -> ParsedToken:
    """Split ``token`` after checking its shape and checksum.

    Raises :class:`Unauthorized` with code ``apptoken_malformed`` (wrong shape) or
    ``apptoken_checksum`` (a typo): both are decided without any lookup.
    """
    token_id, secret = split(token)
    return ParsedToken(token_id, Secret(secret.encode("ascii")))


def split(token: str) -> tuple[str, str]:
    """:func:`parse`'s ``(id, secret)`` as text, with no object built: the verification path's (most checks that
    get this far are refused, and need the id only)."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("the app token is too long to be a tokenward app token", code=ErrorCode.APPTOKEN_MALFORMED)
    match = _TOKEN.match(token)
    if match is None:
        raise Unauthorized(
            f"the app token is not in the form {PREFIX}<id>_<secret> ({TOKEN_LENGTH} characters)",
            code=ErrorCode.APPTOKEN_MALFORMED,
        )
    token_id, secret, check = match.groups()
    if _check(token[:-CHECK_LENGTH]) != check:  # a CRC of the token: nothing secret to time
        raise Unauthorized(
            "the app token's checksum does not match: it was mistyped or truncated", code=ErrorCode.APPTOKEN_CHECKSUM
        )
    return token_id, secret


def is_token_id(value: str) -> bool:
    """Whether ``value`` has the shape of a token id (not whether it exists)."""
    return _ID.match(value) is not None


def hash_secret(key: Secret, token_id: str, secret: Secret) -> str:
    """The stored form of a token: hex HMAC-SHA256 binding the secret to its id."""
    inner, outer = _keyed(key.reveal())
    inner = inner.copy()
    inner.update(_HASH_LABEL + token_id.encode("ascii") + b"\x00" + secret.reveal())
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


@functools.lru_cache(maxsize=8)  # an instance has one app-token key; tests build a few
def _keyed(key: bytes) -> tuple[_Hash, _Hash]:
    """SHA-256 after ``key ⊕ ipad`` and after ``key ⊕ opad``: HMAC-SHA256 (RFC 2104 §2) resumes from copies of
    them. Never updated themselves (only copies are), so sharing them is safe."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def key_id(key: Secret) -> str:
    """A public fingerprint of the app-token key (8 hex), stored beside each hash to diagnose key mismatches."""
    return hmac.digest(key.reveal(), b"tokenward/apptoken/v1/key-id", "sha256").hex()[:8]
