"""The audit log: who did what, to whom, when — for every issuance, revocation and admin change.

Shaped like every tokenward repository: a small abstract base (:class:`AuditLog`), an
in-memory implementation shipped in the package (:class:`InMemoryAuditLog`, for tests and
single-process tools) and the SQL one (:class:`SqlAuditLog`). All of them pass the same
contract tests in ``tests/storage/test_audit.py``.

:class:`BufferedAuditLog` writes behind: for events that are not part of a change (a failed
verification, a ban), which must not cost a statement on the request that causes them. It keeps
them in memory and writes them in one INSERT (an executemany) per flush (the runtime flushes every
second and on shutdown). Create and revoke events never go through it: they are written in their
change's own transaction (:meth:`SqlAuditLog.append_in`).
"""

from __future__ import annotations

import builtins
import dataclasses
import heapq
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy import and_, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, TokenwardError

from .database import Database
from .jsonrows import json_rows
from .models import ACTION_LEN, INSTANCE_LEN, REQUEST_ID_LEN, SUBJECT_LEN, TARGET_LEN, AuditEventRow
from .translate import translate_errors
from .types import SQLITE_TIME

__all__ = [
    "MAX_LIST_LIMIT",
    "AuditEvent",
    "AuditLog",
    "AuditRow",
    "BufferedAuditLog",
    "Cursor",
    "InMemoryAuditLog",
    "SqlAuditLog",
    "format_cursor",
    "parse_cursor",
]

MAX_LIST_LIMIT = 1000
log = logging.getLogger("tokenward.audit")
#: A new event as :class:`BufferedAuditLog` keeps it: ``(at, actor, action, subject, target, detail, request_id,
#: instance)`` with ``at`` in Unix seconds and ``detail`` as JSON text.
AuditRow: TypeAlias = tuple[float, str, str, str | None, str | None, str, str | None, str | None]
#: Where a page ends: the last listed event's ``(at, id)``; the next page lists the events after it.
Cursor: TypeAlias = tuple[datetime, int]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^(\d{1,17})-(\d{1,19})$")


