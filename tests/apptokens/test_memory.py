"""App tokens answered from memory: the known-id filter, invalidation by the change feed, the memory budget,
fail-closed freshness and the owners' lists. Two services on one set of stores are two instances."""

from __future__ import annotations

import asyncio
import builtins
import gc
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.apptokens.helpers import Clock, feed_for, make_service, stores
from tokenward.apptokens import AppTokenConfig
from tokenward.apptokens import format as token_format
from tokenward.errors import StorageUnavailable, TokenwardError
from tokenward.storage import AppTokenRecord, Database, InMemoryAppTokenStore
from tokenward.storage.apptokens import PackedRecord, unpack
from tokenward.storage.changes import InMemoryChangeLog

ALICE = "alice@example.com"
BOB = "bob@example.com"


class Store(InMemoryAppTokenStore):
    """Counts reads; ``hold`` makes the next reads wait until released (a read in flight)."""

    def __init__(self) -> None:
        self.changes = InMemoryChangeLog()
        super().__init__(changes=self.changes)
        self.gets = 0
        self.lists = 0
        self.id_loads = 0
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    def hold(self) -> asyncio.Event:
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        return self.gate

    async def _wait(self) -> None:
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()

    async def get(self, token_id: str) -> AppTokenRecord | None:
        self.gets += 1
        found = await super().get(token_id)
        await self._wait()  # read, then held back: what it returns may be overtaken by a change
        return found

    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        self.lists += 1
        found = await super().list(owner=owner, include_revoked=include_revoked)
        await self._wait()
        return found

    async def known_ids(self) -> builtins.set[str]:
        self.id_loads += 1
        found = await super().known_ids()
        await self._wait()
        return found

    async def newest_live(self, limit: int) -> builtins.list[PackedRecord]:
        found = await super().newest_live(limit)
        await self._wait()
        return found


def _instances(count: int = 2, **options: Any) -> tuple[Store, list[Any]]:
    store = Store()
    _, audit, regulation = stores(None)
    services = [make_service(shared=(store, audit, regulation), **options) for _ in range(count)]
    return store, services


async def _code(call: Any) -> str:
    try:
        await call
    except TokenwardError as exc:
        return exc.error_code
    return "ok"


def _unknown_token() -> str:
    token, _ = token_format.generate()
    return token


NO_LOOKUPS = AppTokenConfig(unknown_lookups_per_second=0)


async def test_an_unknown_id_costs_no_read_and_answers_like_a_wrong_secret() -> None:
    store, (a, b) = _instances(config=NO_LOOKUPS)
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    await b.feed.start()
    assert await b.load_known_ids() == 1
    unknown = _unknown_token()
    for _ in range(50):
        assert await _code(b.verify(None, unknown)) == "apptoken_invalid"  # bearer, no address: never banned
    assert store.gets == 0  # the filter said no: not one read
    events = await b.audit.list(action="apptoken.verify_failed", limit=100)
    assert {e.detail["reason"] for e in events} == {"unknown_id"} and events[0].target == unknown[4:16]
    # A known id with a wrong secret: one read, then from memory; the same answer.
    other = _unknown_token()
    body = token[:17] + other[17 : -token_format.CHECK_LENGTH]  # this id, another secret, a valid checksum
    wrong = body + token_format._check(body)
    for _ in range(3):
        assert await _code(b.verify(None, wrong)) == "apptoken_invalid"
    assert store.gets == 1
    assert (await b.verify(ALICE, token)).id == record.id
    assert store.gets == 1


async def test_unknown_ids_are_looked_up_at_a_trickle_so_a_token_created_elsewhere_works_at_once() -> None:
    clock = Clock()
    store, (a, b) = _instances(clock=clock, config=AppTokenConfig(unknown_lookups_per_second=2))
    await b.feed.start()
    await b.load_known_ids()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    assert (await b.verify(ALICE, token)).id == record.id  # before b's feed read the create: one lookup
    assert store.gets == 1
    flood = [_unknown_token() for _ in range(100)]
    for unknown in flood:
        assert await _code(b.verify(None, unknown)) == "apptoken_invalid"
    assert store.gets == 2  # the burst of two, one spent above; the rest of the flood: no SQL
    for unknown in flood[:2]:  # ids already looked up answer from memory
        assert await _code(b.verify(None, unknown)) == "apptoken_invalid"
    assert store.gets == 2
    clock.advance(10)  # the bucket refills to its burst, no more
    for unknown in flood:
        assert await _code(b.verify(None, unknown)) == "apptoken_invalid"
    assert store.gets == 4
    assert (await b.verify(ALICE, token)).id == record.id and store.gets == 4  # held and known now


