"""ASGI app assembly.

``/verify`` and the app-token lists (``GET /api/app-tokens``, ``GET /auth-app/tokens``) are answered by
:class:`~tokenward.web.middleware.HotPath` before FastAPI sees the request. Everything else goes through
the stack (outermost first): Starlette's error guard → :class:`RequestContext` (request id, access log,
metrics) → :class:`BodyLimit` → exception handlers → routes. The management API is FastAPI (OpenAPI at
``/openapi.json``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from tokenward import __version__
from tokenward.datadir import DataDir
from tokenward.errors import TokenwardError
from tokenward.logs import configure_logging
from tokenward.periodic import Periodic
from tokenward.policy import PolicyWatcher, install_sighup
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.timecode_watch import TimecodeWatcher
from tokenward.web.errors import EXCEPTION_HANDLERS
from tokenward.web.metrics import Metrics
from tokenward.web.middleware import BodyLimit, HotPath, RequestContext, RequestLog
from tokenward.web.openapi import build_openapi
from tokenward.web.routes import app_tokens, health, identity, oidc, policy, system_login, verify
from tokenward.web.state import AppState
from tokenward.web.ui import routes as ui_routes

__all__ = ["TokenwardAPI", "create_app", "create_app_from_env"]


class TokenwardAPI(FastAPI):
    """FastAPI with a front door: the hot path (``/verify``) skips the framework's wrappers entirely.

    Those wrappers (FastAPI's and Starlette's ``__call__``, the error middleware, the router) cost
    about as much as the whole ``/verify`` decision; the hot path keeps what matters of them
    (request id, access log, metrics, the last-resort 500) in :class:`HotPath`.
    """

    hot: HotPath | None = None
    #: Further hot paths, asked after ``hot`` (the app-token lists, which scripts poll).
    hot_more: tuple[HotPath, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.hot
        if hot is not None and scope["type"] == "http":
            route = hot.match(scope)
            if route is not None:
                scope["app"] = self
                await hot.serve(scope, send, route)
                return
            for more in self.hot_more:
                route = more.match(scope)
                if route is not None:
                    scope["app"] = self
                    await more.serve(scope, send, route)
                    return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> TokenwardAPI:
    """Build the app. With ``runtime`` given the caller owns it; otherwise the lifespan opens and closes one."""
    metrics = Metrics()
    templates: dict[object, str] = {}
    log = RequestLog(metrics=metrics, route_template=lambda scope: _route_template(scope, templates))
    state = AppState(settings=settings, metrics=metrics, runtime=runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state.runtime is None
        if owned:
            state.runtime = await open_runtime(settings)
        runtime = state.runtime
        assert runtime is not None
        metrics.info.labels(__version__, runtime.server_name).set(1)
        if owned:
            metrics.watch_database(runtime.database)
            metrics.watch_changes(runtime.changes)
        if owned and runtime.decision_log is not None:
            metrics.watch_decision_log(runtime.decision_log)
        watcher = None
        keys = None
        sync = runtime.config_sync if owned else None
        if sync is not None:
            # The S3 bundle is the truth: poll its manifest instead of the local policy files.
            metrics.watch_policy(runtime.policy)
            sync.start_polling()
        elif owned:
            # A served app watches its policy files; a caller-owned runtime drives reloads itself.
            metrics.watch_policy(runtime.policy)
            watcher = PolicyWatcher(runtime.policy, interval=settings.policy_watch_seconds)
            watcher.start()
            # `tokenward timecode rotate/set` rewrite the file: put the new code in force without a restart.
            keys = TimecodeWatcher(
                DataDir(settings.data_dir),
                runtime.use_timecodes,
                in_force=lambda: runtime.timecodes,
                interval=settings.policy_watch_seconds,
            )
            keys.start()
            install_sighup(runtime.policy, also=keys.check)
        flusher = None
        if owned and runtime.decision_sink is not None:  # the decision log's SQL sink, off the request path
            flusher = Periodic(
                runtime.flush_decisions, interval=settings.decision_log_flush_seconds, name="tokenward-decision-log"
            )
            flusher.start()
        # Expired challenges, sessions and codes are deleted on every instance (harmless twice; docs/storage.md).
        purger = Periodic(runtime.purge_expired, interval=settings.purge_interval_seconds, name="tokenward-purge")
        if owned:
            purger.start()
            # What start-up loaded lives as long as the process (up to a memory budget of app-token records and
            # sessions, the policy, the modules): out of the garbage collector's full passes, which walked it all
            # and stalled requests for hundreds of ms (bench/README.md, 100,000 app tokens).
            gc.freeze()
        try:
            yield
        finally:
            if flusher is not None:
                await flusher.stop()
                with contextlib.suppress(TokenwardError):
                    await runtime.flush_decisions()
            await purger.stop()
            if watcher is not None:
                await watcher.stop()
            if keys is not None:
                await keys.stop()
            if sync is not None:
                await sync.stop()
            if owned and state.runtime is not None:
                await state.runtime.close()
                state.runtime = None

    app = TokenwardAPI(
        title="tokenward",
        version=__version__,
        summary="Management API of the tokenward token server.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hook asks the environment on every request; we expose
        # Prometheus metrics ourselves, so switch it off (about 6 us per request on the hot path).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[
            Middleware(RequestContext, log=log),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes),
        ],
    )
    app.state.tokenward = state
    if runtime is not None:
        metrics.watch_policy(runtime.policy)
        metrics.watch_database(runtime.database)
        metrics.watch_changes(runtime.changes)
    if runtime is not None and runtime.decision_log is not None:
        metrics.watch_decision_log(runtime.decision_log)
    app.router.routes.extend(health.routes)
    app.router.routes.extend(verify.routes)  # served by the hot path; listed for 405s and url_for
    app.hot = HotPath(log=log, routes=verify.routes, prefix="/verify", endpoint=functools.partial(verify.answer, state))
    app.include_router(app_tokens.router)
    app.hot_more = app_tokens.hot_paths(state, log)  # the lists, served like /verify (routes listed for OpenAPI)
    app.include_router(policy.router)
    app.include_router(identity.router)
    app.include_router(system_login.router)  # PAM hosts (docs/system-login.md)
    app.router.routes.extend(oidc.routes)  # the OpenID Provider (docs/oidc.md)
    app.router.routes.extend(ui_routes)  # the portal (docs/ui.md)
    app.openapi = functools.partial(build_openapi, app)  # type: ignore[method-assign]  # errors as sent
    return app


def _route_template(scope: Scope, cache: dict[object, str]) -> str:
    """The matched route's path template (``/api/app-tokens/{id}``), or ``unmatched``."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return "unmatched"
    template = cache.get(endpoint)
    if template is None:
        paths = [
            getattr(r, "path", None) for r in scope["app"].router.routes if getattr(r, "endpoint", None) is endpoint
        ]
        template = cache[endpoint] = str(paths[0]) if paths and paths[0] else "unmatched"
    return template


def create_app_from_env() -> TokenwardAPI:
    """Factory for ``uvicorn --factory`` and ``tokenward serve --workers N``: settings from the environment."""
    settings = Settings.load()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
