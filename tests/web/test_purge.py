"""The served app purges expired rows periodically, with the runtime's clock."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.storage.test_retention import challenge, session
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage.identity import ChallengeRow, SessionRow, SqlIdentityStore
from tokenward.web.app import create_app

FUTURE = 4_000_000_000.0  # 2096: only a moved clock finds these expired


async def count(runtime: Runtime) -> tuple[int, int]:
    async with runtime.database.session() as s:
        challenges = await s.scalar(select(func.count()).select_from(ChallengeRow))
        sessions = await s.scalar(select(func.count()).select_from(SessionRow))
    return int(challenges or 0), int(sessions or 0)


async def test_purge_expired_uses_the_runtime_clock_and_the_retention_setting(settings: Settings) -> None:
    clock = [FUTURE - 10]
    runtime = await open_runtime(settings, clock=lambda: clock[0])
    try:
        store = SqlIdentityStore(runtime.database)
        await store.add_challenge(challenge("sys", "system", FUTURE))
        await store.add_session(session("res", "resource", FUTURE))
        assert (await runtime.purge_expired()).total == 0 and await count(runtime) == (1, 1)
        clock[0] = FUTURE + settings.expired_retention_seconds - 1  # expired, still within the retention
        assert (await runtime.purge_expired()).total == 0
        clock[0] = FUTURE + settings.expired_retention_seconds + 1
        purged = await runtime.purge_expired()
        assert (purged.challenges, purged.sessions) == (1, 1) and await count(runtime) == (0, 0)
    finally:
        await runtime.close()


async def test_the_served_app_runs_the_purge_periodically(settings: Settings) -> None:
    settings = settings.model_copy(update={"purge_interval_seconds": 0.05})
    # Rows that expired in 2001: the app's own (real) clock finds them expired.
    seed = await open_runtime(settings)
    try:
        await SqlIdentityStore(seed.database).add_challenge(challenge("old", "captcha", 1_000_000_000.0))
        await SqlIdentityStore(seed.database).add_session(session("old", "user", 1_000_000_000.0))
    finally:
        await seed.close()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.tokenward.runtime
        deadline = asyncio.get_running_loop().time() + 60  # a readiness wait, not a clock
        while await count(runtime) != (0, 0):
            assert asyncio.get_running_loop().time() < deadline, "the periodic purge never ran"
            await asyncio.sleep(0.05)
