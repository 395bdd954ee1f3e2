"""The HTTP/1.1 protocol ``tokenward serve`` runs: uvicorn's httptools protocol with less work per request.

Same parser, same ASGI messages for any app that sends them, same rules for what goes on the wire. What changes:

- **One write per response.** uvicorn writes the status line and headers when the app sends
  ``http.response.start`` and the body with the next message: two ``send()`` calls and two TCP segments for every
  response with a body (every API answer, every refused ``/verify``). :class:`ResponseCycle` keeps the head until
  the body and writes both at once; a head nothing follows in the same loop turn (a streaming response waiting for
  its first chunk) is written at the end of that turn.
- **Whole responses leave at the end of the loop turn that made them.** A response given in one call (below) is
  written once the turn's other ready callbacks have run, with those of every other connection answered in the same
  turn, one ``send()`` each as before. Written at once, each response of a busy turn woke the reverse proxy (or wrk)
  again: the kernel's wake-up of the reader is paid inside the sender's ``send()``, and on a virtual machine it is
  an interrupt to another core. Written together they wake it about once per turn. A response waits at most
  for the rest of its turn (the requests that became ready with it). Every close this server makes writes what is
  waiting first, and one connection's responses leave in order: a connection starts its next request only after
  its response (:meth:`CoalescingHttpToolsProtocol.on_response_complete`), in a task the loop runs after the write
  already scheduled.
- **One keep-alive timer per connection, not one per response.** uvicorn arms ``loop.call_later`` after each
  response and cancels it when the next request arrives: a timer handle made and dropped, and the loop's heap
  churned, per request. Here a response only records when the connection went idle; one timer checks that
  deadline and re-arms itself for it, so an idle connection is still closed ``timeout_keep_alive`` seconds after
  its last response.
- **A whole response in one call.** The hot path (``/verify``, the app-token lists) has its status, headers and
  body at once: :meth:`ResponseCycle.respond`, found in the scope under :data:`RESPOND`, takes them under the same
  header checks, without two message dicts to build and read back or the held head's end-of-turn callback.
- **A request target is split once.** httptools' ``parse_url`` walks the target a character at a time; a proxy asks
  ``/verify`` with the same long query string every time, so the split is kept by target (bounded).
- **Each request starts from the connection's context.** uvicorn creates a request's task in a copy of the current
  context, which is the previous request's when a pipelined request starts from that request's response, or after
  that request resumed reading: a context variable it set (a request id) was seen by the next one.

``bench/response_writes.py --rounds 5 --duration 4`` (2026-12-07, bench/README.md "One write per response"): a 401
with a 73-byte body cost the server 73.5 µs of CPU against 81.6 on stock uvicorn (0.90 x), an empty 200 65.5
against 66.0 (the timer's saving, 3-8 µs in process, is within this machine's noise on the wire).

Left as uvicorn has them: the task per request (starting the app's coroutine before a task exists would leave
``asyncio.current_task()`` empty for its first step, which ``asyncio.timeout`` in tokenward's storage and anyio
both need), its done callback (about 2 µs), and the header checks (one search over the joined names and one over
the joined values cost more than the per-header searches for the three or four headers a response has).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import urllib.parse
import weakref
from typing import Any

import httptools
from uvicorn._types import ASGI3Application, ASGISendEvent
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

__all__ = ["RESPOND", "CoalescingHttpToolsProtocol", "ResponseCycle"]

_log = logging.getLogger("tokenward.web")

#: The scope extension under which :class:`ResponseCycle.respond` takes a whole response (status, headers without
#: ``content-length``, body) in one call; a server without it is sent the two ASGI messages.
RESPOND = "tokenward.respond"


#: Header names already checked, to their lower-cased form: an app sends the same few every time (bounded, so odd
#: names cannot grow it).
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 256


def _checked(name: bytes, value: bytes) -> bytes:
    """``name`` lower-cased, once it and ``value`` passed uvicorn's checks (no separators, no CR or LF)."""
    lowered = _NAMES.get(name)
    if lowered is None:
        if HEADER_RE.search(name):
            raise RuntimeError("Invalid HTTP header name.")
        lowered = name.lower()
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[name] = lowered
    if HEADER_VALUE_RE.search(value):
        raise RuntimeError("Invalid HTTP header value.")
    return lowered


def _says_close(value: bytes) -> bool:
    """Whether a ``connection`` header's value holds the ``close`` token."""
    return b"close" in [token.lower().strip() for token in value.split(b",")]


