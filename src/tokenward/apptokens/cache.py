"""A bounded in-process map with no time to live, kept right by invalidation.

:class:`MemoryCache` holds what the app token service answers from memory: records by token id and
complete lists by owner. Nothing in it expires; it is right because every change reaches it as an
invalidation (the change feed, or the local write), and because an invalidation wins over a read
that was in flight when it arrived: that read's result is handed to the callers already waiting for
it but never kept, and a caller that comes after the invalidation starts a new read. Without this
rule a record read just before its revocation committed could be cached after the revocation was
applied and live on with no TTL to end it.

Reads of one key are shared: while one is in flight, other callers of :meth:`MemoryCache.load`
await the same one (one SQL statement however many requests arrive together).

The cache is bounded by a total *weight* (records: 1 each; a list: its length + 1); beyond it the
oldest entries are dropped first. A value heavier than the whole budget is returned but not kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, Generic, TypeVar

__all__ = ["KNOWN_ID_BYTES", "MISSING", "RECORD_BYTES", "MemoryCache", "entries_for"]

K = TypeVar("K")
V = TypeVar("V")

#: Bytes per app token record held (bench/apptokens.py --memory measured 581 with Python 3.11: the record packed
#: as a tuple of atoms with its repeated strings interned, times as floats, the hash as 32 bytes, the token's
#: fingerprint and the cache's dict slot), rounded up.
RECORD_BYTES: Final = 600
#: Bytes per id in the known-id filter (:class:`~tokenward.apptokens.known.KnownIds`: 64-bit hashes in a sorted
#: array, 8, and a bitmap in front of it of 16 to 32 bits an id, 2 to 4).
KNOWN_ID_BYTES: Final = 12


def entries_for(budget_bytes: int, entry_bytes: int = RECORD_BYTES) -> int:
    """How many entries of ``entry_bytes`` fit in ``budget_bytes`` (at least one)."""
    return max(1, budget_bytes // entry_bytes)


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`MemoryCache.get` returns for a key it does not hold (``None`` may be a held value).
MISSING: Final = _Missing()


class _Load(Generic[V]):
    __slots__ = ("future", "stale")

    def __init__(self, future: asyncio.Future[V]) -> None:
        self.future = future
        self.stale = False


class MemoryCache(Generic[K, V]):
    """``get`` / ``load`` / ``put`` / ``invalidate`` with a weight budget and no TTL (see the module docstring)."""

    __slots__ = ("_entries", "_inflight", "_weigh", "_weights", "capacity", "weight")

    def __init__(self, *, capacity: int, weigh: Callable[[V], int] | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.weight = 0
        self._weigh = weigh
        # Values straight in the dict (no wrapper per entry); weights beside them only when entries have one.
        self._entries: dict[K, V] = {}
        self._weights: dict[K, int] = {}
        self._inflight: dict[K, _Load[V]] = {}

    def get(self, key: K) -> V | _Missing:
        """The held value, or :data:`MISSING`."""
        return self._entries.get(key, MISSING)

    def put(self, key: K, value: V) -> None:
        """Hold ``value`` (the writer's own change: it is newer than any read in flight, which stays as it is)."""
        weight = 1 if self._weigh is None else max(1, self._weigh(value))
        self.drop(key)
        if weight > self.capacity:
            return
        entries = self._entries
        while self.weight + weight > self.capacity:
            self.drop(next(iter(entries)))
        entries[key] = value
        if self._weigh is not None:
            self._weights[key] = weight
        self.weight += weight

    def replace(self, key: K, old: V, new: V) -> bool:
        """Hold ``new`` instead of ``old`` only if ``old`` (the same object) is still held: nothing revives."""
        if self._entries.get(key, MISSING) is not old:
            return False
        self._entries[key] = new  # an existing key keeps its place: not a new insertion for eviction
        return True

    async def load(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The held value, else ``fetch()``'s, shared with the callers that ask while it is in flight.

        The result is held unless the key was invalidated (or the cache cleared) while it was read.
        A caller that goes away does not cancel the read the others await.
        """
        held = self._entries.get(key, MISSING)
        if held is not MISSING:
            return held  # type: ignore[return-value]
        load = self._inflight.get(key) or self._start(key, fetch)
        return await asyncio.shield(load.future)

    def loading(self, key: K) -> bool:
        """Whether a read of ``key`` is in flight (:meth:`load` would join it rather than start one)."""
        return key in self._inflight

    def refresh(self, key: K, fetch: Callable[[], Awaitable[V]]) -> None:
        """Read ``key`` again in the background; the held value answers until the new one replaces it (which it
        does not if the key is invalidated meanwhile). No second read while one is in flight."""
        if key not in self._inflight:
            self._start(key, fetch)

    def _start(self, key: K, fetch: Callable[[], Awaitable[V]]) -> _Load[V]:
        load = _Load(asyncio.ensure_future(fetch()))
        self._inflight[key] = load
        load.future.add_done_callback(lambda done: self._loaded(key, load))
        return load

    def _loaded(self, key: K, load: _Load[V]) -> None:
        if self._inflight.get(key) is load:
            del self._inflight[key]
        future = load.future
        if future.cancelled() or future.exception() is not None:  # retrieved: not logged as lost
            return
        if not load.stale:
            self.put(key, future.result())

    def drop(self, key: K) -> None:
        """Forget the held value (e.g. to refresh it); a read in flight is still kept when it ends."""
        if self._entries.pop(key, MISSING) is not MISSING:
            self.weight -= self._weights.pop(key) if self._weigh is not None else 1

    def invalidate(self, key: K) -> None:
        """The key changed: drop its value, and a read in flight for it will not be kept."""
        self.drop(key)
        load = self._inflight.pop(key, None)
        if load is not None:
            load.stale = True

    def clear(self) -> None:
        """Everything changed (the feed was reset): drop every value and every read in flight."""
        self._entries.clear()
        self._weights.clear()
        self.weight = 0
        for load in self._inflight.values():
            load.stale = True
        self._inflight.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
