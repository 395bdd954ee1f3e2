from __future__ import annotations

import asyncio

import pytest

from tokenward.periodic import Periodic


async def test_runs_repeatedly_survives_errors_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    ran: asyncio.Queue[int] = asyncio.Queue()

    async def step() -> None:
        nonlocal calls
        calls += 1
        ran.put_nowait(calls)
        if calls == 2:
            raise RuntimeError("boom")

    # The test is the clock: each interval ends when it releases one.
    waits: list[float] = []
    release: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await release.get()

    periodic = Periodic(step, interval=30, name="test-poller", sleep=sleep)
    task = periodic.start()
    assert periodic.start() is task  # starting twice keeps one task
    for expected in range(1, 5):
        release.put_nowait(None)
        assert await asyncio.wait_for(ran.get(), 60) == expected  # the step after an error runs too
    await periodic.stop()
    assert calls == 4 and task.cancelled()
    assert set(waits) == {30}
    assert "test-poller failed; trying again in 30.0 s" in caplog.text
    for _ in range(3):
        release.put_nowait(None)
        await asyncio.sleep(0)  # an event-loop turn, not a clock
    assert calls == 4 and ran.empty()