#: Request targets already split (a proxy asks ``/verify`` with the same long query string every time): target →
#: (path, raw path, query). Bounded: cleared when full, and long targets are split every time.
_TARGETS: dict[bytes, tuple[str, bytes, bytes]] = {}
_TARGETS_MAX = 1024
_TARGET_KEPT_LENGTH = 4096


def _target(url: bytes) -> tuple[str, bytes, bytes]:
    """uvicorn's split of a request target: its path (percent-decoded), raw path and query string. httptools'
    ``parse_url`` walks the target a character at a time: for ``/verify?config_token=…`` (about 400 bytes) that cost
    1.7 µs a request, where a lookup of the same bytes costs a tenth of it."""
    found = _TARGETS.get(url)
    if found is not None:
        return found
    parsed_url = httptools.parse_url(url)
    raw_path = parsed_url.path
    path = raw_path.decode("ascii")
    if "%" in path:
        path = urllib.parse.unquote(path)
    found = (path, raw_path, parsed_url.query or b"")
    if len(url) <= _TARGET_KEPT_LENGTH:
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        _TARGETS[url] = found
    return found


class _Writes:
    """The whole responses of one loop turn, written when the turn's other ready callbacks have run (one per loop,
    holding no reference to it: the loops' table is weak)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: list[tuple[asyncio.Transport, bytes]] = []

    def add(self, transport: asyncio.Transport, data: bytes) -> None:
        """Write ``data`` at the end of this turn (called from the running loop's own callbacks)."""
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append((transport, data))

    def flush(self) -> None:
        """Write what is waiting, in the order it came (a transport closed meanwhile gets nothing)."""
        pending = self.pending
        if pending:
            self.pending = []
            for transport, data in pending:
                if transport.is_closing():
                    continue
                try:
                    transport.write(data)
                except Exception:  # one connection's failure is not the others': they are still written
                    _log.exception("cannot write a response; closing its connection")
                    transport.abort()


_WRITES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writes] = weakref.WeakKeyDictionary()


def _writes_of(loop: asyncio.AbstractEventLoop) -> _Writes:
    writes = _WRITES.get(loop)
    if writes is None:
        writes = _WRITES[loop] = _Writes()
    return writes


