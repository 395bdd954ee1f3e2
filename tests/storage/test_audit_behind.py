"""BufferedAuditLog: events that are not part of a change are kept in memory and written in one multi-row
INSERT per flush; bounded, a failed flush kept for the next one, flushed on close (docs/security.md)."""

from __future__ import annotations

import builtins
import dataclasses
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.errorcodes import ErrorCode
from tokenward.errors import ConfigError, StorageUnavailable, TokenwardError
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import AuditEvent, Database, InMemoryAuditLog, SqlAuditLog
from tokenward.storage.audit import BufferedAuditLog

T0 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


def _event(i: int, **overrides: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "at": T0 + timedelta(seconds=i),
        "actor": "anonymous",
        "action": "apptoken.verify_failed",
        "detail": {"reason": "malformed", "ip": f"192.0.2.{i % 250}"},
    }
    values.update(overrides)
    return AuditEvent(**values)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()[:3]))

    engine = db.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa_event.remove(engine, "before_cursor_execute", record)


class Flaky(InMemoryAuditLog):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def append_many(self, events: builtins.list[AuditEvent]) -> None:
        if self.down:
            raise StorageUnavailable("the database is unreachable", code=ErrorCode.STORAGE_UNAVAILABLE)
        await super().append_many(events)


async def test_many_events_are_one_insert_per_flush(database: Database) -> None:
    behind = BufferedAuditLog(SqlAuditLog(database))
    with statements(database) as sent:
        for i in range(300):
            appended = await behind.append(_event(i))
            assert appended.id is None
        assert sent == []  # nothing on the request
        assert await behind.flush() == 300
    assert sent == ["INSERT INTO audit_events"]
    listed = await SqlAuditLog(database).list(limit=1000)
    assert len(listed) == 300 and listed[0].detail == {"reason": "malformed", "ip": "192.0.2.49"}
    assert listed[0].at == T0 + timedelta(seconds=299)
    with statements(database) as sent:
        assert await behind.flush() == 0
    assert sent == []


async def test_a_flush_is_one_statement_and_keeps_every_field(database: Database) -> None:
    behind = BufferedAuditLog(SqlAuditLog(database))
    at = T0 + timedelta(microseconds=123456)
    kept = _event(
        0,
        at=at,
        subject="\u00e9lodie@example.com",
        target='tok"1',
        detail={"reason": "unknown_id", "ip": None, "n": [1, 2.5], "quote": '"\\'},
        request_id="req-1",
        instance="i-1",
    )
    await behind.append(kept)
    await behind.append(_event(1, subject=None, target=None))
    before = database.statements
    assert await behind.flush() == 2
    # SQLite, PostgreSQL: in autocommit mode, the INSERT is its own transaction. MariaDB: an INSERT and its COMMIT.
    assert database.statements == before + (2 if database.dialect == "mysql" else 1)
    listed = await SqlAuditLog(database).list()
    assert [e.at for e in listed] == [T0 + timedelta(seconds=1), at]
    assert listed[1] == dataclasses.replace(kept, id=listed[1].id)
    assert (listed[0].subject, listed[0].target, listed[0].request_id) == (None, None, None)


async def test_noting_fields_keeps_what_appending_their_event_keeps() -> None:
    by_event, by_fields = BufferedAuditLog(InMemoryAuditLog()), BufferedAuditLog(InMemoryAuditLog())
    fields: dict[str, Any] = {
        "actor": "bob",
        "action": "apptoken.verify_failed",
        "subject": "bob",
        "target": "tok1",
        "detail": {"reason": "unknown_id", "ip": "192.0.2.1"},
        "request_id": "r1",
        "instance": "i1",
    }
    at = T0 + timedelta(microseconds=5)
    await by_event.append(AuditEvent(at=at, **fields))
    await by_fields.note(at.timestamp(), **fields)
    await by_fields.note(at.timestamp(), actor="system", action="regulation.ban")  # no detail: {}
    assert by_fields._rows[0] == by_event._rows[0]
    assert by_fields._rows[1][5] == "{}"
    for bad in ({"actor": ""}, {"target": "x" * 513}, {"request_id": "x" * 400}, {"detail": {"at": T0}}):
        with pytest.raises(ValueError):
            await by_fields.note(0.0, **{**fields, **bad})
        with pytest.raises(ValueError):
            AuditEvent(at=T0, **{**fields, **bad})
    assert by_fields.pending == 2


async def test_the_events_kept_are_not_walked_by_the_garbage_collector() -> None:
    # A second of refused requests is thousands of events: kept as objects, each full collection walked them.
    behind = BufferedAuditLog(InMemoryAuditLog())
    for i in range(1000):
        await behind.append(_event(i))
    gc.collect(0)
    assert behind.pending == 1000
    assert not [row for row in behind._rows if gc.is_tracked(row)]


