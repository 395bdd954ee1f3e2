"""The change feed's rules with an injected clock: order, holes, fail-closed freshness, resets, wake-ups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import UTC, datetime

import pytest

from tests.busyloop import busy_loop
from tokenward.changefeed import ChangeFeed
from tokenward.errors import StorageError, StorageUnavailable
from tokenward.storage.changes import Change, ChangeEntry, ChangeKind, ChangeLog, InMemoryChangeLog

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FlakyLog(ChangeLog):
    """An in-memory log that can fail, hang, and hide entries (a transaction not yet committed)."""

    def __init__(self) -> None:
        self.inner = InMemoryChangeLog()
        self.down = False
        self.hidden: set[int] = set()
        #: Reads that never answer (a connection the network silently lost), and how many were abandoned.
        self.hanging = 0
        self.abandoned = 0
        #: Loop turns a read takes before its answer is handed over (a driver's round trips through the loop).
        self.turns = 0

    async def read(self, after: int, *, also: Collection[int] = (), limit: int = 1000) -> list[ChangeEntry]:
        if self.down:
            raise StorageUnavailable("the database cannot be reached")
        if self.hanging:
            self.hanging -= 1
            try:
                await asyncio.Event().wait()  # never set: only a cancellation ends this read
            finally:
                self.abandoned += 1
        try:
            for _ in range(self.turns):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self.abandoned += 1
            raise
        # Hidden rows are invisible to the query itself (uncommitted), so the limit counts visible ones only.
        visible = [e for e in await self.inner.read(0, limit=10**9) if e.seq not in self.hidden]
        return [e for e in visible if e.seq in set(also) and e.seq <= after] + [e for e in visible if e.seq > after][
            :limit
        ]

    async def head(self) -> int:
        if self.down:
            raise StorageUnavailable("the database cannot be reached")
        return await self.inner.head()

    async def prune(self, before: datetime) -> int:
        return await self.inner.prune(before)


class SlowLog(InMemoryChangeLog):
    """Each read waits for :attr:`release`; :attr:`reading` is set when one starts."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.release = asyncio.Event()
        self.reads = 0
        self.finished = 0

    async def read(self, after: int, *, also: Collection[int] = (), limit: int = 1000) -> list[ChangeEntry]:
        self.reads += 1
        self.reading.set()
        await self.release.wait()
        self.finished += 1
        return await super().read(after, also=also, limit=limit)


def add(log: FlakyLog, kind: ChangeKind, key: str) -> int:
    log.inner.append([Change(kind, key)], T0)
    return log.inner._seq


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flaky() -> FlakyLog:
    return FlakyLog()


@pytest.fixture
async def feed(flaky: FlakyLog, clock: Clock) -> ChangeFeed:
    feed = ChangeFeed(flaky, max_lag=5.0, hole_timeout=60.0, retention=3600.0, batch=2, monotonic=clock)
    add(flaky, ChangeKind.SESSION, "before-start")  # logged before start: already in what memory loads
    await feed.start()
    return feed


async def test_entries_reach_their_kinds_handlers_in_order_and_only_once(feed: ChangeFeed, flaky: FlakyLog) -> None:
    sessions: list[str] = []
    tokens: list[str] = []
    feed.on(ChangeKind.SESSION, lambda e: sessions.append(e.key))
    feed.on(ChangeKind.APP_TOKEN, lambda e: tokens.append(e.key))
    for key in ("s1", "s2", "s3"):
        add(flaky, ChangeKind.SESSION, key)
    add(flaky, ChangeKind.APP_TOKEN, "t1")
    assert await feed.poll() == 4  # batch=2: the catch-up reads go on until a short batch
    assert sessions == ["s1", "s2", "s3"] and tokens == ["t1"]
    assert await feed.poll() == 0
    assert sessions == ["s1", "s2", "s3"]


