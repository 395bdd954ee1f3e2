"""A TCP proxy on 127.0.0.1 that a test can cut, silence and restore: a database or Redis away from one instance.

The proxy runs an asyncio loop in a thread of its own, so a synchronous test drives it. Two ways to fail:

- :meth:`TcpProxy.cut`: every connection through it is reset and new ones are closed as soon as they are
  accepted (the client sees an error at once, as when the server's host answers with a reset);
- :meth:`TcpProxy.silence`: nothing is forwarded any more and nothing comes back; new connections are
  accepted and then never answered (a network that drops packets, a server that hangs). The connections
  open at that moment stay silent even after :meth:`TcpProxy.restore`, as when a stateful firewall or a
  failover forgot them: only a client that gives up on them and reconnects gets through again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["TcpProxy", "tcp_proxy"]

T = TypeVar("T")


class _Link:
    """One client connection and its upstream; ``silent`` once the proxy was silenced while it was open."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter | None) -> None:
        self.writers = [w for w in (client, upstream) if w is not None]
        self.silent = upstream is None

    def reset(self) -> None:
        for writer in self.writers:
            _reset(writer)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port`` until :meth:`cut` or :meth:`silence`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        #: Connections forwarded, closed at once (cut) and left unanswered (silenced).
        self.forwarded = 0
        self.refused = 0
        self.unanswered = 0
        self._mode = "open"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    def start(self) -> int:
        """Listen on a free port of 127.0.0.1; the port."""
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def cut(self) -> None:
        """Reset every open connection and close new ones on accept, until :meth:`restore`."""
        self._call(self._set_mode("cut"))

    def silence(self) -> None:
        """Forward nothing either way on open connections (for good) and answer nothing on new ones."""
        self._call(self._set_mode("silent"))

    def restore(self) -> None:
        """Forward new connections again (connections silenced stay silent)."""
        self._call(self._set_mode("open"))

    def close(self) -> None:
        if self._server is not None:
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _set_mode(self, mode: str) -> None:
        self._mode = mode
        for link in list(self._links):
            if mode == "cut":
                link.reset()
                self._links.discard(link)
            elif mode == "silent":
                link.silent = True

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._set_mode("cut")
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "cut":
            self.refused += 1
            _reset(writer)
            return
        if self._mode == "silent":
            self.unanswered += 1
            link = _Link(writer, None)
            self._links.add(link)
            try:
                await _pipe(reader, None, link)
            finally:
                self._links.discard(link)
                link.reset()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        self.forwarded += 1
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(_pipe(reader, up_writer, link), _pipe(up_reader, writer, link))
        finally:
            self._links.discard(link)
            link.reset()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, link: _Link) -> None:
    """Copy ``reader`` to ``writer`` until either end closes; while ``link`` is silent, drop what is read."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            if writer is not None and not link.silent:
                writer.write(data)
                await writer.drain()
    if not link.silent:
        link.reset()


def _reset(writer: asyncio.StreamWriter) -> None:
    if not writer.transport.is_closing():
        writer.transport.abort()


@contextlib.contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A started :class:`TcpProxy`, closed on exit."""
    proxy = TcpProxy(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
