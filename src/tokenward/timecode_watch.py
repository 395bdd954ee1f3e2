"""Put a time code rotated on disk in force in the running server, without a restart.

``tokenward timecode rotate`` / ``set`` / ``-t`` rewrite ``timecode.json`` in the data dir (the
new code current, the old one accepted until ``previous_until``). :class:`TimecodeWatcher`
notices the change — polled every ``interval`` seconds (``TOKENWARD_POLICY_WATCH_SECONDS``) and
at once on ``SIGHUP`` — reads the file and hands the new codes to the runtime
(:meth:`~tokenward.runtime.Runtime.use_timecodes`). A damaged or unsafe file is logged and
the codes in force stay. With an S3 bucket configured the shared bundle brings time codes
instead, and this watcher is not started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tokenward.datadir import DataDir, TimeCodes
from tokenward.errors import TokenwardError
from tokenward.periodic import Periodic

__all__ = ["TimecodeWatcher"]

log = logging.getLogger("tokenward.timecode")

Fingerprint = tuple[int, int, int] | None


def _fingerprint(data_dir: DataDir) -> Fingerprint:
    try:
        stat = data_dir.timecode_file.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _same(a: TimeCodes, b: TimeCodes) -> bool:
    def ids(codes: TimeCodes) -> tuple[str, str | None, float | None]:
        previous = codes.previous.key_id if codes.previous is not None else None
        return codes.current.key_id, previous, codes.previous_until

    return ids(a) == ids(b)


class TimecodeWatcher:
    """Poll ``timecode.json`` and apply new codes; :meth:`check` is one poll (tests call it directly)."""

    def __init__(
        self,
        data_dir: DataDir,
        apply: Callable[[TimeCodes], None],
        *,
        in_force: Callable[[], TimeCodes],
        interval: float = 1.0,
    ) -> None:
        self.data_dir = data_dir
        self.apply = apply
        self.in_force = in_force
        self.interval = interval
        # Nothing seen yet: the first look reads the file, in case it changed between the runtime's
        # read at start-up and this watcher's creation (a rotation while a worker was starting).
        self._seen: Fingerprint = None
        self._periodic = Periodic(self.check, interval=interval, name="tokenward-timecode-watcher")

    async def check(self) -> TimeCodes | None:
        """Read the file if it changed since the last look; apply and return it if it differs from the codes
        in force, else None."""
        marks = await asyncio.to_thread(_fingerprint, self.data_dir)
        if marks == self._seen or marks is None:
            return None
        self._seen = marks
        try:
            codes = await asyncio.to_thread(self.data_dir.read_timecodes)
        except TokenwardError as exc:
            log.error("time code file changed but cannot be used, the codes in force stay: %s", exc.detail)
            return None
        if _same(codes, self.in_force()):
            return None
        self.apply(codes)
        return codes

    def start(self) -> asyncio.Task[None]:
        return self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
