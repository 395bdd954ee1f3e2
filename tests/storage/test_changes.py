"""The change log on SQLite, PostgreSQL, MariaDB and in memory: written with its change, read by seq, pruned safely."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.busyloop import busy_loop
from tokenward.changefeed import ChangeFeed
from tokenward.storage import Database
from tokenward.storage.changes import (
    Change,
    ChangeKind,
    ChangeLog,
    ChangeLogRow,
    InMemoryChangeLog,
    SqlChangeLog,
    write_changes,
)
from tokenward.storage.config_tokens import ConfigTokenRevocationRow
from tokenward.storage.urls import to_async_url

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def _write(log: ChangeLog, db: Database | None, changes: list[Change], at: datetime) -> None:
    if isinstance(log, InMemoryChangeLog):
        log.append(changes, at)
        return
    assert db is not None
    async with db.engine.connect() as conn:
        await write_changes(conn, changes, at)
        await conn.commit()


@pytest.fixture
def change_log(store_database: Database | None) -> ChangeLog:
    return InMemoryChangeLog() if store_database is None else SqlChangeLog(store_database)


async def test_entries_come_back_in_seq_order_after_a_position(
    change_log: ChangeLog, store_database: Database | None
) -> None:
    assert await change_log.head() == 0
    assert await change_log.read(0) == []
    await _write(change_log, store_database, [Change(ChangeKind.APP_TOKEN, "tok1", subject="alice")], T0)
    until = T0 + timedelta(minutes=5)
    await _write(
        change_log,
        store_database,
        [Change(ChangeKind.BAN, "ip:192.0.2.1", until=until), Change(ChangeKind.SESSION, "s1", subject="bob")],
        T0 + timedelta(seconds=1),
    )
    entries = await change_log.read(0)
    assert [(e.kind, e.key, e.subject) for e in entries] == [
        ("apptoken", "tok1", "alice"),
        ("ban", "ip:192.0.2.1", None),
        ("session", "s1", "bob"),
    ]
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert entries[1].until == until and entries[0].at == T0
    assert await change_log.head() == seqs[-1]
    assert [e.key for e in await change_log.read(seqs[0])] == ["ip:192.0.2.1", "s1"]
    assert [e.key for e in await change_log.read(seqs[0], limit=1)] == ["ip:192.0.2.1"]
    # a hole asked for again comes back with the new entries, not counted against the limit
    assert [e.key for e in await change_log.read(seqs[1], also=[seqs[0]], limit=1)] == ["tok1", "s1"]


async def test_prune_keeps_the_newest_entry_so_no_seq_is_ever_handed_out_again(
    change_log: ChangeLog, store_database: Database | None
) -> None:
    for i in range(3):
        at = T0 + timedelta(seconds=i)
        await _write(change_log, store_database, [Change(ChangeKind.CONFIG_TOKEN, f"jti{i}")], at)
    head = await change_log.head()
    assert await change_log.prune(T0 + timedelta(days=1)) == 2  # everything is old, the newest stays
    assert [e.key for e in await change_log.read(0)] == ["jti2"]
    await _write(change_log, store_database, [Change(ChangeKind.CONFIG_TOKEN, "jti3")], T0 + timedelta(days=2))
    assert await change_log.head() == head + 1
    assert await change_log.prune(T0 + timedelta(seconds=1)) == 0  # nothing older than the cut is left


async def test_a_change_rolled_back_with_its_transaction_is_not_logged(database: Database) -> None:
    log = SqlChangeLog(database)
    async with database.engine.connect() as conn:
        await conn.execute(insert(ConfigTokenRevocationRow), {"jti": "j", "revoked_at": T0, "revoked_by": "t"})
        await write_changes(conn, [Change(ChangeKind.CONFIG_TOKEN, "j")], T0)
        await conn.rollback()
    assert await log.read(0) == []
    async with database.engine.connect() as conn:
        assert (await conn.execute(select(ConfigTokenRevocationRow))).all() == []


async def test_a_commit_out_of_seq_order_is_applied_when_it_lands(database: Database) -> None:
    # PostgreSQL and MariaDB hand out seq at insert: a transaction that took seq n can commit after n+1.
    log = SqlChangeLog(database)
    feed = ChangeFeed(log, monotonic=lambda: 0.0)
    await feed.start()
    seen: list[str] = []
    feed.on(ChangeKind.CONFIG_TOKEN, lambda e: seen.append(e.key))
    if database.dialect == "sqlite":  # one writer at a time: no second transaction can commit meanwhile
        pytest.skip("SQLite serialises writers; seq order is commit order")
    async with database.engine.connect() as slow:
        await slow.execute(insert(ChangeLogRow), {"at": T0, "kind": "config_token", "key": "slow"})
        async with database.engine.connect() as fast:
            await write_changes(fast, [Change(ChangeKind.CONFIG_TOKEN, "fast")], T0)
            await fast.commit()
        assert await feed.poll() == 1
        assert seen == ["fast"] and len(feed.holes) == 1
        await slow.commit()
    assert await feed.poll() == 1
    assert seen == ["fast", "slow"] and feed.holes == {}


async def test_bad_keys_are_refused_before_the_database() -> None:
    with pytest.raises(ValueError, match="1-400"):
        Change(ChangeKind.BAN, "")
    with pytest.raises(ValueError, match="1-400"):
        Change(ChangeKind.BAN, "k" * 401)


async def test_the_feed_reads_through_its_own_pool_while_requests_hold_every_main_connection(
    database_url: str,
) -> None:
    # Under load the requests held the main pool and the feed's poll queued behind them: 503 changes_stale.
    async with Database.connect(database_url) as migrated:
        await migrated.upgrade()
    main = Database(create_async_engine(to_async_url(database_url), pool_size=1, max_overflow=0, pool_timeout=30))
    companion = main.companion(pool_size=2)
    try:
        assert companion is not main and companion.engine is not main.engine
        feed = ChangeFeed(SqlChangeLog(companion), monotonic=lambda: 0.0)
        seen: list[str] = []
        feed.on(ChangeKind.SESSION, lambda e: seen.append(e.key))
        async with main.engine.connect() as held:  # the main pool's only connection, taken by "a request"
            await held.execute(select(1))
            await feed.start()
            async with companion.engine.connect() as conn:
                await write_changes(conn, [Change(ChangeKind.SESSION, "s1")], T0)
                await conn.commit()
            before = main.statements
            assert await feed.poll() == 1
        assert seen == ["s1"]
        assert main.statements > before  # the companion's statements count in the main database's figure
    finally:
        await companion.close()
        await main.close()


async def test_a_poll_is_one_statement(database: Database) -> None:
    # Five polls a second per instance: a SELECT and the end of its transaction were ten of the mixed bench's 15
    # statements a second. In autocommit mode the SELECT is all (through the main database or the runtime's
    # autocommit companion alike).
    companion = database.companion(pool_size=1, autocommit=True)
    try:
        for db in (database, companion):
            feed = ChangeFeed(SqlChangeLog(db), monotonic=lambda: 0.0)
            await feed.start()
            async with database.engine.connect() as conn:
                await write_changes(conn, [Change(ChangeKind.SESSION, f"s-{id(db)}")], T0)
                await conn.commit()
            before = database.statements
            assert await feed.poll() == 1
            assert await feed.poll() == 0
            assert database.statements == before + 2
    finally:
        if companion is not database:
            await companion.close()


async def test_a_sqlite_read_is_never_abandoned_however_busy_the_loop(
    sqlite_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # bench/verify.py --rotating --in-process: a loop saturated by requests made a healthy SQLite read miss the read
    # timeout; abandoned, it cost its connection, and the new one's set-up (the driver's thread, SQLAlchemy's
    # functions, the pragmas: ~20 round trips through the loop, the read 5) missed it again and again: stale for good.
    # SQLite has no connection a network can lose, and its driver cannot cut a query short: nothing to abandon.
    companion = sqlite_database.companion(pool_size=2, autocommit=True)
    connections: list[object] = []
    event.listen(companion.engine.sync_engine, "connect", lambda conn, _record: connections.append(conn))
    try:
        feed = ChangeFeed(SqlChangeLog(companion), read_timeout=0.05, monotonic=lambda: 0.0)
        await feed.start()
        assert len(connections) == 1
        async with sqlite_database.engine.connect() as conn:
            await write_changes(conn, [Change(ChangeKind.SESSION, "s1")], T0)
            await conn.commit()
        with caplog.at_level(logging.WARNING, logger="tokenward.changes"):
            async with busy_loop(0.02):  # each of the read's round trips waits >= 20 ms for the loop
                assert await feed.poll() == 1
        assert "cannot read the change log" not in caplog.text
        assert len(connections) == 1  # the same connection throughout
    finally:
        await companion.close()


async def test_a_writer_holding_sqlites_write_lock_does_not_hold_up_a_read(sqlite_database_url: str) -> None:
    # WAL: a read sees the last commit and never waits for the write lock, so the busy timeout (here 0.5 s, 5 s by
    # default) never bounds a change-log read: a flush or a long write transaction elsewhere cannot make it stale.
    async with Database.connect(sqlite_database_url) as db:
        await db.upgrade()
    writer = Database.connect(sqlite_database_url, connect_timeout=0.5)
    reader = Database.connect(sqlite_database_url, connect_timeout=0.5).companion(autocommit=True)
    try:
        feed = ChangeFeed(SqlChangeLog(reader), monotonic=lambda: 0.0)
        await feed.start()
        async with writer.engine.connect() as conn:
            await conn.execute(text("BEGIN IMMEDIATE"))  # the write lock, held across the polls
            await write_changes(conn, [Change(ChangeKind.SESSION, "uncommitted")], T0)
            for _ in range(3):
                assert await feed.poll() == 0  # answered at once (not -1 "database is locked" after 0.5 s)
            await conn.commit()
        assert await feed.poll() == 1
        assert feed.fresh()
    finally:
        await reader.close()
        await writer.close()
