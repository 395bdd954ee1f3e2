"""Operational endpoints: liveness, readiness, metrics, and the server name."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tokenward import __version__
from tokenward.errorcodes import ErrorCode
from tokenward.errors import error_body
from tokenward.web.metrics import CONTENT_TYPE_LATEST
from tokenward.web.state import get_runtime, get_state

__all__ = ["routes"]


async def healthz(request: Request) -> Response:
    """The process is up and serving. Touches nothing else."""
    return JSONResponse({"status": "ok", "version": __version__})


async def readyz(request: Request) -> Response:
    """Database reachable and configuration loaded; 503 with the failing checks otherwise.

    Ready but behind the shared config bundle (a refused bundle in S3) answers 200 with
    ``status: degraded`` and ``degraded: {"config_sync": <reason code>}``.
    """
    state = get_state(request)
    if state.runtime is None:
        unready = error_body(
            ErrorCode.NOT_READY, "configuration is not loaded", status="unready", checks={"config": "not loaded"}
        )
        return JSONResponse(unready, status_code=503)
    checks = await state.runtime.readiness()
    body: dict[str, object] = {
        "status": "ready",
        "server_name": state.runtime.server_name,
        "checks": checks,
        "timecode": state.runtime.timecodes.current.key_id,
    }
    holder = state.runtime.policy
    if holder is not None and holder.loaded:
        body["policy"] = {
            **holder.policy.summary(),
            "last_reload_error": holder.last_error.detail if holder.last_error else None,
        }
    if state.runtime.config_sync is not None:
        body["config_sync"] = state.runtime.config_sync.status()
    degraded = state.runtime.degraded()
    if degraded:
        body["degraded"] = degraded
    if all(v == "ok" for v in checks.values()):
        if degraded:
            body["status"] = "degraded"
        return JSONResponse(body)
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    body.update(status="unready", error="not_ready", detail=f"not ready ({failing})")
    return JSONResponse(body, status_code=503)


async def metrics(request: Request) -> Response:
    return Response(get_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def resourceinfo(request: Request) -> Response:
    """The server name as plain text, like the original's ``/api/resourceinfo``."""
    return PlainTextResponse(get_runtime(request).server_name)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/resourceinfo", resourceinfo, methods=["GET"]),
]
