"""The dependencies the API route modules share: services, the session and the management guards.

Route modules import these and never each other (docs/architecture.md): ``current_session`` (a
``Bearer tw1si.…`` session), ``manager`` (a caller holding ``tokenward:manage``, by app token or
session) and ``admin`` (a manager the policy makes an admin of this server).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from tokenward.apptokens import MANAGE_SCOPE, Caller
from tokenward.apptokens.access import AdminCheck
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden, Unauthorized
from tokenward.identity.service import IdentityService
from tokenward.identity.source import PREFIX as SOURCE_PREFIX
from tokenward.identity.source import SourceIdentity
from tokenward.runtime import Runtime
from tokenward.web.auth import (
    AppTokenAuthenticator,
    AuthenticationRequired,
    Authenticator,
    authenticate,
    peer_host,
    require_scope,
)
from tokenward.web.state import get_identity, get_runtime

__all__ = [
    "MANAGE_SESSION_SCOPE",
    "SourceIdentifierAuthenticator",
    "admin",
    "authenticators",
    "bearer_token",
    "chain_of",
    "current_session",
    "identity_service",
    "manager",
]

#: The session scope (granted in clientscopespolicy.csv) that carries ``tokenward:manage`` into the management API.
MANAGE_SESSION_SCOPE = "TOKENWARD_MANAGE"


async def identity_service(request: Request) -> IdentityService:
    """The runtime's identity service."""
    # async: FastAPI runs a plain def dependency (get_identity) in its thread pool, a hop per request.
    return get_identity(request)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send the source identifier as `Authorization: Bearer …`", code=ErrorCode.SOURCE_IDENTIFIER_MISSING
        )
    return token.strip()


async def current_session(
    request: Request, service: Annotated[IdentityService, Depends(identity_service)]
) -> SourceIdentity:
    return await service.authenticate(bearer_token(request), now=time.time())


class SourceIdentifierAuthenticator:
    """Authenticates ``Bearer tw1si.…`` (a user session) for the management API (web/auth.py chain).

    The caller holds ``tokenward:manage`` when the session was granted the ``TOKENWARD_MANAGE`` scope
    (clientscopespolicy.csv decides who may pick it, for which client app) or when the policy makes the
    subject an admin. Resource sessions are not management callers.
    """

    def __init__(self, service: IdentityService, *, is_admin: AdminCheck) -> None:
        self.service = service
        self.is_admin = is_admin

    async def __call__(self, headers: Mapping[str, str], peer: str | None) -> Caller | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(SOURCE_PREFIX + "."):
            return None
        try:
            identity = await self.service.authenticate(token, now=time.time())
        except Unauthorized as exc:  # RFC 9110: every 401 carries a challenge
            raise AuthenticationRequired(exc.detail, code=exc.error_code) from None
        if identity.kind != "user":
            raise AuthenticationRequired(
                "a resource session cannot call the management API", code=ErrorCode.SESSION_KIND_REFUSED
            )
        scopes = set(identity.scopes)
        if MANAGE_SESSION_SCOPE in scopes or self.is_admin(identity.subject):
            scopes.add(MANAGE_SCOPE)
        return Caller(subject=identity.subject, scopes=frozenset(scopes), method="session")


def chain_of(runtime: Runtime) -> tuple[Authenticator, ...]:
    """The chain, in order: app tokens (Basic, ``Bearer twa_…``), then sessions (``Bearer tw1si.…``).

    The hot lists keep one chain per runtime, so it asks the service's ``is_admin`` when it checks a session,
    not the one it had when built.
    """
    svc = runtime.app_tokens
    return (
        AppTokenAuthenticator(svc, trusted_proxies=runtime.trusted_proxies),
        SourceIdentifierAuthenticator(runtime.identity, is_admin=lambda subject: svc.is_admin(subject)),
    )


def authenticators(request: Request) -> tuple[Authenticator, ...]:
    """The chain of the request's runtime (:func:`chain_of`)."""
    return chain_of(get_runtime(request))


async def manager(request: Request) -> Caller:
    """The authenticated caller, holding the management scope."""
    return require_scope(await authenticate(request.headers, peer_host(request), authenticators(request)))


async def admin(request: Request, caller: Annotated[Caller, Depends(manager)]) -> Caller:
    """The caller, if the policy makes it an admin of this server (403 ``not_admin`` otherwise)."""
    runtime = get_runtime(request)
    if not runtime.policy.is_admin(caller.subject, runtime.server_name):  # no policy loaded: nobody is an admin
        raise Forbidden(
            f"{caller.subject} is not an admin of {runtime.server_name} (needs a policy row "
            f"'p, {caller.subject}, {runtime.server_name}, TOKENWARD, admin')",
            code=ErrorCode.NOT_ADMIN,
        )
    return caller
