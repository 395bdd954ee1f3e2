"""Which sessions are still alive, held in memory: a known session costs no SQL (docs/sessions.md).

One entry per session id this instance has seen: its expiry while it is alive, :data:`DEAD` once it
was revoked (or its row is gone). Entries have no TTL: they change only when a revocation is applied
(:meth:`SessionMemory.revoke`: this instance's own logout, or a ``session`` entry of the change feed)
and are all dropped when the feed cannot vouch for what it missed (:meth:`SessionMemory.clear`).

At start a serving instance holds the live sessions at once (:meth:`SessionMemory.fill`, one
query), and a session it issues is held as it is made. A session id that is not held is read from
the store once: concurrent requests for it share that
one read. A revocation that arrives while the read is in flight wins (the read may predate the
revocation's commit): the waiting requests are refused and the session is held as dead. A
:meth:`~SessionMemory.clear` during a read keeps its answer out of memory. The number of entries is
bounded (``max_entries``, from ``TOKENWARD_SESSIONS_MEMORY_MB`` / :data:`ENTRY_BYTES`); beyond it
the oldest entries are dropped, and read again when next used. At most ``max_reads`` reads run at
once (:data:`MAX_READS`): a burst of sessions not yet held (a restart under traffic) must not take
every pooled connection from the change feed's poll and the writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tokenward.storage.identity import SessionRecord

__all__ = ["DEAD", "ENTRY_BYTES", "MAX_READS", "SessionMemory", "entries_for"]

#: What a revoked (or unknown) session is held as; a live one holds its expiry (Unix seconds, > 0).
DEAD = 0.0
#: Memory one entry costs (22-character id string, its float and its dict slot), measured with
#: tracemalloc over 100,000 entries (tests/identity/test_session_memory.py checks the figure).
ENTRY_BYTES = 200
#: Session reads in flight at most (the SQL pool holds 5 + 10 overflow connections).
MAX_READS = 8


def entries_for(megabytes: float) -> int:
    """How many sessions a budget of ``megabytes`` holds (at least one)."""
    return max(1, int(megabytes * 1024 * 1024 // ENTRY_BYTES))


class SessionMemory:
    """Session id → expiry (alive) or :data:`DEAD`, filled lazily from ``read``."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[SessionRecord | None]],
        *,
        max_entries: int,
        max_reads: int = MAX_READS,
    ) -> None:
        if max_entries < 1 or max_reads < 1:
            raise ValueError("max_entries and max_reads must be at least 1")
        self._read = read
        self.max_entries = max_entries
        self._held: dict[str, float] = {}
        self._loading: dict[str, asyncio.Future[float]] = {}
        self._revoked_while_loading: set[str] = set()
        self._epoch = 0  # bumped by clear(): a read started before it is not kept
        self._reads = asyncio.Semaphore(max_reads)
        self._revoked_while_filling: set[str] | None = None

    def __len__(self) -> int:
        return len(self._held)

    def held(self, session_id: str) -> float | None:
        """The hot path, no await: the expiry of a live session, :data:`DEAD`, or None when not held."""
        return self._held.get(session_id)

    async def alive(self, session_id: str, *, now: float) -> bool:
        """True when the session is neither revoked nor expired; reads the store only if it is not held."""
        until = self._held.get(session_id)
        if until is None:
            until = await self.load(session_id)
        return now < until

    async def load(self, session_id: str) -> float:
        """Read one session (shared by concurrent callers) and hold the answer; its expiry or :data:`DEAD`."""
        pending = self._loading.get(session_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(session_id, self._epoch))
            self._loading[session_id] = pending
            pending.add_done_callback(lambda done: self._loaded(session_id, done))
        # shield: a caller that goes away must not cancel the read the others wait for.
        return await asyncio.shield(pending)

    async def _load(self, session_id: str, epoch: int) -> float:
        async with self._reads:
            record = await self._read(session_id)
        until = DEAD if record is None or record.revoked_at is not None else record.expires_at
        if session_id in self._revoked_while_loading:
            until = DEAD  # the revocation may have committed after the row was read: it wins
        if epoch == self._epoch:
            self._hold(session_id, until)
        return until

    def _loaded(self, session_id: str, done: asyncio.Future[float]) -> None:
        self._loading.pop(session_id, None)
        self._revoked_while_loading.discard(session_id)
        if not done.cancelled():
            done.exception()  # retrieved here, so an error nobody awaited is not logged as lost

    def _hold(self, session_id: str, until: float) -> None:
        held = self._held
        held.pop(session_id, None)
        while len(held) >= self.max_entries:
            del held[next(iter(held))]  # the oldest entry; it is read again when next used
        held[session_id] = until

    def hold(self, session_id: str, expires_at: float) -> None:
        """A session just issued here: alive, no need to read it."""
        self._hold(session_id, expires_at)

    async def fill(self, read: Callable[[], Awaitable[list[tuple[str, float]]]]) -> int:
        """Hold the live sessions ``read`` returns (at start, after the change feed started), up to the bound;
        how many. A revocation applied while the read is in flight wins, and so does anything held meanwhile."""
        epoch = self._epoch
        self._revoked_while_filling = set()
        try:
            rows = await read()
        finally:
            revoked, self._revoked_while_filling = self._revoked_while_filling, None
        if epoch != self._epoch:
            return 0
        held, count = self._held, 0
        for session_id, until in rows:
            if len(held) >= self.max_entries:
                break
            if session_id not in held:
                held[session_id] = DEAD if session_id in revoked else until
                count += 1
        return count

    def revoke(self, session_id: str) -> None:
        """The session was revoked (here, or a ``session`` change from the feed): refuse it from now on."""
        if session_id in self._held:
            self._held[session_id] = DEAD
        if session_id in self._loading:
            self._revoked_while_loading.add(session_id)
        if self._revoked_while_filling is not None:
            self._revoked_while_filling.add(session_id)

    def clear(self) -> None:
        """Forget everything (the feed was reset); reads in flight are not kept."""
        self._held.clear()
        self._epoch += 1
