"""IdentityStore contract: in-memory, SQLite, PostgreSQL and MariaDB behave the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from tokenward.identity.captcha import Challenge
from tokenward.identity.service import enrollment_code_hash
from tokenward.storage import Database
from tokenward.storage.changes import ChangeKind, ChangeLog, InMemoryChangeLog, SqlChangeLog
from tokenward.storage.identity import (
    Enrollment,
    EnrollmentCodeRow,
    IdentityStore,
    InMemoryIdentityStore,
    RedeemedCode,
    SessionRecord,
    SqlIdentityStore,
)
from tokenward.storage.migrations import alembic_config

NOW = 1_776_880_000.0


def _store(db: Database | None) -> IdentityStore:
    return InMemoryIdentityStore() if db is None else SqlIdentityStore(db)


def _challenge(cid: str = "c" * 22) -> Challenge:
    return Challenge(
        id=cid,
        kind="captcha",
        subject="alice@example.com",
        client_id="A" * 40,
        app_hash="B" * 128,
        code_challenge="x" * 43,
        code_mac="d" * 64,
        key_id="29614680-35aa9f4b",
        created_at=NOW,
        expires_at=NOW + 120,
    )


async def test_enrollments_and_codes(store_database: Database | None) -> None:
    store = _store(store_database)
    assert await store.get_enrollment("alice@example.com") is None
    await store.put_enrollment(Enrollment("Alice@Example.com", "k" * 43, NOW, "admin-code"))
    await store.put_enrollment(Enrollment("alice@example.com", "m" * 43, NOW + 1, "admin-code", "aes256gcm"))
    got = await store.get_enrollment("ALICE@example.com")
    assert got is not None and got.public_key == "m" * 43 and got.enrolled_at == NOW + 1
    assert got.aead == "aes256gcm"
    await store.put_enrollment(Enrollment("bob@example.com", "b" * 43, NOW, "admin-code"))
    bob = await store.get_enrollment("bob@example.com")
    assert bob is not None and bob.aead == "chacha20poly1305"
    await store.add_enrollment_code("h" * 64, "Alice@example.com", expires_at=NOW + 10, method="admin-code")
    await store.add_enrollment_code("e" * 64, "bob@example.com", expires_at=NOW + 10, method="admin-code")
    assert await store.redeem_enrollment_code("e" * 64, now=NOW + 10) is None  # expired
    assert await store.redeem_enrollment_code("h" * 64, now=NOW) == RedeemedCode("alice@example.com", "admin-code")
    assert await store.redeem_enrollment_code("h" * 64, now=NOW) is None  # single use
    assert await store.redeem_enrollment_code("z" * 64, now=NOW) is None


async def test_codes_remember_how_they_were_issued(store_database: Database | None) -> None:
    store = _store(store_database)
    await store.add_enrollment_code("m" * 64, "alice@example.com", expires_at=NOW + 10, method="email-code")
    await store.add_enrollment_code("a" * 64, "alice@example.com", expires_at=NOW + 10, method="admin-code")
    assert await store.redeem_enrollment_code("m" * 64, now=NOW) == RedeemedCode("alice@example.com", "email-code")
    assert await store.redeem_enrollment_code("a" * 64, now=NOW) == RedeemedCode("alice@example.com", "admin-code")
    assert await store.redeem_enrollment_code("m" * 64, now=NOW) is None  # single use whatever the method


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_codes_issued_before_migration_0006_are_admin_codes(database_url: str) -> None:
    async with Database.connect(database_url) as db:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0005")
            await conn.execute(
                insert(EnrollmentCodeRow).values(
                    code_hash=enrollment_code_hash("old"),
                    email="carol@example.com",
                    expires_at=datetime.fromtimestamp(NOW + 10, UTC),
                )
            )
        await db.upgrade()
        store = SqlIdentityStore(db)
        got = await store.redeem_enrollment_code(enrollment_code_hash("old"), now=NOW)
        assert got == RedeemedCode("carol@example.com", "admin-code")


async def test_challenge_attempts_and_single_use(store_database: Database | None) -> None:
    store = _store(store_database)
    await store.add_challenge(_challenge())
    assert await store.get_challenge("c" * 22) == _challenge()
    results = await asyncio.gather(*(store.use_attempt("c" * 22, max_attempts=5) for _ in range(7)))
    assert sorted(results) == [False, False, True, True, True, True, True]
    got = await store.get_challenge("c" * 22)
    assert got is not None and got.attempts == 5
    assert await store.consume_challenge("c" * 22, now=NOW + 1)
    assert not await store.consume_challenge("c" * 22, now=NOW + 2)
    got = await store.get_challenge("c" * 22)
    assert got is not None and got.consumed_at == NOW + 1
    assert await store.get_challenge("nope") is None


async def test_sessions_latest_and_revocation(store_database: Database | None) -> None:
    changes: ChangeLog
    if store_database is None:
        changes = InMemoryChangeLog()
        store: IdentityStore = InMemoryIdentityStore(changes)
    else:
        changes, store = SqlChangeLog(store_database), SqlIdentityStore(store_database)
    old = SessionRecord("s1" + "a" * 20, "user", "bob@example.com", "A" * 40, "k" * 43, NOW, NOW + 100)
    new = SessionRecord("s2" + "a" * 20, "user", "bob@example.com", "A" * 40, "m" * 43, NOW + 5, NOW + 100)
    await store.add_session(old)
    await store.add_session(new)
    assert await store.latest_session("bob@example.com", "A" * 40, now=NOW + 6) == new
    soon = SessionRecord("s3" + "a" * 20, "user", "bob@example.com", "A" * 40, "m" * 43, NOW, NOW + 50)
    await store.add_session(soon)
    live = await store.live_sessions(now=NOW + 6, limit=10)
    assert sorted(live) == sorted([(old.id, NOW + 100), (new.id, NOW + 100), (soon.id, NOW + 50)])
    assert live[-1] == (soon.id, NOW + 50)  # latest expiry first: a limit keeps the longest-lived
    assert sorted(await store.live_sessions(now=NOW + 6, limit=2)) == sorted([(old.id, NOW + 100), (new.id, NOW + 100)])
    assert sorted(await store.live_sessions(now=NOW + 50, limit=10)) == sorted(
        [(old.id, NOW + 100), (new.id, NOW + 100)]
    )
    assert await store.latest_session("bob@example.com", "B" * 40, now=NOW + 6) is None
    assert await store.revoke_session(new.id, now=NOW + 7)
    assert not await store.revoke_session(new.id, now=NOW + 8)
    assert not await store.revoke_session("unknown" + "a" * 15, now=NOW + 8)
    # Only the revocation that ended the session is logged, with its user, in the same transaction.
    [entry] = await changes.read(0)
    assert (entry.kind, entry.key, entry.subject) == (ChangeKind.SESSION, new.id, "bob@example.com")
    assert entry.at == datetime.fromtimestamp(NOW + 7, UTC)
    assert await store.live_sessions(now=NOW + 50, limit=10) == [(old.id, NOW + 100)]  # neither revoked nor expired
    got = await store.get_session(new.id)
    assert got is not None and got.revoked_at == NOW + 7
    assert await store.latest_session("bob@example.com", "A" * 40, now=NOW + 8) == old
    assert await store.latest_session("bob@example.com", "A" * 40, now=NOW + 100) is None
    await store.close()
