"""Live propagation: keep one instance in step with the bundle in S3.

:class:`ConfigSync` loads the bundle at start — from S3, or when S3 cannot be reached or holds
a bundle that fails to verify, from the last-known-good copy in ``<data_dir>/configsync/`` —
then polls the manifest's ETag every ``interval`` seconds (a HEAD request). When it changes,
the new bundle is fetched, every object verified against the manifest, the policy built off
to the side and swapped in by :meth:`~tokenward.policy.PolicyHolder.apply`; only then is it
mirrored to the last-known-good copy. A bundle that fails anywhere is refused and the one in
force stays; :meth:`status` (shown in ``/readyz``) says which bundle is in force, where it
came from, the last error and — while the bundle in S3 is a refused one — ``state: degraded``
with the refusal's code as ``reason``.

A bundle saved under another policy dialect than the instance's (``policy_dialect`` in the
manifest, ``TOKENWARD_POLICY_DIALECT`` here) is refused like any bad bundle while running; at
start it stops the instance (:meth:`ConfigSync.start` raises), because it is a setting to fix,
not S3 trouble to ride out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from tokenward.configsync.bundle import BundleContents, FetchedBundle, fetch_bundle, mirror_bundle, open_bundle
from tokenward.configsync.manifest import check_policy_dialect, manifest_name
from tokenward.configsync.seal import ConfigKey
from tokenward.datadir import write_private
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BundleError, StorageError, TokenwardError
from tokenward.periodic import Periodic
from tokenward.policy import PolicyHolder
from tokenward.storage.blobs import BlobStore

__all__ = ["CACHE_DIR", "ConfigSync", "install_files"]

logger = logging.getLogger("tokenward.configsync")

#: Folder of the data dir holding the last-known-good bundle.
CACHE_DIR = "configsync"
#: Files of the bundle that are written into the data dir when they change (policies stay in memory).
LOCAL_FILES = ("timecode.json", "apptoken.key", "clientids.json", "resources.json")


def install_files(data_dir: Path, contents: BundleContents, names: tuple[str, ...] = LOCAL_FILES) -> list[str]:
    """Write the bundle's ``names`` into ``data_dir`` (0600, atomically) where they differ; return those written."""
    written: list[str] = []
    for name in names:
        data = contents.files.get(name)
        if data is None:
            continue
        path = data_dir / name
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        write_private(path, data)
        written.append(name)
    return written


