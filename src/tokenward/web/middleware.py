"""Plain ASGI middleware, built in this order (outermost first) by ``web.app``:

1. :class:`RequestContext` — request id (``X-Request-ID`` in and out), access log line, metrics.
2. :class:`FastPath` — hands the hot routes (``/verify``) straight to their ASGI endpoint, skipping
   the FastAPI router and exception middleware (those routes render their own errors).
3. :class:`BodyLimit` — refuses bodies over ``max_body_bytes`` with 413, by header or while streaming.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenward.errors import BadRequest, PayloadTooLarge, TokenwardError
from tokenward.logs import REQUEST_ID
from tokenward.web.metrics import Metrics

__all__ = ["BodyLimit", "FastPath", "RequestContext"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
access_log = logging.getLogger("tokenward.access")
error_log = logging.getLogger("tokenward.web")


class RequestContext:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, route_template: Callable[[Scope], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.route_template = route_template
        # Request ids: a random per-process prefix and a counter — unique, and cheaper than uuid4 per request.
        self._id_prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if _REQUEST_ID.match(candidate) else ""
                break
        request_id = request_id or f"{self._id_prefix}{next(self._counter):012x}"
        token = REQUEST_ID.set(request_id)
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The last guard: log with the request id, answer one JSON shape, never a traceback.
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                await send_json(
                    send_with_id,
                    500,
                    {
                        "error": "internal_error",
                        "detail": f"an unexpected error occurred; the server log has details (request id {request_id})",
                    },
                )
        finally:
            elapsed = time.perf_counter() - start
            # Route templates, never raw paths: raw paths would let any client grow the label set.
            self.metrics.observe(self.route_template(scope), scope["method"], status, elapsed)
            # The path only — query strings may carry tokens.
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            REQUEST_ID.reset(token)


class FastPath:
    """Serve ``routes`` (raw ASGI endpoints that render their own errors) without the framework stack.

    Only paths starting with one of ``prefixes`` are tried, so every other request pays one
    ``str.startswith``.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefixes):
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await _send_error(send, self._error() if declared >= 0 else _bad_length())
                    return
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        await self.app(scope, limited_receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"request body is larger than the limit of {self.max_bytes} bytes")


def _bad_length() -> BadRequest:
    return BadRequest("Content-Length header is not a non-negative integer", code="bad_content_length")


async def _send_error(send: Send, error: TokenwardError) -> None:
    await send_json(send, error.status, error.to_dict(), close=True)


async def send_json(send: Send, status: int, payload: dict[str, str], *, close: bool = False) -> None:
    """Send a whole JSON response from middleware (before any route ran)."""
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
