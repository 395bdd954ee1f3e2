"""Regulation off the request path: failures are counted in memory, banned at once at the limit, and written
in one batch per flush (docs/regulation.md). Statements are counted with SQLAlchemy events, never timed."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.apptokens.regulation import (
    FORGET_PER_PASS,
    Regulation,
    RegulationPolicy,
    Regulator,
    ip_key,
    pair_key,
    user_key,
)
from tokenward.changefeed import ChangeFeed
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable, TokenwardError, TooManyRequests
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import Database, InMemoryRegulationStore, SqlRegulationStore
from tokenward.storage.changes import ChangeKind, InMemoryChangeLog, SqlChangeLog
from tokenward.storage.regulation import BATCH_ROWS, AuthBanRow, AuthFailureRow, batch_counts

POLICY = RegulationPolicy(max_failures=3, find_time=120.0, ban_time=300.0, soft_max_failures=10)
T0 = 1_800_000_000.0


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement ``db`` sends while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _regulation_statements(sent: list[str]) -> list[str]:
    """What a flush sends for its batch (the purge, once a minute, is checked on its own)."""
    return [s for s in sent if ("auth_failures" in s or "auth_bans" in s) and not _is_purge(s)]


def _is_purge(statement: str) -> bool:
    return statement.startswith(("DELETE", "SELECT auth_failures.id FROM auth_failures"))


#: What a flush of failures sends, by dialect (the first word of each statement).
_FLUSH = {"sqlite": ["INSERT", "SELECT"], "postgresql": ["WITH"], "mysql": ["INSERT", "SELECT"]}


async def _rows(db: Database, row: type[AuthFailureRow] | type[AuthBanRow]) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(row))).scalar_one())


class Flaky(InMemoryRegulationStore):
    """An in-memory store that can go away, counting the batches it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.batches: list[int] = []

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("the database is unreachable", code=ErrorCode.STORAGE_UNAVAILABLE)

    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        self._check()
        self.batches.append(len(failures))
        return await super().record_failures(failures, since=since)

    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        self._check()
        await super().add_bans(bans, at)


async def test_many_failures_are_one_insert_and_one_count_per_flush(database: Database) -> None:
    regulator = Regulator(SqlRegulationStore(database), POLICY)
    with statements(database) as sent:
        for i in range(200):  # 200 addresses, one failure each: nothing is banned, nothing is sent
            assert regulator.failure((ip_key(f"192.0.2.{i}"),), T0 + i / 1000) == []
        assert _regulation_statements(sent) == []
        assert await regulator.regulation.flush(T0 + 1) == []
    done = _regulation_statements(sent)
    assert [s.split()[0] for s in done] == _FLUSH[database.dialect], done
    assert await _rows(database, AuthFailureRow) == 200
    with statements(database) as sent:  # nothing queued: a flush sends nothing, and the purge waits a minute
        assert await regulator.regulation.flush(T0 + 2) == []
    assert sent == []
    with statements(database) as sent:
        await regulator.regulation.flush(T0 + 61)
    # The first failure still in the window, by id (no index on ``at``), then the ids before it and the ended bans.
    assert [s.split(" WHERE")[0] for s in sent] == [
        "SELECT auth_failures.id FROM auth_failures",
        "DELETE FROM auth_failures",
        "DELETE FROM auth_bans",
    ]


async def test_a_flush_is_the_same_statements_whatever_the_keys_and_no_commit(database: Database) -> None:
    regulator = Regulator(SqlRegulationStore(database), POLICY)
    await regulator.regulation.flush(T0)  # the purge, due at the first flush and then once a minute
    for i in range(BATCH_ROWS + 1):
        regulator.failure((ip_key(f"10.{i // 62500}.{i // 250 % 250}.{i % 250}"),), T0)
    before = database.statements
    with statements(database) as sent:
        await regulator.regulation.flush(T0 + 1)
    # The rows and the keys go as one parameter each (arrays on PostgreSQL, JSON on SQLite), in autocommit mode: no
    # COMMIT round trip; PostgreSQL inserts and counts in one statement. MariaDB keeps an IN list per BATCH_ROWS keys.
    expected = ["INSERT", "SELECT", "SELECT"] if database.dialect == "mysql" else _FLUSH[database.dialect]
    assert [s.split()[0] for s in _regulation_statements(sent)] == expected
    assert database.statements == before + len(expected)
    assert await _rows(database, AuthFailureRow) == BATCH_ROWS + 1


