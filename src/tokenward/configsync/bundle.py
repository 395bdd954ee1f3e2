"""Saving, fetching and opening a config bundle in a :class:`~tokenward.storage.blobs.BlobStore`.

:func:`save_bundle` writes every object first (content-addressed, so never overwriting what
another saver's manifest names) and the manifest last. :func:`fetch_bundle` reads the
manifest and every object it names and verifies each hash; :func:`open_bundle` unseals and
checks the contents parse. Either returns a complete bundle or raises
:class:`~tokenward.errors.BundleError` — never part of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tokenward.configsync.manifest import BY_KIND, FILES, Manifest, ObjectEntry, manifest_name, object_name, sha256_hex
from tokenward.configsync.seal import ConfigKey
from tokenward.datadir import TimeCodes
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BundleError, TimeCodeError, TokenwardError
from tokenward.keys import TimeCode
from tokenward.storage.blobs import BlobStore

__all__ = [
    "BundleContents",
    "FetchedBundle",
    "SaveLine",
    "fetch_bundle",
    "mirror_bundle",
    "open_bundle",
    "parse_timecodes",
    "save_bundle",
]


@dataclass(frozen=True, slots=True)
class SaveLine:
    """What ``save`` did with one file: ``saved`` or not, and why not."""

    kind: str
    label: str
    saved: bool
    reason: str = ""
    sealed: bool = False

    def render(self) -> str:
        """One line in the original server's style (``--saveconfig``)."""
        if self.saved:
            return f"- {self.label} Saved Successfully." + (" (sealed)" if self.sealed else "")
        return f"- {self.label} Could Not Be Saved - Skipping File ({self.reason})"


