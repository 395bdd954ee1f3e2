from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.forwardauth.helpers import NOOP, keyring
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, Forbidden, StorageUnavailable
from tokenward.forwardauth.config_token import encode_token
from tokenward.forwardauth.service import ForwardAuthService
from tokenward.storage import Database
from tokenward.storage.config_tokens import (
    ConfigTokenRevocation,
    ConfigTokenRevocations,
    InMemoryConfigTokenRevocations,
    SqlConfigTokenRevocations,
)


def make(db: Database | None) -> ConfigTokenRevocations:
    return InMemoryConfigTokenRevocations() if db is None else SqlConfigTokenRevocations(db)


async def test_revoke_and_list(store_database: Database | None) -> None:
    store = make(store_database)
    assert await store.revoked_ids() == frozenset()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await store.revoke(ConfigTokenRevocation(jti="a1", revoked_at=at, revoked_by="cli:root"))
    await store.revoke(ConfigTokenRevocation(jti="b2", revoked_at=at, revoked_by="cli:root"))
    assert await store.revoked_ids() == {"a1", "b2"}
    with pytest.raises(Conflict) as info:
        await store.revoke(ConfigTokenRevocation(jti="a1", revoked_at=at, revoked_by="x"))
    assert info.value.error_code == "config_token_already_revoked"
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


class SlowRevocations(InMemoryConfigTokenRevocations):
    """Revocations whose reads wait until the test lets them through (a slow or hanging database)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.reads = 0

    async def revoked_ids(self) -> frozenset[str]:
        self.reads += 1
        await self.gate.wait()
        return await super().revoked_ids()


REVOKED_AT = datetime(2026, 1, 1, tzinfo=UTC)


async def service_with(
    store: ConfigTokenRevocations, clock: Clock, *, wait: float = 1.0, read_timeout: float | None = None
) -> ForwardAuthService:
    service = ForwardAuthService(
        keyring=lambda: KEYRING,
        revocations=store,
        revocation_refresh=1.0,
        revocation_wait=wait,
        revocation_read_timeout=read_timeout,
        monotonic=clock,
    )
    await service.warm()
    return service


KEYRING = keyring()
TOKEN = encode_token({"jti": "t1", **NOOP}, KEYRING)


async def verdict(service: ForwardAuthService) -> str:
    try:
        await service.resolve(token=TOKEN, store_id=None, token_id=None)
    except Forbidden as exc:
        return exc.error_code
    return "allowed"


async def test_the_first_request_after_a_quiet_spell_sees_a_revocation_made_meanwhile() -> None:
    # The stall of issue 19: the set was re-read in the background *after* a request had been
    # answered from the old one, so after a quiet minute the first request (or the first few,
    # until the read came back) still passed a token revoked long ago.
    store, clock = InMemoryConfigTokenRevocations(), Clock()
    service = await service_with(store, clock)
    assert await verdict(service) == "allowed"
    await store.revoke(ConfigTokenRevocation(jti="t1", revoked_at=REVOKED_AT, revoked_by="cli:root"))
    clock.now += 40
    assert await verdict(service) == "config_token_revoked"
    await service.close()


async def test_a_busy_instance_refreshes_in_the_background_within_two_intervals() -> None:
    store, clock = SlowRevocations(), Clock()
    service = await service_with(store, clock)
    await store.revoke(ConfigTokenRevocation(jti="t1", revoked_at=REVOKED_AT, revoked_by="cli:root"))
    clock.now += 0.5
    assert await verdict(service) == "allowed"  # within the refresh interval: the set in memory
    store.gate.clear()
    clock.now += 0.7  # due: a read starts, requests keep using the set meanwhile (no waiting on SQL)
    assert await verdict(service) == "allowed"
    await asyncio.sleep(0)  # an event-loop turn (not a clock): the background read has started
    assert store.reads == 2
    store.gate.set()
    await asyncio.sleep(0)  # and it finishes
    await asyncio.sleep(0)
    assert await verdict(service) == "config_token_revoked"
    await service.close()


async def test_a_hanging_database_holds_requests_only_briefly_then_serves_the_last_set() -> None:
    store, clock = SlowRevocations(), Clock()
    service = await service_with(store, clock, wait=0.05)
    store.gate.clear()
    clock.now += 40
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await verdict(service) == "allowed"  # the last set: the database did not answer in time
    assert await verdict(service) == "allowed"  # the same read is still pending: no second wait
    assert store.reads == 2  # one read in flight, not one per request
    assert loop.time() - started < 5  # generous: the point is "not forever", not a speed figure
    store.gate.set()
    await service.close()


async def test_a_failing_read_is_retried_once_per_interval_not_per_request() -> None:
    class Failing(InMemoryConfigTokenRevocations):
        reads = 0

        async def revoked_ids(self) -> frozenset[str]:
            self.reads += 1
            if self.reads > 1:
                raise StorageUnavailable("database down", code=ErrorCode.STORAGE_UNAVAILABLE)
            return frozenset()

    store, clock = Failing(), Clock()
    service = await service_with(store, clock)
    clock.now += 40
    for _ in range(5):
        assert await verdict(service) == "allowed"
    assert store.reads == 2
    clock.now += 1.5
    assert await verdict(service) == "allowed" and store.reads == 3
    await service.close()


async def test_a_hung_read_is_abandoned_and_the_next_one_sees_the_revocation() -> None:
    # A read that never answers once held every later refresh back (one read at a time): the
    # revocation was honoured only when the stuck read finally returned.
    store, clock = SlowRevocations(), Clock()
    service = await service_with(store, clock, read_timeout=0.01)
    store.gate.clear()
    clock.now += 40
    assert await verdict(service) == "allowed"  # the read timed out while this request waited for it
    store.gate.set()
    await store.revoke(ConfigTokenRevocation(jti="t1", revoked_at=REVOKED_AT, revoked_by="cli:root"))
    clock.now += 1.5
    assert await verdict(service) == "config_token_revoked" and store.reads == 3
    await service.close()
