from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.engine import make_url

from tests.storage.servers import admin_url
from tokenward.errors import ConfigError, Conflict, StorageError, StorageUnavailable
from tokenward.storage import Database
from tokenward.storage.migrations import head_revision
from tokenward.storage.models import AuditEventRow, all_metadata

PASSWORD = "Sup3rS3cret-pw"


def _row(**overrides: object) -> AuditEventRow:
    values: dict[str, object] = {"at": datetime.now(UTC), "actor": "alice@example.com", "action": "test", "detail": {}}
    values.update(overrides)
    return AuditEventRow(**values)


async def test_fresh_database_has_no_revision(database_url: str) -> None:
    async with Database.connect(database_url) as db:
        await db.ping()
        assert await db.current_revision() is None
        assert not await db.is_current()


async def test_upgrade_applies_migrations_and_is_idempotent(database_url: str) -> None:
    async with Database.connect(database_url) as db:
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        assert await db.is_current()
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            indexes = await conn.run_sync(lambda sync: {ix["name"] for ix in inspect(sync).get_indexes("audit_events")})
    assert {"alembic_version", "audit_events"} <= tables
    assert {"ix_audit_events_at", "ix_audit_events_actor_at", "ix_audit_events_request_id"} <= indexes


async def test_migrations_match_the_models(database: Database) -> None:
    """Autogenerate finds nothing to do: migrations and models.py describe the same schema."""

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, all_metadata()))

    async with database.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_concurrent_upgrades_from_two_instances(database_url: str) -> None:
    async with Database.connect(database_url) as one, Database.connect(database_url) as two:
        await asyncio.gather(one.upgrade(), two.upgrade())
        assert await one.current_revision() == head_revision()


async def test_session_commits_on_success_and_rolls_back_on_error(database: Database) -> None:
    async with database.session() as session:
        session.add(_row(action="kept"))
    with pytest.raises(RuntimeError, match="boom"):
        async with database.session() as session:
            session.add(_row(action="dropped"))
            await session.flush()
            raise RuntimeError("boom")
    async with database.session() as session:
        actions = (await session.scalars(select(AuditEventRow.action))).all()
    assert actions == ["kept"]


async def test_statements_counts_each_statement_and_transaction_end(database: Database) -> None:
    before = database.statements
    async with database.session() as session:  # two statements, then COMMIT
        await session.execute(select(AuditEventRow.id).limit(1))
        await session.execute(text("SELECT 1"))
    assert database.statements == before + 3
    with pytest.raises(RuntimeError):
        async with database.session() as session:  # one statement, then ROLLBACK
            await session.execute(text("SELECT 1"))
            raise RuntimeError("undo")
    assert database.statements == before + 5
    async with database.session():
        pass  # no statement sent: nothing counted
    assert database.statements == before + 5


async def test_an_autocommit_block_counts_its_statements_and_no_transaction_end(database: Database) -> None:
    before = database.statements
    async with database.autocommit() as conn:  # no BEGIN, no COMMIT: each statement is its own transaction
        await conn.execute(text("SELECT 1"))
        await conn.execute(
            insert(AuditEventRow), {"at": datetime.now(UTC), "actor": "a", "action": "autocommitted", "detail": {}}
        )
    assert database.statements == before + 2
    with pytest.raises(RuntimeError):
        async with database.autocommit() as conn:
            await conn.execute(
                insert(AuditEventRow), {"at": datetime.now(UTC), "actor": "a", "action": "kept too", "detail": {}}
            )
            raise RuntimeError("nothing to undo: the INSERT committed by itself")
    assert database.statements == before + 3
    async with database.session() as session:
        actions = (await session.scalars(select(AuditEventRow.action).order_by(AuditEventRow.id))).all()
    assert actions == ["autocommitted", "kept too"]
    assert database.statements == before + 5  # that read: a SELECT and its COMMIT
    async with database.session() as session:  # the pooled connection is back in transactions
        await session.execute(text("SELECT 1"))
    assert database.statements == before + 7


async def test_an_autocommit_companion_counts_its_statements_in_the_main_figure(database_url: str) -> None:
    async with Database.connect(database_url) as main:
        companion = main.companion(pool_size=1, autocommit=True)
        try:
            before = main.statements
            async with companion.autocommit() as conn:
                await conn.execute(text("SELECT 1"))
            async with companion.engine.connect() as conn:  # the engine itself is in autocommit mode
                await conn.execute(text("SELECT 1"))
            assert main.statements == before + 2
        finally:
            if companion is not main:
                await companion.close()


