from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.forwardauth.helpers import NOOP, keyring
from tokenward.changefeed import ChangeFeed
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, StorageUnavailable, TokenwardError
from tokenward.forwardauth.config_token import encode_token
from tokenward.forwardauth.service import ForwardAuthService
from tokenward.storage import Database
from tokenward.storage.changes import ChangeEntry, ChangeKind, ChangeLog, InMemoryChangeLog, SqlChangeLog
from tokenward.storage.config_tokens import (
    ConfigTokenRevocation,
    ConfigTokenRevocations,
    InMemoryConfigTokenRevocations,
    SqlConfigTokenRevocations,
)


def make(db: Database | None) -> ConfigTokenRevocations:
    return InMemoryConfigTokenRevocations() if db is None else SqlConfigTokenRevocations(db)


async def test_revoke_and_list(store_database: Database | None) -> None:
    changes: ChangeLog
    if store_database is None:
        changes = InMemoryChangeLog()
        store: ConfigTokenRevocations = InMemoryConfigTokenRevocations(changes)
    else:
        changes, store = SqlChangeLog(store_database), SqlConfigTokenRevocations(store_database)
    assert await store.revoked_ids() == frozenset()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await store.revoke(ConfigTokenRevocation(jti="a1", revoked_at=at, revoked_by="cli:root"))
    await store.revoke(ConfigTokenRevocation(jti="b2", revoked_at=at, revoked_by="cli:root"))
    assert await store.revoked_ids() == {"a1", "b2"}
    with pytest.raises(Conflict) as info:
        await store.revoke(ConfigTokenRevocation(jti="a1", revoked_at=at, revoked_by="x"))
    assert info.value.error_code == "config_token_already_revoked"
    # One change per revocation, in its transaction: the refused second one logged nothing.
    entries = await changes.read(0)
    assert [(e.kind, e.key, e.at) for e in entries] == [
        (ChangeKind.CONFIG_TOKEN, "a1", at),
        (ChangeKind.CONFIG_TOKEN, "b2", at),
    ]
    listed = await store.list()
    assert [r.jti for r in listed] == ["a1", "b2"] and listed[0].revoked_at == at
    await store.close()


def test_jti_length() -> None:
    with pytest.raises(ValueError):
        ConfigTokenRevocation(jti="x" * 129, revoked_at=datetime.now(UTC), revoked_by="x")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountedRevocations(InMemoryConfigTokenRevocations):
    """Revocations whose reads are counted and wait until the test lets them through (a slow database)."""

    def __init__(self, changes: InMemoryChangeLog) -> None:
        super().__init__(changes)
        self.gate = asyncio.Event()
        self.gate.set()
        self.reads = 0
        self.fail: Exception | None = None

    async def revoked_ids(self) -> frozenset[str]:
        self.reads += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return await super().revoked_ids()


REVOKED_AT = datetime(2026, 1, 1, tzinfo=UTC)
KEYRING = keyring()
TOKEN = encode_token({"jti": "t1", **NOOP}, KEYRING)


def revocation(jti: str = "t1") -> ConfigTokenRevocation:
    return ConfigTokenRevocation(jti=jti, revoked_at=REVOKED_AT, revoked_by="cli:root")


class Instance:
    """One serving instance: its change feed (started) and its /verify service, over a shared store."""

    def __init__(self, store: ConfigTokenRevocations, log: ChangeLog, clock: Clock) -> None:
        self.feed = ChangeFeed(log, max_lag=5.0, monotonic=clock)
        self.service = ForwardAuthService(keyring=lambda: KEYRING, revocations=store, changes=self.feed)

    @classmethod
    async def start(cls, store: ConfigTokenRevocations, log: ChangeLog, clock: Clock) -> Instance:
        instance = cls(store, log, clock)
        await instance.feed.start()  # before anything is loaded into memory
        await instance.service.warm()
        return instance


async def verdict(service: ForwardAuthService, token: str = TOKEN) -> str:
    try:
        await service.resolve(token=token, store_id=None, token_id=None)
    except TokenwardError as exc:
        return exc.error_code
    return "allowed"