async def test_concurrent_first_uses_of_a_token_created_elsewhere_share_one_lookup() -> None:
    # A script that creates a token (CLI, another instance) and starts several workers with it at once: every
    # request that finds the lookup of that id in flight waits for it instead of spending the trickle, so none is
    # refused (a refusal counts toward the address's ban: three and the whole script got 429 for 5 minutes).
    store, (a, b) = _instances(config=AppTokenConfig(unknown_lookups_per_second=1))
    await b.feed.start()
    await b.load_known_ids()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    gate = store.hold()  # the lookup stays in flight until every worker has asked
    workers = [asyncio.ensure_future(b.verify(ALICE, token, client_ip="192.0.2.7")) for _ in range(5)]
    await store.waiting.wait()  # the first worker's read; the others ran in the same turn of the loop
    gate.set()
    assert [v.id for v in await asyncio.gather(*workers)] == [record.id] * 5
    assert store.gets == 1


async def test_a_token_created_elsewhere_joins_the_filter_through_the_feed() -> None:
    store, (a, b) = _instances(config=NO_LOOKUPS)
    await b.feed.start()
    await b.load_known_ids()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    assert await _code(b.verify(ALICE, token)) == "apptoken_invalid"  # not yet known here: the feed's lag
    assert store.gets == 0
    await b.feed.poll()
    assert (await b.verify(ALICE, token)).id == record.id
    assert store.gets == 1


async def test_an_id_created_while_the_filter_loads_is_not_lost() -> None:
    store, (a, b) = _instances()
    await b.feed.start()
    gate = store.hold()
    loading = asyncio.ensure_future(b.load_known_ids())
    await store.waiting.wait()  # the ids are read; the load has not finished
    store.gate = None
    record, token = await a.create(owner=ALICE, created_by=ALICE)  # not in what the load read
    await b.feed.poll()
    gate.set()
    assert await loading == 1
    assert (await b.verify(ALICE, token)).id == record.id


async def test_without_a_loaded_filter_every_well_formed_id_is_looked_up() -> None:
    store, (a,) = _instances(1)  # a CLI process, or before the start finished
    assert await _code(a.verify(ALICE, _unknown_token())) == "apptoken_invalid"
    assert store.gets == 1


async def test_a_revocation_during_a_read_in_flight_is_not_undone_by_it() -> None:
    """The race the lack of a TTL makes dangerous: the read returns the live record after the revocation
    was applied; it must not be kept, or the revoked token would be accepted here forever."""
    store, (a, b) = _instances()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    await b.feed.start()
    await b.load_known_ids()
    gate = store.hold()
    in_flight = asyncio.ensure_future(b.verify(ALICE, token))
    await store.waiting.wait()  # b has read the live record and not yet kept it
    store.gate = None
    await a.revoke(record.id, owner=ALICE, actor=ALICE)
    await b.feed.poll()  # b applies the revocation while its read is still in flight
    reads = store.gets
    gate.set()
    assert (await in_flight).id == record.id  # the request that raced the revocation: served from its read
    assert await _code(b.verify(ALICE, token)) == "apptoken_revoked"  # the read was not kept ...
    assert store.gets == reads + 1  # ... so the next check read again
    assert await _code(b.verify(ALICE, token)) == "apptoken_revoked" and store.gets == reads + 1


async def test_a_revocation_elsewhere_reaches_memory_through_the_feed_only() -> None:
    _, (a, b) = _instances()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    await b.feed.start()
    await b.verify(ALICE, token)
    await a.revoke(record.id, owner=ALICE, actor=ALICE)
    assert await _code(a.verify(ALICE, token)) == "apptoken_revoked"  # the writer: at once
    assert await _code(b.verify(ALICE, token)) == "ok"  # held; no TTL ends it ...
    await b.feed.poll()
    assert await _code(b.verify(ALICE, token)) == "apptoken_revoked"  # ... the entry does


async def test_a_tiny_memory_budget_evicts_but_stays_right() -> None:
    store, (a, b) = _instances(config=AppTokenConfig(memory_mb=0.002))
    assert b.capacity < 5
    await b.feed.start()
    await b.load_known_ids()
    made = [await a.create(owner=f"user{i}@example.com", created_by=ALICE) for i in range(8)]
    await b.feed.poll()
    for _ in range(3):
        for record, token in made:
            assert (await b.verify(record.owner, token)).id == record.id
    assert store.gets > len(made)  # evicted and read again: the budget held
    revoked = made[::2]
    for record, _ in revoked:
        await a.revoke(record.id, owner=record.owner, actor=ALICE)
    await b.feed.poll()
    for _ in range(2):
        for record, token in made:
            expected = "apptoken_revoked" if (record, token) in revoked else "ok"
            assert await _code(b.verify(record.owner, token)) == expected
    assert [r.id for r in await b.list(made[1][0].owner)] == [made[1][0].id]


