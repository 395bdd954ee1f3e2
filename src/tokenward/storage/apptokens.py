"""App token records: the ``app_tokens`` table, an in-memory twin, and their common contract.

A record never holds the secret, only its keyed hash (see :mod:`tokenward.apptokens.format`).
Deleting a token *revokes* it (``revoked_at``): the row stays for the audit trail and so that
every instance sees the revocation on its next read. Both implementations pass the contract
tests in ``tests/apptokens/test_store.py``, ``test_create.py`` and ``test_revoke.py``.

Creating a token is one transaction: the per-owner limit check, the insert and the audit events.
Revoking one is too: the conditional UPDATE and its audit events, both or neither. Both also log a
change (:mod:`tokenward.storage.changes`) in the same transaction, so every instance's change feed hears of it.
Creates for one owner are serialised so that the limit holds across instances — SQLite by its
single writer (``BEGIN IMMEDIATE``), PostgreSQL by a transaction-scoped advisory lock
(``pg_advisory_xact_lock``), MariaDB/MySQL by a named lock (``GET_LOCK``, released after the
commit). The server locks are keyed by a hash of the owner, so different owners do not wait for each other.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import hashlib
import logging
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Final, TypeAlias

from sqlalchemy import JSON, Index, Row, String, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, StorageUnavailable

from .audit import AuditEvent, AuditLog, SqlAuditLog
from .changes import Change, ChangeKind, InMemoryChangeLog, write_changes
from .database import Database
from .jsonrows import json_rows
from .models import SUBJECT_LEN, Base
from .translate import translate_errors
from .types import SQLITE_TIME, UTCDateTime

__all__ = [
    "AppTokenRecord",
    "AppTokenRow",
    "AppTokenStore",
    "InMemoryAppTokenStore",
    "PackedRecord",
    "SqlAppTokenStore",
    "pack",
    "unpack",
]

TOKEN_ID_LEN = 16
LABEL_LEN = 200
HASH_LEN = 64
KEY_ID_LEN = 16

log = logging.getLogger("tokenward.storage")

# Seconds a create waits for another create of the same owner on MariaDB/MySQL (each holds it for one transaction).
_OWNER_LOCK_WAIT = 10


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AppTokenRecord:
    """One app token as stored. ``secret_hash`` is hex HMAC-SHA256; no secret is ever kept."""

    id: str
    owner: str
    label: str
    scopes: tuple[str, ...]
    secret_hash: str = dataclasses.field(repr=False)
    key_id: str
    created_at: datetime
    expires_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


#: A record as a plain tuple of atoms, in field order: the secret hash as its 32 raw bytes, times as Unix seconds.
#: What a serving instance holds by the hundred thousand: the garbage collector stops tracking a tuple whose items
#: are all str, bytes, float or None (or such tuples) after the first collection it survives, so a full collection
#: never walks them, while a dataclass instance is tracked for life. It is also about a third smaller.
PackedRecord: TypeAlias = tuple[
    str, str, str, tuple[str, ...], bytes, str, float, float, str, float | None, float | None
]
#: Positions in a :data:`PackedRecord` (and in the service's held tuples, which extend it).
ID: Final = 0
OWNER: Final = 1
SCOPES: Final = 3
SECRET_HASH: Final = 4
KEY_ID: Final = 5
EXPIRES_AT: Final = 7
LAST_USED_AT: Final = 9
REVOKED_AT: Final = 10


def pack(record: AppTokenRecord | Row[Any]) -> PackedRecord:
    """``record`` (or a row of ``app_tokens``) as a :data:`PackedRecord`. Owners, creators, key ids and scopes
    repeat across records: interned, the records held share them."""
    try:
        secret_hash = bytes.fromhex(record.secret_hash)
    except ValueError:  # not a hash this code wrote: matches no secret (compare_digest of unequal lengths)
        secret_hash = b""
    return (
        record.id,
        sys.intern(record.owner),
        record.label,
        tuple(sys.intern(scope) for scope in record.scopes),
        secret_hash,
        sys.intern(record.key_id),
        record.created_at.timestamp(),
        record.expires_at.timestamp(),
        sys.intern(record.created_by),
        None if record.last_used_at is None else record.last_used_at.timestamp(),
        None if record.revoked_at is None else record.revoked_at.timestamp(),
    )


def unpack(packed: PackedRecord, *, last_used_at: float | None = None) -> AppTokenRecord:
    """The public record of a :data:`PackedRecord` (built where a caller needs one: the management API);
    ``last_used_at``: a later use than the packed one, not yet written."""
    used = packed[9] if last_used_at is None else last_used_at
    revoked = packed[10]
    return AppTokenRecord(
        id=packed[0],
        owner=packed[1],
        label=packed[2],
        scopes=packed[3],
        secret_hash=packed[4].hex(),
        key_id=packed[5],
        created_at=_dt(packed[6]),
        expires_at=_dt(packed[7]),
        created_by=packed[8],
        last_used_at=None if used is None else _dt(used),
        revoked_at=None if revoked is None else _dt(revoked),
    )


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class AppTokenRow(Base):
    """``app_tokens``: one row per token, looked up by primary key on every cold verification."""

    __tablename__ = "app_tokens"
    __table_args__ = (
        Index("ix_app_tokens_owner", "owner"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[str] = mapped_column(String(TOKEN_ID_LEN), primary_key=True)
    owner: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    label: Mapped[str] = mapped_column(String(LABEL_LEN), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON(), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(HASH_LEN), nullable=False)
    key_id: Mapped[str] = mapped_column(String(KEY_ID_LEN), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_by: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AppTokenStore(ABC):
    """Where app token records live."""

    @abstractmethod
    async def add(
        self,
        record: AppTokenRecord,
        *,
        max_live: int | None = None,
        audit: AuditLog | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        """Store a new record; :class:`Conflict` (``storage_conflict``) if the id exists.

        With ``max_live``, refuse with :class:`Conflict` (``apptoken_limit``) when the owner already
        holds that many live tokens at ``record.created_at``; concurrent adds for one owner are
        serialised, so the limit holds under concurrency. ``events`` are appended to ``audit`` with
        the record: the record is stored only if every event was. (When ``audit`` is a
        :class:`SqlAuditLog` on the same database, record and events are one transaction.) The
        change-log entry ``APP_TOKEN`` (id, owner) is written with the record, both or neither.
        """

    @abstractmethod
    async def get(self, token_id: str) -> AppTokenRecord | None:
        """The record with this id (revoked or not), or ``None``."""

    @abstractmethod
    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        """Records of ``owner`` (all owners when ``None``), oldest first."""

    @abstractmethod
    async def known_ids(self) -> builtins.set[str]:
        """Every token id in the store, revoked and expired ones included (one streaming query)."""

    @abstractmethod
    async def newest_live(self, limit: int) -> builtins.list[PackedRecord]:
        """Up to ``limit`` unrevoked records packed, newest first (one query): what a starting instance holds
        first. Packed as they are read, so 100,000 records never sit in memory as rows or dataclasses."""

    @abstractmethod
    async def count_live(self, owner: str, now: datetime) -> int:
        """How many unrevoked, unexpired tokens ``owner`` holds."""

    @abstractmethod
    async def revoke(
        self,
        token_id: str,
        at: datetime,
        *,
        owner: str | None = None,
        audit: AuditLog | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> bool:
        """Mark the token revoked; ``False`` when it does not exist, is not ``owner``'s, or was already revoked.

        Exactly one of several concurrent revocations of one token returns ``True``. ``events`` are
        appended to ``audit`` with the revocation, as in :meth:`add`: the token is revoked only if
        every event was, and a revocation that returns ``False`` appends none. So is the change-log
        entry ``APP_TOKEN`` (id, owner).
        """

    @abstractmethod
    async def touch_many(self, uses: Mapping[str, float]) -> None:
        """Set ``last_used_at`` of each token id to its time (Unix seconds): one statement (PostgreSQL) or one
        executemany per :data:`TOUCH_CHUNK` ids.

        Unknown ids are ignored. The service calls this from its write-behind flush, never per request.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (the SQL store does not own its ``Database``)."""


class InMemoryAppTokenStore(AppTokenStore):
    """Records in a dict: for tests and single-process tools. ``changes`` gets an entry per create and revoke."""

    def __init__(self, changes: InMemoryChangeLog | None = None) -> None:
        self._records: dict[str, AppTokenRecord] = {}
        self._changes = changes
        self._writing = asyncio.Lock()  # adds and revokes: the appends may await between the check and the write

    async def add(
        self,
        record: AppTokenRecord,
        *,
        max_live: int | None = None,
        audit: AuditLog | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        _check_events(audit, events)
        async with self._writing:
            if record.id in self._records:
                raise Conflict("an app token with this id exists", code=ErrorCode.STORAGE_CONFLICT)
            if max_live is not None and await self.count_live(record.owner, record.created_at) >= max_live:
                raise _limit_reached(record.owner, max_live)
            await _append_all(audit, events)  # a failed append leaves no record
            self._records[record.id] = record
            if self._changes is not None:
                self._changes.append([_change(record)], record.created_at)

    async def get(self, token_id: str) -> AppTokenRecord | None:
        return self._records.get(token_id)

    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        found = [
            r
            for r in self._records.values()
            if (owner is None or r.owner == owner) and (include_revoked or r.revoked_at is None)
        ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def known_ids(self) -> builtins.set[str]:
        return set(self._records)

    async def newest_live(self, limit: int) -> builtins.list[PackedRecord]:
        live = [r for r in self._records.values() if r.revoked_at is None]
        return [pack(r) for r in sorted(live, key=lambda r: (r.created_at, r.id), reverse=True)[:limit]]

    async def count_live(self, owner: str, now: datetime) -> int:
        return sum(1 for r in self._records.values() if r.owner == owner and r.is_live(now))

    async def revoke(
        self,
        token_id: str,
        at: datetime,
        *,
        owner: str | None = None,
        audit: AuditLog | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> bool:
        _check_events(audit, events)
        async with self._writing:
            record = self._records.get(token_id)
            if record is None or record.revoked_at is not None or (owner is not None and record.owner != owner):
                return False
            await _append_all(audit, events)  # a failed append leaves the token live
            self._records[token_id] = dataclasses.replace(record, revoked_at=at)
            if self._changes is not None:
                self._changes.append([_change(record)], at)
            return True

    async def touch_many(self, uses: Mapping[str, float]) -> None:
        for token_id, at in uses.items():
            record = self._records.get(token_id)
            if record is not None:
                self._records[token_id] = dataclasses.replace(record, last_used_at=_dt(at))


class SqlAppTokenStore(AppTokenStore):
    """Records in the ``app_tokens`` table of a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def database(self) -> Database:
        return self._db

    async def add(
        self,
        record: AppTokenRecord,
        *,
        max_live: int | None = None,
        audit: AuditLog | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> None:
        _check_events(audit, events)
        values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        values["scopes"] = list(record.scopes)
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                lock = await self._lock_owner(conn, record.owner)
                try:
                    if max_live is not None:
                        live = await conn.execute(_COUNT_LIVE, {"owner": record.owner, "now": record.created_at})
                        if live.scalar_one() >= max_live:
                            raise _limit_reached(record.owner, max_live)
                    await conn.execute(insert(AppTokenRow), values)
                    await write_changes(conn, [_change(record)], record.created_at)
                    await self._append_events(conn, audit, events)
                    await conn.commit()
                except BaseException:
                    await conn.rollback()
                    raise
                finally:
                    if lock is not None:
                        await _release(conn, lock)

    async def _append_events(self, conn: AsyncConnection, audit: AuditLog | None, events: Sequence[AuditEvent]) -> None:
        """Append ``events`` with the write open on ``conn``, before its commit (shared by add and revoke).

        An audit log on this database writes in this transaction (both or neither); any other one is
        appended to before the commit, so a failed append rolls the write back.
        """
        if isinstance(audit, SqlAuditLog) and audit.database.url == self._db.url:
            for event in events:
                await audit.append_in(conn, event)
        else:
            await _append_all(audit, events)

    async def _lock_owner(self, conn: AsyncConnection, owner: str) -> str | None:
        """Start the transaction holding the owner's create lock; the MySQL lock name to release, if any."""
        dialect = self._db.dialect
        if dialect == "sqlite":
            # The write lock now, not at the INSERT: no other writer can slip in between count and insert.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            # Released by the commit or rollback. Two-key form: a key space apart from the migration lock's.
            await conn.execute(_PG_LOCK, {"space": _LOCK_SPACE, "key": _owner_hash(owner, 4)})
        elif dialect == "mysql":
            # A named lock belongs to the connection, not the transaction: taken before the first read of the
            # transaction (so its snapshot includes the previous holder's commit) and released after the commit.
            name = f"tokenward_apptoken_{_owner_hash(owner, 16):032x}"
            got = (await conn.execute(_MYSQL_LOCK, {"name": name, "wait": _OWNER_LOCK_WAIT})).scalar_one()
            if got != 1:
                raise StorageUnavailable(
                    f"another app token create for this user held the database lock for over {_OWNER_LOCK_WAIT} s; "
                    "try again",
                    code=ErrorCode.APPTOKEN_BUSY,
                )
            return name
        return None

    async def get(self, token_id: str) -> AppTokenRecord | None:
        # The cold path of every verification: a Core SELECT by primary key, no ORM session or identity map, in
        # autocommit mode (no transaction to end: one statement, where a flood's unknown ids cost two per lookup).
        async with self._db.autocommit() as conn:
            row = (await conn.execute(_BY_ID, {"id": token_id})).first()
        return None if row is None else _to_record(row)

    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        # Core rows on a plain connection, like get(): no ORM session, identity map or commit.
        query = _LIST_LIVE if not include_revoked else _LIST_ALL
        if owner is not None:
            query = query.where(_TABLE.c.owner == bindparam("owner"))
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(_TABLE.c.created_at, _TABLE.c.id), {"owner": owner})).all()
        return [_to_record(row) for row in rows]

    async def known_ids(self) -> builtins.set[str]:
        # Streamed in partitions (a server-side cursor where the driver has one): 100k ids never sit in memory
        # twice, as rows and as the set.
        found: builtins.set[str] = set()
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                result = await conn.stream(_IDS)
                async for partition in result.partitions(_ID_PARTITION):
                    found.update(row[0] for row in partition)
        return found

    async def newest_live(self, limit: int) -> builtins.list[PackedRecord]:
        # Streamed in partitions and packed as they come: the start of a serving instance with 100,000 tokens
        # otherwise held every row and every AppTokenRecord with its datetimes at once (a peak of ~130 MB, most
        # of it kept by the process as free memory: the RSS it reported for 100,000 records held).
        query = _LIST_LIVE.order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc()).limit(limit)
        packed: builtins.list[PackedRecord] = []
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                result = await conn.stream(query)
                async for partition in result.partitions(_ROW_PARTITION):
                    packed += map(pack, partition)
        return packed

    async def count_live(self, owner: str, now: datetime) -> int:
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                return int((await conn.execute(_COUNT_LIVE, {"owner": owner, "now": now})).scalar_one())

    async def revoke(
        self,
        token_id: str,
        at: datetime,
        *,
        owner: str | None = None,
        audit: AuditLog | None = None,
        events: Sequence[AuditEvent] = (),
    ) -> bool:
        _check_events(audit, events)
        # One conditional UPDATE: the database decides which of two racing revocations wins (the loser
        # waits for the winner's row lock, then matches no row). Its events join the same transaction.
        query = update(AppTokenRow).where(AppTokenRow.id == token_id, AppTokenRow.revoked_at.is_(None))
        if owner is not None:
            query = query.where(AppTokenRow.owner == owner)
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                try:
                    result = await conn.execute(query.values(revoked_at=at))
                    if result.rowcount != 1:
                        await conn.rollback()
                        return False
                    if owner is None:  # the entry names the owner, whose list the other instances drop
                        owner = (await conn.execute(_OWNER_BY_ID, {"id": token_id})).scalar_one()
                    await write_changes(conn, [Change(ChangeKind.APP_TOKEN, token_id, subject=owner)], at)
                    await self._append_events(conn, audit, events)
                    await conn.commit()
                except BaseException:
                    await conn.rollback()
                    raise
        return True

    async def touch_many(self, uses: Mapping[str, float]) -> None:
        # Never SQL compiled per id in the event loop (an UPDATE … CASE with 1,000 literal ids per batch stalled the
        # loop ~0.25 s a batch), nor a parameter adapted per id: psycopg adapting two arrays of 100,000 held the loop
        # about half a second, the p99 of /verify at every flush. PostgreSQL and SQLite: one UPDATE … FROM the ids and
        # times as one JSON document, encoded a slice at a time (jsonrows), in autocommit mode: atomic by itself, one
        # statement a flush and no COMMIT (a flood's SQL budget counts every statement, docs/app-tokens.md); the
        # database does the rest off the loop. MariaDB: one prepared UPDATE run as executemany, in chunks of
        # TOUCH_CHUNK rows with the loop free between, in one transaction.
        if not uses:
            return
        if self._db.dialect in ("postgresql", "sqlite"):
            rows = await json_rows((token_id, round(at * 1_000_000)) for token_id, at in uses.items())
            statement = _TOUCH_PG if self._db.dialect == "postgresql" else _TOUCH_SQLITE
            async with self._db.autocommit() as conn:
                await conn.execute(statement, {"rows": rows})
            return
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                items = iter(uses.items())
                while chunk := list(islice(items, TOUCH_CHUNK)):  # the loop runs between chunks
                    await conn.execute(_TOUCH, [{"tid": token_id, "at": _dt(at)} for token_id, at in chunk])
                await conn.commit()