def format_cursor(event: AuditEvent) -> str:
    """``event``'s cursor as text, ``<microseconds since 1970>-<event id>`` (the /admin/audit "Older"
    link and ``tokenward audit --before`` take the same)."""
    micros = (event.at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{event.id or 0}"


def parse_cursor(text: str) -> Cursor:
    """The cursor :func:`format_cursor` wrote; ``ValueError`` for anything else."""
    match = _CURSOR.match(text)
    if match is None:
        raise ValueError(text)
    try:
        return _EPOCH + timedelta(microseconds=int(match.group(1))), int(match.group(2))
    except OverflowError:
        raise ValueError(text) from None


_LIMITS = {
    "actor": SUBJECT_LEN,
    "action": ACTION_LEN,
    "subject": SUBJECT_LEN,
    "target": TARGET_LEN,
    "request_id": REQUEST_ID_LEN,
    "instance": INSTANCE_LEN,
}


#: Values a detail may hold that need no trial encoding to be known JSON-serialisable.
_JSON_ATOMS = frozenset({str, int, float, bool, type(None)})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One audit record.

    ``at`` is passed in (the caller owns the clock), must be timezone-aware, and is kept in UTC. ``actor`` is
    who acted (a subject, or ``"system"``), ``action`` a dotted verb such as
    ``"apptoken.create"``, ``subject`` whom it concerns, ``target`` what it touched (a token id,
    a policy file). ``detail`` is JSON data and must never hold a secret. ``id`` is assigned
    by the log on :meth:`AuditLog.append`.
    """

    at: datetime
    actor: str
    action: str
    subject: str | None = None
    target: str | None = None
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    request_id: str | None = None
    instance: str | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        # Every refused credential check builds one: the common cases (a UTC time, a flat detail of strings and
        # numbers) are checked without the calls that cover the rest.
        if self.at.tzinfo is not UTC:
            if self.at.tzinfo is None or self.at.utcoffset() is None:
                raise ValueError("AuditEvent.at must be timezone-aware")
            object.__setattr__(self, "at", self.at.astimezone(UTC))  # stored and returned in UTC
        _check_fields(self.actor, self.action, self.subject, self.target, self.request_id, self.instance)
        detail = self.detail
        if type(detail) is dict and all(type(k) is str and type(v) in _JSON_ATOMS for k, v in detail.items()):
            return
        _detail_text(detail)


def _check_fields(
    actor: str, action: str, subject: str | None, target: str | None, request_id: str | None, instance: str | None
) -> None:
    """:class:`AuditEvent`'s checks of its text fields (also :meth:`BufferedAuditLog.note`'s, with no event)."""
    if not actor or not action:
        raise ValueError("AuditEvent needs a non-empty actor and action")
    # Every refused check's event comes through here: the common case (each field within its limit) in one expression.
    if (
        len(actor) <= SUBJECT_LEN
        and len(action) <= ACTION_LEN
        and (subject is None or len(subject) <= SUBJECT_LEN)
        and (target is None or len(target) <= TARGET_LEN)
        and (request_id is None or len(request_id) <= REQUEST_ID_LEN)
        and (instance is None or len(instance) <= INSTANCE_LEN)
    ):
        return
    values = (actor, action, subject, target, request_id, instance)  # in the order of _LIMITS
    for (name, limit), value in zip(_LIMITS.items(), values, strict=True):
        if value is not None and len(value) > limit:
            raise ValueError(f"AuditEvent.{name} is longer than {limit} characters")


def _detail_text(detail: Mapping[str, Any]) -> str:
    """``detail`` as JSON text; ValueError when it is not JSON-serialisable."""
    try:
        return json.dumps(detail)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"AuditEvent.detail must be JSON-serialisable ({exc})") from None


class AuditLog(ABC):
    """Append-only store of :class:`AuditEvent`."""

    @abstractmethod
    async def append(self, event: AuditEvent) -> AuditEvent:
        """Store a new event (``event.id`` must be ``None``) and return it with its id."""

    @abstractmethod
    async def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: Cursor | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEvent]:
        """Events matching every given filter, newest first, at most ``limit`` (1-1000).

        ``since`` is inclusive, ``until`` exclusive; both must be timezone-aware. ``before`` pages:
        pass the last listed event's ``(at, id)`` to get the events after it in this order.
        """

    async def append_many(self, events: builtins.list[AuditEvent]) -> None:
        """Store new events, all or none (the SQL log: one INSERT for all of them, one transaction)."""
        for event in events:
            await self.append(event)

    async def note(
        self,
        at: float,
        *,
        actor: str,
        action: str,
        subject: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        instance: str | None = None,
    ) -> None:
        """Append a new event given by its fields, ``at`` in Unix seconds: what a refused request records, which
        :class:`BufferedAuditLog` keeps as a row without building an :class:`AuditEvent`. The same checks."""
        await self.append(
            AuditEvent(
                at=datetime.fromtimestamp(at, UTC),
                actor=actor,
                action=action,
                subject=subject,
                target=target,
                detail=detail or {},
                request_id=request_id,
                instance=instance,
            )
        )

    async def append_rows(self, rows: builtins.list[AuditRow]) -> None:
        """Store new events given as :data:`AuditRow` tuples (what :class:`BufferedAuditLog` keeps), all or none.
        The SQL log writes them with no object per row on SQLite and PostgreSQL."""
        await self.append_many([_row_event(row) for row in rows])

    async def close(self) -> None:  # noqa: B027 - optional hook, like httpx's BaseTransport.close
        """Release resources held by this log (the SQL log does not own its ``Database``)."""


class InMemoryAuditLog(AuditLog):
    """An audit log in a Python list: for tests and for tools that need no persistence."""

    def __init__(self) -> None:
        self._events: builtins.list[AuditEvent] = []

    async def append(self, event: AuditEvent) -> AuditEvent:
        _check_new(event)
        # Round-trip detail through JSON so callers see exactly what a SQL store would give back.
        stored = dataclasses.replace(event, id=len(self._events) + 1, detail=json.loads(json.dumps(event.detail)))
        self._events.append(stored)
        return stored

    async def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: Cursor | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEvent]:
        _check_query(since, limit, until=until, before=before)
        found = [
            event
            for event in self._events
            if (actor is None or event.actor == actor)
            and (action is None or event.action == action)
            and (since is None or event.at >= since)
            and (until is None or event.at < until)
            and (before is None or (event.at, event.id or 0) < before)
        ]
        found.sort(key=lambda event: (event.at, event.id or 0), reverse=True)
        return found[:limit]


class SqlAuditLog(AuditLog):
    """The audit log in the ``audit_events`` table of a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @property
    def database(self) -> Database:
        """The database holding ``audit_events`` (a repository writing there may use :meth:`append_in`)."""
        return self._db

    async def append(self, event: AuditEvent) -> AuditEvent:
        with translate_errors(self._db.url):
            async with self._db.engine.begin() as conn:
                return await self.append_in(conn, event)

    async def append_many(self, events: builtins.list[AuditEvent]) -> None:
        for event in events:
            _check_new(event)
        if not events:
            return
        rows = [{**{name: getattr(event, name) for name in _COLUMNS}, "detail": dict(event.detail)} for event in events]
        with translate_errors(self._db.url):
            async with self._db.engine.begin() as conn:
                if self._db.dialect == "postgresql":  # one array parameter per column: no per-row driver work
                    columns = {name: [row[name] for row in rows] for name in _COLUMNS}
                    columns["at"] = [at.astimezone(UTC) for at in columns["at"]]
                    columns["detail"] = [json.dumps(detail) for detail in columns["detail"]]
                    await conn.execute(_PG_INSERT, columns)
                else:
                    await conn.execute(insert(AuditEventRow), rows)  # one executemany

    async def append_rows(self, rows: builtins.list[AuditRow]) -> None:
        """One statement in autocommit mode (atomic by itself, no COMMIT round trip), its rows as one JSON document
        (PostgreSQL: ``json_array_elements``; SQLite: ``json_each``): building a flush of thousands of events costs
        the event loop a few milliseconds. MariaDB: one executemany."""
        if not rows:
            return
        dialect = self._db.dialect
        if dialect in ("postgresql", "sqlite"):
            document = await json_rows(rows)  # a slice at a time, the event loop free between slices
        if dialect == "postgresql":  # JSON too: psycopg adapting 8 arrays element by element held the loop ~45 ms
            async with self._db.autocommit() as conn:
                await conn.execute(_PG_INSERT_ROWS, {"rows": document})
        elif dialect == "sqlite":
            async with self._db.autocommit() as conn:
                await conn.execute(_SQLITE_INSERT_ROWS, {"rows": document})
        else:
            await self.append_many([_row_event(row) for row in rows])

    async def append_in(self, conn: AsyncConnection, event: AuditEvent) -> AuditEvent:
        """Append inside the caller's open transaction on :attr:`database`: the event is committed
        or rolled back with it (e.g. an app token and its ``apptoken.create`` event, both or neither).

        The caller translates driver errors (``translate_errors``), as around any of its own statements.
        """
        _check_new(event)
        values = {name: getattr(event, name) for name in _COLUMNS}
        values["detail"] = dict(event.detail)
        result = await conn.execute(insert(AuditEventRow), values)
        new_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        return dataclasses.replace(event, id=new_id, detail=json.loads(json.dumps(event.detail)))

    async def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: Cursor | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEvent]:
        _check_query(since, limit, until=until, before=before)
        query = select(AuditEventRow)
        if actor is not None:
            query = query.where(AuditEventRow.actor == actor)
        if action is not None:
            query = query.where(AuditEventRow.action == action)
        if since is not None:
            query = query.where(AuditEventRow.at >= since)
        if until is not None:
            query = query.where(AuditEventRow.at < until)
        if before is not None:
            at, event_id = before
            query = query.where(or_(AuditEventRow.at < at, and_(AuditEventRow.at == at, AuditEventRow.id < event_id)))
        query = query.order_by(AuditEventRow.at.desc(), AuditEventRow.id.desc()).limit(limit)
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [_to_event(row) for row in rows]