async def test_list_flushes_first_so_an_instance_reads_what_it_wrote(database: Database) -> None:
    behind = BufferedAuditLog(SqlAuditLog(database))
    await behind.append(_event(1, action="regulation.ban", actor="system", subject="ip:192.0.2.1"))
    assert [e.subject for e in await behind.list(action="regulation.ban")] == ["ip:192.0.2.1"]
    assert behind.pending == 0


async def test_a_failed_flush_keeps_the_events_for_the_next(caplog: pytest.LogCaptureFixture) -> None:
    inner = Flaky()
    behind = BufferedAuditLog(inner)
    await behind.append(_event(1))
    inner.down = True
    with caplog.at_level(logging.WARNING, logger="tokenward.audit"):
        assert await behind.flush() == 0
    assert "cannot write 1 audit events" in caplog.text
    await behind.append(_event(2))
    inner.down = False
    assert await behind.flush() == 2
    assert [e.at for e in await inner.list()] == [T0 + timedelta(seconds=2), T0 + timedelta(seconds=1)]


async def test_the_buffer_is_bounded_and_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    inner = Flaky()
    inner.down = True
    behind = BufferedAuditLog(inner, max_events=3)
    with caplog.at_level(logging.WARNING, logger="tokenward.audit"):
        for i in range(5):
            await behind.append(_event(i))
        assert behind.dropped == 2 and behind.pending == 3
        await behind.flush()  # refused: kept, still within the bound
        await behind.append(_event(9))
    assert behind.dropped == 3 and behind.pending == 3
    assert "audit buffer full: 1 events dropped" in caplog.text
    inner.down = False
    await behind.flush()
    assert [e.at.second for e in await inner.list()] == [2, 1, 0]  # the oldest were kept


async def test_an_event_with_an_id_is_refused_at_once() -> None:
    behind = BufferedAuditLog(InMemoryAuditLog())
    stored = await InMemoryAuditLog().append(_event(1))
    with pytest.raises(ValueError, match="assigns ids"):
        await behind.append(stored)


async def test_a_batch_is_all_or_nothing(database: Database) -> None:
    too_long = "x" * 400  # refused by the event itself before any storage
    with pytest.raises(ValueError):
        _event(1, actor=too_long)
    log = SqlAuditLog(database)
    await log.append_many([])
    with pytest.raises((TokenwardError, ValueError)):
        await log.append_many([_event(1), await log.append(_event(2))])  # the second has an id
    assert len(await log.list()) == 1


async def test_the_runtime_writes_failed_verifications_behind_and_on_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, "audit-behind.example.com")
    settings = Settings.load(data_dir=data)
    runtime = await open_runtime(settings, listen=False, eager=False)
    with pytest.raises(TokenwardError):
        await runtime.app_tokens.verify("alice@example.com", "not-a-token", client_ip="192.0.2.1")
    assert runtime.audit_behind.pending == 1
    assert await SqlAuditLog(runtime.database).list(action="apptoken.verify_failed") == []
    await runtime.close()
    async with Database.connect(settings.database_url_or_default) as db:
        events = await SqlAuditLog(db).list(action="apptoken.verify_failed")
    assert [(e.actor, e.detail["ip"]) for e in events] == [("alice@example.com", "192.0.2.1")]


async def test_refusals_past_the_limit_of_a_flush_become_one_summary_event_per_action(database: Database) -> None:
    """docs/app-tokens.md#audit: a flood of refused checks costs one row a flush, its counts and sources kept."""
    behind = BufferedAuditLog(SqlAuditLog(database), refusals_per_flush=3)
    at = T0.timestamp()
    for i in range(10):
        reason = "unknown_id" if i % 2 else "malformed"
        detail = {"reason": reason, "ip": "192.0.2.9" if i >= 6 else f"192.0.2.{i}"}
        await behind.note(at + i, actor=f"user{i % 3}", action="apptoken.verify_failed", detail=detail)
    await behind.note(at + 20, actor="system", action="regulation.ban", subject="ip:192.0.2.9")
    assert behind.pending == 5  # 3 + the ban, and one summary
    assert await behind.flush() == 5
    failed = await SqlAuditLog(database).list(action="apptoken.verify_failed")
    assert [e.actor for e in failed] == ["system", "user2", "user1", "user0"]  # newest first: the summary
    summary = failed[0]
    assert summary.at == T0 + timedelta(seconds=9) and summary.subject is None and summary.target is None
    assert summary.detail == {
        "summary": True,
        "events": 7,
        "first": (T0 + timedelta(seconds=3)).isoformat(),
        "reasons": {"unknown_id": 4, "malformed": 3},
        "addresses": {"192.0.2.9": 4, "192.0.2.3": 1, "192.0.2.4": 1, "192.0.2.5": 1},
        "subjects": {"user0": 3, "user1": 2, "user2": 2},
    }
    assert [e.subject for e in await SqlAuditLog(database).list(action="regulation.ban")] == ["ip:192.0.2.9"]
    # The limit is per flush: the next interval's first refusals are kept one by one again.
    await behind.note(at + 30, actor="user9", action="apptoken.verify_failed", detail={"reason": "malformed"})
    assert await behind.flush() == 1
    assert (await SqlAuditLog(database).list(action="apptoken.verify_failed", limit=1))[0].actor == "user9"


