"""Per-app state reachable from a request, and typed accessors for it.

The web layer's one way to the services: handlers, pages and the hot path reach what
:func:`tokenward.runtime.open_runtime` built through these accessors, and build nothing themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tokenward.errors import StorageUnavailable
from tokenward.identity.service import IdentityService
from tokenward.runtime import Runtime
from tokenward.settings import Settings
from tokenward.web.metrics import Metrics

__all__ = ["AppState", "get_identity", "get_runtime", "get_state"]


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
            "the server is still starting or lost its configuration; retry shortly", code="not_ready"
        )
    return runtime


def get_identity(request: Request) -> IdentityService:
    """The runtime's identity service (sessions, captchas, enrolment, client tokens)."""
    identity = get_runtime(request).identity
    if identity is None:
        raise StorageUnavailable("the identity service is not ready; retry shortly", code="not_ready")
    return identity
