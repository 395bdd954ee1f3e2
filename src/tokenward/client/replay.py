"""Replay guards: a request id (client token id + request nonce) is accepted once within its window.

:class:`MemoryReplayGuard` serves one process; :class:`RedisReplayGuard` shares the window between
every replica of a resource server (``SET key 1 NX PX <window>``: the first replica wins).
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from tokenward.errorcodes import ErrorCode
from tokenward.errors import ServiceUnavailable

__all__ = ["MemoryReplayGuard", "RedisReplayGuard", "ReplayGuard"]


class ReplayGuard(Protocol):
    async def first_use(self, request_id: str, *, now: float, until: float) -> bool:
        """True the first time ``request_id`` is seen before ``until``; False for a replay."""
        ...


class MemoryReplayGuard:
    """In-process window; forgets an id once its window has passed (swept as the table grows)."""

    def __init__(self, *, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._max = max_entries
        self._next_sweep = 1024

    async def first_use(self, request_id: str, *, now: float, until: float) -> bool:
        return self.check(request_id, now=now, until=until)

    def check(self, request_id: str, *, now: float, until: float) -> bool:
        """The synchronous form of :meth:`first_use` (the middleware's fast path)."""
        seen = self._seen
        old = seen.get(request_id)
        if old is not None and old > now:
            return False
        if len(seen) >= self._next_sweep:
            for key in [k for k, v in seen.items() if v <= now]:
                del seen[key]
            if len(seen) >= self._max:
                # Full of live ids: refuse rather than forget one (a forgotten id could be replayed).
                raise ServiceUnavailable(
                    "the replay window is full; raise max_entries or shorten the proof window",
                    code=ErrorCode.REPLAY_WINDOW_FULL,
                )
            self._next_sweep = max(1024, 2 * len(seen))
        seen[request_id] = until
        return True


class RedisReplayGuard:
    """Window shared through Redis (``redis.asyncio.Redis``); keys are ``<prefix>replay:<sha256 of the id>``."""

    def __init__(self, redis: Any, *, prefix: str = "tokenward:rs:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def first_use(self, request_id: str, *, now: float, until: float) -> bool:
        key = self._prefix + "replay:" + hashlib.sha256(request_id.encode()).hexdigest()
        try:
            stored = await self._redis.set(key, b"1", nx=True, px=max(1, int((until - now) * 1000)))
        except Exception as exc:  # redis' error types are optional imports; any failure is "cannot vouch"
            raise ServiceUnavailable(
                f"the replay window in Redis cannot be reached ({type(exc).__name__}); "
                "check the resource server's Redis connection",
                code=ErrorCode.REPLAY_STORE_UNAVAILABLE,
            ) from None
        return bool(stored)
