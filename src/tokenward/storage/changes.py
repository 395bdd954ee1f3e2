"""The change log: one row per change that other instances must hear about, in the change's own transaction.

Every instance keeps the credentials it checks in memory (app tokens, sessions, config-token
revocations, bans). What keeps that memory true is this log, not a time to live: a create, a
revocation or a ban appends a :class:`Change` with :func:`write_changes` *inside the transaction
that makes the change* (both or neither), and every instance reads the entries after the last
``seq`` it applied (:class:`tokenward.changefeed.ChangeFeed`), one indexed query per poll however
many credentials exist.

``seq`` grows with every insert, but on PostgreSQL and MariaDB transactions may commit out of
order (seq 11 visible before seq 10); the reader keeps the skipped numbers as holes and asks for
them again (``read(after, also=holes)``). A rolled-back insert leaves a hole that never fills: the
reader gives up on a hole after a timeout. SQLite uses ``AUTOINCREMENT`` so a seq is never reused,
and :meth:`ChangeLog.prune` always keeps the newest row, so no backend can hand out a seq again
after pruning.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Row, String, bindparam, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from .database import Database
from .models import SUBJECT_LEN, Base
from .translate import translate_errors
from .types import ID, UTCDateTime

__all__ = [
    "KEY_LEN",
    "Change",
    "ChangeEntry",
    "ChangeKind",
    "ChangeLog",
    "ChangeLogRow",
    "InMemoryChangeLog",
    "SqlChangeLog",
    "write_changes",
]

KEY_LEN = 400
_KIND_LEN = 16


class ChangeKind(StrEnum):
    """What changed; ``key`` names which one."""

    #: An app token was created or revoked: ``key`` is its id, ``subject`` its owner.
    APP_TOKEN = "apptoken"
    #: A session was ended (logout, an administrator): ``key`` is the session id, ``subject`` its user.
    SESSION = "session"
    #: A config token was revoked: ``key`` is its ``jti``.
    CONFIG_TOKEN = "config_token"
    #: A regulation key was banned: ``key`` is the key, ``until`` the end of the ban.
    BAN = "ban"


@dataclass(frozen=True, slots=True)
class Change:
    """What a writer records, with :func:`write_changes` or :meth:`InMemoryChangeLog.append`."""

    kind: ChangeKind
    key: str
    subject: str | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > KEY_LEN:
            raise ValueError(f"a change key must be 1-{KEY_LEN} characters")


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    """One logged change, as a reader gets it."""

    seq: int
    at: datetime
    #: A :class:`ChangeKind` value; a kind this version does not know (a newer instance wrote it) stays a string.
    kind: str
    key: str
    subject: str | None = None
    until: datetime | None = None


class ChangeLogRow(Base):
    """``change_log``: one row per change; read by ``seq``, pruned by ``at``."""

    __tablename__ = "change_log"
    __table_args__ = (
        Index("ix_change_log_at", "at"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    kind: Mapped[str] = mapped_column(String(_KIND_LEN), nullable=False)
    key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(SUBJECT_LEN), nullable=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


_TABLE = ChangeLogRow.__table__


async def write_changes(conn: AsyncConnection, changes: Sequence[Change], at: datetime) -> None:
    """Append ``changes`` on ``conn``, inside the caller's open transaction (the caller commits)."""
    if changes:
        await conn.execute(
            insert(ChangeLogRow),
            [{"at": at, "kind": c.kind.value, "key": c.key, "subject": c.subject, "until": c.until} for c in changes],
        )


class ChangeLog(ABC):
    """Where changes are logged and read back."""

    #: Whether a read travels over a connection the network can lose without a word, so that it may wait for an
    #: answer that never comes: the feed then abandons it after a timeout, and its connection with it. False for
    #: SQLite and memory, whose reads end on their own (SQLite's driver cannot cut a query short anyway).
    networked: bool = True

    @abstractmethod
    async def read(self, after: int, *, also: Collection[int] = (), limit: int = 1000) -> builtins.list[ChangeEntry]:
        """Entries with ``seq > after`` (at most ``limit``) or ``seq`` in ``also``, ordered by ``seq``."""

    @abstractmethod
    async def head(self) -> int:
        """The highest ``seq`` written so far (0 for an empty log)."""

    @abstractmethod
    async def prune(self, before: datetime) -> int:
        """Delete entries older than ``before``, always keeping the newest one; how many went."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the log owns (a SQL log may own a companion database)."""