_TABLE = AppTokenRow.__table__
#: Rows per executemany of the last-used UPDATE on MariaDB: about 10 ms of the event loop each.
TOUCH_CHUNK = 2000
_TOUCH = (
    update(AppTokenRow)
    .where(AppTokenRow.id == bindparam("tid"))
    .values(last_used_at=bindparam("at", type_=UTCDateTime()))
)
#: ``[[id, microseconds since 1970], …]`` as one JSON document: exact times, no float on the way.
_TOUCH_PG = text(
    "UPDATE app_tokens SET last_used_at = TIMESTAMPTZ 'epoch' + (e->>1)::bigint * INTERVAL '1 microsecond'"
    " FROM json_array_elements(CAST(:rows AS JSON)) AS e WHERE app_tokens.id = e->>0"
)
_TOUCH_SQLITE = text(
    f"UPDATE app_tokens SET last_used_at = v.at FROM (SELECT id, {SQLITE_TIME} AS at FROM ("
    "SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS us FROM json_each(:rows))) AS v"
    " WHERE app_tokens.id = v.id"
)
_BY_ID = select(_TABLE).where(_TABLE.c.id == bindparam("id"))
_OWNER_BY_ID = select(_TABLE.c.owner).where(_TABLE.c.id == bindparam("id"))
_IDS = select(_TABLE.c.id)
_ID_PARTITION = 10_000
_ROW_PARTITION = 2_000
_LIST_ALL = select(_TABLE)
_LIST_LIVE = _LIST_ALL.where(_TABLE.c.revoked_at.is_(None))
_COUNT_LIVE = (
    select(func.count())
    .select_from(_TABLE)
    .where(
        _TABLE.c.owner == bindparam("owner"),
        _TABLE.c.revoked_at.is_(None),
        _TABLE.c.expires_at > bindparam("now", type_=UTCDateTime()),
    )
)
_LOCK_SPACE = int.from_bytes(hashlib.blake2b(b"tokenward app token create", digest_size=4).digest(), "big", signed=True)
_PG_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")
_MYSQL_LOCK = text("SELECT GET_LOCK(:name, :wait)")
_MYSQL_UNLOCK = text("SELECT RELEASE_LOCK(:name)")


