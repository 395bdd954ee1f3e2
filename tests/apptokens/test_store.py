"""Contract tests every AppTokenStore and RegulationStore passes: memory, SQLite, PostgreSQL, MariaDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.apptokens.helpers import change_log, stores
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, StorageError
from tokenward.storage import AppTokenRecord, AuditEvent, Database, InMemoryAuditLog
from tokenward.storage.changes import ChangeKind
from tokenward.storage.regulation import AuthFailureRow

NOW = datetime(2027, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)


def record(token_id: str = "AAAAAAAAAAAA", owner: str = "alice@example.com", **changes: object) -> AppTokenRecord:
    values: dict[str, object] = {
        "id": token_id,
        "owner": owner,
        "label": "ci",
        "scopes": ("read", "tokenward:manage"),
        "secret_hash": "ab" * 32,
        "key_id": "01234567",
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=72),
        "created_by": owner,
    }
    values.update(changes)
    return AppTokenRecord(**values)  # type: ignore[arg-type]


async def test_add_get_list_revoke_touch(store_database: Database | None) -> None:
    store, _, _ = stores(store_database)
    await store.add(record())
    await store.add(record("BBBBBBBBBBBB", created_at=NOW + timedelta(seconds=1)))
    await store.add(record("CCCCCCCCCCCC", owner="bob@example.com"))
    got = await store.get("AAAAAAAAAAAA")
    assert got == record()
    assert await store.get("ZZZZZZZZZZZZ") is None
    assert [r.id for r in await store.list(owner="alice@example.com")] == ["AAAAAAAAAAAA", "BBBBBBBBBBBB"]
    assert len(await store.list()) == 3
    assert await store.count_live("alice@example.com", NOW) == 2
    assert await store.count_live("alice@example.com", NOW + timedelta(days=4)) == 0

    assert not await store.revoke("AAAAAAAAAAAA", NOW, owner="bob@example.com")
    assert await store.revoke("AAAAAAAAAAAA", NOW, owner="alice@example.com")
    assert not await store.revoke("AAAAAAAAAAAA", NOW)
    assert not await store.revoke("ZZZZZZZZZZZZ", NOW)
    revoked = await store.get("AAAAAAAAAAAA")
    assert revoked is not None and revoked.revoked_at == NOW
    assert [r.id for r in await store.list(owner="alice@example.com")] == ["BBBBBBBBBBBB"]
    assert len(await store.list(owner="alice@example.com", include_revoked=True)) == 2

    at = NOW.timestamp()
    await store.touch_many({"BBBBBBBBBBBB": at + 300, "CCCCCCCCCCCC": at, "ZZZZZZZZZZZZ": at})
    touched = await store.get("BBBBBBBBBBBB")
    assert touched is not None and touched.last_used_at == NOW + timedelta(minutes=5)
    other = await store.get("CCCCCCCCCCCC")
    assert other is not None and other.last_used_at == NOW
    assert await store.get("ZZZZZZZZZZZZ") is None


async def test_a_lookup_by_id_is_one_statement(store_database: Database | None) -> None:
    # The trickle of unknown ids a flood may look up (unknown_lookups_per_second) costs one statement each:
    # an autocommit read, no transaction to end.
    if store_database is None:
        pytest.skip("SQL stores only")
    store, _, _ = stores(store_database)
    await store.add(record())
    before = store_database.statements
    assert await store.get("ZZZZZZZZZZZZ") is None
    assert await store.get("AAAAAAAAAAAA") == record()
    assert store_database.statements == before + 2


async def test_a_last_used_flush_is_one_statement_on_postgresql_and_sqlite(store_database: Database | None) -> None:
    # The write-behind's once-a-second flush: one UPDATE in autocommit mode, no COMMIT after it (a flood's SQL budget,
    # issue 13, counts every statement). MariaDB runs its chunks in a transaction: their statements and the COMMIT.
    if store_database is None or store_database.dialect not in ("postgresql", "sqlite"):
        pytest.skip("PostgreSQL and SQLite stores")
    store, _, _ = stores(store_database)
    await store.add(record())
    await store.add(record("BBBBBBBBBBBB"))
    before = store_database.statements
    at = NOW.timestamp() + 60
    await store.touch_many({"AAAAAAAAAAAA": at, "BBBBBBBBBBBB": at, "ZZZZZZZZZZZZ": at})
    assert store_database.statements == before + 1
    touched = await store.get("BBBBBBBBBBBB")
    assert touched is not None and touched.last_used_at == NOW + timedelta(minutes=1)


async def test_creates_and_revokes_write_a_change_entry_in_their_transaction(store_database: Database | None) -> None:
    store, audit, _ = stores(store_database)
    log = change_log(store)
    head = await log.head()
    event = AuditEvent(at=NOW, actor="alice@example.com", action="apptoken.create")
    await store.add(record(), audit=audit, events=[event])
    with pytest.raises(Conflict):
        await store.add(record(owner="mallory@example.com"))  # nothing stored: no entry
    assert not await store.revoke("AAAAAAAAAAAA", NOW, owner="bob@example.com")  # nothing revoked: no entry
    assert not await store.revoke("ZZZZZZZZZZZZ", NOW)
    assert await store.revoke("AAAAAAAAAAAA", NOW + timedelta(minutes=1))  # no owner given: the entry names it

    class Down(InMemoryAuditLog):
        async def append(self, event: AuditEvent) -> AuditEvent:
            raise StorageError("audit log down", code=ErrorCode.STORAGE_ERROR)

    await store.add(record("BBBBBBBBBBBB"))
    with pytest.raises(StorageError):
        await store.revoke("BBBBBBBBBBBB", NOW, audit=Down(), events=[event])  # rolled back: no entry
    with pytest.raises(StorageError):
        await store.add(record("CCCCCCCCCCCC"), audit=Down(), events=[event])
    entries = await log.read(head)
    assert [(e.kind, e.key, e.subject) for e in entries] == [
        (ChangeKind.APP_TOKEN, "AAAAAAAAAAAA", "alice@example.com"),
        (ChangeKind.APP_TOKEN, "AAAAAAAAAAAA", "alice@example.com"),
        (ChangeKind.APP_TOKEN, "BBBBBBBBBBBB", "alice@example.com"),
    ]
    assert entries[0].seq < entries[1].seq < entries[2].seq


async def test_duplicate_id_conflicts(store_database: Database | None) -> None:
    store, _, _ = stores(store_database)
    await store.add(record())
    with pytest.raises(Conflict):
        await store.add(record(owner="mallory@example.com"))


async def test_concurrent_revocations_have_one_winner(store_database: Database | None) -> None:
    store, _, _ = stores(store_database)
    await store.add(record())
    results = await asyncio.gather(*(store.revoke("AAAAAAAAAAAA", NOW) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]


async def test_the_purge_finds_old_failures_by_id_and_never_a_row_in_the_window(database: Database) -> None:
    """auth_failures has no index on ``at`` (migration 0010): the purge deletes the ids before the first row still
    in the window, testing ``at`` too. A late row with an older time (another instance's clock) waits."""
    _, _, regulation = stores(database)
    minute = timedelta(minutes=1)
    for at in (NOW - 9 * minute, NOW - 8 * minute, NOW - minute, NOW - 7 * minute, NOW):
        await regulation.record_failure(["ip:1"], at, since=NOW - 10 * minute)
    await regulation.purge(failures_before=NOW - 2 * minute, bans_before=NOW)
    async with database.session() as session:
        left = (await session.execute(select(AuthFailureRow.at).order_by(AuthFailureRow.id))).scalars().all()
    assert left == [NOW - minute, NOW - 7 * minute, NOW]  # the straggler goes at a later purge ...
    counts = await regulation.record_failure(["ip:1"], NOW, since=NOW - 2 * minute)
    assert counts == {"ip:1": 3}  # ... and counts nothing meanwhile
    await regulation.purge(failures_before=NOW + minute, bans_before=NOW)  # nothing in the window: all go
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(AuthFailureRow))).scalar_one() == 0


