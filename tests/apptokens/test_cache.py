"""MemoryCache: shared reads, a weight budget, and invalidations that win over reads in flight."""

from __future__ import annotations

import asyncio

import pytest

from tokenward.apptokens.cache import MISSING, MemoryCache, entries_for


class Gate:
    """A fetch that blocks until released, counting its calls; each release hands out the next value."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self._release = asyncio.Event()
        self.value = "v1"

    async def fetch(self) -> str:
        self.calls += 1
        self.started.set()
        await self._release.wait()
        return self.value

    def release(self, value: str | None = None) -> None:
        if value is not None:
            self.value = value
        self._release.set()


async def _running(gate: Gate, cache: MemoryCache[str, str], key: str = "k") -> asyncio.Task[str]:
    task = asyncio.ensure_future(cache.load(key, gate.fetch))
    await gate.started.wait()
    return task


async def test_concurrent_loads_share_one_read_and_keep_it() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    gate = Gate()
    tasks = [asyncio.ensure_future(cache.load("k", gate.fetch)) for _ in range(20)]
    await gate.started.wait()
    gate.release()
    assert await asyncio.gather(*tasks) == ["v1"] * 20
    assert gate.calls == 1 and cache.get("k") == "v1"
    assert await cache.load("k", gate.fetch) == "v1" and gate.calls == 1


async def test_loading_tells_a_read_in_flight_until_it_lands() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    gate = Gate()
    assert not cache.loading("k")
    task = await _running(gate, cache)
    assert cache.loading("k") and not cache.loading("other")
    gate.release()
    assert await task == "v1"
    assert not cache.loading("k") and "k" in cache


async def test_an_invalidation_during_a_read_keeps_its_result_out_of_the_cache() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    gate = Gate()
    early = await _running(gate, cache)
    cache.invalidate("k")  # the change arrives while the read (which may predate it) is in flight
    late = Gate()
    late.release("v2")
    assert await cache.load("k", late.fetch) == "v2"  # a caller after the invalidation reads again
    cache.invalidate("k")
    gate.release("v1-stale")
    assert await early == "v1-stale"  # its waiters get what was read ...
    await asyncio.sleep(0)
    assert cache.get("k") is MISSING  # ... but it is never kept, and the later value was invalidated too
    assert late.calls == 1


async def test_a_clear_during_a_read_keeps_its_result_out_of_the_cache() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    cache.put("other", "x")
    gate = Gate()
    task = await _running(gate, cache)
    cache.clear()
    gate.release()
    assert await task == "v1"
    await asyncio.sleep(0)
    assert cache.get("k") is MISSING and cache.get("other") is MISSING and len(cache) == 0 and cache.weight == 0


async def test_an_invalidation_of_another_key_does_not_spoil_a_read() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    gate = Gate()
    task = await _running(gate, cache)
    cache.invalidate("j")
    gate.release()
    assert await task == "v1"
    await asyncio.sleep(0)
    assert cache.get("k") == "v1"


async def test_a_failed_read_is_not_kept_and_the_next_caller_reads_again() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)

    async def down() -> str:
        raise OSError("database down")

    with pytest.raises(OSError):
        await cache.load("k", down)
    await asyncio.sleep(0)
    assert cache.get("k") is MISSING
    gate = Gate()
    gate.release()
    assert await cache.load("k", gate.fetch) == "v1"


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_read() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    gate = Gate()
    first = await _running(gate, cache)
    second = asyncio.ensure_future(cache.load("k", gate.fetch))
    await asyncio.sleep(0)
    first.cancel()
    gate.release()
    assert await second == "v1"
    assert gate.calls == 1


def test_the_oldest_entries_go_first_beyond_the_weight_budget() -> None:
    cache: MemoryCache[str, list[int]] = MemoryCache(capacity=5, weigh=len)
    cache.put("a", [1, 2])
    cache.put("b", [1])
    cache.put("c", [1, 2])
    assert cache.weight == 5
    cache.put("d", [1])  # over by one: "a" (the oldest) goes
    assert cache.get("a") is MISSING and [cache.get(k) for k in "bcd"] == [[1], [1, 2], [1]] and cache.weight == 4
    cache.put("e", [1] * 6)  # heavier than the whole budget: not kept, nothing evicted for it
    assert cache.get("e") is MISSING and cache.weight == 4
    cache.put("c", [1])  # replacing a key reweighs it
    assert cache.weight == 3 and len(cache) == 3
    cache.drop("b")
    assert cache.weight == 2 and "b" not in cache


def test_replace_only_onto_the_same_object() -> None:
    cache: MemoryCache[str, list[int]] = MemoryCache(capacity=5)
    held = [1]
    cache.put("a", held)
    assert not cache.replace("a", [1], [2])  # equal, not the same: it may be a newer value
    assert cache.replace("a", held, [3]) and cache.get("a") == [3]
    cache.invalidate("a")
    assert not cache.replace("a", held, [4]) and cache.get("a") is MISSING  # nothing revives


def test_budgets_in_entries() -> None:
    assert entries_for(10_000, 1_000) == 10
    assert entries_for(10, 1_000) == 1  # a tiny budget still holds one
    with pytest.raises(ValueError):
        MemoryCache(capacity=0)


async def test_a_refresh_keeps_the_held_value_until_it_lands_and_loses_to_an_invalidation() -> None:
    cache: MemoryCache[str, str] = MemoryCache(capacity=10)
    cache.put("k", "old")
    gate = Gate()
    cache.refresh("k", gate.fetch)
    cache.refresh("k", gate.fetch)  # one read in flight at a time
    await gate.started.wait()
    assert cache.get("k") == "old" and await cache.load("k", gate.fetch) == "old"
    gate.release("new")
    for _ in range(10):
        await asyncio.sleep(0)
    assert cache.get("k") == "new" and gate.calls == 1
    again = Gate()
    cache.refresh("k", again.fetch)
    await again.started.wait()
    cache.invalidate("k")
    again.release("stale")
    for _ in range(10):
        await asyncio.sleep(0)
    assert cache.get("k") is MISSING