async def test_a_stale_feed_fails_closed() -> None:
    now = [100.0]
    store = Store()
    _, audit, regulation = stores(None)
    feed = feed_for(store, max_lag=5.0, monotonic=lambda: now[0])
    b = make_service(shared=(store, audit, regulation), feed=feed)
    record, token = await b.create(owner=ALICE, created_by=ALICE)
    await feed.start()
    await feed.poll()
    assert (await b.verify(ALICE, token)).id == record.id
    now[0] += 5.5  # no successful poll for longer than max_lag
    for call in (
        b.verify(ALICE, token),
        b.verify(ALICE, _unknown_token()),
        b.list(ALICE),
        b.get(record.id, owner=None),
    ):
        with pytest.raises(StorageUnavailable) as info:
            await call
        assert info.value.error_code == "changes_stale" and info.value.status == 503
    await feed.poll()
    assert (await b.verify(ALICE, token)).id == record.id
    assert [r.id for r in await b.list(ALICE)] == [record.id]


async def test_a_feed_reset_drops_everything_and_reloads_the_filter() -> None:
    now = [100.0]
    store = Store()
    _, audit, regulation = stores(None)
    a = make_service(shared=(store, audit, regulation))
    feed = feed_for(store, max_lag=5.0, retention=60.0, monotonic=lambda: now[0])
    b = make_service(shared=(store, audit, regulation), feed=feed)
    kept, token = await a.create(owner=BOB, created_by=BOB)  # no change touches it: only the reset drops it
    await b.feed.start()
    await b.load_known_ids()
    await b.verify(BOB, token)
    await b.list(BOB)
    assert store.gets == 1 and store.lists == 1 and store.id_loads == 1
    new, new_token = await a.create(owner=ALICE, created_by=ALICE)  # a change the reset's reload must find ...
    await a.create(owner="carol@example.com", created_by=ALICE)
    await store.changes.prune(datetime(9999, 1, 1, tzinfo=UTC))  # ... though its entry was pruned (a long outage)
    now[0] += 30  # the log unread for longer than max_lag and half the retention: the feed cannot vouch
    await b.feed.poll()
    assert b.feed.resets == 1
    for _ in range(100):  # the filter reloads in a task of its own
        if store.id_loads == 2:
            break
        await asyncio.sleep(0)
    assert store.id_loads == 2
    assert (await b.verify(BOB, token)).id == kept.id
    assert (await b.verify(ALICE, new_token)).id == new.id
    assert store.gets == 3  # both read again: nothing held survived the reset
    assert [r.id for r in await b.list(BOB)] == [kept.id] and store.lists == 2


async def test_lists_come_from_memory_until_a_change_or_the_last_used_interval() -> None:
    clock = Clock()
    store, (a, b) = _instances(clock=clock, config=AppTokenConfig(last_used_interval=60))
    await b.feed.start()
    first, token = await a.create(owner=ALICE, created_by=ALICE)
    await a.create(owner=BOB, created_by=BOB)
    for _ in range(20):
        assert [r.id for r in await b.list(ALICE)] == [first.id]
    assert store.lists == 1
    clock.advance(1)  # oldest first
    second, _ = await a.create(owner=ALICE, created_by=ALICE)
    await b.feed.poll()  # an entry for one of alice's tokens: her list is read again
    assert [r.id for r in await b.list("Alice@Example.com")] == [first.id, second.id]
    assert store.lists == 2
    await b.list(BOB)
    await a.create(owner=BOB, created_by=BOB)
    await b.feed.poll()
    assert [r.id for r in await b.list(ALICE)] == [first.id, second.id] and store.lists == 3  # only bob's went
    # A use noted here shows at once; one written by another instance after the interval.
    clock.advance(10)
    await b.verify(ALICE, token)
    [shown, _] = await b.list(ALICE)
    assert shown.last_used_at == datetime.fromtimestamp(clock.now, shown.created_at.tzinfo)
    await b.flush_last_used()
    [shown, _] = await b.list(ALICE)
    assert shown.last_used_at is not None  # flushed, still shown from the list read before the flush
    await store.touch_many({second.id: clock.now + 1})
    lists = store.lists
    clock.advance(60)
    [_, other] = await b.list(ALICE)  # answered with the held list; read again in the background
    assert other.last_used_at is None
    for _ in range(100):
        if store.lists > lists:
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    [_, other] = await b.list(ALICE)
    assert store.lists == lists + 1 and other.last_used_at is not None
    # The creator's own list: dropped by its create at once.
    await a.list(ALICE)
    clock.advance(1)
    third, _ = await a.create(owner=ALICE, created_by=ALICE)
    assert [r.id for r in await a.list(ALICE)][-1] == third.id


