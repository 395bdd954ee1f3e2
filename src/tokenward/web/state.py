"""Per-app state reachable from a request, and typed accessors for it.

The web layer's one way to the services: handlers, pages and the hot path reach what
:func:`tokenward.runtime.open_runtime` built through these accessors, and build nothing themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tokenward.apptokens import AppTokenService
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable
from tokenward.identity.service import IdentityService
from tokenward.runtime import Runtime
from tokenward.settings import Settings
from tokenward.storage import AuditLog
from tokenward.web.auth import client_ip
from tokenward.web.metrics import Metrics

__all__ = ["AppState", "get_app_tokens", "get_audit", "get_identity", "get_runtime", "get_state", "request_client_ip"]


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    runtime: Runtime | None = None


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
