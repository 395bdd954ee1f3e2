"""One contract for every AuditLog: in-memory, and SQL on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tokenward.errors import BadRequest
from tokenward.storage import AuditEvent, AuditLog, Database, InMemoryAuditLog, SqlAuditLog

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


@pytest.fixture
async def audit_log(store_database: Database | None) -> AsyncIterator[AuditLog]:
    log: AuditLog = InMemoryAuditLog() if store_database is None else SqlAuditLog(store_database)
    yield log
    await log.close()


def event(minutes: int = 0, **overrides: object) -> AuditEvent:
    values: dict[str, object] = {"at": T0 + timedelta(minutes=minutes), "actor": "alice@example.com", "action": "x"}
    values.update(overrides)
    return AuditEvent(**values)  # type: ignore[arg-type]


async def test_append_assigns_ids_and_round_trips_every_field(audit_log: AuditLog) -> None:
    original = AuditEvent(
        at=T0.astimezone(timezone(timedelta(hours=2))),
        actor="alice@example.com",
        action="apptoken.create",
        subject="bob@example.com",
        target="tok_01H",
        detail={"label": "CI runner ✓", "scopes": ["read", "write"], "n": 3, "nested": {"ok": True, "none": None}},
        request_id="req-123",
        instance="node-a",
    )
    first = await audit_log.append(original)
    second = await audit_log.append(event(1))
    assert first.id is not None and second.id is not None and first.id != second.id
    listed = await audit_log.list(actor="alice@example.com", action="apptoken.create")
    assert listed == [first]
    got = listed[0]
    assert got.at == T0 and got.at.tzinfo is not None and got.at.utcoffset() == timedelta(0)
    assert got.detail == original.detail
    assert (got.subject, got.target) == ("bob@example.com", "tok_01H")
    assert (got.request_id, got.instance) == ("req-123", "node-a")


async def test_list_is_newest_first_with_filters_and_limit(audit_log: AuditLog) -> None:
    await audit_log.append(event(0, action="login"))
    await audit_log.append(event(2, action="apptoken.create"))
    await audit_log.append(event(1, actor="carol@example.com", action="login"))
    await audit_log.append(event(3, action="login"))

    assert [e.at for e in await audit_log.list()] == [T0 + timedelta(minutes=m) for m in (3, 2, 1, 0)]
    logins = await audit_log.list(action="login", limit=2)
    assert [e.actor for e in logins] == ["alice@example.com", "carol@example.com"]
    assert [e.at for e in await audit_log.list(actor="alice@example.com", action="login")] == [
        T0 + timedelta(minutes=3),
        T0,
    ]
    since = await audit_log.list(since=T0 + timedelta(minutes=2))
    assert [e.at for e in since] == [T0 + timedelta(minutes=3), T0 + timedelta(minutes=2)]
    assert await audit_log.list(actor="nobody@example.com") == []


async def test_until_is_exclusive_and_paging_walks_every_event_once(audit_log: AuditLog) -> None:
    for minute in (0, 1, 1, 1, 2, 3, 4):  # three events share one time: the cursor keeps them apart
        await audit_log.append(event(minute))
    until = await audit_log.list(until=T0 + timedelta(minutes=3))
    assert [e.at for e in until] == [T0 + timedelta(minutes=m) for m in (2, 1, 1, 1, 0)]
    window = await audit_log.list(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2))
    assert len(window) == 3
    seen: list[int] = []
    page = await audit_log.list(limit=2)
    while page:
        seen += [e.id for e in page if e.id is not None]
        last = page[-1]
        assert last.id is not None
        page = await audit_log.list(limit=2, before=(last.at, last.id))
    everything = [e.id for e in await audit_log.list()]
    assert seen == everything and len(seen) == 7


async def test_naive_until_or_cursor_is_bad_request(audit_log: AuditLog) -> None:
    with pytest.raises(BadRequest) as caught:
        await audit_log.list(until=datetime(2026, 1, 1))
    assert caught.value.error_code == "invalid_until"
    with pytest.raises(BadRequest) as caught:
        await audit_log.list(before=(datetime(2026, 1, 1), 3))
    assert caught.value.error_code == "invalid_cursor"


async def test_same_timestamp_is_ordered_by_insertion(audit_log: AuditLog) -> None:
    ids = [(await audit_log.append(event(0, target=str(n)))).id for n in range(3)]
    assert [e.id for e in await audit_log.list()] == list(reversed(ids))


async def test_since_accepts_any_time_zone(audit_log: AuditLog) -> None:
    await audit_log.append(event(0))
    await audit_log.append(event(10))
    since = (T0 + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-7)))
    assert [e.at for e in await audit_log.list(since=since)] == [T0 + timedelta(minutes=10)]


async def test_microseconds_survive(audit_log: AuditLog) -> None:
    stored = await audit_log.append(event(0, at=T0 + timedelta(microseconds=1)))
    assert (await audit_log.list())[0].at == stored.at == T0 + timedelta(microseconds=1)


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_bad_limit_is_bad_request(audit_log: AuditLog, limit: int) -> None:
    with pytest.raises(BadRequest) as caught:
        await audit_log.list(limit=limit)
    assert caught.value.error_code == "invalid_limit"


async def test_naive_since_is_bad_request(audit_log: AuditLog) -> None:
    with pytest.raises(BadRequest) as caught:
        await audit_log.list(since=datetime(2026, 1, 1))
    assert caught.value.error_code == "invalid_since"


async def test_append_refuses_an_event_with_an_id(audit_log: AuditLog) -> None:
    with pytest.raises(ValueError, match="assigns ids"):
        await audit_log.append(event(0, id=5))


async def test_longest_allowed_values_fit(audit_log: AuditLog) -> None:
    long = event(0, actor="a" * 320, action="b" * 64, subject="c" * 320, target="d" * 512, request_id="e" * 64)
    stored = await audit_log.append(long)
    assert (await audit_log.list(actor="a" * 320)) == [stored]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"actor": ""}, "non-empty"),
        ({"action": "x" * 65}, "action is longer than 64"),
        ({"target": "x" * 513}, "target is longer than 512"),
        ({"detail": {"when": T0}}, "JSON-serialisable"),
    ],
)
def test_invalid_events_are_refused_before_storage(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event(0, **overrides)