async def test_concurrent_lists_share_one_read() -> None:
    store, (a, b) = _instances()
    await a.create(owner=ALICE, created_by=ALICE)
    gate = store.hold()
    lists = [asyncio.ensure_future(b.list(ALICE)) for _ in range(50)]
    await store.waiting.wait()
    gate.set()
    assert {len(found) for found in await asyncio.gather(*lists)} == {1}
    assert store.lists == 1


async def test_a_prefill_holds_the_newest_live_records_within_the_budget() -> None:
    clock = Clock()
    store, (a, b) = _instances(clock=clock, config=AppTokenConfig(memory_mb=0.002))
    made = []
    for i in range(6):
        clock.advance(1)
        made.append(await a.create(owner=f"user{i}@example.com", created_by=ALICE))
    await a.revoke(made[-1][0].id, owner=made[-1][0].owner, actor=ALICE)  # the newest, revoked: not held
    await b.feed.start()
    await b.load_known_ids()
    assert await b.prefill() == b.capacity < 5
    reads = store.gets
    held = made[-1 - b.capacity : -1]
    for record, token in held:
        assert (await b.verify(record.owner, token)).id == record.id
    assert store.gets == reads
    record, token = made[0]
    assert (await b.verify(record.owner, token)).id == record.id  # beyond the budget: read when used
    assert store.gets == reads + 1


async def test_a_change_during_the_prefill_is_not_undone_by_it() -> None:
    store, (a, b) = _instances()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    await b.feed.start()
    await b.load_known_ids()
    gate = store.hold()
    prefill = asyncio.ensure_future(b.prefill())
    await store.waiting.wait()  # the live record is read, not yet held
    store.gate = None
    await a.revoke(record.id, owner=ALICE, actor=ALICE)
    await b.feed.poll()
    gate.set()
    assert await prefill == 0
    assert await _code(b.verify(ALICE, token)) == "apptoken_revoked"


async def test_the_sql_store_holds_every_id(store_database: Database | None) -> None:
    shared = stores(store_database)
    a = make_service(shared=shared)
    made = [await a.create(owner=f"user{i}@example.com", created_by=ALICE) for i in range(3)]
    await a.revoke(made[0][0].id, owner=made[0][0].owner, actor=ALICE)
    assert await shared[0].known_ids() == {record.id for record, _ in made}  # revoked ones too
    newest = [unpack(packed) for packed in await shared[0].newest_live(10)]
    assert {r.id for r in newest} == {record.id for record, _ in made[1:]}  # not the revoked one
    assert [r.created_at for r in newest] == sorted((r.created_at for r in newest), reverse=True)
    assert {r.id: r for r in newest}[made[1][0].id] == made[1][0]  # every field back as created
    assert len(await shared[0].newest_live(1)) == 1


async def test_what_is_held_is_left_alone_by_the_garbage_collector() -> None:
    # Plain tuples of atoms: untracked after the collection they survive, so a full collection walks none of the
    # 100,000 records a serving instance holds (a dataclass with datetimes stays tracked for life).
    _, (a, b) = _instances()
    made = [await a.create(owner=ALICE, created_by=ALICE, scopes=["tokenward:manage"]) for _ in range(3)]
    await b.feed.start()
    assert await b.prefill() == 3
    for record, token in made:
        assert (await b.verify(ALICE, token)).id == record.id  # held again with the token's fingerprint
        assert (await b.verify(ALICE, token)).owner == ALICE  # warm
    assert {r.id for r in await b.list(ALICE)} == {r.id for r, _ in made}
    for _ in range(4):  # each level of nesting (list, records, scopes; the dicts) is untracked one collection later
        gc.collect()
    held = [b._records.get(record.id) for record, _ in made]
    assert all(isinstance(h, tuple) and h[-1] is not None for h in held)  # the fingerprints are held
    assert not any(gc.is_tracked(h) for h in held)
    assert not gc.is_tracked(b._records._entries) and not gc.is_tracked(b._lists._entries)
    assert not gc.is_tracked(b._lists.get(ALICE)) and not gc.is_tracked(b._uses)
    assert not any(isinstance(o, AppTokenRecord) for o in gc.get_referents(*held, b._lists.get(ALICE)))