async def test_a_summary_names_the_most_frequent_sources_and_stays_bounded() -> None:
    inner = InMemoryAuditLog()
    behind = BufferedAuditLog(inner, refusals_per_flush=1)
    for i in range(5000):
        ip = "198.51.100.1" if i % 100 == 0 else f"10.0.{i // 256}.{i % 256}"
        await behind.note(float(i), actor=f"nobody{i}", action="apptoken.verify_failed", detail={"ip": ip})
    summary = behind._summaries["apptoken.verify_failed"]
    assert len(summary.addresses) == len(summary.subjects) == 1000  # distinct sources counted one by one
    assert behind.pending == 2
    await behind.flush()
    detail = (await inner.list(action="apptoken.verify_failed", limit=1))[0].detail
    assert detail["events"] == 4999 and detail["reasons"] == {}
    assert len(detail["addresses"]) == 10 and len(detail["subjects"]) == 10
    assert next(iter(detail["addresses"].items())) == ("198.51.100.1", 49)  # the most frequent first (i=0 kept alone)


async def test_a_row_kept_has_its_fields_checked_and_a_summary_its_own() -> None:
    behind = BufferedAuditLog(InMemoryAuditLog(), refusals_per_flush=1)
    with pytest.raises(ValueError, match="target"):  # kept as a row: checked as an AuditEvent would be
        behind.note_now(1.0, actor="a", action="apptoken.verify_failed", target="t" * 10_000)
    behind.note_now(1.0, actor="a", action="apptoken.verify_failed")
    # Past the limit only the subject and the detail's reason and address are counted: no row, no target kept.
    behind.note_now(2.0, actor="b", action="apptoken.verify_failed", target="t" * 10_000, detail={"ip": "192.0.2.1"})
    assert behind._summaries["apptoken.verify_failed"].addresses == {"192.0.2.1": 1}
    behind.note_now(3.0, actor="c", action="regulation.ban")
    with pytest.raises(ValueError, match="instance"):  # the summary's own row names the instance
        behind.note_now(4.0, actor="c", action="regulation.ban", instance="i" * 10_000)
    assert "regulation.ban" not in behind._summaries


async def test_without_a_limit_every_refusal_is_kept() -> None:
    behind = BufferedAuditLog(InMemoryAuditLog())
    for i in range(300):
        await behind.note(float(i), actor="anonymous", action="apptoken.verify_failed", detail={"reason": "malformed"})
    assert behind.pending == 300 and not behind._summaries


async def test_the_runtime_summarises_refusals_past_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, "audit-summary.example.com")
    assert Settings.load(data_dir=data).audit_refusals_per_flush == 100
    monkeypatch.setenv("TOKENWARD_AUDIT_REFUSALS_PER_FLUSH", "2")
    settings = Settings.load(data_dir=data)
    runtime = await open_runtime(settings, listen=False, eager=False)
    for i in range(5):
        with pytest.raises(TokenwardError):
            await runtime.app_tokens.verify(f"u{i}@example.com", "not-a-token", client_ip=f"192.0.2.{i}")
    await runtime.close()
    async with Database.connect(settings.database_url_or_default) as db:
        events = await SqlAuditLog(db).list(action="apptoken.verify_failed")
    assert [e.actor for e in events] == ["system", "u1@example.com", "u0@example.com"]
    assert events[0].detail["events"] == 3 and events[0].detail["reasons"] == {"apptoken_malformed": 3}
    assert events[0].detail["addresses"] == {"192.0.2.2": 1, "192.0.2.3": 1, "192.0.2.4": 1}


def test_a_negative_refusal_limit_is_refused_with_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    monkeypatch.setenv("TOKENWARD_AUDIT_REFUSALS_PER_FLUSH", "-1")
    with pytest.raises(ConfigError, match="invalid setting TOKENWARD_AUDIT_REFUSALS_PER_FLUSH: Input should be"):
        Settings.load(data_dir=tmp_path)


async def test_a_summary_of_bans_names_the_banned_keys() -> None:
    inner = InMemoryAuditLog()
    behind = BufferedAuditLog(inner, refusals_per_flush=1)
    for i in range(4):
        ip = f"192.0.2.{i}"
        await behind.note(float(i), actor="system", action="regulation.ban", subject=f"ip:{ip}", detail={"ip": ip})
    await behind.flush()
    summary = (await inner.list(action="regulation.ban", limit=1))[0]
    assert summary.detail["events"] == 3
    assert summary.detail["subjects"] == {"ip:192.0.2.1": 1, "ip:192.0.2.2": 1, "ip:192.0.2.3": 1}
