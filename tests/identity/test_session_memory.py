"""SessionMemory: lazy, shared reads; revocations that win over reads in flight; a bounded size."""

from __future__ import annotations

import asyncio
import gc
import secrets
import tracemalloc
from typing import Any

import pytest

from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.session_memory import DEAD, ENTRY_BYTES, SessionMemory, entries_for
from tokenward.storage.identity import SessionRecord

NOW = 1_776_880_000.0
EXPIRES = NOW + 3600


def record(session_id: str, *, revoked: bool = False) -> SessionRecord:
    return SessionRecord(
        session_id, "user", "alice@example.com", "A" * 40, "k" * 43, NOW, EXPIRES, NOW if revoked else None
    )


class Rows:
    """Session rows behind a gate the test opens (a slow database), counting every read."""

    def __init__(self, *revoked: str) -> None:
        self.revoked = set(revoked)
        self.missing: set[str] = set()
        self.reads: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def read(self, session_id: str) -> SessionRecord | None:
        self.reads.append(session_id)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        if session_id in self.missing:
            return None
        return record(session_id, revoked=session_id in self.revoked)


async def settle(task: asyncio.Future[Any]) -> None:
    """Let the event loop run until ``task`` is parked on the gate (turns of the loop, not a clock)."""
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()


async def test_a_session_is_read_once_then_answered_from_memory() -> None:
    rows = Rows("gone")
    memory = SessionMemory(rows.read, max_entries=10)
    assert memory.held("s1") is None
    for _ in range(3):
        assert await memory.alive("s1", now=NOW)
        assert not await memory.alive("gone", now=NOW)
    assert rows.reads == ["s1", "gone"]
    assert memory.held("s1") == EXPIRES and memory.held("gone") == DEAD
    assert not await memory.alive("s1", now=EXPIRES)  # the row's expiry holds too


async def test_a_session_without_a_row_is_dead() -> None:
    rows = Rows()
    rows.missing.add("purged")
    memory = SessionMemory(rows.read, max_entries=10)
    assert not await memory.alive("purged", now=NOW)
    assert not await memory.alive("purged", now=NOW)
    assert rows.reads == ["purged"]


async def test_concurrent_requests_share_one_read() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    rows.gate.clear()
    waiting = asyncio.gather(*(memory.alive("s1", now=NOW) for _ in range(50)))
    await settle(waiting)
    rows.gate.set()
    assert await waiting == [True] * 50
    assert rows.reads == ["s1"]


async def test_a_revocation_during_a_read_wins() -> None:
    # The row was read before the revocation committed: the read must not put "alive" back.
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    rows.gate.clear()
    first = asyncio.ensure_future(memory.alive("s1", now=NOW))
    await settle(first)
    assert rows.reads == ["s1"]  # the read is in flight
    memory.revoke("s1")
    rows.gate.set()  # ... and returns the row as it was before the revocation
    assert await first is False
    assert memory.held("s1") == DEAD
    assert not await memory.alive("s1", now=NOW)
    assert rows.reads == ["s1"]


async def test_a_revocation_of_a_session_not_held_costs_nothing_and_the_next_read_sees_it() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    memory.revoke("s1")
    assert len(memory) == 0 and rows.reads == []
    rows.revoked.add("s1")  # what SQL says once the revocation committed
    assert not await memory.alive("s1", now=NOW)


async def test_a_held_session_is_refused_once_revoked() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    assert await memory.alive("s1", now=NOW)
    memory.revoke("s1")
    assert not await memory.alive("s1", now=NOW)
    assert rows.reads == ["s1"]


async def test_clear_drops_everything_and_keeps_reads_in_flight_out() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    assert await memory.alive("s1", now=NOW)
    rows.gate.clear()
    pending = asyncio.ensure_future(memory.alive("s2", now=NOW))
    await settle(pending)
    memory.clear()
    rows.gate.set()
    assert await pending is True  # the row read from SQL answers this request ...
    assert memory.held("s2") is None  # ... but is not kept: it may predate what the feed missed
    assert memory.held("s1") is None and len(memory) == 0
    assert await memory.alive("s1", now=NOW)
    assert rows.reads == ["s1", "s2", "s1"]


