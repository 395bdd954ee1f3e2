"""The HTTP/1.1 protocol ``tokenward serve`` runs: uvicorn's httptools protocol, each response sent in one write.

uvicorn writes a response's status line and headers when the app sends ``http.response.start``, then its body:
two ``send()`` calls, two TCP segments, for every response with a body. Every refused ``/verify`` is one (a 401
with its JSON error), and so is every API answer, where an accepted ``/verify`` (a 200 with no body) makes one.
On these 2-core machines a bare ASGI app spent 74.2 µs of CPU on such a 401 with stock uvicorn and 70.8 with this
protocol, against 58.6 for an empty 200 (bench/README.md, "One write per response": ``bench/response_writes.py``).

:class:`CoalescingTransport` holds a short write until the next one and sends both together: uvicorn always follows
the headers with a body write (an empty one too), so a response leaves in one ``send()`` with no added wait. A
write nothing follows (``100 Continue``, a lone error line) is sent at the end of the loop turn that made it. Only
short writes are held (:data:`HOLD_BYTES`); anything larger goes at once, after what was held, so flow control and
streaming responses behave as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HOLD_BYTES", "CoalescingHttpToolsProtocol", "CoalescingTransport"]

#: Writes up to this size are held for the next one (a status line and headers are a few hundred bytes).
HOLD_BYTES = 16 * 1024


class CoalescingTransport:
    """A connection's transport whose short writes wait for the next write, or the end of this loop turn, and go
    with it. Everything else is the wrapped transport's (attributes are looked up there)."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data if data else held)
        elif len(data) > HOLD_BYTES:
            self._transport.write(data)
        elif data:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Send what is held now (the end of the loop turn, a close)."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`CoalescingTransport` (``uvicorn.run(..., http=<this class>)``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
