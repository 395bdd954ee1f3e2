"""Plain ASGI middleware and the hot-path front door, built by ``web.app``:

- :class:`HotPath` — ``/verify`` is answered ahead of the whole framework stack (FastAPI's and
  Starlette's wrappers, the router): its endpoint returns a ready response and renders its own
  errors. It keeps the request id, access log, metrics and last-resort error guard of
- :class:`RequestContext` — the outermost middleware of everything else: request id
  (``X-Request-ID`` in and out), access log line, metrics, one JSON 500 shape;
- :class:`BodyLimit` — refuses bodies over ``max_body_bytes`` with 413, by header or while streaming.

Both front ends share one :class:`RequestLog`.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, PayloadTooLarge, TokenwardError, error_body
from tokenward.logs import REQUEST_ID
from tokenward.web.httpserver import RESPOND
from tokenward.web.metrics import Metrics

__all__ = [
    "MAX_HEADER_BYTES",
    "BodyLimit",
    "HotEndpoint",
    "HotPath",
    "RequestContext",
    "RequestLog",
    "Response",
    "decode_headers",
    "hot_error",
    "send_response",
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
access_log = logging.getLogger("tokenward.access")
error_log = logging.getLogger("tokenward.web")

MAX_HEADER_BYTES = 65_536

Response = tuple[int, list[tuple[bytes, bytes]], bytes]
"""A whole response: status, headers (without ``content-length``), body."""
HotEndpoint = Callable[[Scope, dict[str, str]], Awaitable[Response]]
"""A raw endpoint: the scope and its decoded headers in, a whole response out (errors rendered by it)."""


#: Header names already decoded (a proxy sends the same few every time); bounded, so odd names cannot grow it.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 256


def decode_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names to values; a repeated header's values joined with ", " (cookies with "; ").

    Names are already lower case: ASGI servers lowercase them (as Starlette's ``Headers`` assumes too).
    More than :data:`MAX_HEADER_BYTES` in all is a 400 ``headers_too_large``.
    """
    out: dict[str, str] = {}
    names = _NAMES
    size = 0
    for raw_name, raw_value in raw:
        name = names.get(raw_name)
        if name is None:
            name = raw_name.decode("latin-1")
            if len(names) < _NAMES_MAX:
                names[raw_name] = name
        out[name] = raw_value.decode("latin-1")
        size += len(raw_name) + len(raw_value)
    if size > MAX_HEADER_BYTES:
        raise BadRequest("the request headers are too large", code=ErrorCode.HEADERS_TOO_LARGE)
    if len(out) != len(raw):  # a header sent more than once: join the values (rare, so done apart)
        out = {}
        for raw_name, raw_value in raw:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            if name in out:
                value = out[name] + ("; " if name == "cookie" else ", ") + value
            out[name] = value
    return out


def hot_error(exc: TokenwardError) -> Response:
    """The hot path's renderer: the raw JSON ``{"error", "detail"}`` response for ``exc``, with its extra headers.

    The same body as the JSON API's :func:`tokenward.web.errors.json_error`, without building a Starlette response.
    """
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers().items()]
    headers.append((b"content-type", b"application/json"))
    return exc.status, headers, json.dumps(exc.to_dict()).encode("utf-8")


class RequestLog:
    """Request ids, the access log and metrics: one per app, shared by both front ends."""

    def __init__(self, *, metrics: Metrics, route_template: Callable[[Scope], str]) -> None:
        self.metrics = metrics
        self.route_template = route_template
        # Request ids: a random per-process prefix and a counter — unique, and cheaper than uuid4 per request.
        self._id_prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def request_id(self, scope: Scope) -> str:
        """The caller's ``X-Request-ID`` when it is sane, else a fresh one."""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                return self.request_id_from(value.decode("latin-1"))
        return self.request_id_from(None)

    def request_id_from(self, given: str | None) -> str:
        if given is not None and _REQUEST_ID.match(given):
            return given
        return f"{self._id_prefix}{next(self._counter):012x}"

    def finish(self, scope: Scope, route: str, status: int, elapsed: float) -> None:
        # Route templates, never raw paths: raw paths would let any client grow the label set.
        self.metrics.observe(route, scope["method"], status, elapsed)
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


