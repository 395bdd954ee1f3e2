"""Per-client regulation of failed token checks on a resource server.

Checking a token never seen before costs an Ed25519 signature and an X25519 exchange (hundreds of
µs); a peer sending fresh bad tokens could keep a core busy. :class:`FailureRegulator` counts
first-sight failures per client address in a fixed window; past the limit that address gets 429
``too_many_attempts`` (with ``Retry-After``) for new tokens until the window ends, while tokens
already verified keep working — so users behind the same proxy address are not locked out.
"""

from __future__ import annotations

import math

from tokenward.errorcodes import ErrorCode
from tokenward.errors import TooManyRequests

__all__ = ["FailureRegulator"]


class FailureRegulator:
    """At most ``limit`` failed first-sight checks per client in ``window_seconds`` (in memory, per process)."""

    def __init__(self, *, limit: int = 100, window_seconds: float = 60.0, max_clients: int = 100_000) -> None:
        self.limit = limit
        self.window = window_seconds
        self._max_clients = max_clients
        self._counts: dict[str, tuple[float, int]] = {}

    def check(self, client: str, *, now: float) -> None:
        """Raise ``too_many_attempts`` when ``client`` is over its limit in the current window."""
        entry = self._counts.get(client)
        if entry is not None and entry[1] >= self.limit and now - entry[0] < self.window:
            wait = max(1, math.ceil(entry[0] + self.window - now))
            raise TooManyRequests(
                f"too many failed client-token checks from this address; retry in {wait} s",
                code=ErrorCode.TOO_MANY_ATTEMPTS,
                retry_after=wait,
            )

    def failed(self, client: str, *, now: float) -> None:
        """Count one failed first-sight check for ``client``."""
        entry = self._counts.get(client)
        if entry is None or now - entry[0] >= self.window:
            if len(self._counts) >= self._max_clients:
                self._sweep(now)
            self._counts[client] = (now, 1)
        else:
            self._counts[client] = (entry[0], entry[1] + 1)

    def _sweep(self, now: float) -> None:
        self._counts = {c: e for c, e in self._counts.items() if now - e[0] < self.window}
        if len(self._counts) >= self._max_clients:
            self._counts.clear()  # a flood of addresses: start over rather than grow without bound
