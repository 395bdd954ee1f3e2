"""The Redis fast path against a real Redis on 127.0.0.1:6379.

Without Redis the tests skip with the command to start one; under ``CI=true`` they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.e2e.tcpproxy import tcp_proxy
from tests.helpers import clear_tokenward_env, init_data_dir
from tests.storage.servers import REDIS_URL, redis_client
from tokenward.apptokens import RegulationPolicy, Regulator
from tokenward.cli.main import app as cli
from tokenward.errors import StorageUnavailable, TokenwardError
from tokenward.forwardauth.config_token import encode_token
from tokenward.identity.encoding import b64u_encode
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage import redisstate
from tokenward.storage.redisstate import ChangeNotices, RedisRegulationStore, connect_redis
from tokenward.storage.regulation import FallbackRegulationStore


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    async with redis_client() as client:
        yield client


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _prefix() -> str:
    return f"tokenward:test-{secrets.token_hex(4)}:"


async def test_failures_are_counted_within_the_window_and_bans_keep_the_longest(redis: Any) -> None:
    store = RedisRegulationStore(redis, prefix=_prefix())
    t = time.time()
    assert await store.record_failure(["user:a", "ip:1"], _dt(t), since=_dt(t - 120)) == {"user:a": 1, "ip:1": 1}
    assert await store.record_failure(["user:a"], _dt(t + 1), since=_dt(t - 119)) == {"user:a": 2}
    # a failure older than the window no longer counts
    assert await store.record_failure(["user:a"], _dt(t + 2), since=_dt(t + 0.5)) == {"user:a": 2}

    await store.add_ban("user:a", _dt(t), _dt(t + 300))
    await store.add_ban("user:a", _dt(t), _dt(t + 100))  # a shorter ban never shortens the longer one
    await store.add_ban("ip:1", _dt(t), _dt(t + 10))
    bans = await store.active_bans(_dt(t))
    assert {k: round(v.timestamp() - t) for k, v in bans.items()} == {"user:a": 300, "ip:1": 10}
    assert set(await store.active_bans(_dt(t + 50))) == {"user:a"}
    await store.purge(failures_before=_dt(t), bans_before=_dt(t + 50))
    assert set(await store.active_bans(_dt(t))) == {"user:a"}


async def test_a_batch_is_one_pipeline_and_counts_each_key_once(redis: Any) -> None:
    store = RedisRegulationStore(redis, prefix=_prefix())
    t = time.time()
    sent: list[int] = []
    execute = redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        sent.append(1)
        return execute(*args, **kwargs)

    redis.pipeline = counting_pipeline
    try:
        batch = [("ip:1", _dt(t)), ("user:a", _dt(t + 0.1)), ("ip:1", _dt(t + 0.2)), ("ip:1", _dt(t + 0.2))]
        assert await store.record_failures(batch, since=_dt(t - 120)) == {"ip:1": 3, "user:a": 1}
        assert sent == [1]
        await store.add_bans([("ip:1", _dt(t + 300)), ("ip:1", _dt(t + 100)), ("user:a", _dt(t + 10))], _dt(t))
    finally:
        del redis.pipeline
    bans = await store.active_bans(_dt(t))
    assert {k: round(v.timestamp() - t) for k, v in bans.items()} == {"ip:1": 300, "user:a": 10}
    assert await store.record_failures([], since=_dt(t)) == {}


async def test_a_ban_earned_on_two_instances_is_seen_by_both(redis: Any) -> None:
    prefix = _prefix()
    policy = RegulationPolicy(max_failures=3, find_time=120, ban_time=300)
    a, b = (
        Regulator(RedisRegulationStore(redis, prefix=prefix), policy),
        Regulator(RedisRegulationStore(redis, prefix=prefix), policy),
    )
    now = time.time()
    assert a.failure(("user:mallory",), now) == []
    assert await a.regulation.flush(now) == []
    assert b.failure(("user:mallory",), now + 1) == []
    assert await b.regulation.flush(now + 1) == []  # two in Redis, and B knows it
    assert b.failure(("user:mallory",), now + 2) == ["user:mallory"]  # the third: banned at once, no round trip
    a.check(("user:mallory",), now + 2)  # A has not seen it yet ...
    assert await b.regulation.flush(now + 2) == []
    await a.sync(now + 3)  # ... and does at its next refresh
    with pytest.raises(TokenwardError) as caught:
        a.check(("user:mallory",), now + 3)
    assert caught.value.error_code == "too_many_attempts"


async def test_unreachable_redis_is_a_storage_error_without_the_url() -> None:
    client = connect_redis("redis://:hunter2-secret@127.0.0.1:1/0", timeout=0.5)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await RedisRegulationStore(client, prefix=_prefix()).active_bans(_dt(time.time()))
        assert caught.value.error_code == "redis_unavailable"
        assert "hunter2" not in caught.value.detail and "127.0.0.1" not in caught.value.detail
        with pytest.raises(StorageUnavailable):
            await ChangeNotices(client, prefix=_prefix()).publish()
    finally:
        await client.aclose()


async def test_a_subscription_silently_lost_is_noticed_and_wake_ups_come_again(
    redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pub/sub connection the network dropped without a word (an idle timeout in a NAT or load balancer,
    # a failover) only ever waits: without a check of its own the subscriber would hear nothing again until
    # a restart, and every wake-up would be lost (polling still converges, at its interval).
    monkeypatch.setattr(redisstate, "_PING_SECONDS", 0.2)  # silence on the line this long: ping
    monkeypatch.setattr(redisstate, "_PONG_SECONDS", 0.5)  # no answer this long: reconnect
    monkeypatch.setattr(redisstate, "_RECONNECT_SECONDS", 0.1)
    woken = asyncio.Event()

    async def until_woken() -> bool:
        # SUBSCRIBE is not confirmed before wait_subscribed() returns: publish until one is heard.
        woken.clear()
        deadline = time.monotonic() + 30.0  # generous, for a loaded machine: not a timing assertion
        while not woken.is_set() and time.monotonic() < deadline:
            await redis.publish(notices.channel, b"1")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), 0.2)
        return woken.is_set()

    with tcp_proxy("127.0.0.1", 6379) as proxy:
        client = connect_redis(f"redis://127.0.0.1:{proxy.port}/0", timeout=1.0)
        notices = ChangeNotices(client, prefix=_prefix())
        notices.start(woken.set)
        try:
            assert await notices.wait_subscribed(15.0)
            assert await until_woken()
            connections = proxy.forwarded
            await asyncio.sleep(1.5)  # idle for several ping periods: the answers keep the connection it has
            assert proxy.forwarded == connections
            await asyncio.to_thread(proxy.silence)  # the connection open now never answers again
            await asyncio.sleep(0.05)
            await asyncio.to_thread(proxy.restore)  # new connections get through
            assert await until_woken(), "the subscriber never noticed its connection was lost"
            assert proxy.forwarded >= 2  # it reconnected
        finally:
            await notices.close()
            await client.aclose()


async def test_a_revocation_wakes_the_other_instances_change_feed(
    redis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for key in list(os.environ):
        if key.startswith(("TOKENWARD_", "HEXAEIGHT_")):
            monkeypatch.delenv(key)
    data = tmp_path / "data"
    init_data_dir(data, f"redis-{secrets.token_hex(4)}.example.com")
    # B holds records with no TTL: only the change feed makes it drop one.
    settings = Settings.load(data_dir=data, redis_url=REDIS_URL)
    rt_a = await open_runtime(settings)
    rt_b = await open_runtime(settings)
    try:
        assert rt_b.change_notices is not None
        assert await rt_b.change_notices.wait_subscribed(5.0)
        # B no longer polls on its own (after the wait in progress): only a Redis wake-up makes it read.
        rt_b.changes.poll_interval = 3600.0
        store = rt_b.app_tokens.regulator.store  # Redis first, SQL while Redis is down (docs/regulation.md)
        assert isinstance(store, FallbackRegulationStore) and isinstance(store.primary, RedisRegulationStore)
        record, token = await rt_a.app_tokens.create(owner="alice@example.com", created_by="test")
        await rt_b.changes.poll()  # the create's entry: B's filter of known ids learns the id
        await rt_b.app_tokens.verify("alice@example.com", token)  # now held in B's memory
        await rt_a.app_tokens.revoke(record.id, owner=None, actor="test")
        deadline = time.monotonic() + 15.0  # a generous deadline for a loaded machine, not a timing assertion
        while time.monotonic() < deadline:
            try:
                await rt_b.app_tokens.verify("alice@example.com", token)
            except TokenwardError as exc:
                assert exc.error_code == "apptoken_revoked"
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("B still accepted the revoked token 15 s later")

        # Redis gone: the revocation still lands in SQL (and its change log); the missed wake-up is logged
        gone = connect_redis("redis://127.0.0.1:1/0", timeout=0.5)
        rt_a.changes.publish = ChangeNotices(gone, prefix="x:").publish
        other, _ = await rt_a.app_tokens.create(owner="alice@example.com", created_by="test")
        with caplog.at_level(logging.WARNING, logger="tokenward.changes"):
            await rt_a.app_tokens.revoke(other.id, owner=None, actor="test")
        await gone.aclose()
        assert "change wake-up not published (redis_unavailable)" in caplog.text
        assert [e.key for e in await rt_a.changes.log.read(0) if e.kind == "apptoken"][-1] == other.id
    finally:
        await rt_a.close()
        await rt_b.close()


async def until_refused(check: Callable[[], Awaitable[object]], code: str, what: str) -> None:
    """Wait until ``check`` raises ``code``; a generous deadline for a loaded machine, not a timing assertion."""
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        try:
            await check()
        except TokenwardError as exc:
            assert exc.error_code == code
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"B still accepted {what} 15 s later")


async def test_a_logout_and_a_config_token_revocation_wake_the_other_instance(
    redis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Config-token revocations were not pushed over Redis (each instance re-read the set every second);
    # now the revoking command publishes a wake-up like any logged change.
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, f"redis-{secrets.token_hex(4)}.example.com")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(data))
    monkeypatch.setenv("TOKENWARD_REDIS_URL", REDIS_URL)
    settings = Settings.load()
    rt_a = await open_runtime(settings)
    rt_b = await open_runtime(settings)
    try:
        assert rt_b.change_notices is not None
        assert await rt_b.change_notices.wait_subscribed(5.0)
        await rt_b.changes.poll()
        rt_b.changes.poll_interval = 3600.0  # B reads the log only when woken (after the wait in progress)

        issued = await rt_a.sessions.issue(
            kind="user",
            subject="alice@example.com",
            client_id="A" * 40,
            app_hash="",
            scopes=(),
            session_key=b64u_encode(secrets.token_bytes(32)),
            now=time.time(),
        )
        token = issued.source_identifier
        await rt_b.sessions.authenticate(token, now=time.time())  # held in B's memory from now on
        await rt_a.sessions.logout(issued.identity, now=time.time())
        await until_refused(
            lambda: rt_b.sessions.authenticate(token, now=time.time()), "session_revoked", "the session"
        )

        config = encode_token({"jti": "wiki-1", "tokenward": {"plugins": [{"type": "noop"}]}}, rt_b.keyring)
        await rt_b.forward_auth.resolve(token=config, store_id=None, token_id=None)
        done = await asyncio.to_thread(CliRunner().invoke, cli, ["config-token", "revoke", "wiki-1"])
        assert done.exit_code == 0, done.output
        await until_refused(
            lambda: rt_b.forward_auth.resolve(token=config, store_id=None, token_id=None),
            "config_token_revoked",
            "the config token",
        )
    finally:
        await rt_a.close()
        await rt_b.close()


async def test_closing_the_change_listener_never_hangs(redis: Any) -> None:
    # redis-py can swallow a cancellation that lands inside get_message(timeout=…); whatever the
    # moment close() comes, it returns (this hung `tokenward serve` start-up with Redis configured).
    for yields in range(1, 16):
        channel = ChangeNotices(redis, prefix=f"tw-test-{secrets.token_hex(4)}:")
        channel.start(lambda: None)
        for _ in range(yields):
            await asyncio.sleep(0)
        await asyncio.wait_for(channel.close(), timeout=30)  # a hang fails; a slow machine does not


async def test_captcha_regulation_uses_the_runtimes_redis_store(
    redis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The identity service was once built on the first request with its own SQL store: Redis never regulated captchas.
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, f"redis-{secrets.token_hex(4)}.example.com")
    runtime = await open_runtime(Settings.load(data_dir=data, redis_url=REDIS_URL), listen=False)
    try:
        identity, system_login = runtime.captcha_login, runtime.system_login
        assert identity is not None and system_login is not None
        assert identity.request_regulator is not None and identity.failure_regulator is not None
        store = identity.failure_regulator.store
        assert isinstance(store, FallbackRegulationStore) and isinstance(store.primary, RedisRegulationStore)
        assert identity.request_regulator.store is store and system_login.failure_regulator is not None
        assert runtime.enrolment.failure_regulator is identity.failure_regulator
        assert system_login.failure_regulator.store is store
    finally:
        await runtime.close()


async def test_with_redis_bans_are_read_once_a_second_for_every_regulator_not_from_the_feed(
    redis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bans live in Redis, not SQL (no change-log entry): the serving runtime reads them in the background,
    # one read for all its regulators, and never on a request.
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, f"redis-{secrets.token_hex(4)}.example.com")
    settings = Settings.load(data_dir=data, redis_url=REDIS_URL)
    rt_a, rt_b = await open_runtime(settings), await open_runtime(settings)
    try:
        regulation = rt_b.regulation
        assert regulation.feed is None and regulation.background
        assert rt_b.regulation_flusher is not None
        await rt_b.regulation_flusher.stop()  # B's second passes where the test says (flush_regulation below)
        captcha = rt_b.captcha_login.failure_regulator
        assert captcha is not None
        assert rt_b.app_tokens.regulator.regulation is regulation and captcha.regulation is regulation
        reads = 0
        store = regulation.store
        active_bans = store.active_bans

        async def counting(now: datetime) -> dict[str, datetime]:
            nonlocal reads
            reads += 1
            return await active_bans(now)

        store.active_bans = counting  # type: ignore[method-assign]
        assert not regulation.needs_sync(time.time() + 10)  # never on a request
        key = "ip:203.0.113.77"
        regulator = rt_a.app_tokens.regulator
        for i in range(3):
            regulator.failure((key,), time.time() + i / 10)
        await rt_a.flush_regulation()  # A bans and writes the ban to Redis
        await rt_b.flush_regulation()  # B's one read a second brings it
        assert reads == 1 and rt_b.app_tokens.regulator.banned(key, time.time())
    finally:
        await rt_a.close()
        await rt_b.close()


async def test_without_redis_a_serving_runtime_follows_bans_through_the_change_feed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data, f"sql-{secrets.token_hex(4)}.example.com")
    runtime = await open_runtime(Settings.load(data_dir=data))
    try:
        assert runtime.regulation.feed is runtime.changes and runtime.regulation.background
    finally:
        await runtime.close()
