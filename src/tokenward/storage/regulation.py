"""Brute-force regulation state shared by every instance: failed attempts and bans.

Append-only tables (no upserts): ``auth_failures`` holds one row
per failed credential check and key (``user:<name>`` or ``ip:<address>``); ``auth_bans`` one
row per ban. Old rows are purged by :meth:`RegulationStore.purge`. The decisions (how many
failures make a ban, how long it lasts) live in :mod:`tokenward.apptokens.regulation`.

Writes come in batches: a regulator queues its failures and bans and flushes them once a second
(:meth:`RegulationStore.record_failure_columns`, :meth:`RegulationStore.add_bans`): the SQL store turns a
batch into statements in autocommit mode: one that inserts every row and counts their keys (PostgreSQL), or an
INSERT and a grouped count (SQLite; MariaDB: per :data:`BATCH_ROWS` keys); Redis into one pipeline.
"""

from __future__ import annotations

import builtins
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Index, String, and_, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.errors import StorageError

from .changes import Change, ChangeKind, InMemoryChangeLog, write_changes
from .database import Database
from .jsonrows import json_rows
from .models import Base
from .types import ID, SQLITE_TIME, UTCDateTime

__all__ = [
    "BATCH_ROWS",
    "KEY_LEN",
    "AuthBanRow",
    "AuthFailureRow",
    "FallbackRegulationStore",
    "InMemoryRegulationStore",
    "RegulationStore",
    "SqlRegulationStore",
    "batch_counts",
]

KEY_LEN = 400
#: Keys per grouped count on MariaDB (an IN list): large, so that a flood of failures from many addresses (three
#: keys each) stays one count a second, below its drivers' parameter limits. PostgreSQL and SQLite take the whole
#: batch as one JSON document (``json_array_elements``, ``json_each``), any number of rows; MariaDB one executemany.
BATCH_ROWS = 30_000

log = logging.getLogger("tokenward.regulation")
_T = TypeVar("_T")
_R = TypeVar("_R")


