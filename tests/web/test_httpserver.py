"""tokenward/web/httpserver.py: each response leaves in one write, an idle connection is closed on uvicorn's
keep-alive deadline, and HTTP/1.1 still behaves through a real uvicorn server (keep-alive, pipelining, HEAD, 204/304,
streaming, Connection: close, HTTP/1.0, 100-continue, apps that suspend or raise, context per request)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.server import ServerState

from tokenward.web.httpserver import RESPOND, CoalescingHttpToolsProtocol, ResponseCycle
from tokenward.web.middleware import send_response

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("test_httpserver_seen", default="-")


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name in ("sockname", "peername") else default


class Clock:
    """The loop as the keep-alive code sees it: a time the test sets and timers the test fires."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        self.timers.append((when, callback))
        return asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.call_at(self.now + delay, callback)

    def fire(self) -> float:
        when, callback = self.timers.pop(0)
        self.now = when
        callback()
        return when


async def test_an_idle_connection_is_closed_timeout_keep_alive_after_its_last_response() -> None:
    config = Config(app, timeout_keep_alive=5, log_config=None)
    clock = Clock()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=clock)
    transport = Recording()
    protocol.connection_made(transport)
    protocol.on_response_complete()  # t=0: idle; one timer, due at 5
    assert [when for when, _ in clock.timers] == [5.0]
    clock.now = 3.0
    protocol.data_received(b"GET / HTTP/1.1\r\n")  # a request begins: not idle
    clock.now = 4.0
    protocol.on_response_complete()  # idle again from 4: no second timer
    assert len(clock.timers) == 1
    assert clock.fire() == 5.0 and not transport.is_closing()  # the deadline moved to 9: checked again then
    assert [when for when, _ in clock.timers] == [9.0]
    assert clock.fire() == 9.0 and transport.is_closing()
    assert clock.timers == []


async def test_a_timer_that_finds_a_request_under_way_leaves_the_next_response_to_arm_one() -> None:
    config = Config(app, timeout_keep_alive=5, log_config=None)
    clock = Clock()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=clock)
    transport = Recording()
    protocol.connection_made(transport)
    protocol.on_response_complete()
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    assert clock.fire() == 5.0 and not transport.closed and clock.timers == []  # busy: nothing armed
    clock.now = 7.0
    protocol.on_response_complete()
    assert [when for when, _ in clock.timers] == [12.0]
    protocol.connection_lost(None)  # the timer goes with the connection
    assert protocol.timeout_keep_alive_task is None