async def test_the_set_is_read_once_and_kept_by_the_feed_without_re_reading() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = CountedRevocations(log)
    await store.revoke(revocation("old"))
    instance = await Instance.start(store, log, clock)
    assert store.reads == 1
    assert await verdict(instance.service, encode_token({"jti": "old", **NOOP}, KEYRING)) == "config_token_revoked"
    assert await verdict(instance.service) == "allowed"
    await store.revoke(revocation())  # on another instance: logged with the row
    assert await verdict(instance.service) == "allowed"  # not read yet (the feed's next poll)
    assert await instance.feed.poll() == 1
    for _ in range(100):  # time passes, polls succeed: the set is never read again
        clock.now += 1
        await instance.feed.poll()
    for _ in range(3):
        assert await verdict(instance.service) == "config_token_revoked"
    assert store.reads == 1
    await instance.service.close()


async def test_a_second_instance_sharing_the_database_refuses_after_its_feed_reads(database: Database) -> None:
    clock = Clock()
    first = await Instance.start(SqlConfigTokenRevocations(database), SqlChangeLog(database), clock)
    second = await Instance.start(SqlConfigTokenRevocations(database), SqlChangeLog(database), clock)
    assert await verdict(first.service) == await verdict(second.service) == "allowed"
    await SqlConfigTokenRevocations(database).revoke(revocation())
    await first.feed.poll()
    await second.feed.poll()
    assert await verdict(first.service) == await verdict(second.service) == "config_token_revoked"
    await first.service.close()
    await second.service.close()


async def test_a_stale_feed_refuses_with_503_then_recovers() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    instance = await Instance.start(InMemoryConfigTokenRevocations(log), log, clock)
    assert await verdict(instance.service) == "allowed"
    clock.now += 5.5  # no successful read for longer than max_lag: a revocation elsewhere may be missed
    assert await verdict(instance.service) == ErrorCode.CHANGES_STALE
    with pytest.raises(StorageUnavailable) as info:
        await instance.service.resolve(token=TOKEN, store_id=None, token_id=None)
    assert info.value.status == 503
    await instance.feed.poll()
    assert await verdict(instance.service) == "allowed"
    await instance.service.close()


async def test_a_reset_reads_the_set_again_and_keeps_changes_read_meanwhile() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = CountedRevocations(log)
    instance = await Instance.start(store, log, clock)
    assert store.reads == 1
    store.gate.clear()
    instance.service._revoked.reset()  # what the feed calls after an outage it cannot vouch for
    pending = asyncio.ensure_future(verdict(instance.service))
    for _ in range(10):  # event-loop turns (not a clock): the request waits for the read
        await asyncio.sleep(0)
    assert not pending.done() and store.reads == 2
    # A change read while the set is being read (its row committed after the read's snapshot).
    instance.service._revoked.apply(ChangeEntry(1, REVOKED_AT, ChangeKind.CONFIG_TOKEN, "t1"))
    store.gate.set()
    assert await pending == "config_token_revoked"
    assert store.reads == 2
    await instance.service.close()


async def test_the_feed_reset_handler_is_registered(database: Database) -> None:
    clock = Clock()
    store = SqlConfigTokenRevocations(database)
    instance = await Instance.start(store, SqlChangeLog(database), clock)
    await store.revoke(revocation())
    # The revocation was missed (say the instance was cut off); the feed resets and the set is read again.
    instance.feed._reset("test")
    assert await verdict(instance.service) == "config_token_revoked"
    await instance.service.close()


async def test_a_failed_read_is_refused_with_503_and_the_next_request_reads_again() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = CountedRevocations(log)
    store.fail = StorageUnavailable("database down", code=ErrorCode.STORAGE_UNAVAILABLE)
    instance = await Instance.start(store, log, clock)  # the failed read at start is logged, not raised
    assert await verdict(instance.service) == ErrorCode.STORAGE_UNAVAILABLE  # never "allowed" unchecked
    store.fail = None
    await store.revoke(revocation())
    assert await verdict(instance.service) == "config_token_revoked"
    assert store.reads == 3
    await instance.service.close()


async def test_concurrent_requests_share_one_read() -> None:
    log, clock = InMemoryChangeLog(), Clock()
    store = CountedRevocations(log)
    store.gate.clear()
    instance = Instance(store, log, clock)
    await instance.feed.start()
    pending = asyncio.gather(*(verdict(instance.service) for _ in range(20)))
    for _ in range(10):
        await asyncio.sleep(0)
    store.gate.set()
    assert await pending == ["allowed"] * 20
    assert store.reads == 1
    await instance.service.close()


async def test_without_a_store_nothing_is_revoked_and_nothing_is_read() -> None:
    service = ForwardAuthService(keyring=lambda: KEYRING)
    await service.warm()
    assert await verdict(service) == "allowed"
    await service.close()
