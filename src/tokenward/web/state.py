"""Per-app state reachable from a request, and typed accessors for it.

The web layer's one way to the services: handlers, pages and the hot path reach what
:func:`tokenward.runtime.open_runtime` built through these accessors, and build nothing themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from tokenward.apptokens import AppTokenService
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable
from tokenward.forwardauth.service import VerifyParams
from tokenward.identity.service import IdentityService
from tokenward.runtime import Runtime
from tokenward.settings import Settings
from tokenward.storage import AuditLog
from tokenward.web.auth import client_ip
from tokenward.web.metrics import Metrics

__all__ = [
    "AppState",
    "RecentSubmissions",
    "get_app_tokens",
    "get_audit",
    "get_identity",
    "get_runtime",
    "get_state",
    "request_client_ip",
]


class RecentSubmissions:
    """Form submission ids seen in the last ``ttl`` seconds (bounded), so a double-submitted form acts once.

    Per process: two submissions of one form reach the same instance in practice (same connection),
    and the form's id is random, so nothing needs sharing.
    """

    def __init__(self, *, ttl: float = 900.0, maxsize: int = 10_000) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._seen: dict[str, float] = {}

    def first_use(self, key: str, *, now: float) -> bool:
        """True the first time ``key`` is seen within ``ttl``; False for a repeat."""
        seen = self._seen.get(key)
        if seen is not None and now - seen < self.ttl:
            return False
        if len(self._seen) >= self.maxsize:
            # Drop expired ids; if all are fresh, drop the oldest (dicts keep insertion order).
            self._seen = {k: t for k, t in self._seen.items() if now - t < self.ttl}
            while len(self._seen) >= self.maxsize:
                self._seen.pop(next(iter(self._seen)))
        self._seen[key] = now
        return True


@dataclass
class AppState:
    """What one app holds across requests: settings, metrics, the runtime, and its per-app caches."""

    settings: Settings
    metrics: Metrics
    runtime: Runtime | None = None
    #: Parsed ``/verify`` query strings (a proxy sends the same few every time); bounded by the route.
    verify_queries: dict[bytes, VerifyParams] = field(default_factory=dict)
    #: Portal form submission ids seen recently, so a double-submitted form acts once.
    submissions: RecentSubmissions = field(default_factory=RecentSubmissions)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tokenward
    return state


def get_runtime(request: Request) -> Runtime:
    runtime = get_state(request).runtime
    if runtime is None:
        raise StorageUnavailable(
            "the server is still starting or lost its configuration; retry shortly", code=ErrorCode.NOT_READY
        )
    return runtime


def get_identity(request: Request) -> IdentityService:
    """The runtime's identity service (sessions, captchas, enrolment, client tokens)."""
    return get_runtime(request).identity


def get_app_tokens(request: Request) -> AppTokenService:
    """The runtime's app token service."""
    return get_runtime(request).app_tokens


def request_client_ip(request: Request) -> str | None:
    """The client's address, forwarding headers believed only from TOKENWARD_TRUSTED_PROXIES."""
    return client_ip(request, get_runtime(request).trusted_proxies)


def get_audit(request: Request) -> AuditLog:
    """The runtime's audit log."""
    return get_runtime(request).audit
