"""Who is calling: an authenticator chain for the management API, and Basic-header parsing.

Each :class:`Authenticator` looks at a request's headers (lower-case names) and TCP peer and either

- returns ``None`` — "not my kind of credential", the next one is asked;
- returns a :class:`~tokenward.apptokens.Caller`; or
- raises (401 wrong credential, 429 banned) — a credential of its kind that failed.

:class:`AppTokenAuthenticator` accepts ``Authorization: Basic user:token`` (the oCIS scheme) and
``Authorization: Bearer twa_…`` (so oCIS curl examples work with only the credential swapped).
Session source identifiers (``Bearer tw1si.…``) follow in the chain (web/deps.py). Nothing here goes
through FastAPI validation or needs a Request: the hot lists (web/routes/app_tokens.py) authenticate from
the hot path's decoded headers, and :func:`parse_basic` is shared with ``/verify``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from starlette.requests import Request

from tokenward.apptokens import MANAGE_SCOPE, AppTokenService, Caller
from tokenward.clientaddr import TrustedProxies
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden, Unauthorized
from tokenward.httpauth import MAX_AUTHORIZATION_LENGTH, AuthenticationRequired, parse_basic
from tokenward.logs import REQUEST_ID

__all__ = [
    "MAX_AUTHORIZATION_LENGTH",
    "AppTokenAuthenticator",
    "AuthenticationRequired",
    "Authenticator",
    "authenticate",
    "client_ip",
    "current_request_id",
    "parse_basic",
    "peer_host",
    "require_scope",
]


def client_ip(request: Request, proxies: TrustedProxies) -> str | None:
    """The client's address for regulation and audit (:meth:`TrustedProxies.client_address`)."""
    return proxies.client_address(peer_host(request), request.headers)


def peer_host(request: Request) -> str | None:
    """The TCP peer's address of ``request`` (None when the server does not say)."""
    return request.client.host if request.client else None


class Authenticator(Protocol):
    async def __call__(self, headers: Mapping[str, str], peer: str | None) -> Caller | None: ...


class AppTokenAuthenticator:
    """Authenticates ``Basic user:twa_…`` and ``Bearer twa_…`` with the app token service."""

    def __init__(self, service: AppTokenService, *, trusted_proxies: TrustedProxies | None = None) -> None:
        self.service = service
        self.trusted_proxies = trusted_proxies or TrustedProxies()

    async def __call__(self, headers: Mapping[str, str], peer: str | None) -> Caller | None:
        header = headers.get("authorization")
        if header is None:
            return None
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            user, token = parse_basic(credentials)
        elif scheme == "bearer" and credentials.strip().startswith("twa_"):
            user, token = None, credentials.strip()
        else:
            return None
        try:
            record = await self.service.verify(
                user,
                token,
                client_ip=self.trusted_proxies.client_address(peer, headers),
                request_id=current_request_id(),
            )
        except Unauthorized as exc:  # RFC 9110: every 401 carries a challenge
            raise AuthenticationRequired(exc.detail, code=exc.error_code) from None
        return Caller(subject=record.owner, scopes=frozenset(record.scopes), method="apptoken", token_id=record.id)


async def authenticate(headers: Mapping[str, str], peer: str | None, chain: Sequence[Authenticator]) -> Caller:
    """The first caller an authenticator recognises; 401 ``authentication_required`` when none does."""
    for authenticator in chain:
        caller = await authenticator(headers, peer)
        if caller is not None:
            return caller
    raise AuthenticationRequired(
        "send an app token as Basic user:token (or Bearer twa_…)", code=ErrorCode.AUTHENTICATION_REQUIRED
    )


def require_scope(caller: Caller, scope: str = MANAGE_SCOPE) -> Caller:
    """403 ``scope_missing`` unless the caller holds ``scope``."""
    if scope not in caller.scopes:
        raise Forbidden(f"this credential lacks the {scope} scope", code=ErrorCode.SCOPE_MISSING)
    return caller


def current_request_id() -> str | None:
    """The request id of the request being served (for audit events), if any."""
    value = REQUEST_ID.get()
    return None if value == "-" else value