class InMemoryChangeLog(ChangeLog):
    """A list: for tests and single-process tools. In-memory stores append to it where SQL stores write."""

    networked = False

    def __init__(self) -> None:
        self._entries: builtins.list[ChangeEntry] = []
        self._seq = 0

    def append(self, changes: Sequence[Change], at: datetime) -> None:
        for change in changes:
            self._seq += 1
            self._entries.append(ChangeEntry(self._seq, at, change.kind, change.key, change.subject, change.until))

    async def read(self, after: int, *, also: Collection[int] = (), limit: int = 1000) -> builtins.list[ChangeEntry]:
        wanted = set(also)
        holes = [e for e in self._entries if e.seq in wanted and e.seq <= after]
        return holes + [e for e in self._entries if e.seq > after][:limit]

    async def head(self) -> int:
        return self._seq

    async def prune(self, before: datetime) -> int:
        keep = [e for i, e in enumerate(self._entries) if e.at >= before or i == len(self._entries) - 1]
        gone = len(self._entries) - len(keep)
        self._entries = keep
        return gone


class SqlChangeLog(ChangeLog):
    """The ``change_log`` table of a :class:`Database`."""

    def __init__(self, db: Database, *, owns_database: bool = False) -> None:
        self._db = db
        self._owns_database = owns_database
        # SQLite: a file, no network; a WAL read does not wait for the write lock, and aiosqlite's thread finishes
        # a query whatever becomes of its caller. Abandoning a read would only cost the connection.
        self.networked = db.dialect != "sqlite"

    async def close(self) -> None:
        if self._owns_database:
            await self._db.close()

    async def read(self, after: int, *, also: Collection[int] = (), limit: int = 1000) -> builtins.list[ChangeEntry]:
        after_clause = _TABLE.c.seq > bindparam("after")
        query = _READ.where(or_(after_clause, _TABLE.c.seq.in_(sorted(also))) if also else after_clause)
        # In autocommit mode: the poll is its SELECT and nothing else (no BEGIN, no closing ROLLBACK), five
        # statements a second per instance where it was ten; one statement needs no transaction around it.
        async with self._db.autocommit() as conn:
            rows = (await conn.execute(query.order_by(_TABLE.c.seq).limit(limit + len(also)), {"after": after})).all()
        entries = [_entry(row) for row in rows]
        if also:  # the holes asked for count apart from the limit on new entries
            new = [e for e in entries if e.seq > after][:limit]
            entries = [e for e in entries if e.seq <= after] + new
        return entries

    async def head(self) -> int:
        async with self._db.autocommit() as conn:
            return int((await conn.execute(_HEAD)).scalar_one() or 0)

    async def prune(self, before: datetime) -> int:
        # By primary-key range, below a cut found with a plain read: the DELETE locks only old rows, never the
        # index range where writers insert (MariaDB's gap locks), nor an uncommitted row it would wait for.
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                newest = int((await conn.execute(_HEAD)).scalar_one() or 0)
                cut = (await conn.execute(_CUT, {"before": before})).scalar_one()
                if cut is None:
                    return 0
                result = await conn.execute(delete(ChangeLogRow).where(_TABLE.c.seq <= min(int(cut), newest - 1)))
                await conn.commit()
        return int(result.rowcount or 0)


_READ = select(_TABLE)
_HEAD = select(func.max(_TABLE.c.seq))
_CUT = select(func.max(_TABLE.c.seq)).where(_TABLE.c.at < bindparam("before", type_=UTCDateTime()))


def _entry(row: Row[Any]) -> ChangeEntry:
    return ChangeEntry(row.seq, row.at, row.kind, row.key, row.subject, row.until)