class BufferedAuditLog(AuditLog):
    """Write-behind over ``inner``: :meth:`append` keeps the event in memory (no I/O; the returned event has
    no id) and :meth:`flush` writes what was kept in one :meth:`AuditLog.append_rows`.

    Kept as :data:`AuditRow` tuples of strings and numbers, not :class:`AuditEvent` objects: the collector stops
    tracking them after their first young collection (a second's worth of refused requests is thousands of
    events, which as objects lengthened every full collection meanwhile), and the flush hands them on as they are.

    Bounded: past ``max_events`` waiting, new events are dropped, counted in :attr:`dropped` and logged
    (the first, then every 1,000th). A failed flush keeps its events for the next one, within the same
    bound. :meth:`list` flushes first, so this instance reads what it wrote.

    Refused checks come through :meth:`note`: past ``refusals_per_flush`` of one action between two flushes, the
    rest are counted into one summary event of that action (``TOKENWARD_AUDIT_REFUSALS_PER_FLUSH``,
    docs/app-tokens.md#audit), so that a flood cannot grow the table by a row per request.
    """

    def __init__(self, inner: AuditLog, *, max_events: int = 50_000, refusals_per_flush: int = 0) -> None:
        self.inner = inner
        self.max_events = max_events
        #: Events of one action :meth:`note` keeps one by one between two flushes; past it, they are counted into
        #: one summary event of that action per flush (:class:`_Summary`). 0: no limit.
        self.refusals_per_flush = refusals_per_flush
        #: Events dropped because the buffer was full (the database was away for long).
        self.dropped = 0
        self._rows: builtins.list[AuditRow] = []
        self._noted: dict[str, int] = {}
        self._summaries: dict[str, _Summary] = {}

    @property
    def pending(self) -> int:
        """Events waiting for the next flush, a summary counting as one."""
        return len(self._rows) + len(self._summaries)

    async def append(self, event: AuditEvent) -> AuditEvent:
        _check_new(event)
        if len(self._rows) >= self.max_events:
            self._drop(1)
        else:
            self._rows.append(
                (
                    event.at.timestamp(),
                    event.actor,
                    event.action,
                    event.subject,
                    event.target,
                    json.dumps(event.detail),
                    event.request_id,
                    event.instance,
                )
            )
        return event

    async def note(self, at: float, **fields: Any) -> None:
        """:meth:`AuditLog.note`: :meth:`note_now`, nothing to await."""
        self.note_now(at, **fields)

    def note_now(
        self,
        at: float,
        *,
        actor: str,
        action: str,
        subject: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        instance: str | None = None,
    ) -> None:
        """:meth:`note` without an await: kept for the next flush, nothing written here (a refused check's path)."""
        if self.refusals_per_flush:
            noted = self._noted.get(action, 0)
            if noted >= self.refusals_per_flush:  # counted into the summary: no row, so no field to check but its own
                summary = self._summaries.get(action)
                if summary is None:
                    _check_fields("system", action, None, None, None, instance)  # the summary row's
                    summary = self._summaries[action] = _Summary(at, instance)
                summary.add(at, actor if subject is None else subject, detail)
                return
            self._noted[action] = noted + 1
        # AuditEvent's checks, on the fields: a row kept costs one json.dumps and no object.
        _check_fields(actor, action, subject, target, request_id, instance)
        text = _detail_text(detail or {})
        if len(self._rows) >= self.max_events:
            self._drop(1)
        else:
            self._rows.append((at, actor, action, subject, target, text, request_id, instance))

    def _drop(self, count: int) -> None:
        before, self.dropped = self.dropped, self.dropped + count
        if before == 0 or before // 1000 != self.dropped // 1000:
            log.warning("audit buffer full: %d events dropped so far (the database has not taken them)", self.dropped)

    async def flush(self) -> int:
        """Write what is kept (one batch); how many events were written. Never raises a tokenward error: a
        failed write is logged and kept for the next flush."""
        if self._noted:
            self._noted = {}
            summaries, self._summaries = self._summaries, {}
            for action, summary in summaries.items():
                if len(self._rows) >= self.max_events:
                    self._drop(summary.events)
                else:
                    self._rows.append(summary.row(action))
        batch, self._rows = self._rows, []
        if not batch:
            return 0
        try:
            await self.inner.append_rows(batch)
        except TokenwardError as exc:
            log.warning("cannot write %d audit events (kept for the next flush): %s", len(batch), exc.detail)
            kept = batch + self._rows
            if len(kept) > self.max_events:
                self._drop(len(kept) - self.max_events)
                kept = kept[: self.max_events]  # the oldest are kept: they are the ones already late
            self._rows = kept
            return 0
        return len(batch)

    async def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: Cursor | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditEvent]:
        await self.flush()
        return await self.inner.list(actor=actor, action=action, since=since, until=until, before=before, limit=limit)

    async def close(self) -> None:
        await self.flush()


