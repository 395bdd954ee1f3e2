"""Revoking app tokens: the revocation and its audit events as one write, and what follows the commit.

Run on every store (memory, SQLite, PostgreSQL, MariaDB), like ``test_create.py``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tests.apptokens.helpers import feed_of, make_service, stores
from tokenward.apptokens import AppTokenService
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageError, TokenwardError
from tokenward.storage import AuditEvent, Database, InMemoryAuditLog

ALICE = "alice@example.com"
BOB = "bob@example.com"


class FailingAuditLog(InMemoryAuditLog):
    async def append(self, event: AuditEvent) -> AuditEvent:
        raise StorageError("audit log is down", code=ErrorCode.STORAGE_ERROR)


def _announced(service: AppTokenService) -> int:
    """How many changes ``service`` announced to other instances."""
    return feed_of(service).announced


@pytest.mark.parametrize("failing", ["audit_table", "other_log"])
@pytest.mark.parametrize("impersonated", [False, True])
async def test_a_failed_audit_write_leaves_the_token_live(
    store_database: Database | None, failing: str, impersonated: bool
) -> None:
    store, audit, regulation = stores(store_database)
    service = make_service(shared=(store, audit, regulation))
    record, token = await service.create(owner=BOB, created_by=BOB)
    await service.verify(BOB, token)  # held in memory by this service
    announced = _announced(service)
    if failing == "other_log" or store_database is None:
        service.audit = FailingAuditLog()  # a log elsewhere: appended to before the revocation commits
    else:
        # A real failure in the same database: the audit table is gone, the token table is fine.
        async with store_database.engine.begin() as conn:
            await conn.execute(text("DROP TABLE audit_events"))

    with pytest.raises(StorageError) as info:
        await service.revoke(record.id, owner=None if impersonated else BOB, actor=ALICE, impersonated=impersonated)
    assert info.value.error_code in ("storage_error", "storage_schema_missing")
    assert "twa_" not in str(info.value) and token[4:] not in str(info.value)

    stored = await store.get(record.id)
    assert stored is not None and stored.revoked_at is None
    assert await store.count_live(BOB, datetime.now(UTC)) == 1
    assert _announced(service) == announced  # no instance was woken for a revocation that did not happen
    # Still live for this service and for an instance that never cached it
    assert (await service.verify(BOB, token)).id == record.id
    other = make_service(shared=(store, InMemoryAuditLog(), regulation))
    assert (await other.verify(BOB, token)).id == record.id

    if failing == "other_log":  # the log is back: the same delete now succeeds, once
        service.audit = InMemoryAuditLog()
        await service.revoke(record.id, owner=BOB, actor=BOB)
        assert _announced(service) == announced + 1
        assert [e.action for e in await service.audit.list()] == ["apptoken.delete"]
        for instance in (service, other):  # this one at once, the other after its feed's next poll
            await instance.feed.poll()
            with pytest.raises(TokenwardError) as refused:
                await instance.verify(BOB, token)
            assert refused.value.error_code == "apptoken_revoked"


@pytest.mark.parametrize("impersonated", [False, True])
async def test_a_revoke_writes_exactly_its_events(store_database: Database | None, impersonated: bool) -> None:
    store, audit, regulation = stores(store_database)
    service = make_service(shared=(store, audit, regulation))
    record, _ = await service.create(owner=BOB, created_by=BOB, label="ci")
    before = {e.id for e in await audit.list(limit=100)}
    announced = _announced(service)
    actor = ALICE if impersonated else BOB

    revoked = await service.revoke(
        record.id, owner=None if impersonated else BOB, actor=actor, impersonated=impersonated, request_id="req-1"
    )

    assert revoked.revoked_at is not None and _announced(service) == announced + 1
    new = [e for e in await audit.list(limit=100) if e.id not in before]
    expected: set[tuple[str, str, str | None, str | None, str | None]] = {
        ("apptoken.delete", actor, BOB, record.id, "req-1")
    }
    if impersonated:
        expected.add(("apptoken.impersonate", ALICE, BOB, None, "req-1"))
    assert len(new) == len(expected)
    assert {(e.action, e.actor, e.subject, e.target, e.request_id) for e in new} == expected
    [deleted] = [e for e in new if e.action == "apptoken.delete"]
    assert deleted.detail == {"label": "ci", "impersonated": impersonated} and deleted.id is not None
    if impersonated:
        [act] = [e for e in new if e.action == "apptoken.impersonate"]
        assert act.detail == {"act": "delete"}
    stored = await store.get(record.id)
    assert stored is not None and stored.revoked_at is not None


async def test_a_revoke_that_matches_nothing_appends_nothing(store_database: Database | None) -> None:
    store, audit, regulation = stores(store_database)
    service = make_service(shared=(store, audit, regulation))
    record, _ = await service.create(owner=BOB, created_by=BOB)
    event = AuditEvent(at=datetime.now(UTC), actor=BOB, action="apptoken.delete", target=record.id)
    before = len(await audit.list(limit=100))
    assert not await store.revoke(record.id, datetime.now(UTC), owner=ALICE, audit=audit, events=[event])
    assert not await store.revoke("ZZZZZZZZZZZZ", datetime.now(UTC), audit=audit, events=[event])
    assert await store.revoke(record.id, datetime.now(UTC), owner=BOB, audit=audit, events=[event])
    assert not await store.revoke(record.id, datetime.now(UTC), audit=audit, events=[event])  # already revoked
    assert len(await audit.list(limit=100)) == before + 1


async def test_concurrent_revokes_write_one_event(store_database: Database | None) -> None:
    async with AsyncExitStack() as stack:
        if store_database is None:
            shared = stores(None)
            services = [make_service(shared=shared) for _ in range(3)]
        else:  # like three instances: each its own engine, so its own connections
            dbs = [await stack.enter_async_context(Database.connect(store_database.url)) for _ in range(3)]
            services = [make_service(db) for db in dbs]
        record, _ = await services[0].create(owner=BOB, created_by=BOB)

        async def outcome(service: AppTokenService) -> str:
            try:
                await service.revoke(record.id, owner=BOB, actor=BOB)
            except TokenwardError as exc:
                return exc.error_code
            return "revoked"

        results = await asyncio.gather(*(outcome(s) for s in services))
        assert sorted(results) == ["apptoken_not_found", "apptoken_not_found", "revoked"]
        assert len(await services[0].audit.list(action="apptoken.delete")) == 1