async def test_an_unknown_kind_and_a_failing_handler_do_not_stop_the_feed(
    feed: ChangeFeed, flaky: FlakyLog, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def broken(entry: ChangeEntry) -> None:
        raise RuntimeError("handler bug")

    feed.on(ChangeKind.BAN, broken)
    feed.on(ChangeKind.BAN, lambda e: seen.append(e.key))
    flaky.inner._entries.append(ChangeEntry(flaky.inner._seq + 1, T0, "from-a-newer-version", "x"))
    flaky.inner._seq += 1
    add(flaky, ChangeKind.BAN, "ip:192.0.2.7")
    with caplog.at_level(logging.ERROR, logger="tokenward.changes"):
        assert await feed.poll() == 2
    assert seen == ["ip:192.0.2.7"] and "handler bug" in caplog.text


async def test_a_late_commit_fills_its_hole_and_a_rolled_back_one_is_given_up(
    feed: ChangeFeed, flaky: FlakyLog, clock: Clock
) -> None:
    seen: list[str] = []
    feed.on(ChangeKind.CONFIG_TOKEN, lambda e: seen.append(e.key))
    late = add(flaky, ChangeKind.CONFIG_TOKEN, "late")
    never = add(flaky, ChangeKind.CONFIG_TOKEN, "rolled-back")
    add(flaky, ChangeKind.CONFIG_TOKEN, "early")
    flaky.hidden = {late, never}
    await feed.poll()
    assert seen == ["early"] and set(feed.holes) == {late, never}
    flaky.hidden = {never}
    clock.now += 30
    await feed.poll()
    assert seen == ["early", "late"] and set(feed.holes) == {never}
    clock.now += 31  # past the hole timeout
    await feed.poll()
    assert feed.holes == {}


async def test_writes_in_flight_at_start_are_holes_from_the_start(flaky: FlakyLog, clock: Clock) -> None:
    in_flight = add(flaky, ChangeKind.SESSION, "in-flight")
    add(flaky, ChangeKind.SESSION, "committed")
    flaky.hidden = {in_flight}
    feed = ChangeFeed(flaky, monotonic=clock)
    await feed.start()
    seen: list[str] = []
    feed.on(ChangeKind.SESSION, lambda e: seen.append(e.key))
    assert set(feed.holes) == {in_flight}
    flaky.hidden = set()
    await feed.poll()
    assert seen == ["in-flight"]


async def test_fail_closed_after_max_lag_without_a_read_and_fresh_again_after_one(
    feed: ChangeFeed, flaky: FlakyLog, clock: Clock
) -> None:
    initial = feed.stale_reason
    assert feed.fresh() and initial is None
    feed.check_fresh()
    flaky.down = True
    assert await feed.poll() == -1
    clock.now += 4.9
    assert feed.fresh()  # within max_lag of the last good read
    clock.now += 0.2
    assert not feed.fresh()
    with pytest.raises(StorageError) as caught:
        feed.check_fresh()
    assert caught.value.error_code == "changes_stale" and caught.value.status == 503
    reason = feed.stale_reason
    assert reason is not None and reason.startswith("changes_stale:") and "storage_unavailable" in reason
    seen: list[str] = []
    feed.on(ChangeKind.APP_TOKEN, lambda e: seen.append(e.key))
    add(flaky, ChangeKind.APP_TOKEN, "revoked-meanwhile")
    flaky.down = False
    resets: list[bool] = []
    feed.on_reset(lambda: resets.append(True))
    assert await feed.poll() == 1
    assert feed.fresh() and seen == ["revoked-meanwhile"] and resets == []  # a short outage: caught up


async def test_a_read_that_never_answers_is_abandoned_and_the_next_poll_reads_again(
    flaky: FlakyLog, clock: Clock
) -> None:
    # A pooled connection the network silently lost (packets dropped, state forgotten by a firewall) never
    # answers: TCP gives up only after many minutes. The feed must not wait for it, or the instance stays
    # stale (503 changes_stale) long after the database is back.
    feed = ChangeFeed(flaky, max_lag=5.0, read_timeout=0.05, monotonic=clock)
    await feed.start()
    seen: list[str] = []
    feed.on(ChangeKind.APP_TOKEN, lambda e: seen.append(e.key))
    add(flaky, ChangeKind.APP_TOKEN, "revoked-meanwhile")
    flaky.hanging = 1
    async with asyncio.timeout(30):  # bounds the test if the feed waits for the read (the bug)
        assert await feed.poll() == -1
    assert flaky.abandoned == 1 and seen == []
    clock.now += 6
    reason = feed.stale_reason
    assert reason is not None and "no answer within 0.05 s" in reason
    assert await feed.poll() == 1  # the next read (another connection) answers
    assert seen == ["revoked-meanwhile"] and feed.fresh()


async def test_a_read_the_busy_loop_delays_is_waited_for_not_abandoned(
    flaky: FlakyLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # The database answered; the answer waited for a loop busy with requests (each driver round trip needs a turn).
    # Counting that wait as the database's abandoned the read, dropped its connection, and a new connection needs
    # four times the turns: on a saturated loop the feed never read again (503 changes_stale, the database healthy).
    feed = ChangeFeed(flaky, max_lag=5.0, read_timeout=0.1, monotonic=clock)
    await feed.start()
    seen: list[str] = []
    feed.on(ChangeKind.APP_TOKEN, lambda e: seen.append(e.key))
    add(flaky, ChangeKind.APP_TOKEN, "revoked-meanwhile")
    flaky.turns = 30  # 30 turns of 20 ms: 0.6 s of wall time, six times the read timeout, all of it the loop's
    with caplog.at_level(logging.WARNING, logger="tokenward.changes"):
        async with busy_loop(0.02):
            assert await feed.poll() == 1
    assert flaky.abandoned == 0 and seen == ["revoked-meanwhile"]
    assert "cannot read the change log" not in caplog.text


async def test_a_read_that_never_answers_is_abandoned_on_a_busy_loop_too(flaky: FlakyLog, clock: Clock) -> None:
    # The loop's time counts apart, not never: a lost connection is still given up, after its share of turns.
    feed = ChangeFeed(flaky, max_lag=5.0, read_timeout=0.05, monotonic=clock)
    await feed.start()
    flaky.hanging = 1
    async with busy_loop(0.002), asyncio.timeout(30):  # bounds the test if the read is never abandoned (a bug)
        assert await feed.poll() == -1
    assert flaky.abandoned == 1
    assert await feed.poll() == 0


async def test_an_outage_longer_than_half_the_retention_resets_memory(
    feed: ChangeFeed, flaky: FlakyLog, clock: Clock
) -> None:
    resets: list[bool] = []
    feed.on_reset(lambda: resets.append(True))
    flaky.down = True
    await feed.poll()
    clock.now += 1801
    flaky.down = False
    await feed.poll()
    assert resets == [True] and feed.resets == 1 and feed.fresh()


async def test_a_poll_during_prunes_head_read_is_not_taken_for_a_log_gone_backwards(
    feed: ChangeFeed, flaky: FlakyLog
) -> None:
    # prune() reads the head without the poll lock; a poll that applies newer entries meanwhile must not
    # make that (older) head look behind the position: a false reset drops every credential in memory.
    class SlowHead(ChangeLog):
        def __init__(self) -> None:
            self.entered = asyncio.Event()
            self.release = asyncio.Event()

        async def read(self, after: int, *, also: Collection[int] = (), limit: int = 1000) -> list[ChangeEntry]:
            return await flaky.read(after, also=also, limit=limit)

        async def head(self) -> int:
            head = await flaky.head()
            self.entered.set()
            await self.release.wait()  # the answer is on its way back while the poll runs
            return head

        async def prune(self, before: datetime) -> int:
            return await flaky.prune(before)

    slow = SlowHead()
    feed.log = slow
    resets: list[bool] = []
    feed.on_reset(lambda: resets.append(True))
    pruning = asyncio.ensure_future(feed.prune())
    await asyncio.wait_for(slow.entered.wait(), 30)
    newest = add(flaky, ChangeKind.APP_TOKEN, "created-meanwhile")
    assert await feed.poll() == 1 and feed.position == newest
    slow.release.set()
    await asyncio.wait_for(pruning, 30)
    assert resets == [] and feed.resets == 0 and feed.position == newest


async def test_a_log_behind_our_position_resets_and_follows_the_new_log(feed: ChangeFeed, flaky: FlakyLog) -> None:
    for key in ("a", "b", "c"):
        add(flaky, ChangeKind.SESSION, key)
    await feed.poll()
    resets: list[bool] = []
    feed.on_reset(lambda: resets.append(True))
    flaky.inner = InMemoryChangeLog()  # a database restored from a backup taken before those entries
    add(flaky, ChangeKind.SESSION, "after-restore")
    await feed.prune()
    assert resets == [True] and feed.position == 1
    seen: list[str] = []
    feed.on(ChangeKind.SESSION, lambda e: seen.append(e.key))
    add(flaky, ChangeKind.SESSION, "next")
    await feed.poll()
    assert seen == ["next"]


async def test_a_feed_that_does_not_follow_is_fresh_and_announce_survives_a_failed_publish(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    feed = ChangeFeed(InMemoryChangeLog(), monotonic=clock)
    clock.now += 10_000
    assert feed.fresh() and feed.lag == 0.0  # a CLI command: it writes, it never answers from memory

    async def publish() -> None:
        raise StorageUnavailable("Redis is unreachable")

    feed.publish = publish
    with caplog.at_level(logging.WARNING, logger="tokenward.changes"):
        await feed.announce()
    assert "change wake-up not published" in caplog.text


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        ChangeFeed(InMemoryChangeLog(), poll_interval=0)
    with pytest.raises(ValueError, match="must be > 0"):
        ChangeFeed(InMemoryChangeLog(), read_timeout=0)


async def test_stop_lets_a_read_in_progress_finish_instead_of_cutting_it_off() -> None:
    # A query cancelled mid-way leaves its connection unreturned (MariaDB warned of an unclosed connection).
    slow = SlowLog()
    slow.release.set()
    feed = ChangeFeed(slow, poll_interval=0.01)
    await feed.start()
    slow.release.clear()
    slow.reading.clear()
    feed.run_in_background()
    await asyncio.wait_for(slow.reading.wait(), 30)
    stopping = asyncio.ensure_future(feed.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # waiting for the read, not cancelling it
    slow.release.set()
    await asyncio.wait_for(stopping, 30)
    assert slow.finished >= 2  # the start's read and the one in progress, both completed


async def test_the_poll_interval_counts_from_the_start_of_a_read_so_a_slow_read_does_not_stretch_it(
    clock: Clock,
) -> None:
    # "Every poll_interval" is an upper bound on the time between two reads: a read that took longer than the
    # interval is followed by the next one at once, not by a whole interval more (an hour here: the test would
    # wait for it in vain).
    slow = SlowLog()
    slow.release.set()
    feed = ChangeFeed(slow, poll_interval=3600.0, monotonic=clock)
    await feed.start()
    slow.release.clear()
    slow.reading.clear()
    feed.run_in_background()
    feed.wake()  # the first read in the background, at once
    await asyncio.wait_for(slow.reading.wait(), 30)
    reads = slow.reads
    slow.reading.clear()
    clock.now += 3601.0  # the read took longer than the interval
    slow.release.set()
    await asyncio.wait_for(slow.reading.wait(), 30)  # the next read, unwoken
    assert slow.reads == reads + 1
    await feed.stop()
