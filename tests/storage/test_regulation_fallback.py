"""Redis down: regulation goes on in SQL and /readyz says degraded (issue 15 #5; docs/regulation.md)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers import basic_auth, clear_tokenward_env, init_data_dir
from tokenward.apptokens import MANAGE_SCOPE, cli_actor
from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageUnavailable
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage.regulation import FallbackRegulationStore, InMemoryRegulationStore
from tokenward.web.app import create_app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # released on close: nothing listens there


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": basic_auth(user, password)}


async def test_with_redis_unreachable_bans_still_happen_and_readyz_says_degraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data)
    settings = Settings.load(data_dir=data, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    runtime = await open_runtime(settings, listen=False)
    try:
        _, secret = await runtime.app_tokens.create(
            owner="admin@example.com", created_by=cli_actor(), scopes=[MANAGE_SCOPE]
        )
        transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for _ in range(3):  # a guesser on this address, against three user names
                user = f"nobody-{secrets.token_hex(4)}@example.com"
                assert (await client.get("/api/app-tokens", headers=basic(user, "twa_wrong"))).status_code == 401
            r = await client.get("/api/app-tokens", headers=basic("admin@example.com", secret))
            assert r.status_code == 429 and r.json()["error"] == "too_many_attempts", r.text
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "degraded" and r.json()["degraded"]["regulation"] == "redis_unavailable"
    finally:
        await runtime.close()


class Flaky(InMemoryRegulationStore):
    """An in-memory store that can be switched off like a Redis that went away."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def record_failures(self, failures: Sequence[tuple[str, datetime]], *, since: datetime) -> dict[str, int]:
        if self.down:
            raise StorageUnavailable("Redis is unreachable (ConnectionError)", code=ErrorCode.REDIS_UNAVAILABLE)
        return await super().record_failures(failures, since=since)

    async def add_bans(self, bans: Sequence[tuple[str, datetime]], at: datetime) -> None:
        if self.down:
            raise StorageUnavailable("Redis is unreachable (ConnectionError)", code=ErrorCode.REDIS_UNAVAILABLE)
        await super().add_bans(bans, at)

    async def active_bans(self, now: datetime) -> dict[str, datetime]:
        if self.down:
            raise StorageUnavailable("Redis is unreachable (ConnectionError)", code=ErrorCode.REDIS_UNAVAILABLE)
        return await super().active_bans(now)


def reason(store: FallbackRegulationStore) -> str | None:
    return store.degraded_reason


async def test_the_fallback_is_left_when_the_primary_is_back_and_its_bans_outlive_it() -> None:
    clock = [0.0]
    primary, fallback = Flaky(), InMemoryRegulationStore()
    store = FallbackRegulationStore(primary, fallback, retry_seconds=5.0, clock=lambda: clock[0])
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert await store.record_failure(["ip:a"], at, since=at - timedelta(minutes=2)) == {"ip:a": 1}
    assert reason(store) is None
    primary.down = True
    assert await store.record_failure(["ip:a"], at, since=at - timedelta(minutes=2)) == {"ip:a": 1}  # in SQL now
    assert reason(store) == "redis_unavailable"
    await store.add_ban("ip:a", at, at + timedelta(minutes=5))
    assert "ip:a" in await store.active_bans(at)
    primary.down = False
    clock[0] = 4.9  # the primary is not asked again before retry_seconds
    assert "ip:a" in await store.active_bans(at) and reason(store) == "redis_unavailable"
    clock[0] = 5.0
    bans = await store.active_bans(at + timedelta(minutes=1))  # back on the primary, the fallback's ban still counts
    assert reason(store) is None and "ip:a" in bans
    assert "ip:a" not in await store.active_bans(at + timedelta(minutes=6))
    primary.down = True
    await store.probe(at)  # /readyz asks at once, without waiting for traffic
    assert reason(store) == "redis_unavailable"