async def test_failures_are_stored_with_their_time_to_the_microsecond(database: Database) -> None:
    store = SqlRegulationStore(database)
    at = T0 + 0.123456
    counts = await store.record_failures(
        [(key, datetime.fromtimestamp(when, UTC)) for key, when in (("ip:a", at), ("ip:b", at), ("ip:a", at + 1))]
        + [('user:\u00e9lo"d\u00eft', datetime.fromtimestamp(at, UTC))],
        since=datetime.fromtimestamp(T0, UTC),
    )
    assert counts == {"ip:a": 2, "ip:b": 1, 'user:\u00e9lo"d\u00eft': 1}
    async with database.session() as session:
        rows = (await session.execute(select(AuthFailureRow.key, AuthFailureRow.at).order_by(AuthFailureRow.id))).all()
    assert [(key, when) for key, when in rows] == [
        ("ip:a", datetime(2027, 1, 15, 8, 0, 0, 123456, tzinfo=UTC)),
        ("ip:b", datetime(2027, 1, 15, 8, 0, 0, 123456, tzinfo=UTC)),
        ("ip:a", datetime(2027, 1, 15, 8, 0, 1, 123456, tzinfo=UTC)),
        ('user:\u00e9lo"d\u00eft', datetime(2027, 1, 15, 8, 0, 0, 123456, tzinfo=UTC)),
    ]
    # Counted against the window as rows written through SQLAlchemy are: the boundary is inclusive.
    later = await store.record_failures(
        [("ip:a", datetime.fromtimestamp(at + 2, UTC))], since=datetime.fromtimestamp(at + 1, UTC)
    )
    assert later == {"ip:a": 2}


async def test_the_counts_are_every_row_in_the_window_this_batch_included(database: Database) -> None:
    # PostgreSQL inserts and counts in one statement, adding the batch to what its snapshot sees of the table;
    # elsewhere the count follows the INSERT. Either way: earlier rows in the window, the batch's rows in the window
    # (a batch kept through an outage may hold older ones), repeated keys counted once each. PostgreSQL and SQLite
    # answer only the keys with rows beyond the batch's (a flood of new addresses: none, so nothing to handle).
    store = SqlRegulationStore(database)

    async def counted(keys: list[str], ats: list[float], since: float) -> tuple[dict[str, int], dict[str, int]]:
        answer = await store.record_failure_columns(keys, ats, since=since)
        return answer, {**batch_counts(keys, ats, since), **answer}

    answer, full = await counted(["ip:a", "ip:old"], [T0 + 1, T0 - 500], T0 - 1000)
    assert full == {"ip:a": 1, "ip:old": 1}
    answer, full = await counted(["ip:b"] * 3, [T0 + 2, T0 + 2, T0 + 3], T0 - 120)
    assert full == {"ip:b": 3}
    answer, full = await counted(
        ["ip:a", "ip:old", "ip:a", "ip:new", "ip:a", "ip:stale"],
        [T0 + 5, T0 + 5, T0 + 6, T0 + 6, T0 + 7, T0 - 300],
        T0 - 120,
    )
    assert full == {"ip:a": 4, "ip:old": 1, "ip:new": 1, "ip:stale": 0}
    if database.dialect != "mysql":
        assert answer == {"ip:a": 4}


async def test_a_shared_count_gone_stale_is_replaced_when_the_store_counts_the_batch_alone(database: Database) -> None:
    # A learnt at a flush that another instance had failed a key too; once those failures and A's own left the
    # window, the store counts A's next batch alone and leaves the key out of its answer: A must not keep the old
    # shared count (it would still count B's failure, gone from the window, and ban on A's next failure).
    a = Regulator(SqlRegulationStore(database), POLICY)
    b = Regulator(SqlRegulationStore(database), POLICY)
    key = pair_key("mallory", "192.0.2.66")
    await a.regulation.flush(T0 - 1)  # the purges, due at the first flush
    await b.regulation.flush(T0 - 1)
    assert b.failure((key,), T0) == []
    await b.regulation.flush(T0 + 1)
    assert a.failure((key,), T0 + 50) == []
    await a.regulation.flush(T0 + 101)  # two in the store: A holds a shared count of 2
    assert a.failure((key,), T0 + 175) == []
    await a.regulation.flush(T0 + 176)  # B's failure and A's first left the window: the batch alone
    assert a.failure((key,), T0 + 177) == []  # two in the window, not three