def _now_text(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def save_bundle(
    store: BlobStore,
    *,
    server: str,
    files: Mapping[str, bytes | None],
    key: ConfigKey | None,
    saved_by: str,
    now: float,
    seal_policies: bool = False,
    settings: Mapping[str, str] | None = None,
) -> tuple[Manifest, list[SaveLine]]:
    """Store ``files`` (kind → bytes, None when absent locally) and then the manifest naming them.

    Secret files are only ever stored sealed: without ``key`` they are skipped with a reason.
    Raises StorageError when the store fails; nothing is half-published (the manifest comes last).
    """
    if seal_policies and key is None:
        raise BundleError(
            "--seal-policies needs TOKENWARD_CONFIG_KEY; make one with `tokenward config keygen`",
            code=ErrorCode.CONFIG_KEY_MISSING,
        )
    lines: list[SaveLine] = []
    entries: dict[str, ObjectEntry] = {}
    for spec in FILES:
        data = files.get(spec.kind)
        if data is None:
            lines.append(SaveLine(spec.kind, spec.label, False, f"no {spec.filename} here"))
            continue
        sealed = spec.secret or seal_policies
        if sealed:
            if key is None:
                lines.append(
                    SaveLine(
                        spec.kind,
                        spec.label,
                        False,
                        "it is only stored sealed and TOKENWARD_CONFIG_KEY is not set; "
                        "make a key with `tokenward config keygen`",
                    )
                )
                continue
            data = key.seal(data, server=server, kind=spec.kind)
        digest = sha256_hex(data)
        name = object_name(server, spec.kind, digest)
        if await store.head(name) is None:  # content-addressed: an existing object already holds these bytes
            await store.put(name, data)
        entries[spec.kind] = ObjectEntry(name=name, sha256=digest, size=len(data), sealed=sealed)
        lines.append(SaveLine(spec.kind, spec.label, True, sealed=sealed))
    previous = 0
    try:
        old = await store.get(manifest_name(server))
        if old is not None:
            previous = Manifest.parse(old.data, server=server).version
    except BundleError:
        previous = 0  # a damaged manifest is replaced, not trusted
    manifest = Manifest(
        server=server,
        version=previous + 1,
        saved_at=_now_text(now),
        saved_by=saved_by,
        objects=entries,
        key_id=key.key_id if key is not None and any(e.sealed for e in entries.values()) else None,
        settings=dict(settings or {}),
    )
    await store.put(manifest_name(server), manifest.render())
    return manifest, lines


@dataclass(frozen=True, slots=True)
class FetchedBundle:
    """A manifest and the verified stored bytes of every object it names."""

    manifest: Manifest
    etag: str
    objects: Mapping[str, bytes]


async def fetch_bundle(store: BlobStore, *, server: str) -> FetchedBundle | None:
    """Read and verify the bundle; None when the store has no manifest for ``server``."""
    blob = await store.get(manifest_name(server))
    if blob is None:
        return None
    manifest = Manifest.parse(blob.data, server=server)
    objects: dict[str, bytes] = {}
    for kind, entry in manifest.objects.items():
        stored = await store.get(entry.name)
        objects[kind] = manifest.verify(kind, None if stored is None else stored.data)
    return FetchedBundle(manifest=manifest, etag=blob.etag, objects=objects)


async def mirror_bundle(fetched: FetchedBundle, target: BlobStore) -> None:
    """Copy a verified bundle into ``target`` (objects first, manifest last) and drop objects it no longer names."""
    server = fetched.manifest.server
    for kind, data in fetched.objects.items():
        name = fetched.manifest.objects[kind].name
        if await target.head(name) is None:
            await target.put(name, data)
    await target.put(manifest_name(server), fetched.manifest.render())
    keep = {e.name for e in fetched.manifest.objects.values()} | {manifest_name(server)}
    for name in await target.list(f"{server}_"):
        if name not in keep:
            await target.delete(name)


@dataclass(frozen=True)
class BundleContents:
    """The opened files of a bundle (data-dir file name → bytes) and the ones withheld, with why."""

    manifest: Manifest
    files: Mapping[str, bytes]
    withheld: Mapping[str, str] = field(default_factory=dict)

    @property
    def policy_sources(self) -> dict[str, bytes]:
        """The policy files, as :meth:`~tokenward.policy.PolicyHolder.apply` takes them."""
        names = [spec.filename for spec in FILES if spec.policy]
        return {name: self.files[name] for name in names if name in self.files}

    @property
    def timecodes(self) -> TimeCodes | None:
        data = self.files.get("timecode.json")
        return None if data is None else parse_timecodes(data)


def parse_timecodes(data: bytes) -> TimeCodes:
    """Parse a ``timecode.json`` document (as :class:`~tokenward.datadir.DataDir` writes it)."""
    try:
        doc = json.loads(data)
        current = TimeCode.parse(doc["current"])
        previous = TimeCode.parse(doc["previous"]) if doc.get("previous") else None
        until = float(doc["previous_until"]) if doc.get("previous_until") is not None else None
    except TimeCodeError as exc:
        raise BundleError(
            f"the time code in the bundle is invalid: {exc.detail}", code=ErrorCode.BUNDLE_INVALID
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleError(
            f"the time code in the bundle is damaged ({type(exc).__name__})", code=ErrorCode.BUNDLE_INVALID
        ) from None
    return TimeCodes(current, previous, until)


def open_bundle(fetched: FetchedBundle, *, key: ConfigKey | None) -> BundleContents:
    """Unseal what can be unsealed and check every file parses; raise BundleError otherwise.

    Without ``key`` a sealed secret (time code, app-token key) is withheld and reported; a sealed
    policy file cannot be withheld (the policy would be incomplete), so it raises ``config_key_missing``.
    """
    manifest = fetched.manifest
    files: dict[str, bytes] = {}
    withheld: dict[str, str] = {}
    for kind, data in fetched.objects.items():
        spec = BY_KIND[kind]
        if manifest.objects[kind].sealed:
            if key is None:
                if not spec.policy:
                    withheld[spec.filename] = "sealed, and TOKENWARD_CONFIG_KEY is not set"
                    continue
                raise BundleError(
                    f"the bundle's {spec.filename} is sealed and TOKENWARD_CONFIG_KEY is not set",
                    code=ErrorCode.CONFIG_KEY_MISSING,
                )
            data = key.open(data, server=manifest.server, kind=kind, sealed_with=manifest.key_id)
        files[spec.filename] = data
    contents = BundleContents(manifest=manifest, files=files, withheld=withheld)
    contents.timecodes  # noqa: B018 - parse now: a bad time code refuses the whole bundle
    if "clientids.json" in files:
        from tokenward.identity.apps import ClientRegistry

        try:
            ClientRegistry.parse(files["clientids.json"], source="the bundle's clientids.json")
        except TokenwardError as exc:
            raise BundleError(exc.detail, code=ErrorCode.BUNDLE_INVALID) from None
    if "resources.json" in files:
        from tokenward.identity.resources import ResourceRegistry

        try:
            ResourceRegistry.parse(files["resources.json"])
        except TokenwardError as exc:
            raise BundleError(exc.detail, code=ErrorCode.BUNDLE_INVALID) from None
    return contents