def _change(record: AppTokenRecord) -> Change:
    """The change-log entry of a create or revoke: other instances drop what they hold of this token."""
    return Change(ChangeKind.APP_TOKEN, record.id, subject=record.owner)


def _limit_reached(owner: str, max_live: int) -> Conflict:
    """The error for an owner at the limit (409 ``apptoken_limit``)."""
    return Conflict(
        f"{owner} already holds {max_live} live app tokens; delete some first", code=ErrorCode.APPTOKEN_LIMIT
    )


def _owner_hash(owner: str, size: int) -> int:
    # Signed for PostgreSQL's int4 key; collisions only make two owners share a lock.
    return int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=size).digest(), "big", signed=size == 4)


async def _release(conn: AsyncConnection, name: str) -> None:
    # After commit or rollback. Should the release fail, closing the connection frees the lock: a pooled
    # connection must never keep it. The create itself stands (it was committed or already failed).
    try:
        await conn.execute(_MYSQL_UNLOCK, {"name": name})
        await conn.commit()
    except Exception as exc:
        log.warning("could not release app token lock (%s); dropping the connection", type(exc).__name__)
        await conn.invalidate()


def _check_events(audit: AuditLog | None, events: Sequence[AuditEvent]) -> None:
    if events and audit is None:
        raise ValueError("events to append need an audit log")


async def _append_all(audit: AuditLog | None, events: Sequence[AuditEvent]) -> None:
    for event in events:
        if audit is not None:
            await audit.append(event)


def _to_record(row: AppTokenRow | Row[Any]) -> AppTokenRecord:
    """From an ORM row or a Core row of the same table (the cold path reads Core rows).

    Owners, creators, key ids and scopes repeat across records: interned, a record held in memory shares
    them (about a quarter less memory per record, bench/apptokens.py --memory).
    """
    return AppTokenRecord(
        id=row.id,
        owner=sys.intern(row.owner),
        label=row.label,
        scopes=tuple(sys.intern(scope) for scope in row.scopes),
        secret_hash=row.secret_hash,
        key_id=sys.intern(row.key_id),
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=sys.intern(row.created_by),
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
