"""The holder swaps whole policies; the watcher notices file changes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tokenward.policy import Policy, PolicyHolder, PolicyWatcher, can_login, install_sighup


def _bump(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_apply_swaps_and_versions(tmp_path: Path) -> None:
    holder = PolicyHolder(tmp_path)
    seen: list[Policy] = []
    holder.on_swap(seen.append)
    first = holder.apply({"userpolicy.csv": b"p, *@a.com, s, C, login\n"})
    assert first.changed and holder.version == first.version
    assert holder.apply({"userpolicy.csv": b"p, *@a.com, s, C, login\n"}).changed is False
    second = holder.apply({"userpolicy.csv": b"p, *@b.com, s, C, login\n"})
    assert second.changed and second.version != first.version
    assert [p.version for p in seen] == [first.version, second.version]
    assert can_login(holder.policy, "x@b.com", "s", "C") and not can_login(holder.policy, "x@a.com", "s", "C")
    assert holder.reloads == 2


def test_missing_dir_means_empty_policy(tmp_path: Path) -> None:
    policy = PolicyHolder(tmp_path / "nothing").load()
    assert policy.present == frozenset()
    assert not can_login(policy, "x@b.com", "s", "C")


async def test_watcher_reloads_on_change_and_keeps_last_good(tmp_path: Path) -> None:
    path = tmp_path / "userpolicy.csv"
    path.write_bytes(b"p, *@a.com, s, C, login\n")
    holder = PolicyHolder(tmp_path)
    holder.load()
    watcher = PolicyWatcher(holder, interval=0.01)
    assert await watcher.check() is None
    _bump(path, b"p, *@b.com, s, C, login\n")
    result = await watcher.check()
    assert result is not None and result.changed
    good = holder.policy
    _bump(path, b"p, broken\n")
    result = await watcher.check()
    assert result is not None and result.error is not None and holder.policy is good
    task = watcher.start()
    _bump(path, b"p, *@c.com, s, C, login\n")
    for _ in range(200):
        await asyncio.sleep(0.01)
        if can_login(holder.policy, "x@c.com", "s", "C"):
            break
    assert can_login(holder.policy, "x@c.com", "s", "C")
    await watcher.stop()
    assert task.done()


async def test_sighup_handler_installs(tmp_path: Path) -> None:
    holder = PolicyHolder(tmp_path)
    assert install_sighup(holder) is True
    asyncio.get_running_loop().remove_signal_handler(__import__("signal").SIGHUP)
