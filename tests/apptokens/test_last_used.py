"""last_used_at is written behind (docs/app-tokens.md): no SQL write on a verification, one batched
UPDATE per flush, a flush on shutdown, bounded memory. SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.apptokens.helpers import Clock, make_service
from tokenward.apptokens import AppTokenConfig
from tokenward.errorcodes import ErrorCode
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import Database, SqlAppTokenStore

ALICE = "alice@example.com"


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent to ``db`` inside the block (executemany counts once)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.lstrip().split(None, 1)[0].upper())

    target = db.engine.sync_engine
    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


async def test_verify_writes_nothing_and_one_statement_flushes_every_use(database: Database) -> None:
    clock = Clock()
    service = make_service(database, clock=clock, config=AppTokenConfig(last_used_interval=60))
    made = [await service.create(owner=f"user{i}@example.com", created_by=ALICE) for i in range(5)]
    first_use = clock.now
    with statements(database) as seen:
        for record, token in made:
            service.forget(record.id)
            await service.verify(record.owner, token)  # not in memory: one SELECT each
        clock.advance(1)  # from memory now; the latest use is what gets written
        for record, token in made[:3]:
            await service.verify(record.owner, token)
    assert "UPDATE" not in seen and "COMMIT" not in seen, seen
    assert seen.count("SELECT") >= 5  # the listener does see this engine's statements

    with statements(database) as seen:
        assert await service.flush_last_used() == 5
    assert seen.count("UPDATE") == 1, seen
    store = SqlAppTokenStore(database)
    for i, (record, _) in enumerate(made):
        stored = await store.get(record.id)
        assert stored is not None
        assert stored.last_used_at == _at(first_use + 1 if i < 3 else first_use)

    with statements(database) as seen:
        assert await service.flush_last_used() == 0
    assert seen == []


async def test_a_failed_flush_keeps_the_uses_for_the_next(database: Database) -> None:
    clock = Clock()
    service = make_service(database, clock=clock)
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    await service.verify(ALICE, token)
    real = service.store

    class Down(SqlAppTokenStore):
        async def touch_many(self, uses: Any) -> None:
            from tokenward.errors import StorageUnavailable

            raise StorageUnavailable("database down", code=ErrorCode.STORAGE_UNAVAILABLE)

    service.store = Down(database)
    assert await service.flush_last_used() == 0  # logged, not raised: never fails a request or a shutdown
    service.store = real
    assert await service.flush_last_used() == 1
    stored = await real.get(record.id)
    assert stored is not None and stored.last_used_at == _at(clock.now)


async def test_pending_uses_are_bounded() -> None:
    clock = Clock()
    service = make_service(clock=clock, config=AppTokenConfig(memory_mb=0.01))
    bound = service.capacity  # as many pending uses as records fit in the memory budget
    assert 3 <= bound <= 20
    made = [await service.create(owner=f"user{i}@example.com", created_by=ALICE) for i in range(bound + 2)]
    for record, token in made:
        await service.verify(record.owner, token)
    assert await service.flush_last_used() == bound  # the rest went unrecorded (and logged), memory stayed bounded
    for record, token in made[bound:]:
        await service.verify(record.owner, token)
    assert await service.flush_last_used() == 2


@pytest.mark.parametrize("listen", [True, False])
async def test_runtime_close_flushes(data_dir: Path, database_url: str, listen: bool) -> None:
    clock = Clock()
    settings = Settings.load(data_dir=data_dir, database_url=database_url)
    runtime = await open_runtime(settings, listen=listen, eager=False, clock=clock)
    assert (runtime.last_used_flusher is not None) is listen
    service = runtime.app_tokens
    assert service is not None
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    await service.verify(ALICE, token)
    with statements(runtime.database) as seen:
        await runtime.close()  # what SIGTERM ends in (the lifespan's shutdown)
    assert seen.count("UPDATE") == 1
    async with Database.connect(database_url) as db:
        stored = await SqlAppTokenStore(db).get(record.id)
    assert stored is not None and stored.last_used_at == _at(clock.now)


async def test_a_large_flush_is_one_statement_per_chunk(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # One UPDATE … FROM a JSON document on PostgreSQL and SQLite; on MariaDB one executemany per chunk, the ids as
    # parameters, never SQL compiled per id in the event loop (1,000-id CASE batches stalled it ~0.25 s each).
    monkeypatch.setattr("tokenward.storage.apptokens.TOUCH_CHUNK", 2)
    clock = Clock()
    service = make_service(database, clock=clock)
    made = [await service.create(owner=f"user{i}@example.com", created_by=ALICE) for i in range(5)]
    for record, token in made:
        await service.verify(record.owner, token)
    with statements(database) as seen:
        assert await service.flush_last_used() == 5
    assert seen.count("UPDATE") == (3 if database.dialect == "mysql" else 1)
    for record, _ in made:
        stored = await SqlAppTokenStore(database).get(record.id)
        assert stored is not None and stored.last_used_at == _at(clock.now)
