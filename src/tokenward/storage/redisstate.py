"""The optional Redis fast path (``TOKENWARD_REDIS_URL``): regulation counters and change wake-ups.

SQL stays the truth for app tokens, sessions and revocations; Redis only makes two things faster for N
instances:

- :class:`RedisRegulationStore` — failures and bans as sorted sets (one pipeline per flushed batch,
  no append-only rows in SQL), shared by every instance on the same Redis;
- :class:`ChangeNotices` — pub/sub: an instance that logged a change (a revocation, a ban…) publishes a
  wake-up, and every other instance reads the change log at once instead of at its next poll
  (:mod:`tokenward.changefeed`). A notice carries nothing but the wake-up; a lost one (Redis down, a
  subscriber reconnecting) costs only the poll interval it shortcuts.

Keys and the channel are prefixed ``tokenward:<server name>:`` so deployments can share a Redis.
Driver errors become :class:`~tokenward.errors.StorageUnavailable`; the URL (it may hold a
password) is never put in a message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable

from .regulation import RegulationStore

__all__ = ["ChangeNotices", "RedisRegulationStore", "connect_redis", "key_prefix"]

log = logging.getLogger("tokenward.redis")

_RECONNECT_SECONDS = 1.0
_CLOSE_SECONDS = 3.0
#: A subscription that has heard nothing for this long pings Redis (the answer comes back as a message) ...
_PING_SECONDS = 5.0
#: ... and reconnects when no answer came within this: a connection the network dropped without a word
#: (an idle timeout in a NAT or load balancer, a failover) would otherwise never deliver a wake-up again.
_PONG_SECONDS = 5.0


def key_prefix(server_name: str) -> str:
    return f"tokenward:{server_name}:"


def connect_redis(url: str, *, timeout: float = 2.0) -> Any:
    """A ``redis.asyncio.Redis`` client for ``url`` (connections open lazily). Needs the ``redis`` extra."""
    try:
        import redis.asyncio as aioredis
    except ImportError:  # pragma: no cover - the extra is part of the dev install
        raise StorageUnavailable(
            "TOKENWARD_REDIS_URL is set but redis-py is not installed: pip install 'tokenward[redis]'",
            code=ErrorCode.REDIS_MISSING,
        ) from None
    try:
        return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError:
        raise StorageUnavailable(
            "TOKENWARD_REDIS_URL is not a redis:// or rediss:// URL", code=ErrorCode.REDIS_URL_INVALID
        ) from None


def _unavailable(exc: BaseException) -> StorageUnavailable:
    return StorageUnavailable(f"Redis is unreachable ({type(exc).__name__})", code=ErrorCode.REDIS_UNAVAILABLE)


def _silent_connection() -> BaseException:
    from redis.exceptions import ConnectionError as RedisConnectionError

    return RedisConnectionError(f"no answer to a ping within {_PONG_SECONDS:g} s")


def _driver_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


class RedisRegulationStore(RegulationStore):
    """Failures as one sorted set per key (score = time), bans as one sorted set (score = end)."""

    def __init__(self, client: Any, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._bans = prefix + "bans"

    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        """One transaction pipeline for the whole batch: ZADD per failure, then per key trim, count, expire."""
        start = since.timestamp()
        members: dict[str, dict[str, float]] = {}
        for key, at in failures:
            now = at.timestamp()
            # A random member: two failures in the same microsecond still count twice.
            members.setdefault(key, {})[f"{now:.6f}:{secrets.token_hex(4)}"] = now
        if not members:
            return {}
        newest = max(at.timestamp() for _, at in failures)
        ttl = max(1, int(newest - start) + 1)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, added in members.items():
                    name = self._prefix + "fail:" + key
                    pipe.zadd(name, added)
                    pipe.zremrangebyscore(name, "-inf", f"({start}")
                    pipe.zcount(name, start, "+inf")
                    pipe.expire(name, ttl)
                results = await pipe.execute()
        except _driver_errors() as exc:
            raise _unavailable(exc) from None
        return {key: int(results[i * 4 + 2]) for i, key in enumerate(members)}

    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        if not bans:
            return
        ends: dict[str, float] = {}
        for key, until in bans:
            ends[key] = max(ends.get(key, 0.0), until.timestamp())
        try:
            await self._redis.zadd(self._bans, ends, gt=True)
        except _driver_errors() as exc:
            raise _unavailable(exc) from None

    async def active_bans(self, now: datetime) -> dict[str, datetime]:
        try:
            rows = await self._redis.zrangebyscore(self._bans, f"({now.timestamp()}", "+inf", withscores=True)
        except _driver_errors() as exc:
            raise _unavailable(exc) from None
        return {_text(key): datetime.fromtimestamp(float(score), UTC) for key, score in rows}

    async def purge(self, *, failures_before: datetime, bans_before: datetime) -> None:
        # Failure sets expire by themselves (EXPIRE = the find time); ended bans are trimmed here.
        try:
            await self._redis.zremrangebyscore(self._bans, "-inf", f"({bans_before.timestamp()}")
        except _driver_errors() as exc:
            raise _unavailable(exc) from None


class ChangeNotices:
    """Publish wake-ups after a logged change; call ``on_notice`` for every one another instance publishes."""

    def __init__(self, client: Any, *, prefix: str) -> None:
        self._redis = client
        self.channel = prefix + "changes"
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closing = asyncio.Event()

    async def publish(self) -> None:
        try:
            await self._redis.publish(self.channel, b"1")
        except _driver_errors() as exc:
            raise _unavailable(exc) from None

    def start(self, on_notice: Callable[[], None]) -> None:
        """Subscribe in a background task (reconnecting every second while Redis is away)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen(on_notice), name="change-notices")

    async def wait_subscribed(self, timeout: float) -> bool:
        """Whether the subscription is live within ``timeout`` seconds (for start-up and tests)."""
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _listen(self, on_notice: Callable[[], None]) -> None:
        # Every wait is bounded (get_message: 1 s), and the loops check ``_closing``: redis-py can
        # swallow a cancellation that lands inside get_message(timeout=…), which would otherwise
        # leave this task running and close() — and with it server shutdown — waiting forever.
        while not self._closing.is_set():
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._subscribed.set()
                    loop = asyncio.get_running_loop()
                    heard, pinged = loop.time(), None
                    while not self._closing.is_set():
                        message = await pubsub.get_message(timeout=min(1.0, _PING_SECONDS))
                        now = loop.time()
                        if message is not None:  # a wake-up, or the answer to a ping: the line is alive
                            heard, pinged = now, None
                            if message.get("type") == "message":
                                on_notice()
                        elif pinged is not None and now - pinged > _PONG_SECONDS:
                            raise _silent_connection()
                        elif pinged is None and now - heard > _PING_SECONDS:
                            await pubsub.ping()
                            pinged = now
            except asyncio.CancelledError:
                raise
            except _driver_errors() as exc:
                self._subscribed.clear()
                if self._closing.is_set():
                    return
                log.warning("change notices: Redis unreachable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(_RECONNECT_SECONDS)

    async def close(self) -> None:
        """Stop listening: cancel, and (should the driver swallow the cancellation) let the loop see
        the closing flag within its 1 s wait; give up waiting after :data:`_CLOSE_SECONDS`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=_CLOSE_SECONDS)
        if not done:
            log.warning("change notices: the listener did not stop within %s s", _CLOSE_SECONDS)
        elif not task.cancelled():
            task.exception()  # retrieved: an error on the way out is not worth a "never retrieved" log


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