async def test_what_a_flood_leaves_in_memory_is_not_walked_by_the_garbage_collector() -> None:
    # Every refused request of a flood from many addresses leaves keys counted and failures queued; held as
    # objects they lengthened every full collection by hundreds of milliseconds. Tuples of atoms are untracked
    # by the collector once they survive a young collection.
    regulator = Regulator(Flaky(), POLICY)
    for i in range(1000):
        regulator.failure(
            (ip_key(f"192.0.2.{i}"), pair_key(f"u{i}", f"192.0.2.{i}")), T0 + i / 1000, soft=(user_key(f"u{i}"),)
        )
    regulator.failure((ip_key("192.0.2.1"),), T0 + 2)  # a key seen twice
    gc.collect(0)  # the youngest generation: what survives it is promoted, so it must be untracked by then
    held = [*regulator._tracks.values(), *regulator._queued_keys, *regulator._queued_ats]
    assert len(regulator._tracks) == 3000 and regulator.queued == 3001
    assert not [item for item in held if gc.is_tracked(item)]


async def test_idle_keys_are_forgotten_and_the_ones_in_the_window_kept() -> None:
    regulator = Regulator(InMemoryRegulationStore(), POLICY)
    old, recent = ip_key("192.0.2.1"), ip_key("192.0.2.2")
    regulator.failure((old,), T0)
    await regulator.regulation.flush(T0 + 1)
    regulator.failure((recent,), T0 + 100)
    await regulator.regulation.flush(T0 + 101)
    assert list(regulator._tracks) == [old, recent]
    await regulator.regulation.flush(T0 + 125)  # old's failure and its flush left the window, recent's did not
    assert list(regulator._tracks) == [recent]
    assert regulator.failure((recent,), T0 + 126) == []
    assert regulator.failure((recent,), T0 + 127) == [recent]  # the one at T0 + 100 still counts