async def test_integrity_error_becomes_conflict_without_values(database: Database) -> None:
    async with database.session() as session:
        session.add(_row(id=7, actor="first@example.com"))
    with pytest.raises(Conflict) as caught:
        async with database.session() as session:
            session.add(_row(id=7, actor="second@example.com"))
    assert caught.value.error_code == "storage_conflict"
    assert caught.value.status == 409
    assert "7" not in caught.value.detail and "example.com" not in caught.value.detail
    async with database.session() as session:  # the failed transaction left nothing behind
        assert (await session.scalars(select(AuditEventRow.actor))).all() == ["first@example.com"]


async def test_missing_schema_says_run_upgrade(database_url: str) -> None:
    async with Database.connect(database_url) as db:
        with pytest.raises(StorageError) as caught:
            async with db.session() as session:
                await session.execute(select(AuditEventRow))
    assert caught.value.error_code == "storage_schema_missing"
    assert "tokenward db upgrade" in caught.value.detail


async def test_other_statement_errors_become_storage_error(database: Database) -> None:
    with pytest.raises(StorageError) as caught:
        async with database.session() as session:
            await session.execute(text("SELECT no_such_column FROM audit_events"))
    assert not isinstance(caught.value, StorageUnavailable)
    assert caught.value.error_code == "storage_error"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresql://tw:{PASSWORD}@127.0.0.1:1/tw", id="postgresql"),
        pytest.param(f"mysql://tw:{PASSWORD}@127.0.0.1:1/tw", id="mariadb"),
    ],
)
async def test_unreachable_server_is_storage_unavailable_quickly(url: str) -> None:
    started = time.monotonic()
    async with Database.connect(url, connect_timeout=2) as db:
        for call in (db.ping, db.upgrade, db.current_revision):
            with pytest.raises(StorageUnavailable) as caught:
                await call()
            error = caught.value
            assert error.error_code == "storage_unavailable"
            assert error.status == 503
            assert PASSWORD not in error.detail and PASSWORD not in repr(error) and PASSWORD not in str(error)
            assert "tw:***@127.0.0.1:1" in error.detail
            assert "TOKENWARD_DATABASE_URL" in error.detail
    # Generous: this tells "gave up after the connect timeout" from "hung", not a speed.
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_silent_server_times_out_instead_of_hanging(scheme: str) -> None:
    """A server that accepts the TCP connection and then says nothing (a stuck proxy, a full DB)."""
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        async with Database.connect(f"{scheme}://tw:{PASSWORD}@127.0.0.1:{port}/tw", connect_timeout=1) as db:
            with pytest.raises(StorageUnavailable) as caught:
                await db.upgrade()  # unlike ping(), no outer guard: the driver timeout must fire
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 60  # the driver's 1 s timeout fired; a hang would not end
    assert PASSWORD not in caught.value.detail
    assert caught.value.error_code == "storage_unavailable"


@pytest.mark.parametrize(
    "backend",
    [pytest.param("postgresql", marks=pytest.mark.postgres), pytest.param("mariadb", marks=pytest.mark.mariadb)],
)
async def test_wrong_credentials_are_storage_unavailable_without_password(backend: str) -> None:
    url = make_url(admin_url(backend)).set(username="tw_nobody", password=PASSWORD)
    async with Database.connect(url, connect_timeout=2) as db:
        with pytest.raises(StorageUnavailable) as caught:
            await db.ping()
    assert PASSWORD not in caught.value.detail
    assert "tw_nobody:***@" in caught.value.detail


async def test_sqlite_in_missing_directory_says_what_to_check(tmp_path: Path) -> None:
    async with Database.connect(f"sqlite:///{tmp_path}/missing/tokenward.db") as db:
        with pytest.raises(StorageUnavailable) as caught:
            await db.upgrade()
    assert f"directory {tmp_path}/missing does not exist" in caught.value.detail
    assert "tokenward init" in caught.value.detail


async def test_sqlite_uses_wal_and_foreign_keys(sqlite_database: Database) -> None:
    async with sqlite_database.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000


async def test_sqlite_in_memory_keeps_one_database() -> None:
    async with Database.connect("sqlite://") as db:
        await db.upgrade()
        assert await db.current_revision() == head_revision()


def test_bad_scheme_is_config_error() -> None:
    with pytest.raises(ConfigError, match="TOKENWARD_DATABASE_URL"):
        Database.connect("oracle://scott:tiger@h/db")


async def test_repr_hides_password_and_close_is_idempotent() -> None:
    db = Database.connect(f"postgresql://tw:{PASSWORD}@127.0.0.1:1/tw")
    assert PASSWORD not in repr(db)
    assert repr(db) == "Database(url='postgresql+psycopg://tw:***@127.0.0.1:1/tw')"
    assert db.dialect == "postgresql"
    await db.close()
    await db.close()
