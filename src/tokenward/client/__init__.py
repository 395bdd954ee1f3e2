"""tokenward's SDK: the client library and the resource-server middleware (docs/resource-servers.md).

Client apps: :class:`Tokenward` / :class:`AsyncTokenward` log in (captcha with an authenticator
callback, or as a resource with its Ed25519 key), cache client tokens per destination and give an
:class:`httpx.Auth` (``.auth(destination)``) that attaches and seals.

Resource servers: :class:`TokenwardMiddleware` with a :class:`Verifier` (which takes a
:class:`JWKSCache`, the server's :class:`SessionKeys` and a replay guard). FastAPI routes get the
caller from :mod:`tokenward.client.fastapi`.
"""

from __future__ import annotations

from tokenward.client.auth import TokenwardAuth
from tokenward.client.authenticators import key_authenticator, prompt_authenticator
from tokenward.client.flows import CaptchaChallenge, ClientToken, Session
from tokenward.client.jwks import JWKSCache
from tokenward.client.middleware import CALLER_SCOPE_KEY, TokenwardMiddleware
from tokenward.client.regulation import FailureRegulator
from tokenward.client.replay import MemoryReplayGuard, RedisReplayGuard, ReplayGuard
from tokenward.client.session import AsyncTokenward, Tokenward
from tokenward.client.verifier import Caller, SessionKeys, VerifiedToken, Verifier

__all__ = [
    "CALLER_SCOPE_KEY",
    "AsyncTokenward",
    "Caller",
    "CaptchaChallenge",
    "ClientToken",
    "FailureRegulator",
    "JWKSCache",
    "MemoryReplayGuard",
    "RedisReplayGuard",
    "ReplayGuard",
    "Session",
    "SessionKeys",
    "Tokenward",
    "TokenwardAuth",
    "TokenwardMiddleware",
    "VerifiedToken",
    "Verifier",
    "key_authenticator",
    "prompt_authenticator",
]