class AuthFailureRow(Base):
    __tablename__ = "auth_failures"
    __table_args__ = (
        # No index on ``at`` alone (migration 0010): it cost every failure row one more B-tree insert for the sake of
        # the once-a-minute purge, which goes by id instead (SqlRegulationStore.purge).
        Index("ix_auth_failures_key_at", "key", "at"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class AuthBanRow(Base):
    __tablename__ = "auth_bans"
    __table_args__ = (
        Index("ix_auth_bans_until", "until"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    until: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


#: PostgreSQL: the batch (one JSON document) inserted and its keys counted in one statement. The main query does
#: not see the rows its own WITH inserts (one snapshot): it adds the batch's counts to the table's, for the keys
#: the table has rows of in the window (the others' count is the batch's own). The keys are joined, not matched
#: with ``= ANY(array)``: a sequential scan tests every row against the whole array (a second a flush at 1,000
#: failures a second).
_PG_FAILURES = text(
    "WITH new AS (SELECT e->>0 AS k, to_timestamp((e->>1)::bigint / 1000000.0) AS at"
    " FROM json_array_elements(CAST(:rows AS JSON)) AS e),"
    " ins AS (INSERT INTO auth_failures (key, at) SELECT k, at FROM new)"
    " SELECT f.key, count(*) + b.n FROM auth_failures AS f"
    " JOIN (SELECT k, count(*) FILTER (WHERE at >= :since) AS n FROM new GROUP BY k) AS b ON f.key = b.k"
    " WHERE f.at >= :since GROUP BY f.key, b.n"
).bindparams(bindparam("since", type_=UTCDateTime()))
#: SQLite: an INSERT, then a count of the keys with rows beyond the batch's in the window. (One statement,
#: INSERT … RETURNING a count per row, is quadratic: SQLite evaluates a RETURNING subquery correlated with the new
#: row by scanning the index, not by searching it.)
_SQLITE_FAILURES = text(
    f"INSERT INTO auth_failures (key, at) SELECT key, {SQLITE_TIME} FROM ("
    "SELECT json_extract(value, '$[0]') AS key, json_extract(value, '$[1]') AS us "
    "FROM json_each(:rows))"
)
_SQLITE_COUNTS = text(
    "SELECT f.key, count(*) FROM auth_failures AS f JOIN (SELECT json_extract(value, '$[0]') AS key,"
    " sum(json_extract(value, '$[1]') >= :since_us) AS n FROM json_each(:rows) GROUP BY 1) AS b ON f.key = b.key"
    " WHERE f.at >= :since GROUP BY f.key HAVING count(*) != max(b.n)"
).bindparams(bindparam("since", type_=UTCDateTime()))


class RegulationStore(ABC):
    """Failures and bans, keyed by strings of at most :data:`KEY_LEN` characters."""

    @abstractmethod
    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        """Add one failure per ``(key, at)``; return each of their keys' failure count since ``since``
        (every instance's, this batch included)."""

    async def record_failure_columns(
        self, keys: Sequence[str], ats: Sequence[float], *, since: float
    ) -> dict[str, int]:
        """:meth:`record_failures` for a batch given as two columns, the keys and their times in Unix seconds
        (what a regulator queues): the SQL store writes it with no object per row. A store may leave out a key
        whose count is this batch's own rows of it in the window (:func:`batch_counts`), nothing beyond: what a
        flood from new addresses sends is mostly such keys, and the caller then has no row to handle for them."""
        return await self.record_failures([(key, _dt(at)) for key, at in zip(keys, ats, strict=True)], since=_dt(since))

    async def record_failure(self, keys: Sequence[str], at: datetime, *, since: datetime) -> dict[str, int]:
        """Add one failure per key at ``at``; return each key's failure count in ``[since, at]``."""
        return await self.record_failures([(key, at) for key in keys], since=since)

    @abstractmethod
    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        """Ban each ``(key, until)`` (a shorter ban never shortens a longer one)."""

    async def add_ban(self, key: str, at: datetime, until: datetime) -> None:
        """Ban ``key`` until ``until``."""
        await self.add_bans([(key, until)], at)

    @abstractmethod
    async def active_bans(self, now: datetime) -> dict[str, datetime]:
        """Every key banned at ``now`` with the end of its longest ban."""

    @abstractmethod
    async def purge(self, *, failures_before: datetime, bans_before: datetime) -> None:
        """Delete failures older than ``failures_before`` and bans that ended before ``bans_before``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class InMemoryRegulationStore(RegulationStore):
    """Lists; ``changes`` (optional) gets a BAN entry per ban, where the SQL store writes one."""

    def __init__(self, changes: InMemoryChangeLog | None = None) -> None:
        self._failures: builtins.list[tuple[str, datetime]] = []
        self._bans: builtins.list[tuple[str, datetime]] = []
        self._changes = changes

    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        self._failures.extend(failures)
        keys = dict.fromkeys(key for key, _ in failures)
        return {key: sum(1 for k, t in self._failures if k == key and t >= since) for key in keys}

    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        self._bans.extend(bans)
        if self._changes is not None:
            self._changes.append(_ban_changes(bans), at)

    async def active_bans(self, now: datetime) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for key, until in self._bans:
            if until > now and (key not in found or until > found[key]):
                found[key] = until
        return found

    async def purge(self, *, failures_before: datetime, bans_before: datetime) -> None:
        self._failures = [(k, t) for k, t in self._failures if t >= failures_before]
        self._bans = [(k, u) for k, u in self._bans if u >= bans_before]


class SqlRegulationStore(RegulationStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        keys, ats = [key for key, _ in failures], [at.timestamp() for _, at in failures]
        counts = await self.record_failure_columns(keys, ats, since=since.timestamp())
        return {**batch_counts(keys, ats, since.timestamp()), **counts}

    async def record_failure_columns(
        self, keys: Sequence[str], ats: Sequence[float], *, since: float
    ) -> dict[str, int]:
        """In autocommit mode (no COMMIT round trip): on PostgreSQL the rows inserted and their keys counted in one
        statement; elsewhere an INSERT and a grouped count (per :data:`BATCH_ROWS` keys on MariaDB), each its own
        statement: the count sees the rows whether or not the two share a transaction.

        The rows go as one JSON document (PostgreSQL: ``json_array_elements``; SQLite: ``json_each``), so
        building a batch of 20,000 costs the event loop a few milliseconds, not the hundreds SQLAlchemy's per-row
        parameter processing took; MariaDB keeps one executemany. PostgreSQL and SQLite answer only the keys with
        rows beyond this batch's in the window (a flood of new addresses: none).
        """
        if not keys:
            return {}
        since_at = _dt(since)
        counts: dict[str, int] = {}
        async with self._db.autocommit() as conn:
            dialect = self._db.dialect
            if dialect in ("postgresql", "sqlite"):
                # One JSON document (psycopg adapting two arrays element by element held the loop ~25 ms for
                # 10,000 rows); whole microseconds: JSON writes an int several times faster than a float's repr.
                # Encoded a slice at a time with the event loop free between slices (jsonrows).
                batch = await json_rows(zip(keys, (round(at * 1_000_000) for at in ats), strict=True))
            if dialect == "postgresql":
                rows = await conn.execute(_PG_FAILURES, {"rows": batch, "since": since_at})
                counts.update(rows.all())
            elif dialect == "sqlite":
                await conn.execute(_SQLITE_FAILURES, {"rows": batch})
                rows = await conn.execute(
                    _SQLITE_COUNTS, {"rows": batch, "since": since_at, "since_us": round(since * 1_000_000)}
                )
                counts.update(rows.all())
            else:  # one executemany (a multi-row INSERT on MariaDB), then a count per chunk of keys
                await conn.execute(
                    insert(AuthFailureRow), [{"key": key, "at": _dt(at)} for key, at in zip(keys, ats, strict=True)]
                )
                for chunk in _chunks(builtins.list(dict.fromkeys(keys))):
                    query = (
                        select(AuthFailureRow.key, func.count())
                        .where(AuthFailureRow.key.in_(chunk), AuthFailureRow.at >= since_at)
                        .group_by(AuthFailureRow.key)
                    )
                    counts.update((await conn.execute(query)).all())
        return {key: int(count) for key, count in counts.items()}

    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        """The bans and their BAN change-log entries, in one transaction (every instance's feed applies them)."""
        if not bans:
            return
        async with self._db.session() as session:
            conn = await session.connection()
            await conn.execute(insert(AuthBanRow), [{"key": key, "at": at, "until": until} for key, until in bans])
            await write_changes(conn, _ban_changes(bans), at)

    async def active_bans(self, now: datetime) -> dict[str, datetime]:
        query = (
            select(AuthBanRow.key, func.max(AuthBanRow.until)).where(AuthBanRow.until > now).group_by(AuthBanRow.key)
        )
        async with self._db.session() as session:
            return {key: until for key, until in (await session.execute(query)).all()}

    async def purge(self, *, failures_before: datetime, bans_before: datetime) -> None:
        """Old failures found by id, with no index on ``at``: those before the first row (in id order) still in the
        window. Finding it reads the rows to delete, in primary-key order, and no more. A row written late with an
        older time (another instance's clock) waits for a later purge and counts nothing meanwhile (every count
        reads ``at``); the delete tests ``at`` too, so a row another instance commits meanwhile is never lost."""
        first_kept = (
            select(AuthFailureRow.id).where(AuthFailureRow.at >= failures_before).order_by(AuthFailureRow.id).limit(1)
        )
        async with self._db.session() as session:
            boundary = (await session.execute(first_kept)).scalar_one_or_none()
            old = AuthFailureRow.at < failures_before
            if boundary is not None:  # else nothing is in the window: every row is read, and every row is old
                old = and_(AuthFailureRow.id < boundary, old)
            await session.execute(delete(AuthFailureRow).where(old))
            await session.execute(delete(AuthBanRow).where(AuthBanRow.until < bans_before))


class FallbackRegulationStore(RegulationStore):
    """A primary store (Redis) while it answers, the fallback (SQL) while it does not.

    Regulation never goes silently off when the shared fast store is down (docs/regulation.md):
    failures and bans go to the fallback, ``degraded_reason`` says so (``/readyz`` reports
    ``status: degraded``, ``degraded.regulation``), and the primary is tried again every
    ``retry_seconds``. Bans written to the fallback are merged into :meth:`active_bans` until the
    last of them ends, so a ban made while Redis was down outlives Redis's return.
    """

    def __init__(
        self,
        primary: RegulationStore,
        fallback: RegulationStore,
        *,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_seconds = retry_seconds
        self.clock = clock
        #: The primary's error code while the fallback is in use (``redis_unavailable``), else None.
        self.degraded_reason: str | None = None
        self._retry_at = -math.inf
        self._fallback_bans_until: datetime | None = None

    async def _use(self, op: Callable[[RegulationStore], Awaitable[_T]]) -> _T:
        now = self.clock()
        if self.degraded_reason is None or now >= self._retry_at:
            try:
                result = await op(self.primary)
            except StorageError as exc:
                if self.degraded_reason is None:
                    log.error(
                        "regulation store unavailable (%s): counting in the database until it is back", exc.detail
                    )
                self.degraded_reason = exc.error_code
                self._retry_at = now + self.retry_seconds
            else:
                if self.degraded_reason is not None:
                    log.warning("regulation store is back; leaving the database fallback")
                    self.degraded_reason = None
                return result
        return await op(self.fallback)

    async def probe(self, now: datetime) -> None:
        """Ask the primary once now (``/readyz``), so ``degraded_reason`` is current without traffic."""
        self._retry_at = -math.inf
        await self._use(lambda store: store.active_bans(now))

    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        return await self._use(lambda store: store.record_failures(failures, since=since))

    async def record_failure_columns(
        self, keys: Sequence[str], ats: Sequence[float], *, since: float
    ) -> dict[str, int]:
        return await self._use(lambda store: store.record_failure_columns(keys, ats, since=since))

    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        if not bans:
            return
        await self._use(lambda store: store.add_bans(bans, at))
        until = max(until for _, until in bans)
        if self.degraded_reason is not None and (
            self._fallback_bans_until is None or until > self._fallback_bans_until
        ):
            self._fallback_bans_until = until

    async def active_bans(self, now: datetime) -> dict[str, datetime]:
        bans = await self._use(lambda store: store.active_bans(now))
        if self.degraded_reason is None and self._fallback_bans_until is not None:
            if now >= self._fallback_bans_until:
                self._fallback_bans_until = None
            else:
                for key, until in (await self.fallback.active_bans(now)).items():
                    if key not in bans or until > bans[key]:
                        bans[key] = until
        return bans

    async def purge(self, *, failures_before: datetime, bans_before: datetime) -> None:
        await self._use(lambda store: store.purge(failures_before=failures_before, bans_before=bans_before))

    async def close(self) -> None:
        await self.primary.close()
        await self.fallback.close()


def _chunks(rows: Sequence[_R]) -> Iterator[Sequence[_R]]:
    for start in range(0, len(rows), BATCH_ROWS):
        yield rows[start : start + BATCH_ROWS]


def _ban_changes(bans: Sequence[tuple[str, datetime]]) -> builtins.list[Change]:
    return [Change(ChangeKind.BAN, key, until=until) for key, until in bans]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def batch_counts(keys: Sequence[str], ats: Sequence[float], since: float) -> dict[str, int]:
    """Each key's rows in a batch at or after ``since``: its count where the store has none beyond them."""
    counts = dict.fromkeys(keys, 0)
    for key, at in zip(keys, ats, strict=True):
        if at >= since:
            counts[key] += 1
    return counts