class ConfigSync:
    """Loads, polls, verifies and applies the shared config bundle of one server name."""

    def __init__(
        self,
        *,
        remote: BlobStore,
        cache: BlobStore,
        server: str,
        key: ConfigKey | None,
        holder: PolicyHolder,
        interval: float = 2.0,
        on_contents: Callable[[BundleContents], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.remote = remote
        self.cache = cache
        self.server = server
        self.key = key
        self.holder = holder
        self.interval = interval
        self.on_contents = on_contents
        self.clock = clock
        #: Where the bundle in force came from: "s3", "last-known-good" or "local-files" (no bundle anywhere).
        self.source = "local-files"
        self.contents: BundleContents | None = None
        self.etag: str | None = None
        self.refused_etag: str | None = None
        #: Why the bundle now in S3 (``refused_etag``) was refused; kept until another bundle is saved.
        self.refusal: TokenwardError | None = None
        self.last_error: TokenwardError | None = None
        self.last_contact: float | None = None
        self.applied = 0
        self.refused = 0
        self._periodic = Periodic(self.poll, interval=interval, name="tokenward-config-sync")

    # -- loading -----------------------------------------------------------------------------

    async def start(self) -> None:
        """The start-up load: S3, else the last-known-good copy, else leave the holder to local files.

        Raises BundleError ``policy_dialect_mismatch`` when the bundle in S3 (or, S3 failing, the
        last-known-good copy) was saved under another policy dialect: no fallback would be right.
        """
        try:
            fetched = await fetch_bundle(self.remote, server=self.server)
            self.last_contact = self.clock()
        except (StorageError, BundleError) as exc:
            self._note_error(exc)
            fetched = None
        if fetched is not None:
            # Falling back to an older copy would serve a policy the shared bundle has replaced.
            check_policy_dialect(fetched.manifest, dialect=self.holder.dialect)
            if await self._apply(fetched, source="s3"):
                return
        if fetched is None and self.last_error is None:
            logger.info("no config bundle for %s in %s yet; using the local files", self.server, self.remote.location)
        try:
            cached = await fetch_bundle(self.cache, server=self.server)
        except (StorageError, BundleError) as exc:
            logger.error("the last-known-good bundle is unusable: %s", exc.detail)
            return
        if cached is not None:
            check_policy_dialect(cached.manifest, dialect=self.holder.dialect)
        if cached is not None and await self._apply(cached, source="last-known-good", mirror=False):
            logger.warning(
                "serving the last-known-good bundle v%d until %s answers", cached.manifest.version, self.remote.location
            )

    async def poll(self) -> bool:
        """One poll: True when a new bundle was applied. Errors are recorded, not raised."""
        try:
            etag = await self.remote.head(manifest_name(self.server))
            self.last_contact = self.clock()
            if etag is not None and etag == self.refused_etag:
                self.last_error = self.refusal  # S3 answers again, but still holds the refused bundle
                return False
            if etag is None or (etag == self.etag and self.source == "s3"):
                self.refused_etag = self.refusal = None
                if self.last_error is not None and self.source == "s3":
                    self.last_error = None
                return False
            fetched = await fetch_bundle(self.remote, server=self.server)
        except (StorageError, BundleError) as exc:
            self._note_error(exc)
            return False
        if fetched is None:
            return False
        return await self._apply(fetched, source="s3")

    async def _apply(self, fetched: FetchedBundle, *, source: str, mirror: bool = True) -> bool:
        manifest = fetched.manifest
        try:
            check_policy_dialect(manifest, dialect=self.holder.dialect)
            contents = open_bundle(fetched, key=self.key)
            result = await asyncio.to_thread(self.holder.apply, contents.policy_sources)
            if result.error is not None:
                raise BundleError(
                    f"bundle v{manifest.version} has a bad policy: {result.error.detail}",
                    code=ErrorCode.BUNDLE_POLICY_INVALID,
                )
            if self.on_contents is not None:
                self.on_contents(contents)
        except TokenwardError as exc:
            self.refused += 1
            if source == "s3":
                self.refused_etag, self.refusal = fetched.etag, exc
            self.last_error = exc  # one log line per refused bundle: the error below
            logger.error("config bundle v%d refused, the one in force stays: %s", manifest.version, exc.detail)
            return False
        self.contents, self.source, self.applied = contents, source, self.applied + 1
        if source == "s3":
            self.etag, self.refused_etag, self.refusal, self.last_error = fetched.etag, None, None, None
        if manifest.policy_dialect is None:
            logger.warning(
                "config bundle v%d records no policy dialect (saved without one); its policy is read as %s, "
                "this instance's dialect: save it again with `tokenward config save` to record it",
                manifest.version,
                self.holder.dialect,
            )
        logger.info(
            "config bundle v%d (%s, saved by %s at %s) in force from %s",
            manifest.version,
            manifest.digest[:12],
            manifest.saved_by,
            manifest.saved_at,
            source,
        )
        if mirror:
            try:
                await mirror_bundle(fetched, self.cache)
            except StorageError as exc:
                logger.error("could not keep the last-known-good bundle: %s", exc.detail)
        return True

    def _note_error(self, exc: TokenwardError) -> None:
        if self.last_error is None or self.last_error.detail != exc.detail:
            logger.warning("config sync: %s", exc.detail)
        self.last_error = exc

    # -- reporting ---------------------------------------------------------------------------

    @property
    def degraded_reason(self) -> str | None:
        """The error code of the refused bundle now in S3 (this instance is behind it), else None."""
        return None if self.refused_etag is None or self.refusal is None else self.refusal.error_code

    def status(self) -> dict[str, object]:
        """For ``/readyz``: the bundle in force, where it came from, the last error (never a secret)."""
        manifest = self.contents.manifest if self.contents is not None else None
        reason = self.degraded_reason
        return {
            "state": "ok" if reason is None else "degraded",
            "reason": reason,
            "source": self.source,
            "store": self.remote.location,
            "version": manifest.version if manifest else None,
            "digest": manifest.digest[:12] if manifest else None,
            "saved_at": manifest.saved_at if manifest else None,
            "saved_by": manifest.saved_by if manifest else None,
            "policy_dialect": manifest.policy_dialect if manifest else None,
            "withheld": sorted(self.contents.withheld) if self.contents else [],
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "seconds_since_contact": None if self.last_contact is None else round(self.clock() - self.last_contact, 1),
        }

    # -- polling task ------------------------------------------------------------------------

    async def run(self) -> None:
        await self._periodic.run()

    def start_polling(self) -> asyncio.Task[None]:
        return self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def close(self) -> None:
        await self.stop()
        await self.remote.close()
        await self.cache.close()
