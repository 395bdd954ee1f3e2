"""A time code rotated on disk is put in force by the running server (issue 15 #12)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from pathlib import Path

import pytest

from tests.helpers import init_data_dir
from tokenward.datadir import DataDir, TimeCodes
from tokenward.keys import Purpose, TimeCode
from tokenward.policy import PolicyHolder, install_sighup
from tokenward.timecode_watch import TimecodeWatcher

NOW = 1_800_000_000.0


async def test_a_rotation_is_applied_and_the_old_code_is_honoured_for_its_grace_only(tmp_path: Path) -> None:
    data_dir = init_data_dir(tmp_path / "data")
    in_force: list[TimeCodes] = [data_dir.read_timecodes()]
    watcher = TimecodeWatcher(data_dir, in_force.append, in_force=lambda: in_force[-1], interval=3600)
    old = in_force[0].current
    assert await watcher.check() is None  # the first look reads the file: the codes in force, nothing to do
    assert await watcher.check() is None  # nothing changed
    new = TimeCode.generate(now=NOW, random_bytes=secrets.token_bytes(32))
    data_dir.install_timecode(new, now=NOW, grace_seconds=600)  # what `tokenward timecode rotate` does
    applied = await watcher.check()
    assert applied is not None and in_force[-1] is applied
    assert applied.current.key_id == new.key_id and applied.previous is not None
    assert applied.previous.key_id == old.key_id and applied.previous_until == NOW + 600
    ring = applied.keyring()
    assert ring.key(Purpose.CSRF)[0] == new.key_id  # new tokens under the new code
    assert ring.key_by_id(Purpose.CSRF, old.key_id, now=NOW + 599) is not None  # old ones during the grace
    assert ring.key_by_id(Purpose.CSRF, old.key_id, now=NOW + 601) is None  # and not after
    assert await watcher.check() is None


async def test_a_rotation_just_before_the_watcher_started_is_still_applied(tmp_path: Path) -> None:
    """A worker that read the old file at start-up, then built its watcher after a rotation."""
    data_dir = init_data_dir(tmp_path / "data")
    read_at_start = data_dir.read_timecodes()
    data_dir.install_timecode(
        TimeCode.generate(now=NOW, random_bytes=secrets.token_bytes(32)), now=NOW, grace_seconds=60
    )
    in_force: list[TimeCodes] = [read_at_start]
    watcher = TimecodeWatcher(data_dir, in_force.append, in_force=lambda: in_force[-1], interval=3600)
    applied = await watcher.check()
    assert applied is not None and applied.current.key_id != read_at_start.current.key_id


async def test_a_damaged_file_keeps_the_codes_in_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = init_data_dir(tmp_path / "data")
    in_force: list[TimeCodes] = []
    start = data_dir.read_timecodes()
    watcher = TimecodeWatcher(data_dir, in_force.append, in_force=lambda: start, interval=3600)
    data_dir.timecode_file.write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="tokenward.timecode"):
        assert await watcher.check() is None
    assert in_force == [] and "cannot be used" in caplog.text


async def test_sighup_checks_the_time_code_at_once(tmp_path: Path) -> None:
    data_dir: DataDir = init_data_dir(tmp_path / "data")
    checked = asyncio.Event()

    async def check() -> None:
        checked.set()

    loop = asyncio.get_running_loop()
    assert install_sighup(PolicyHolder(tmp_path / "data"), also=check) is True
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(checked.wait(), timeout=60)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    assert data_dir.timecode_file.exists()