#: Distinct addresses and subjects a summary counts one by one (the rest are only in ``events``), and how many of the
#: most frequent of each its event names.
_SUMMARY_DISTINCT = 1000
_SUMMARY_TOP = 10


class _Summary:
    """What :meth:`BufferedAuditLog.note` counts of one action's events past ``refusals_per_flush`` until the next
    flush, written then as one event: actor ``system``, detail ``{"summary": true, "events": n, "first": …,
    "reasons": {reason: n}, "addresses": {ip: n}, "subjects": {subject: n}}`` with the most frequent addresses and
    subjects (the subject, else the actor: the account a check failed for, the key a ban is on). A flood of refused
    checks from many addresses thus costs one row a second, not one per check, while what it was and where it came
    from stays in the log (the regulation counts every check regardless)."""

    __slots__ = ("addresses", "events", "first", "instance", "last", "reasons", "subjects")

    def __init__(self, at: float, instance: str | None) -> None:
        self.first = self.last = at
        self.instance = instance
        self.events = 0
        self.reasons: dict[str, int] = {}
        self.addresses: dict[str, int] = {}
        self.subjects: dict[str, int] = {}

    def add(self, at: float, subject: str, detail: Mapping[str, Any] | None) -> None:
        self.events += 1
        self.last = at
        _bump(self.subjects, subject)
        if detail:
            reason, ip = detail.get("reason"), detail.get("ip")
            if isinstance(reason, str):  # an ErrorCode too: counted by its value
                _bump(self.reasons, str(reason))
            if isinstance(ip, str):
                _bump(self.addresses, ip)

    def row(self, action: str) -> AuditRow:
        detail = {
            "summary": True,
            "events": self.events,
            "first": datetime.fromtimestamp(self.first, UTC).isoformat(),
            "reasons": self.reasons,
            "addresses": _top(self.addresses),
            "subjects": _top(self.subjects),
        }
        return (self.last, "system", action, None, None, json.dumps(detail), None, self.instance)