async def test_regulation_store_counts_bans_and_purges(store_database: Database | None) -> None:
    _, _, regulation = stores(store_database)
    since = NOW - timedelta(minutes=2)
    await regulation.record_failure(["user:a"], NOW - timedelta(minutes=5), since=NOW - timedelta(minutes=7))
    counts = await regulation.record_failure(["user:a", "ip:1"], NOW, since=since)
    assert counts == {"user:a": 1, "ip:1": 1}  # the failure 5 minutes ago is outside the 2-minute window
    counts = await regulation.record_failure(["user:a"], NOW + timedelta(seconds=1), since=since)
    assert counts == {"user:a": 2}
    await regulation.add_ban("user:a", NOW, NOW + timedelta(minutes=5))
    await regulation.add_ban("user:a", NOW, NOW + timedelta(minutes=3))
    await regulation.add_ban("ip:9", NOW, NOW - timedelta(minutes=1))
    assert await regulation.active_bans(NOW) == {"user:a": NOW + timedelta(minutes=5)}
    await regulation.purge(failures_before=NOW, bans_before=NOW + timedelta(minutes=4))
    assert await regulation.active_bans(NOW) == {"user:a": NOW + timedelta(minutes=5)}
    counts = await regulation.record_failure(["user:a"], NOW + timedelta(seconds=2), since=NOW - timedelta(hours=1))
    assert counts == {"user:a": 3}  # the failure at NOW-5min was purged; NOW, NOW+1s and NOW+2s remain
