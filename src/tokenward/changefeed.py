"""The change feed: each instance follows the change log and keeps what it holds in memory true.

App tokens, sessions, config-token revocations and bans are answered from memory (no SQL on the
request). A writer logs each change in the change's own transaction
(:func:`tokenward.storage.changes.write_changes`); :class:`ChangeFeed` reads the entries after the
last ``seq`` it applied — one indexed query every ``poll_interval`` (0.25 s) per instance, however
many credentials exist — and hands each to the handlers registered for its kind. With Redis
(``TOKENWARD_REDIS_URL``) a writer also publishes a wake-up, so the others read at once instead of
at their next poll; SQL stays the truth and polling goes on underneath.

Fail closed: an instance that has not read the log successfully for ``max_lag`` seconds (database
unreachable, the feed stuck) can no longer vouch that a credential was not revoked elsewhere.
:meth:`ChangeFeed.fresh` turns false, the services refuse what they would answer from memory with
503 ``changes_stale`` (:meth:`ChangeFeed.check_fresh`), and ``/readyz`` says why. On PostgreSQL and
MariaDB a read that does not answer within ``read_timeout`` (5 s) is abandoned, its connection with it:
a connection the network silently lost would otherwise hold the feed for the many minutes TCP takes to
give up. That timeout counts the database's time, not the event loop's: a turn of the loop counts at
most ``read_timeout / 100``, so a loop saturated by requests (or held by a long callback), which delays
every driver round trip, stretches the wait instead of abandoning a read the database answered — and a
new connection costs several times the round trips of a read, so abandoned reads fed on themselves and
kept a healthy instance stale. SQLite reads are never abandoned: there is no network to lose a
connection, a WAL read does not wait for the write lock, and its driver cannot cut a query short. When it
reads again it applies what it missed; after an outage too long for the log to still hold everything
(half the retention), or when the log went backwards (a restored database), it tells the services
to drop their memory (:meth:`ChangeFeed.on_reset`) and refill it.

Gaps: PostgreSQL and MariaDB can make seq 11 visible before seq 10 (two transactions committing out of
order). The seqs skipped are kept as holes and asked for again with every read until they appear or
are ``hole_timeout`` seconds old (a rolled-back insert leaves a hole that never fills).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageError, StorageUnavailable
from tokenward.storage.changes import ChangeEntry, ChangeKind, ChangeLog

__all__ = ["ChangeFeed"]

log = logging.getLogger("tokenward.changes")

#: Catch-up reads in one poll before yielding to the event loop (each reads ``batch`` entries).
_CATCH_UP_READS = 50
#: Holes kept at most; beyond it the oldest are given up (a flood of rollbacks must not grow memory).
_MAX_HOLES = 1000
#: At start, the newest seqs below the head that are checked for writes still in flight (not yet committed).
_START_WINDOW = 100
_PRUNE_EVERY = 60.0
#: The loop turns a read is given at least before it is abandoned: each counts at most ``read_timeout`` / this.
_DEADLINE_TURNS = 100
#: Seconds :meth:`ChangeFeed.stop` waits for a read or prune in progress before cancelling it.
_STOP_SECONDS = 10.0

Handler = Callable[[ChangeEntry], None]


class ChangeFeed:
    """Follows one :class:`ChangeLog`; ``monotonic`` times staleness and holes, ``clock`` (Unix) pruning."""

    def __init__(
        self,
        log: ChangeLog,
        *,
        poll_interval: float = 0.25,
        max_lag: float = 10.0,
        retention: float = 3600.0,
        hole_timeout: float = 60.0,
        read_timeout: float = 5.0,
        batch: int = 1000,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if min(poll_interval, max_lag, retention, hole_timeout, read_timeout) <= 0 or batch < 1:
            raise ValueError("poll_interval, max_lag, retention, hole_timeout and read_timeout must be > 0, batch >= 1")
        self.log = log
        self.poll_interval = poll_interval
        self.max_lag = max_lag
        self.retention = retention
        self.hole_timeout = hole_timeout
        #: A read the database has not answered within this is abandoned (and its connection with it) and counts as
        #: failed; the event loop's own delays count apart (:meth:`_deadline`). Not for a log that is not
        #: :attr:`~tokenward.storage.changes.ChangeLog.networked` (SQLite).
        self.read_timeout = read_timeout
        self.batch = batch
        self.monotonic = monotonic
        self.clock = clock
        #: The highest seq applied; entries at or below it are applied, except the :attr:`holes`.
        self.position = 0
        #: seq → monotonic time it was first seen missing.
        self.holes: dict[int, float] = {}
        #: Whether :meth:`start` ran: a feed that does not follow (CLI commands, unit tests) is always fresh.
        self.following = False
        #: Entries applied since start, and resets (for /metrics and tests).
        self.applied = 0
        self.resets = 0
        #: Called after a committed write to wake the other instances (Redis publish); set by the runtime.
        self.publish: Callable[[], Awaitable[None]] | None = None
        self._handlers: dict[str, list[Handler]] = {}
        self._reset_handlers: list[Callable[[], None]] = []
        self._ok_at = -math.inf
        self._error: str | None = None
        self._pruned_at = -math.inf
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._polling = asyncio.Lock()

    # -- subscribing ----------------------------------------------------------------------------

    def on(self, kind: ChangeKind, handler: Handler) -> None:
        """Call ``handler`` (synchronously, in seq order) for every entry of ``kind`` read from now on."""
        self._handlers.setdefault(kind.value, []).append(handler)

    def on_reset(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` when the feed cannot vouch for what it missed: drop what memory holds, refill it."""
        self._reset_handlers.append(handler)

    # -- freshness (the hot path) ---------------------------------------------------------------

    def fresh(self) -> bool:
        """Whether memory may be trusted: a read succeeded within ``max_lag`` (always, when not following)."""
        return not self.following or self.monotonic() - self._ok_at <= self.max_lag

    def check_fresh(self) -> None:
        """Raise 503 ``changes_stale`` unless :meth:`fresh`."""
        if not self.fresh():
            raise StorageUnavailable(
                f"this instance has not read the change log for over {self.max_lag:g} s, so it cannot vouch "
                "that a credential was not revoked on another instance; it refuses until the database answers "
                "again (see /readyz)",
                code=ErrorCode.CHANGES_STALE,
            )

    @property
    def lag(self) -> float:
        """Seconds since the last successful read started (0 when not following)."""
        return max(0.0, self.monotonic() - self._ok_at) if self.following else 0.0

    @property
    def stale_reason(self) -> str | None:
        """Why memory cannot be trusted, for /readyz; ``None`` while fresh. Never holds a secret."""
        if self.fresh():
            return None
        cause = self._error or "the reads are not keeping up"
        return f"{ErrorCode.CHANGES_STALE}: no successful read of the change log for {self.lag:.1f} s ({cause})"

    # -- following ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start from the log's head. Call it before loading anything into memory, so nothing falls between."""
        started = self.monotonic()
        head = await self.log.head()
        # A write that drew its seq before the head's but has not committed yet would be skipped for good:
        # the missing seqs just below the head are holes from the start.
        low = max(0, head - _START_WINDOW)
        present = {e.seq for e in await self.log.read(low, limit=_START_WINDOW) if e.seq <= head}
        self.position = head
        self.holes = {seq: started for seq in range(low + 1, head + 1) if seq not in present}
        self._ok_at = started
        self._pruned_at = self.clock()  # the first prune a minute after start, not on the first poll
        self.following = True

    async def poll(self) -> int:
        """Read what was logged since the last read and apply it; how many entries (-1: the read failed).

        Never raises a storage error: a failed read is logged once, and :meth:`fresh` turns false after
        ``max_lag``.
        """
        async with self._polling:
            started = self.monotonic()
            was_fresh = self.fresh()
            away = started - self._ok_at
            try:
                applied = await self._read_all(started)
            except (StorageError, TimeoutError) as exc:
                # TimeoutError: a connection the network silently lost answers nothing, and TCP takes many
                # minutes to give up on it; waiting for it would keep this instance stale (fail closed) long
                # after the database is back. Abandoned, the read's connection is dropped; the next read opens
                # another.
                error = (
                    str(exc.error_code)
                    if isinstance(exc, StorageError)
                    else f"no answer within {self.read_timeout:g} s"
                )
                if self._error is None:
                    log.warning("cannot read the change log (%s); retrying", error)
                self._error = error
                return -1
            if self._error is not None:
                log.info("reading the change log again after %.1f s", away)
                self._error = None
            self._ok_at = started
            if not was_fresh and away >= self.retention / 2:
                # The log may have been pruned past our position while we could not read it.
                self._reset(f"the change log was unreadable for {away:.0f} s")
            return applied

    async def _read_all(self, started: float) -> int:
        applied = 0
        for _ in range(_CATCH_UP_READS):
            async with self._deadline():
                entries = await self.log.read(self.position, also=tuple(self.holes), limit=self.batch)
            new = 0
            for entry in entries:
                if entry.seq <= self.position:
                    if self.holes.pop(entry.seq, None) is not None:  # a late commit: apply it now
                        self._apply(entry)
                        applied += 1
                    continue
                for missing in range(self.position + 1, entry.seq):
                    self.holes.setdefault(missing, started)
                self.position = entry.seq
                self._apply(entry)
                applied += 1
                new += 1
            self._expire_holes(started)
            if new < self.batch:
                break
        return applied

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """Abandon the block (TimeoutError) once the database has had ``read_timeout`` seconds to answer.

        Every driver round trip waits for a turn of the event loop, and a loop busy with requests or held by a
        long callback makes a read take seconds the database did not: each turn counts at most
        ``read_timeout / _DEADLINE_TURNS``, so a read is given at least that many turns, and on an idle loop the
        bound is ``read_timeout`` as before. No deadline for a log whose reads cannot hang on a lost connection.
        """
        if not self.log.networked:
            yield
            return
        loop = asyncio.get_running_loop()
        step = self.read_timeout / _DEADLINE_TURNS
        waited = 0.0
        last = loop.time()
        ticking: asyncio.TimerHandle
        async with asyncio.timeout(None) as deadline:

            def tick() -> None:
                nonlocal waited, last, ticking
                now = loop.time()
                waited += min(now - last, step)  # a turn that took longer was the loop's time, not the database's
                last = now
                if waited >= self.read_timeout:
                    deadline.reschedule(now)  # expire now: cancels the read, raises TimeoutError at the block's end
                else:
                    ticking = loop.call_later(min(step, self.read_timeout - waited), tick)

            ticking = loop.call_later(step, tick)
            try:
                yield
            finally:
                ticking.cancel()

    def _apply(self, entry: ChangeEntry) -> None:
        self.applied += 1
        for handler in self._handlers.get(entry.kind, ()):
            try:
                handler(entry)
            except Exception:  # one bad handler must not stop the feed for the others
                log.exception("change feed handler %r failed on %s %s", handler, entry.kind, entry.seq)

    def _expire_holes(self, now: float) -> None:
        if not self.holes:
            return
        for seq in [s for s, seen in self.holes.items() if now - seen > self.hole_timeout]:
            del self.holes[seq]  # a rolled-back insert (or a transaction longer than the timeout)
        while len(self.holes) > _MAX_HOLES:
            del self.holes[min(self.holes)]

    async def prune(self) -> int:
        """Delete entries past the retention; first check that the log did not go backwards. Never raises.

        Run apart from :meth:`poll` (the background loop starts it every minute as its own task): a delete
        that waits for a lock must never hold up the reads that keep memory fresh.
        """
        self._pruned_at = self.clock()
        # The position before the head is read: a poll may apply newer entries while the head's answer is on its
        # way, and a head older than that poll is not a log gone backwards. Every seq applied before the read
        # is still at or below the head (prune keeps the newest row), unless the database was replaced.
        position = self.position
        try:
            async with self._deadline():  # a lost connection must not stop pruning for good
                head = await self.log.head()
            if head < position:  # the log went backwards: a restored or replaced database
                async with self._polling:
                    self._reset(f"the change log's head {head} is behind this instance's position {self.position}")
                    self.position = head
                    self.holes.clear()
                return 0
            return await self.log.prune(datetime.fromtimestamp(self.clock() - self.retention, UTC))
        except (StorageError, TimeoutError) as exc:
            log.warning("cannot prune the change log (%s)", getattr(exc, "error_code", "no answer"))
            return 0

    def _reset(self, why: str) -> None:
        self.resets += 1
        log.warning("change feed reset: %s; dropping the credentials held in memory", why)
        for handler in self._reset_handlers:
            try:
                handler()
            except Exception:
                log.exception("change feed reset handler %r failed", handler)

    # -- waking up ------------------------------------------------------------------------------

    def wake(self) -> None:
        """Read now rather than at the next poll (a wake-up from Redis, or this instance's own write)."""
        if self._wake is not None:
            self._wake.set()

    async def announce(self) -> None:
        """After a committed change: read it here soon and wake the other instances (never raises)."""
        self.wake()
        if self.publish is None:
            return
        try:
            await self.publish()
        except StorageError as exc:  # they read it at their next poll instead
            log.warning("change wake-up not published (%s)", exc.error_code)

    def run_in_background(self) -> asyncio.Task[None]:
        """Poll every ``poll_interval`` (or when woken) in the running loop until :meth:`stop`."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tokenward-change-feed")
        return self._task

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        pruning: asyncio.Task[int] | None = None
        started = self.monotonic()
        while True:
            # Every poll_interval from the start of the last read, not from its end: a read that took a while (a
            # slow database, a busy loop) does not stretch the interval, so "every poll_interval" is an upper bound.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, started + self.poll_interval - self.monotonic())):
                    await wake.wait()
            wake.clear()
            if self._stopping:
                break
            started = self.monotonic()
            try:
                await self.poll()
            except Exception:  # the follower must survive anything; fresh() reports the consequence
                log.exception("change feed poll failed")
            if (pruning is None or pruning.done()) and self.clock() - self._pruned_at >= _PRUNE_EVERY:
                pruning = asyncio.get_running_loop().create_task(self.prune(), name="tokenward-change-prune")
        if pruning is not None:
            await pruning  # never raises; a delete cut off mid-statement would leave its connection behind

    async def stop(self) -> None:
        """Stop following: let a read in progress finish (a query cut off mid-way leaves its connection
        unreturned), within :data:`_STOP_SECONDS`; cancel after that."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self.wake()
        done, _ = await asyncio.wait({task}, timeout=_STOP_SECONDS)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled():
            task.exception()  # retrieved: nothing raised is lost on the way out
        self._stopping = False