def _bump(counts: dict[str, int], key: str) -> None:
    n = counts.get(key)
    if n is not None:
        counts[key] = n + 1
    elif len(counts) < _SUMMARY_DISTINCT:
        counts[key] = 1


def _top(counts: dict[str, int]) -> dict[str, int]:
    return dict(heapq.nlargest(_SUMMARY_TOP, counts.items(), key=lambda item: item[1]))


_COLUMNS = ("at", "actor", "action", "subject", "target", "detail", "request_id", "instance")
_PG_INSERT = text(
    "INSERT INTO audit_events (at, actor, action, subject, target, detail, request_id, instance) "
    "SELECT at, actor, action, subject, target, CAST(detail AS JSON), request_id, instance FROM unnest("
    "CAST(:at AS TIMESTAMPTZ[]), CAST(:actor AS VARCHAR[]), CAST(:action AS VARCHAR[]), "
    "CAST(:subject AS VARCHAR[]), CAST(:target AS VARCHAR[]), CAST(:detail AS TEXT[]), "
    "CAST(:request_id AS VARCHAR[]), CAST(:instance AS VARCHAR[])"
    ") AS t(at, actor, action, subject, target, detail, request_id, instance)"
)


_PG_INSERT_ROWS = text(
    "INSERT INTO audit_events (at, actor, action, subject, target, detail, request_id, instance) "
    "SELECT to_timestamp((e->>0)::float8), e->>1, e->>2, e->>3, e->>4, CAST(e->>5 AS JSON), e->>6, e->>7 "
    "FROM json_array_elements(CAST(:rows AS JSON)) AS e"
)
_SQLITE_INSERT_ROWS = text(
    "INSERT INTO audit_events (at, actor, action, subject, target, detail, request_id, instance) "
    f"SELECT {SQLITE_TIME}, actor, action, subject, target, detail, request_id, instance FROM ("
    "SELECT CAST(round(json_extract(value, '$[0]') * 1000000) AS INTEGER) AS us, "
    "json_extract(value, '$[1]') AS actor, json_extract(value, '$[2]') AS action, "
    "json_extract(value, '$[3]') AS subject, json_extract(value, '$[4]') AS target, "
    "json_extract(value, '$[5]') AS detail, json_extract(value, '$[6]') AS request_id, "
    "json_extract(value, '$[7]') AS instance FROM json_each(:rows))"
)


def _row_event(row: AuditRow) -> AuditEvent:
    at, actor, action, subject, target, detail, request_id, instance = row
    return AuditEvent(
        at=datetime.fromtimestamp(at, UTC),
        actor=actor,
        action=action,
        subject=subject,
        target=target,
        detail=json.loads(detail),
        request_id=request_id,
        instance=instance,
    )


def _to_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        target=row.target,
        detail=row.detail,
        request_id=row.request_id,
        instance=row.instance,
    )


def _check_new(event: AuditEvent) -> None:
    if event.id is not None:
        raise ValueError("append takes a new event; the audit log assigns ids")


def _check_query(
    since: datetime | None, limit: int, *, until: datetime | None = None, before: Cursor | None = None
) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIST_LIMIT}", code=ErrorCode.INVALID_LIMIT)
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise BadRequest("since must include a time zone", code=ErrorCode.INVALID_SINCE)
    if until is not None and (until.tzinfo is None or until.utcoffset() is None):
        raise BadRequest("until must include a time zone", code=ErrorCode.INVALID_UNTIL)
    if before is not None and (before[0].tzinfo is None or before[0].utcoffset() is None):
        raise BadRequest("a paging cursor's time must include a time zone", code=ErrorCode.INVALID_CURSOR)