def _internal_error(request_id: str) -> Response:
    detail = f"an unexpected error occurred; the server log has details (request id {request_id})"
    body = json.dumps(error_body(ErrorCode.INTERNAL_ERROR, detail)).encode()
    return 500, [(b"content-type", b"application/json")], body


class RequestContext:
    def __init__(self, app: ASGIApp, *, log: RequestLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self.log.request_id(scope)
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
                await send_response(send_with_id, _internal_error(request_id))
        finally:
            self.log.finish(scope, self.log.route_template(scope), status, time.perf_counter() - start)
            REQUEST_ID.reset(token)


class HotPath:
    """Answer ``routes`` (whose endpoint is ``endpoint``) without the framework stack.

    ``match`` costs one ``str.startswith`` for every other path; the exact ``prefix`` path with an
    allowed method is one dict lookup. Anything not matched (a 405, say) goes to the framework.
    """

    def __init__(self, *, log: RequestLog, routes: Sequence[BaseRoute], prefix: str, endpoint: HotEndpoint) -> None:
        self.log = log
        self.routes = tuple(routes)
        self.prefix = prefix
        self.endpoint = endpoint
        self._exact = {
            (path, method)
            for route in self.routes
            if (path := getattr(route, "path", None)) == prefix
            for method in getattr(route, "methods", None) or ()
        }

    def match(self, scope: Scope) -> str | None:
        """The matched route's template (and ``path_params`` set in ``scope``), or None."""
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            return None
        if (path, scope["method"]) in self._exact:
            return path
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                return str(getattr(route, "path", path))
        return None

    async def serve(self, scope: Scope, send: Send, route: str) -> None:
        log = self.log
        try:
            headers = decode_headers(scope["headers"])
            refused = None
        except TokenwardError as exc:
            headers, refused = {}, exc
        given = headers.get("x-request-id")
        request_id = log.request_id_from(given)
        token = REQUEST_ID.set(request_id)
        start = time.perf_counter()
        status = 500
        try:
            try:
                response = hot_error(refused) if refused else await self.endpoint(scope, headers)
            except Exception:
                # The same last guard as RequestContext: log with the request id, one JSON shape.
                error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                response = _internal_error(request_id)
            status = response[0]
            # Refusals always carry the id (that is when someone looks for the log lines); a 200 only
            # echoes the proxy's own X-Request-ID: one response header less per allowed request.
            if status != 200 or given is not None:
                response[1].append((b"x-request-id", request_id.encode("ascii")))
            await send_response(send, response, scope)
        finally:
            log.finish(scope, route, status, time.perf_counter() - start)
            REQUEST_ID.reset(token)


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
    return BadRequest("Content-Length header is not a non-negative integer", code=ErrorCode.BAD_CONTENT_LENGTH)


async def _send_error(send: Send, error: TokenwardError) -> None:
    status, headers, body = hot_error(error)
    headers.append((b"connection", b"close"))  # the body was not read: the connection cannot be reused
    await send_response(send, (status, headers, body))


async def send_response(send: Send, response: Response, scope: Scope | None = None) -> None:
    """Send a whole response (``content-length`` added) from middleware or a raw endpoint: in one call when
    ``scope`` comes from tokenward's own HTTP server (its :data:`~tokenward.web.httpserver.RESPOND` extension) and
    ``send`` is that server's own (no middleware between them would see the messages), else as the two ASGI
    messages."""
    if scope is not None:
        extensions = scope.get("extensions")
        respond = extensions.get(RESPOND) if extensions else None
        if respond is not None and getattr(send, "__self__", None) is respond.__self__:
            await respond(*response)
            return
    status, headers, body = response
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