async def respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    if headers is None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    seen = SEEN.get()  # each request starts in its own context: what an earlier one set is not here
    SEEN.set(path)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"300000")]})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"y" * 100_000, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":  # no length: chunked; the head goes before the app has a body to send
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await scope["state"]["go"].wait()
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path in ("/204", "/304"):
        await respond(send, int(path[1:]), b"", headers=[(b"etag", b'"x"')])
    elif path == "/hello":
        await respond(send, 200, b"hello")
    elif path == "/suspends":
        for _ in range(3):
            await asyncio.sleep(0)
        await respond(send, 200, b'{"seen": "%s"}' % seen.encode())
    elif path == "/raises-first":
        raise RuntimeError("before the response")
    elif path == "/raises-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("after the head")
    elif path == "/bad-header":
        await respond(send, 200, b"", headers=[(b"x-bad", b"a\nb")])
    elif path.startswith("/whole"):  # the RESPOND extension: a whole response in one call
        whole = scope["extensions"][RESPOND]
        kind = path.removeprefix("/whole")
        if kind == "-close":
            await whole(200, [(b"connection", b"close")], b"bye")
        elif kind == "-bad-header":
            await whole(200, [(b"x-bad", b"a\r\nb")], b"")
        elif kind == "-length":
            await whole(200, [(b"content-length", b"99")], b"x")
        elif kind == "-204":
            await whole(204, [(b"etag", b'"x"')], b"")
        elif kind == "-twice":
            await whole(200, [], b"first")
            await whole(200, [], b"second")
        else:
            await whole(200, [(b"content-type", b"text/plain"), (b"X-Seen", seen.encode())], b"whole")
    else:
        answer = b'{"error": "apptoken_invalid", "got": %d, "seen": "%s"}' % (len(body), seen.encode())
        await respond(send, 401, answer)


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[int, asyncio.Event]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    go = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"go": go}

    async def with_state(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            async with lifespan(None) as state:
                scope["state"].update(state)
                await app(scope, receive, send)
            return
        await app(scope, receive, send)

    config = uvicorn.Config(
        with_state,
        host="127.0.0.1",
        port=port,
        http=CoalescingHttpToolsProtocol,
        log_config=None,
        loop="asyncio",
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(600):  # readiness, not timing: up to 60 s on a busy machine
        if server.started:
            break
        await asyncio.sleep(0.1)
    assert server.started
    try:
        yield port, go
    finally:
        server.should_exit = True
        await task


async def read_response(reader: asyncio.StreamReader, head_request: bool = False) -> tuple[bytes, bytes]:
    """One response from the stream, framed by its content-length or its chunks."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), None)
    if head_request or head.startswith((b"HTTP/1.1 204", b"HTTP/1.1 304")):
        return head, b""
    if length is not None:
        return head, await asyncio.wait_for(reader.readexactly(length), 30)
    assert b"transfer-encoding: chunked" in lines
    body = b""
    while not body.endswith(b"0\r\n\r\n"):
        body += await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
    return head, body


async def exchange(port: int, request: bytes, until: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = b""
    while data.count(b"HTTP/1.1 ") < until or not data.endswith(b"}"):
        chunk = await asyncio.wait_for(reader.read(65536), 30)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data


@pytest.mark.parametrize("transfer", ["pipelined", "keep-alive"])
async def test_http_keeps_working_through_uvicorn(transfer: str) -> None:
    get = b"GET /verify HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serving() as (port, _):
        if transfer == "pipelined":  # three requests in one packet: three whole answers, in order
            data = await exchange(port, get * 3, 3)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = b""
            for _ in range(3):
                writer.write(get)
                data += await asyncio.wait_for(reader.readuntil(b"}"), 30)
            writer.close()
    answers = data.split(b"HTTP/1.1 401 Unauthorized\r\n")
    assert answers[0] == b"" and len(answers) == 4
    assert all(a.endswith(b'\r\n\r\n{"error": "apptoken_invalid", "got": 0, "seen": "-"}') for a in answers[1:])


async def test_close_continue_and_large_bodies() -> None:
    async with serving() as (port, _):
        data = await exchange(port, b"GET /verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1)
        assert data.startswith(b"HTTP/1.1 401") and b"connection: close" in data and data.endswith(b'"seen": "-"}')
        post = b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post)
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert b'"got": 5,' in await asyncio.wait_for(reader.readuntil(b"}"), 30)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        big = await asyncio.wait_for(reader.read(), 30)  # to the end: the server closes after it
        writer.close()
        assert big.startswith(b"HTTP/1.1 200 OK\r\n") and big.endswith(b"\r\n\r\n" + b"y" * 300_000)


async def test_head_204_304_and_suspending_apps_keep_the_connection_framed() -> None:
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_response(reader, head_request=True)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 5\r\n" in head
        for status in (b"204", b"304"):
            writer.write(b"GET /" + status + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _ = await read_response(reader)
            assert head.startswith(b"HTTP/1.1 " + status) and b"transfer-encoding" not in head
        writer.write(b"GET /suspends HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200") and body == b'{"seen": "-"}'
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # nothing of the HEAD's body was sent: framing holds
        assert (await read_response(reader))[1] == b"hello"
        writer.close()


async def test_a_streaming_response_sends_its_head_before_its_first_chunk() -> None:
    async with serving() as (port, go):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)  # the app waits for `go` meanwhile
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked\r\n" in head
        go.set()
        body = b""
        while not body.endswith(b"0\r\n\r\n"):
            body += await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
        assert body == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
        writer.close()


async def test_http_1_0_is_answered_and_closed() -> None:
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hello HTTP/1.0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 30)  # to the end: the server closes
        writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close\r\n" in data and data.endswith(b"hello")


async def test_apps_that_raise_get_a_500_or_a_closed_connection() -> None:
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /raises-first HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and data.endswith(b"Internal Server Error")
        for path in (b"/raises-after-start", b"/bad-header"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 30)
            writer.close()
            if path == b"/raises-after-start":  # the head was sent as uvicorn sends it, then the connection closed
                assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"content-length: 10\r\n\r\n")
            else:  # an invalid header is refused before anything is written
                assert data == b""


async def test_each_request_on_a_connection_starts_in_a_fresh_context() -> None:
    get = b"GET /verify HTTP/1.1\r\nHost: x\r\n\r\n"
    suspends = b"GET /suspends HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get + suspends + get)  # pipelined, then one by one
        bodies = [(await read_response(reader))[1] for _ in range(3)]
        for request in (suspends, get):
            writer.write(request)
            bodies.append((await read_response(reader))[1])
        writer.close()
    assert len(bodies) == 5 and all(b'"seen": "-"' in body for body in bodies)


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with serving(timeout_keep_alive=1) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[1] == b"hello"
        assert await asyncio.wait_for(reader.read(), 30) == b""  # the server closed it, idle
        writer.close()


async def _one_request(path: bytes) -> tuple[Recording, ResponseCycle]:
    """One GET of ``path`` on a protocol writing to a :class:`Recording`; returns once its task has finished."""
    transport = Recording()
    protocol = CoalescingHttpToolsProtocol(Config(app, log_config=None), ServerState(), {})
    protocol.connection_made(transport)
    protocol.data_received(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    cycle = protocol.cycle
    assert isinstance(cycle, ResponseCycle)
    extensions: dict[Any, Any] = dict(cycle.scope["extensions"])
    assert extensions[RESPOND] == cycle.respond  # the extension is there while the request runs
    for task in list(protocol.tasks):
        await task
    return transport, cycle


async def test_the_cycle_writes_head_and_body_at_once() -> None:
    transport, _ = await _one_request(b"/hello")
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\nhello")
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing left
    assert len(transport.writes) == 1


async def test_a_finished_cycle_is_no_longer_reachable_from_its_scope() -> None:
    transport, cycle = await _one_request(b"/whole")
    assert transport.writes[0].endswith(b"\r\n\r\nwhole")
    # The scope no longer holds the cycle's respond: scope and cycle are freed by their reference counts.
    assert RESPOND not in cycle.scope["extensions"]
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing left
    assert len(transport.writes) == 1


class Noting(Recording):
    """A transport whose writes go into a log shared with the app, to see what happened in which order."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__()
        self.name, self.log = name, log

    def write(self, data: Any) -> None:
        super().write(data)
        self.log.append(f"write {self.name}")


def _connection(transport: Recording) -> CoalescingHttpToolsProtocol:
    protocol = CoalescingHttpToolsProtocol(Config(app, log_config=None), ServerState(), {})
    protocol.connection_made(transport)
    return protocol


async def test_whole_responses_answered_in_one_turn_are_written_together_at_its_end() -> None:
    log: list[str] = []

    async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await scope["extensions"][RESPOND](200, [], scope["path"].encode())
        log.append(f"answered {scope['path']}")

    transports = [Noting(name, log) for name in ("a", "b", "c")]
    protocols = [_connection(transport) for transport in transports]
    for protocol, transport in zip(protocols, transports, strict=True):
        protocol.app = answer
        protocol.data_received(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % transport.name.encode())
    await asyncio.gather(*(task for protocol in protocols for task in protocol.tasks))
    await asyncio.sleep(0)
    # Each request of the turn ran to its answer before any was written; then each went out in one write, in order.
    assert log == ["answered /a", "answered /b", "answered /c", "write a", "write b", "write c"]
    assert [t.writes[0].endswith(b"\r\n\r\n/" + t.name.encode()) for t in transports] == [True] * 3


@pytest.mark.parametrize("close", ["shutdown", "keep-alive timeout", "bad request", "app error"])
async def test_a_whole_response_still_waiting_is_written_before_any_close(close: str) -> None:
    transport = Recording()
    protocol = _connection(transport)
    stop = asyncio.Event()

    async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await scope["extensions"][RESPOND](200, [], b"first")
        if close == "app error":
            raise RuntimeError("after its whole response")
        await stop.wait()  # the test closes the connection meanwhile

    protocol.app = answer
    protocol.data_received(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    (task,) = protocol.tasks
    while not (protocol.writes.pending or task.done()):  # the task reaches its answer; its flush has not run yet
        await asyncio.sleep(0)
    if close == "shutdown":
        protocol.shutdown()
    elif close == "keep-alive timeout":
        protocol.timeout_keep_alive_handler()
    elif close == "bad request":
        protocol.data_received(b"NOT HTTP\r\n\r\n")
    stop.set()
    await asyncio.gather(task, return_exceptions=True)
    assert transport.writes and transport.writes[0].endswith(b"\r\n\r\nfirst")  # the response, before the close
    assert transport.closed


async def test_a_connection_gone_before_the_end_of_the_turn_is_not_written_and_the_others_are() -> None:
    transports = [Recording(), Recording()]
    protocols = [_connection(transport) for transport in transports]
    for protocol in protocols:
        protocol.data_received(b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
    tasks = [task for protocol in protocols for task in protocol.tasks]
    while not all(task.done() for task in tasks) and len(protocols[0].writes.pending) < 2:
        await asyncio.sleep(0)
    transports[0].closed = True  # the client went away before the flush
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)
    assert transports[0].writes == [] and transports[1].writes[0].endswith(b"\r\n\r\nwhole")


async def test_a_whole_response_through_the_extension_keeps_http_framed() -> None:
    get = b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get * 3)  # pipelined: three whole answers, in order, each in a fresh context
        for _ in range(3):
            head, body = await read_response(reader)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"whole"
            assert b"content-length: 5\r\n" in head and b"x-seen: -\r\n" in head  # names lower-cased, as uvicorn
            assert b"transfer-encoding" not in head and b"connection" not in head
        writer.write(b"HEAD /whole HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_response(reader, head_request=True)
        assert b"content-length: 5\r\n" in head  # the length a GET would have, no body
        writer.write(b"GET /whole-204 HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 204") and b"content-length" not in head and b'etag: "x"' in head
        writer.write(get)  # nothing stray was sent after the HEAD and the 204: the next answer is whole
        assert (await read_response(reader))[1] == b"whole"
        writer.close()


async def test_a_whole_response_closes_when_the_app_or_the_client_says_so() -> None:
    async with serving() as (port, _):
        for request, closing in (
            (b"GET /whole-close HTTP/1.1\r\nHost: x\r\n\r\n", b"connection: close\r\n"),  # the app's own header
            (b"GET /whole HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"connection: close\r\n"),
            (b"GET /whole HTTP/1.0\r\n\r\n", b"connection: close\r\n"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            data = await asyncio.wait_for(reader.read(), 30)  # to the end: the server closes after it
            writer.close()
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.count(closing) == 1
            assert data.endswith(b"\r\n\r\nbye" if b"whole-close" in request else b"\r\n\r\nwhole")


@pytest.mark.parametrize("path", [b"/whole-bad-header", b"/whole-length"])
async def test_a_whole_response_the_server_cannot_send_is_a_500_with_nothing_of_it_written(path: bytes) -> None:
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"x-bad" not in data


async def test_a_second_whole_response_is_an_app_error_after_the_first_left() -> None:
    async with serving() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /whole-twice HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"first"
        # As for any app that raises after its response started (uvicorn's rule): logged, and the connection closed.
        assert await asyncio.wait_for(reader.read(), 30) == b""
        writer.close()


async def test_send_response_takes_the_extension_only_from_the_server_whose_send_it_was_given() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.whole: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
            self.messages: list[MutableMapping[str, Any]] = []

        async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
            self.whole.append((status, headers, body))

        async def send(self, message: MutableMapping[str, Any]) -> None:
            self.messages.append(message)

    cycle = Cycle()
    scope = {"extensions": {RESPOND: cycle.respond}}
    await send_response(cycle.send, (200, [], b"x"), scope)
    assert cycle.whole == [(200, [], b"x")] and cycle.messages == []
    seen: list[str] = []

    async def middleware_send(message: MutableMapping[str, Any]) -> None:  # a middleware between the server and the app
        seen.append(message["type"])
        await cycle.send(message)

    await send_response(middleware_send, (401, [], b"no"), scope)  # the middleware sees both messages
    assert len(cycle.whole) == 1 and seen == ["http.response.start", "http.response.body"]
    assert cycle.messages[0]["headers"] == [(b"content-length", b"2")] and cycle.messages[1]["body"] == b"no"
    await send_response(cycle.send, (200, [], b"z"), {})  # no extension (another server): the messages
    assert len(cycle.whole) == 1 and cycle.messages[-1]["body"] == b"z"


def test_a_loop_that_served_is_not_kept_alive_by_its_writes() -> None:
    import gc
    import weakref

    from tokenward.web.httpserver import _WRITES, _writes_of

    loop = asyncio.new_event_loop()
    writes = _writes_of(loop)
    assert _writes_of(loop) is writes  # one per loop
    gone = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert gone() is None and len([w for w in _WRITES.values() if w is writes]) == 0


def test_request_targets_are_split_as_uvicorn_splits_them_and_kept_bounded() -> None:
    import httptools

    from tokenward.web import httpserver

    for url in (b"/verify?config_token=a.b.c&x=%2F", b"/a%20b/c?", b"/plain", b"/x" + b"y" * 5000 + b"?q=1"):
        parsed = httptools.parse_url(url)
        expected = (urllib.parse.unquote(parsed.path.decode("ascii")), parsed.path, parsed.query or b"")
        assert httpserver._target(url) == expected and httpserver._target(url) == expected  # split, then kept
    assert b"/x" + b"y" * 5000 + b"?q=1" not in httpserver._TARGETS  # a long target is split every time
    for n in range(httpserver._TARGETS_MAX + 10):
        httpserver._target(b"/n/%d" % n)
    assert len(httpserver._TARGETS) <= httpserver._TARGETS_MAX
    with pytest.raises(httptools.HttpParserInvalidURLError):
        httpserver._target(b"http://[bad")