async def test_a_failed_read_is_not_kept_and_the_next_request_reads_again() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    rows.fail = StorageUnavailable("database down", code=ErrorCode.STORAGE_UNAVAILABLE)
    with pytest.raises(StorageUnavailable) as info:
        await memory.alive("s1", now=NOW)
    assert info.value.error_code == ErrorCode.STORAGE_UNAVAILABLE
    assert memory.held("s1") is None
    rows.fail = None
    assert await memory.alive("s1", now=NOW)
    assert rows.reads == ["s1", "s1"]


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_read() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    rows.gate.clear()
    first = asyncio.ensure_future(memory.alive("s1", now=NOW))
    second = asyncio.ensure_future(memory.alive("s1", now=NOW))
    await settle(second)
    first.cancel()
    rows.gate.set()
    assert await second is True
    assert first.cancelled() and rows.reads == ["s1"] and memory.held("s1") == EXPIRES


async def test_a_tiny_budget_evicts_the_oldest_and_stays_correct() -> None:
    rows = Rows("r1")
    memory = SessionMemory(rows.read, max_entries=2)
    assert not await memory.alive("r1", now=NOW)
    assert await memory.alive("s1", now=NOW)
    assert await memory.alive("s2", now=NOW)  # r1 goes: the oldest
    assert len(memory) == 2 and memory.held("r1") is None
    assert not await memory.alive("r1", now=NOW)  # read again: still revoked
    rows.revoked.add("s2")  # the revocation commits, then memory hears of it
    memory.revoke("s2")
    assert memory.held("s2") == DEAD
    assert await memory.alive("s3", now=NOW)  # s2 (dead) is the oldest now: evicted
    assert not await memory.alive("s2", now=NOW)  # evicted while dead: read again, SQL says revoked
    assert rows.reads == ["r1", "s1", "s2", "r1", "s3", "s2"]
    assert len(memory) == 2


async def test_a_burst_of_sessions_not_held_reads_a_few_at_a_time() -> None:
    # A restart under traffic: thousands of sessions at once must not take every pooled connection.
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=100, max_reads=3)
    rows.gate.clear()
    burst = asyncio.gather(*(memory.alive(f"s{i}", now=NOW) for i in range(10)))
    await settle(burst)
    assert len(rows.reads) == 3  # the others wait for a slot, not for a connection
    rows.gate.set()
    assert await burst == [True] * 10
    assert len(rows.reads) == 10 and len(memory) == 10


def test_budget_conversion() -> None:
    assert entries_for(1) == 1024 * 1024 // ENTRY_BYTES
    assert entries_for(0.0001) == 1
    with pytest.raises(ValueError):
        SessionMemory(Rows().read, max_entries=0)
    with pytest.raises(ValueError):
        SessionMemory(Rows().read, max_entries=1, max_reads=0)


async def test_an_entry_costs_no_more_than_entry_bytes() -> None:
    # The budget setting is converted with ENTRY_BYTES: it must not understate what an entry costs.
    count = 100_000
    memory = SessionMemory(Rows().read, max_entries=count)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(count):  # the ids a sealed source identifier carries: 16 random bytes, base64url
            memory._hold(b64u_encode(secrets.token_bytes(16)), EXPIRES + i)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(memory) == count
    assert used / count <= ENTRY_BYTES, used / count


async def test_fill_holds_live_sessions_without_reading_them_one_by_one() -> None:
    rows = Rows("gone")
    memory = SessionMemory(rows.read, max_entries=3)
    assert not await memory.alive("gone", now=NOW)  # held (ended) before the fill: kept as it is
    rows.reads.clear()
    rows.gate.clear()

    async def live() -> list[tuple[str, float]]:
        await rows.gate.wait()
        return [("s1", EXPIRES), ("s2", EXPIRES), ("gone", EXPIRES), ("s3", EXPIRES), ("s4", EXPIRES)]

    filling = asyncio.ensure_future(memory.fill(live))
    await settle(filling)
    memory.revoke("s2")  # a logout read by the feed while the fill's query is in flight: it wins
    rows.gate.set()
    assert await filling == 2  # s1, s2; "gone" was held already; then the bound (3)
    assert memory.held("s1") == EXPIRES and memory.held("s2") == DEAD and memory.held("s3") is None
    assert memory.held("gone") == DEAD  # the fill's older answer does not overwrite it
    assert rows.reads == []


async def test_a_clear_during_the_fill_keeps_its_rows_out() -> None:
    rows = Rows()
    memory = SessionMemory(rows.read, max_entries=10)
    gate = asyncio.Event()

    async def live() -> list[tuple[str, float]]:
        await gate.wait()
        return [("s1", EXPIRES)]

    filling = asyncio.ensure_future(memory.fill(live))
    await settle(filling)
    memory.clear()
    gate.set()
    assert await filling == 0 and len(memory) == 0
