"""A background step repeated every ``interval`` seconds that outlives its own errors.

Used by the policy file watcher and the S3 config poller: one loop, one start/stop protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

log = logging.getLogger("tokenward.periodic")


class Periodic:
    """Run ``step`` every ``interval`` seconds in the running event loop until :meth:`stop`.

    ``sleep`` waits between steps (:func:`asyncio.sleep`); tests pass one they release by hand.
    """

    def __init__(
        self,
        step: Callable[[], Awaitable[object]],
        *,
        interval: float,
        name: str,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.step = step
        self.interval = interval
        self.name = name
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            await self.sleep(self.interval)
            try:
                await self.step()
            except Exception:  # a poller must survive anything a file system, S3 or a bundle throws at it
                log.exception("%s failed; trying again in %.1f s", self.name, self.interval)

    def start(self) -> asyncio.Task[None]:
        """Start (once) in the running event loop; returns the task."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