async def test_forgetting_is_bounded_per_pass_and_goes_on_at_the_next_flush() -> None:
    # A flood from many addresses can leave 100,000 idle keys at once: one pass would hold the event loop for
    # tens of milliseconds (the p99 of every request then). Each pass forgets at most FORGET_PER_PASS.
    regulator = Regulator(InMemoryRegulationStore(), POLICY)
    count = 2 * FORGET_PER_PASS + 10
    for i in range(count):
        regulator.failure((ip_key(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"),), T0)
    await regulator.regulation.flush(T0)
    regulator.failure((ip_key("192.0.2.1"),), T0 + 200)  # one key still counting, behind the idle ones
    await regulator.regulation.flush(T0 + 200)
    assert len(regulator._tracks) == count + 1 - FORGET_PER_PASS
    await regulator.regulation.flush(T0 + 201)  # not 10 s later: the pass was cut short
    assert len(regulator._tracks) == count + 1 - 2 * FORGET_PER_PASS
    await regulator.regulation.flush(T0 + 202)
    assert list(regulator._tracks) == [ip_key("192.0.2.1")]
    await regulator.regulation.flush(T0 + 203)  # nothing left to forget: back to every 10 s
    assert regulator._forgot_at == T0 + 202


async def test_the_limit_bans_at_once_without_the_store_and_the_flush_writes_it(database: Database) -> None:
    regulator = Regulator(SqlRegulationStore(database), POLICY)
    keys = (ip_key("198.51.100.1"), pair_key("alice", "198.51.100.1"))
    with statements(database) as sent:
        assert regulator.failure(keys, T0) == []
        assert regulator.failure(keys, T0 + 1) == []
        assert regulator.failure(keys, T0 + 2) == list(keys)  # the third, at once
        with pytest.raises(TooManyRequests) as caught:
            regulator.check(keys[:1], T0 + 2)
        assert caught.value.retry_after == 300
    assert _regulation_statements(sent) == []
    with statements(database) as sent:
        assert await regulator.regulation.flush(T0 + 3) == []  # already banned: not a second time
    # The failures and their count, then the bans: one statement each (and the count apart on MariaDB).
    assert len(_regulation_statements(sent)) == len(_FLUSH[database.dialect]) + 1
    assert await _rows(database, AuthBanRow) == 2
    other = Regulator(SqlRegulationStore(database), POLICY)  # another instance reads the ban
    await other.sync(T0 + 4)
    assert other.banned(keys[0], T0 + 4)


async def test_failures_outside_the_window_never_ban() -> None:
    regulator = Regulator(InMemoryRegulationStore(), POLICY)
    for i in range(10):
        assert regulator.failure((ip_key("192.0.2.1"),), T0 + 61 * i) == []
        if i % 3 == 0:
            await regulator.regulation.flush(T0 + 61 * i)


async def test_every_instances_counts_ban_at_the_flush_and_the_ban_is_reported() -> None:
    store = InMemoryRegulationStore()
    reported: list[tuple[str, float, float]] = []

    async def on_ban(key: str, now: float, seconds: float) -> None:
        reported.append((key, now, seconds))

    a = Regulation(store, on_ban=on_ban).regulator(POLICY)
    b = Regulation(store, on_ban=on_ban).regulator(POLICY)
    key = ip_key("203.0.113.9")
    assert a.failure((key,), T0) == [] and a.failure((key,), T0 + 0.1) == []
    assert b.failure((key,), T0 + 0.2) == []  # B alone has seen one
    assert await a.regulation.flush(T0 + 1) == []
    assert await b.regulation.flush(T0 + 1) == [key]  # three in the store: B bans ...
    assert reported == [(key, T0 + 1, 300.0)] and b.banned(key, T0 + 1)
    assert not a.banned(key, T0 + 1)
    await a.sync(T0 + 2)  # ... and A honours it at its next refresh
    assert a.banned(key, T0 + 2)
    # What an instance learnt at its flush counts at once: one more failure on A after a shared count of 2.
    other = pair_key("mallory", "203.0.113.9")
    assert a.failure((other,), T0 + 3) == [] and b.failure((other,), T0 + 3) == []
    await a.regulation.flush(T0 + 4)
    await b.regulation.flush(T0 + 4)  # B knows two now
    assert b.failure((other,), T0 + 5) == [other]


async def test_a_failed_flush_keeps_the_queue_for_the_next_one() -> None:
    store = Flaky()
    regulator = Regulator(store, POLICY)
    keys = (ip_key("192.0.2.7"),)
    regulator.failure(keys, T0)
    store.down = True
    assert await regulator.regulation.flush(T0 + 1) == []
    regulator.failure(keys, T0 + 1.5)
    assert regulator.failure(keys, T0 + 1.6) == list(keys)  # counted locally while the store is away
    assert await regulator.regulation.flush(T0 + 2) == []
    store.down = False
    await regulator.regulation.flush(T0 + 3)
    assert store.batches == [3]  # the three, in order, in one batch
    counts = await store.record_failures([], since=datetime.fromtimestamp(T0 - 1, UTC))
    assert counts == {}
    assert await store.active_bans(datetime.fromtimestamp(T0 + 3, UTC)) == {
        keys[0]: datetime.fromtimestamp(T0 + 1.6 + 300, UTC)
    }
    assert regulator.pending_bans == {}


async def test_the_queue_is_bounded_while_the_store_is_away(caplog: pytest.LogCaptureFixture) -> None:
    store = Flaky()
    store.down = True
    regulator = Regulation(store, max_queued=5).regulator(POLICY)
    for i in range(8):
        regulator.failure((ip_key(f"192.0.2.{i}"),), T0)
    assert regulator.dropped == 3
    assert "1 failures dropped" in caplog.text
    await regulator.regulation.flush(T0 + 1)
    regulator.failure((ip_key("192.0.2.99"),), T0 + 1)
    assert regulator.dropped == 4  # the refused batch went back in front: the queue stays at 5
    store.down = False
    await regulator.regulation.flush(T0 + 2)
    assert store.batches == [5]


async def test_soft_keys_are_counted_and_banned_at_their_own_limit() -> None:
    regulator = Regulator(InMemoryRegulationStore(), POLICY)
    account = user_key("alice@example.com")
    banned: list[str] = []
    for i in range(10):  # ten addresses, one failure each: only the account reaches a limit
        banned += regulator.failure((ip_key(f"192.0.2.{i}"),), T0 + i, soft=(account,))
    assert banned == [account]
    assert regulator.failure((ip_key("192.0.2.50"),), T0 + 11, soft=(account,)) == []  # extended, not new
    assert regulator.regulation.bans[account] == T0 + 11 + 300


async def test_closing_the_runtime_writes_what_is_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, "regulation.example.com")
    settings = Settings.load(data_dir=data)
    runtime = await open_runtime(settings, listen=False, eager=False)
    regulator = runtime.app_tokens.regulator
    assert regulator.regulation is runtime.regulation
    regulator.failure((ip_key("192.0.2.1"), pair_key("bob", "192.0.2.1")), runtime.clock())
    assert await _rows(runtime.database, AuthFailureRow) == 0
    await runtime.close()
    async with Database.connect(settings.database_url_or_default) as db:
        assert await _rows(db, AuthFailureRow) == 2


async def test_bans_are_logged_in_their_transaction_and_reach_other_instances_through_the_feed(
    database: Database,
) -> None:
    feeds = [ChangeFeed(SqlChangeLog(database)), ChangeFeed(SqlChangeLog(database))]
    a, b = Regulation(SqlRegulationStore(database)), Regulation(SqlRegulationStore(database))
    for regulation, feed in zip((a, b), feeds, strict=True):
        await feed.start()
        regulation.follow(feed)
        await regulation.sync(T0)
    key = ip_key("198.51.100.20")
    regulator = a.regulator(POLICY)
    for i in range(3):
        regulator.failure((key,), T0 + i)
    await a.flush(T0 + 3)
    entries = await SqlChangeLog(database).read(0)
    assert [(e.kind, e.key, e.until) for e in entries] == [
        (ChangeKind.BAN, key, datetime.fromtimestamp(T0 + 2 + 300, UTC))
    ]
    with statements(database) as sent:
        await b.refresh(T0 + 4)  # following the feed: no ban read
    assert sent == []
    assert key not in b.bans
    assert await feeds[1].poll() == 1  # the poll every instance makes anyway brings it
    assert b.bans[key] == T0 + 2 + 300
    # A reset (the feed cannot vouch for what it missed) reads the bans once again, at the next refresh.
    b.bans.clear()
    feeds[1]._reset("test")
    with statements(database) as sent:
        await b.refresh(T0 + 5)
        await b.refresh(T0 + 6)
    assert len([s for s in sent if "auth_bans" in s]) == 1
    assert b.bans[key] == T0 + 2 + 300


async def test_a_ban_and_its_change_are_written_both_or_neither(database: Database) -> None:
    store = SqlRegulationStore(database)
    await store.add_bans([("ip:1", datetime.fromtimestamp(T0 + 300, UTC))], datetime.fromtimestamp(T0, UTC))
    too_long = "k" * 401  # refused by the column (PostgreSQL, MariaDB) or by the change (every database)
    with pytest.raises((TokenwardError, ValueError)):
        await store.add_bans(
            [("ip:2", datetime.fromtimestamp(T0 + 300, UTC)), (too_long, datetime.fromtimestamp(T0 + 300, UTC))],
            datetime.fromtimestamp(T0, UTC),
        )
    assert [e.key for e in await SqlChangeLog(database).read(0)] == ["ip:1"]
    assert list(await store.active_bans(datetime.fromtimestamp(T0, UTC))) == ["ip:1"]


async def test_the_in_memory_store_logs_bans_where_the_sql_one_does() -> None:
    changes = InMemoryChangeLog()
    regulator = Regulator(InMemoryRegulationStore(changes), POLICY)
    for i in range(3):
        regulator.failure((ip_key("192.0.2.3"),), T0 + i)
    await regulator.regulation.flush(T0 + 3)
    assert [(e.kind, e.key) for e in await changes.read(0)] == [(ChangeKind.BAN, ip_key("192.0.2.3"))]
