"""``htpasswd``: HTTP Basic against Apache htpasswd lines.

Hashes: bcrypt (``$2y$``/``$2b$``/``$2a$``), apr1 (``$apr1$``, via libpass), ``{SHA}`` and argon2
(``$argon2id$``…). Plain-text and crypt(3) entries are refused when the token is created.
A verified ``user:password`` is remembered for :data:`CACHE_SECONDS` as an HMAC under a
per-process random key, so bcrypt is paid once, not per request, and no password is kept.
Wrong passwords are regulated like app tokens' (:mod:`~tokenward.forwardauth.plugins.regulated`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error
from passlib.hash import apr_md5_crypt  # type: ignore[import-untyped]

from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.basic import VerifiedCache, basic_challenge, basic_or_failure
from tokenward.forwardauth.plugins.regulated import PasswordRegulation
from tokenward.forwardauth.schema import HtpasswdPlugin

__all__ = ["CACHE_SECONDS", "HtpasswdAuth", "check_password", "parse_htpasswd"]

CACHE_SECONDS = 60.0
_PREFIXES = ("$2y$", "$2b$", "$2a$", "$apr1$", "{SHA}", "$argon2id$", "$argon2i$", "$argon2d$")
_ARGON2 = PasswordHasher()
_DUMMY = bcrypt.hashpw(b"tokenward-dummy", bcrypt.gensalt(10)).decode()


def parse_htpasswd(text: str) -> dict[str, str]:
    """``{user: hash}``; ``ValueError`` naming the line for an unsupported or malformed entry."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, hashed = line.partition(":")
        if not colon or not user or not hashed:
            raise ValueError(f"htpasswd line {number} is not user:hash")
        if not hashed.startswith(_PREFIXES):
            raise ValueError(f"htpasswd line {number} ({user}): unsupported hash; use bcrypt, apr1, SHA or argon2")
        users[user] = hashed
    if not users:
        raise ValueError("htpasswd holds no user")
    return users


def check_password(hashed: str, password: str) -> bool:
    """Check ``password`` against one htpasswd hash (slow for bcrypt/argon2: call off the event loop)."""
    secret = password.encode("utf-8")
    if hashed.startswith(("$2y$", "$2b$", "$2a$")):
        try:
            return bcrypt.checkpw(secret, ("$2b$" + hashed[4:]).encode("ascii"))
        except ValueError:
            return False
    if hashed.startswith("$apr1$"):
        try:
            return bool(apr_md5_crypt.verify(password, hashed))
        except ValueError:
            return False
    if hashed.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(secret).digest()).decode("ascii")
        return hmac.compare_digest(digest, hashed[5:])
    try:
        return _ARGON2.verify(hashed, password)
    except (Argon2Error, ValueError):
        return False


class HtpasswdAuth(Plugin[HtpasswdPlugin]):
    def __init__(self, config: HtpasswdPlugin, *, regulation: PasswordRegulation | None = None) -> None:
        super().__init__(config)
        self.regulation = regulation or PasswordRegulation(None, time.time)
        self.users = parse_htpasswd(config.htpasswd)
        self.challenge = basic_challenge(config.realm)
        self._verified = VerifiedCache()

    async def verify(self, request: VerifyRequest) -> Outcome:
        creds = basic_or_failure(request.headers, self.challenge)
        if isinstance(creds, Outcome):
            return creds
        user, password = creds
        refused = await self.regulation.refused(user, request.client_ip)
        if refused is not None:
            return refused
        now = time.monotonic()
        fingerprint = self._verified.fingerprint(user, password)
        cached = self._verified.get(fingerprint, now)
        if cached is not None:
            return cached
        hashed = self.users.get(user)
        # An unknown user still pays one bcrypt so timing does not tell which users exist.
        ok = await asyncio.to_thread(check_password, hashed or _DUMMY, password) and hashed is not None
        if not ok:
            await self.regulation.failed(user, request.client_ip)
            return Outcome.failure(ErrorCode.CREDENTIALS_INVALID, "wrong user or password", challenge=self.challenge)
        outcome = Outcome.success(UserInfo(sub=user, email=user if "@" in user else ""))
        self._verified.put(fingerprint, now + CACHE_SECONDS, outcome)
        return outcome