class ResponseCycle(RequestResponseCycle):
    """uvicorn's request/response cycle whose response head waits for the body and leaves with it."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop, writes: _Writes | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loop = loop
        self.writes = writes if writes is not None else _writes_of(loop)
        self.head: bytes | None = None  # the status line and headers, written with the first body message

    def close(self) -> None:
        """Close the connection once what is waiting to be written has been."""
        self.writes.flush()
        self.transport.close()

    def flush_head(self) -> None:
        """Write the held head now (the end of the loop turn that made it, an error, a wait for the socket)."""
        head, self.head = self.head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)

    async def run_asgi(self, app: ASGI3Application) -> None:
        # uvicorn's, with the held head written before any close.
        try:
            result: object = await app(self.scope, self.receive, self.send)  # type: ignore[func-returns-value]
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.flush_head()
                self.close()
        else:
            if result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
                self.flush_head()
                self.close()
            elif not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self.flush_head()
                self.close()
        finally:
            self.on_response = lambda: None
            # The scope holds this cycle's bound respond and the cycle holds the scope: a reference cycle that only
            # the garbage collector would free. Broken here, as uvicorn breaks on_response's.
            extensions = self.scope.get("extensions")
            if extensions:
                extensions.pop(RESPOND, None)

    def _log_access(self, status: int) -> None:
        """uvicorn's access-log line (off in ``tokenward serve``, which logs through tokenward.access)."""
        self.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(self.scope),
            self.scope["method"],
            get_path_with_query_string(self.scope),
            self.scope["http_version"],
            status,
        )

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response, ``content-length`` added: what ``http.response.start`` and one last
        ``http.response.body`` do through :meth:`send`, under the same rules, without building and reading the two
        messages or scheduling the held head's write. Reached through the scope's :data:`RESPOND` extension."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            raise RuntimeError("Unexpected whole response: the response already started.")
        bodiless = status in (204, 304)
        if bodiless and body:
            raise RuntimeError(f"A {status} response has no body.")
        content = [STATUS_LINE[status]]
        for name, value in self.default_headers:
            content += (name, b": ", value, b"\r\n")
        closes = False  # the app's own "connection: close"
        for name, value in headers:
            name = _checked(name, value)
            if name == b"content-length" or name == b"transfer-encoding":
                raise RuntimeError("A whole response's length is its body's: no content-length or transfer-encoding.")
            if name == b"connection" and _says_close(value):
                closes = True
            content += (name, b": ", value, b"\r\n")
        if not bodiless:
            content += (b"content-length: ", str(len(body)).encode("ascii"), b"\r\n")
        if closes:
            self.keep_alive = False
        elif not self.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        if self.scope["method"] != "HEAD":
            content.append(body)
        self.response_started = True
        self.waiting_for_100_continue = False
        if self.access_log:
            self._log_access(status)
        self.writes.add(self.transport, b"".join(content))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.close()
        self.on_response()

    async def send(self, message: ASGISendEvent) -> None:
        # uvicorn's rules, message by message; only where the head is written differs.
        if self.flow.write_paused and not self.disconnected:
            self.flush_head()
            await self.flow.drain()

        if self.disconnected:
            return

        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            status_code = message["status"]
            if self.access_log:
                self._log_access(status_code)
            content = [STATUS_LINE[status_code]]
            has_connection_close = False
            for name, value in self.default_headers + list(message.get("headers", [])):
                name = _checked(name, value)
                if name == b"content-length" and self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected_content_length = 0
                    self.chunked_encoding = True
                elif name == b"connection" and _says_close(value):
                    self.keep_alive = False
                    has_connection_close = True
                content += (name, b": ", value, b"\r\n")
            if not self.keep_alive and not has_connection_close:
                content.append(b"connection: close\r\n")
            if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")
            content.append(b"\r\n")
            self.head = b"".join(content)
            self.loop.call_soon(self.flush_head)  # finds nothing to do when the body came in this turn

        elif not self.response_complete:
            if message["type"] != "http.response.body":
                self.flush_head()
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
                data = b""
            elif self.chunked_encoding:
                data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
                if not more_body:
                    data += b"0\r\n\r\n"
            else:
                if len(body) > self.expected_content_length:
                    self.flush_head()
                    raise RuntimeError("Response content longer than Content-Length")
                self.expected_content_length -= len(body)
                data = body
            head = self.head
            if head is not None:
                self.head = None
                self.transport.write(head + data)
            elif data:
                self.transport.write(data)

            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.close()
                self.on_response()

        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :class:`ResponseCycle` and one keep-alive timer per connection
    (``uvicorn.run(..., http=<this class>)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_since: float | None = None  # loop time of the last response while no request is under way
        self.writes = _writes_of(self.loop)
        self.context = contextvars.Context()  # what every request's context starts as (connection_made sets it)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # The context the connection was accepted in, before any request ran. uvicorn copies the current one, which
        # is the previous request's when a pipelined request starts from its response, or when that request
        # resumed reading (the transport's reader is then added again from inside its task).
        self.context = contextvars.copy_context()

    # -- keep-alive: a deadline per connection, one timer checking it ---------------------------------------------

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None

    # -- closes: what is waiting to be written goes first --------------------------------------------------------------

    def shutdown(self) -> None:
        self.writes.flush()
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        self.writes.flush()
        super().send_400_response(msg)

    def timeout_keep_alive_handler(self) -> None:
        self.writes.flush()
        super().timeout_keep_alive_handler()

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        if self.idle_since is None:  # busy: the next response arms the timer again
            return
        deadline = self.idle_since + self.timeout_keep_alive
        if self.loop.time() >= deadline:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_at(deadline, self._keep_alive_due)

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            self.idle_since = None
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    # -- requests: uvicorn's, with ResponseCycle --------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        http_version = self.parser.get_http_version()
        method = self.parser.get_method()
        self.scope["method"] = method.decode("ascii")
        if http_version != "1.1":
            self.scope["http_version"] = http_version
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        path, raw_path, query = _target(self.url)
        self.scope["path"] = self.root_path + path
        self.scope["raw_path"] = self.root_path.encode("ascii") + raw_path if self.root_path else raw_path
        self.scope["query_string"] = query

        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app

        existing_cycle = self.cycle
        self.cycle = cycle = ResponseCycle(
            loop=self.loop,
            writes=self.writes,
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        extensions = self.scope.get("extensions")
        if extensions is None:
            self.scope["extensions"] = {RESPOND: cycle.respond}  # type: ignore[dict-item]  # not an ASGI-typed one
        else:
            extensions[RESPOND] = cycle.respond  # type: ignore[assignment]
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        context = contextvars.Context() if self.config.reset_contextvars else self.context.copy()
        task = self.loop.create_task(cycle.run_asgi(app), context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
