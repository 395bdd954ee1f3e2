"""Creating app tokens: the per-user limit under concurrency, and the token with its audit event as one write.

Run on every store (memory, SQLite, PostgreSQL, MariaDB). The concurrent creates come from several
services, each on its own :class:`Database` (its own pool, so its own connections), like instances
sharing one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from tests.apptokens.helpers import make_service, stores
from tokenward.apptokens import AppTokenConfig, AppTokenService
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, StorageError, StorageUnavailable, TokenwardError
from tokenward.storage import AuditEvent, Database, InMemoryAuditLog, SqlAppTokenStore

ALICE = "alice@example.com"
BOB = "bob@example.com"
LIMIT = 3
ATTEMPTS = 10
INSTANCES = 4


@pytest.fixture
async def instances(store_database: Database | None) -> AsyncIterator[list[AppTokenService]]:
    """``INSTANCES`` services with ``max_per_user=LIMIT`` on the same storage, each with its own engine."""
    config = AppTokenConfig(max_per_user=LIMIT)
    if store_database is None:
        shared = stores(None)
        yield [make_service(shared=shared, config=config) for _ in range(INSTANCES)]
        return
    async with AsyncExitStack() as stack:
        dbs = [await stack.enter_async_context(Database.connect(store_database.url)) for _ in range(INSTANCES)]
        yield [make_service(db, config=config) for db in dbs]


async def _outcome(service: AppTokenService, owner: str) -> str:
    try:
        await service.create(owner=owner, created_by=owner)
    except TokenwardError as exc:
        return exc.error_code
    return "created"


async def test_concurrent_creates_never_exceed_the_limit(instances: list[AppTokenService]) -> None:
    calls = [_outcome(instances[i % INSTANCES], ALICE) for i in range(ATTEMPTS)]
    calls += [_outcome(instances[i % INSTANCES], BOB) for i in range(2)]  # another user is not held up
    outcomes = await asyncio.gather(*calls)

    alice, bob = outcomes[:ATTEMPTS], outcomes[ATTEMPTS:]
    assert sorted(alice) == ["apptoken_limit"] * (ATTEMPTS - LIMIT) + ["created"] * LIMIT
    assert bob == ["created", "created"]
    service = instances[0]
    assert len(await service.list(ALICE)) == LIMIT
    created = await service.audit.list(action="apptoken.create", limit=100)
    assert sorted(e.subject or "" for e in created) == [ALICE] * LIMIT + [BOB] * 2


async def test_the_limit_error_is_unchanged(instances: list[AppTokenService]) -> None:
    service = instances[0]
    for _ in range(LIMIT):
        await service.create(owner=ALICE, created_by=ALICE)
    with pytest.raises(Conflict) as info:
        await service.create(owner=ALICE, created_by=ALICE)
    assert info.value.error_code == "apptoken_limit" and info.value.status == 409
    assert info.value.detail == f"{ALICE} already holds {LIMIT} live app tokens; delete some first"
    # a deleted token frees its place
    [first, *_] = await service.list(ALICE)
    await service.revoke(first.id, owner=ALICE, actor=ALICE)
    await service.create(owner=ALICE, created_by=ALICE)
    assert len(await service.list(ALICE)) == LIMIT


class FailingAuditLog(InMemoryAuditLog):
    async def append(self, event: AuditEvent) -> AuditEvent:
        raise StorageError("audit log is down", code=ErrorCode.STORAGE_ERROR)


@pytest.mark.parametrize("failing", ["audit_table", "other_log"])
async def test_a_failed_audit_write_leaves_no_token(store_database: Database | None, failing: str) -> None:
    store, audit, regulation = stores(store_database)
    if failing == "other_log" or store_database is None:
        audit = FailingAuditLog()  # a log elsewhere: appended to before the token commits
    else:
        # A real failure in the same database: the audit table is gone, the token table is fine.
        async with store_database.engine.begin() as conn:
            await conn.execute(text("DROP TABLE audit_events"))
    service = make_service(shared=(store, audit, regulation))

    with pytest.raises(StorageError) as info:
        await service.create(owner=ALICE, created_by=ALICE)
    assert info.value.error_code in ("storage_error", "storage_schema_missing")
    assert await store.list(include_revoked=True) == []
    assert await store.count_live(ALICE, datetime.now(UTC)) == 0


async def test_impersonated_create_writes_both_events_with_the_token(store_database: Database | None) -> None:
    store, audit, regulation = stores(store_database)
    service = make_service(shared=(store, audit, regulation))
    record, _ = await service.create(owner=BOB, created_by=ALICE, label="ci", impersonated=True)
    events = await audit.list(limit=10)
    assert {(e.action, e.actor, e.subject) for e in events} == {
        ("apptoken.create", ALICE, BOB),
        ("apptoken.impersonate", ALICE, BOB),
    }
    [created] = [e for e in events if e.action == "apptoken.create"]
    assert created.target == record.id and created.detail["label"] == "ci" and created.id is not None


async def test_a_create_waits_for_another_create_of_the_same_user(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = make_service(database)
    store = service.store
    assert isinstance(store, SqlAppTokenStore)
    async with database.engine.connect() as holder:
        lock = await store._lock_owner(holder, ALICE)  # what a create of ALICE holds for its transaction
        waiting = asyncio.create_task(service.create(owner=ALICE, created_by=ALICE))
        await _until_a_lock_waiter(database, waiting)
        assert not waiting.done()
        await holder.commit()
        if lock is not None:
            await holder.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
        record, _ = await asyncio.wait_for(waiting, 5)
    assert [r.id for r in await service.list(ALICE)] == [record.id]
    if database.dialect != "mysql":
        return
    # MariaDB: a lock held too long is a clear 503, not a hang
    monkeypatch.setattr("tokenward.storage.apptokens._OWNER_LOCK_WAIT", 1)
    async with database.engine.connect() as holder:
        lock = await store._lock_owner(holder, ALICE)
        with pytest.raises(StorageUnavailable) as info:
            await service.create(owner=ALICE, created_by=ALICE)
        await holder.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": lock})
    assert info.value.error_code == "apptoken_busy" and info.value.status == 503
    assert len(await service.list(ALICE)) == 1


async def _until_a_lock_waiter(database: Database, task: asyncio.Task[Any]) -> None:
    """Return once the server shows a session waiting for a lock (PostgreSQL, MariaDB): the create is
    blocked, not merely slow. A readiness wait, not a clock: the deadline is generous. SQLite shows no
    waiter; its create cannot finish while the holder's write transaction is open anyway."""
    if database.dialect == "sqlite":
        await asyncio.sleep(0)  # an event-loop turn: the create has started
        return
    query = {
        "postgresql": "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'advisory'",
        "mysql": "SELECT count(*) FROM information_schema.processlist WHERE state = 'User lock' AND db = DATABASE()",
    }[database.dialect]
    async with asyncio.timeout(120):
        while not task.done():
            async with database.engine.connect() as conn:
                if (await conn.execute(text(query))).scalar_one():
                    return
            await asyncio.sleep(0.01)  # polling interval, not a clock
