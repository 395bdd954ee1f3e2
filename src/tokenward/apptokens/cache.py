"""A bounded in-process cache with a per-entry time to live.

Used to keep verified app token records in memory for a short time (default 0.5 s), so a warm
verification costs one dict lookup and one HMAC. The TTL bounds how long a revocation made on
*another* instance can go unnoticed; revocations on this instance are evicted immediately.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["TTLCache"]

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """``get``/``put``/``pop`` with expiry; when full, the oldest entry is dropped (FIFO)."""

    __slots__ = ("_entries", "maxsize", "ttl")

    def __init__(self, *, maxsize: int, ttl: float) -> None:
        if maxsize < 1 or ttl <= 0:
            raise ValueError("maxsize must be >= 1 and ttl > 0")
        self.maxsize = maxsize
        self.ttl = ttl
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: K, value: V, now: float) -> None:
        entries = self._entries
        if key not in entries and len(entries) >= self.maxsize:
            entries.pop(next(iter(entries)))
        entries[key] = (now + self.ttl, value)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
