"""An event loop kept busy: a task holds the loop for a stretch of CPU at every turn, as a saturated server does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator


def spin(seconds: float) -> None:
    """Hold the thread (and the event loop) for ``seconds`` of work, without sleeping."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@contextlib.asynccontextmanager
async def busy_loop(per_turn: float) -> AsyncIterator[None]:
    """While the block runs, every turn of the loop also runs ``per_turn`` seconds of CPU-bound work."""
    running = True

    async def hog() -> None:
        while running:
            spin(per_turn)
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    await asyncio.sleep(0)  # the hog holds the loop from the block's first await on
    try:
        yield
    finally:
        running = False
        await task
