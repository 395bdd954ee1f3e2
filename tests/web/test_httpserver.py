"""tokenward/web/httpserver.py: each response leaves in one write, and HTTP/1.1 still behaves (keep-alive,
pipelining, Connection: close, 100-continue, large bodies) through uvicorn with the coalescing transport."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from tokenward.web.httpserver import HOLD_BYTES, CoalescingHttpToolsProtocol, CoalescingTransport


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

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else default


async def test_the_headers_wait_for_the_body_and_leave_with_it() -> None:
    inner = Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n")
    assert inner.writes == []
    transport.write(b"{}")
    assert inner.writes == [b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}"]  # at once: no added wait
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    transport.write(b"")  # uvicorn writes an empty body too: it sends what is held
    assert inner.writes[1] == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
    await asyncio.sleep(0)  # the end-of-turn flush finds nothing left
    assert len(inner.writes) == 2
    assert transport.get_extra_info("sockname") == ("127.0.0.1", 8080)  # everything else is the transport's


async def test_a_write_nothing_follows_goes_at_the_end_of_the_loop_turn() -> None:
    inner = Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


async def test_large_writes_are_not_held_and_close_sends_what_is() -> None:
    inner = Recording()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    big = b"x" * (HOLD_BYTES + 1)
    transport.write(big)
    assert inner.writes == [big]
    transport.write(memoryview(b"abc"))
    transport.writelines([b"de", bytearray(b"f")])
    assert inner.writes[1] == b"abcdef"
    transport.write(b"bye")
    transport.close()
    assert inner.writes[2] == b"bye" and inner.closed
    transport.write(b"late")  # after the close: held, then dropped at the end of the turn (the socket is gone)
    await asyncio.sleep(0)
    assert len(inner.writes) == 3


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"300000")]})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"y" * 100_000, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = b'{"error": "apptoken_invalid", "got": %d}' % len(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol, log_config=None, loop="asyncio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(600):  # readiness, not timing: up to 60 s on a busy machine
        if server.started:
            break
        await asyncio.sleep(0.1)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        await task


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
    async with serving() as port:
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
    assert all(a.endswith(b'\r\n\r\n{"error": "apptoken_invalid", "got": 0}') for a in answers[1:])


async def test_close_continue_and_large_bodies() -> None:
    async with serving() as port:
        data = await exchange(port, b"GET /verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1)
        assert data.startswith(b"HTTP/1.1 401") and b"connection: close" in data and data.endswith(b'"got": 0}')
        post = b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post)
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert (await asyncio.wait_for(reader.readuntil(b"}"), 30)).endswith(b'"got": 5}')
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        big = await asyncio.wait_for(reader.read(), 30)  # to the end: the server closes after it
        writer.close()
        assert big.startswith(b"HTTP/1.1 200 OK\r\n") and big.endswith(b"\r\n\r\n" + b"y" * 300_000)
