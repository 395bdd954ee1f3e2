"""Plugging config sync into a server's start-up (used by :func:`tokenward.runtime.open_runtime`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from tokenward.configsync.bundle import BundleContents
from tokenward.configsync.stores import cache_store, config_key, remote_store
from tokenward.configsync.sync import ConfigSync, install_files
from tokenward.datadir import DataDir, TimeCodes
from tokenward.policy import PolicyHolder
from tokenward.settings import Settings

__all__ = ["follow_bundle", "start_config_sync"]

logger = logging.getLogger("tokenward.configsync")


def follow_bundle(
    data_dir: DataDir, on_timecodes: Callable[[TimeCodes], None] | None = None
) -> Callable[[BundleContents], None]:
    """A ``ConfigSync.on_contents`` that keeps the data dir's shared files current and reports time-code changes."""

    def apply(contents: BundleContents) -> None:
        written = install_files(data_dir.path, contents)
        if written:
            logger.info("from the config bundle: %s", ", ".join(written))
        if "timecode.json" in written and on_timecodes is not None:
            codes = contents.timecodes
            if codes is not None:
                on_timecodes(codes)
        if "apptoken.key" in written and on_timecodes is not None:
            logger.warning("apptoken.key changed in the config bundle: restart this instance to use it")

    return apply


async def start_config_sync(
    settings: Settings, data_dir: DataDir, server: str, holder: PolicyHolder
) -> ConfigSync | None:
    """Load the shared bundle into ``holder`` and the data dir, or None when no S3 bucket is configured.

    Never raises for S3 trouble: an unreachable store or a bad bundle leaves the last-known-good
    copy (or the local files) in force, and :meth:`ConfigSync.status` says so. Raises BundleError
    ``policy_dialect_mismatch`` for a bundle saved under another ``TOKENWARD_POLICY_DIALECT``.
    """
    remote = remote_store(settings)
    if remote is None:
        return None
    data_dir.create()
    if data_dir.remember_server_name(server):
        logger.info("wrote %s: later commands in this data dir use %s", data_dir.server_name_file, server)
    sync = ConfigSync(
        remote=remote,
        cache=cache_store(data_dir.path),
        server=server,
        key=config_key(settings),
        holder=holder,
        interval=settings.config_poll_seconds,
        on_contents=follow_bundle(data_dir),
    )
    try:
        await sync.start()
    except BaseException:
        await sync.close()
        raise
    return sync
