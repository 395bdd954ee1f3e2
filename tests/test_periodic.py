from __future__ import annotations

import asyncio

import pytest

from tokenward.periodic import Periodic


async def test_runs_repeatedly_survives_errors_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("boom")

    periodic = Periodic(step, interval=0.01, name="test-poller")
    task = periodic.start()
    assert periodic.start() is task  # starting twice keeps one task
    for _ in range(200):
        if calls >= 4:
            break
        await asyncio.sleep(0.01)
    await periodic.stop()
    assert calls >= 4 and task.cancelled()
    assert "test-poller failed" in caplog.text
    stopped_at = calls
    await asyncio.sleep(0.05)
    assert calls == stopped_at
