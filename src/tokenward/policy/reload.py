"""Keep the policy in force current: build the new one off to the side, then swap atomically.

:class:`PolicyHolder` owns the policy in force. :meth:`~PolicyHolder.apply` builds a complete
new :class:`~tokenward.policy.bundle.Policy` from file contents and only then replaces the
reference (one attribute store: readers see the old policy or the new one, never a mix). A file
with errors is refused with its file:line and the previous policy stays in force.

:class:`PolicyWatcher` polls the files' ``(mtime, size, inode)`` every ``interval`` seconds and
reloads on change; an unchanged content hash (the policy *version*) skips the rebuild.
:func:`install_sighup` reloads on ``SIGHUP`` too. Typical start-up::

    holder = PolicyHolder(settings.data_dir, dialect=settings.policy_dialect, segments=settings.policy_segments)
    holder.load()                      # raises PolicyError: refuse to start on a bad policy
    watcher = PolicyWatcher(holder)    # inside the running event loop (lifespan)
    watcher.start(); install_sighup(holder)
    ...
    await watcher.stop()
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.periodic import Periodic
from tokenward.policy.bundle import Observer, Policy, build_policy
from tokenward.policy.files import POLICY_FILES, content_version, read_sources
from tokenward.policy.patterns import Dialect
from tokenward.policy.questions import is_admin
from tokenward.policy.segments import ALL_SEGMENTS, Segment

__all__ = ["PolicyHolder", "PolicyWatcher", "ReloadResult", "install_sighup"]

logger = logging.getLogger("tokenward.policy")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: ``changed`` (a new policy is in force), the version in force, the error."""

    changed: bool
    version: str
    error: PolicyError | None = None


class PolicyHolder:
    """The policy in force, replaced whole by :meth:`apply` / :meth:`reload`."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        dialect: Dialect = "glob",
        segments: frozenset[Segment] = ALL_SEGMENTS,
        policy: Policy | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.dialect: Dialect = dialect
        self.segments = segments
        self._policy = policy
        self._lock = threading.Lock()
        self.last_error: PolicyError | None = None
        self.reloads = 0
        self.failures = 0
        self._listeners: list[Callable[[Policy], None]] = []
        self._observer: Observer | None = None

    def set_observer(self, observer: Observer | None) -> None:
        """Tell ``observer`` every question asked of this policy and of every later one (decision log)."""
        with self._lock:
            self._observer = observer
            if self._policy is not None:
                self._policy = dataclasses.replace(self._policy, observer=observer)

    @property
    def policy(self) -> Policy:
        """The policy in force; raises ``policy_not_loaded`` before the first successful load."""
        policy = self._policy
        if policy is None:
            raise PolicyError("no policy has been loaded yet", code=ErrorCode.POLICY_NOT_LOADED)
        return policy

    @property
    def loaded(self) -> bool:
        return self._policy is not None

    def is_admin(self, subject: str, server: str) -> bool:
        """Is ``subject`` an admin of ``server``? The one admin check of the API, the portal and the CLI.

        Asks ``userpolicy.csv`` for ``p, <subject>, <server>, TOKENWARD, admin`` (:func:`questions.is_admin`).
        While no policy is loaded, or when the question itself fails, the answer is "no": fail closed.
        """
        policy = self._policy
        if policy is None:
            return False
        try:
            return is_admin(policy, subject, server)
        except PolicyError:
            return False

    @property
    def version(self) -> str | None:
        return None if self._policy is None else self._policy.version

    def on_swap(self, listener: Callable[[Policy], None]) -> None:
        """Call ``listener(new_policy)`` after every swap (metrics, audit)."""
        self._listeners.append(listener)

    def load(self) -> Policy:
        """The first load from ``data_dir``: errors propagate so start-up fails loudly."""
        result = self.reload()
        if result.error is not None:
            raise result.error
        return self.policy

    def reload(self) -> ReloadResult:
        """Re-read ``data_dir`` and :meth:`apply` it."""
        if self.data_dir is None:
            raise PolicyError("this policy holder has no data directory", code=ErrorCode.POLICY_NOT_LOADED)
        try:
            sources = read_sources(self.data_dir)
        except PolicyError as exc:
            return self._refuse(exc)
        return self.apply(sources)

    def apply(self, sources: Mapping[str, bytes]) -> ReloadResult:
        """Build a policy from ``sources`` and swap it in; on error keep the one in force."""
        with self._lock:  # one build at a time; readers never take the lock
            version = content_version(sources)
            current = self._policy
            if current is not None and current.version == version:
                return ReloadResult(changed=False, version=version)
            try:
                policy = build_policy(sources, dialect=self.dialect, segments=self.segments)
            except PolicyError as exc:
                return self._refuse(exc)
            if self._observer is not None:
                policy = dataclasses.replace(policy, observer=self._observer)
            self._policy = policy
            self.last_error = None
            self.reloads += 1
        logger.info("policy %s in force (%s)", policy.short_version, policy.summary()["files"])
        for listener in self._listeners:
            listener(policy)
        return ReloadResult(changed=True, version=policy.version)

    def _refuse(self, exc: PolicyError) -> ReloadResult:
        self.last_error = exc
        self.failures += 1
        kept = self.version
        logger.error("policy refused, %s stays in force: %s", kept[:12] if kept else "nothing", exc.detail)
        return ReloadResult(changed=False, version=kept or "", error=exc)


def _fingerprint(data_dir: Path) -> tuple[tuple[str, int, int, int], ...]:
    marks: list[tuple[str, int, int, int]] = []
    for name in POLICY_FILES:
        try:
            stat = (data_dir / name).stat()
        except OSError:
            continue
        marks.append((name, stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(marks)


class PolicyWatcher:
    """Poll the holder's data directory and reload when a policy file changes."""

    def __init__(self, holder: PolicyHolder, *, interval: float = 1.0) -> None:
        if holder.data_dir is None:
            raise PolicyError("cannot watch a policy holder without a data directory", code=ErrorCode.POLICY_NOT_LOADED)
        self.holder = holder
        self.data_dir: Path = holder.data_dir
        self.interval = interval
        self._periodic = Periodic(self.check, interval=interval, name="tokenward-policy-watcher")
        self._seen = _fingerprint(self.data_dir)

    async def check(self) -> ReloadResult | None:
        """One poll: reload (in a worker thread) if the files changed; None when they did not."""
        marks = await asyncio.to_thread(_fingerprint, self.data_dir)
        if marks == self._seen:
            return None
        self._seen = marks
        return await asyncio.to_thread(self.holder.reload)

    async def run(self) -> None:
        await self._periodic.run()

    def start(self) -> asyncio.Task[None]:
        """Start polling in the running event loop."""
        return self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()


def install_sighup(
    holder: PolicyHolder,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    also: Callable[[], Coroutine[Any, Any, object]] | None = None,
) -> bool:
    """Reload ``holder`` on SIGHUP in ``loop`` (default: the running loop), and run ``also`` (the time-code
    check). False where unsupported."""
    if not hasattr(signal, "SIGHUP"):
        return False
    target = loop or asyncio.get_running_loop()

    def _reload() -> None:
        target.create_task(asyncio.to_thread(holder.reload))
        if also is not None:
            target.create_task(also())

    try:
        target.add_signal_handler(signal.SIGHUP, _reload)
    except (NotImplementedError, RuntimeError):
        return False
    return True
