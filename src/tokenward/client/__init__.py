"""tokenward's SDK: the client library and the resource-server middleware (docs/resource-servers.md).

Resource servers: :class:`TokenwardMiddleware` with a :class:`Verifier` (which takes a
:class:`JWKSCache`, the server's :class:`SessionKeys` and a replay guard). FastAPI routes get the
caller from :mod:`tokenward.client.fastapi`.
"""

from __future__ import annotations

from tokenward.client.jwks import JWKSCache
from tokenward.client.middleware import CALLER_SCOPE_KEY, TokenwardMiddleware
from tokenward.client.replay import MemoryReplayGuard, RedisReplayGuard, ReplayGuard
from tokenward.client.verifier import Caller, SessionKeys, VerifiedToken, Verifier

__all__ = [
    "CALLER_SCOPE_KEY",
    "Caller",
    "JWKSCache",
    "MemoryReplayGuard",
    "RedisReplayGuard",
    "ReplayGuard",
    "SessionKeys",
    "TokenwardMiddleware",
    "VerifiedToken",
    "Verifier",
]
