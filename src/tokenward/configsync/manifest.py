"""What a config bundle holds and how its manifest reads — no I/O here.

A bundle is one manifest plus one object per file, in one bucket, all named after the
server (the original server's "master files")::

    auth.example.com_manifest                      JSON, written last
    auth.example.com_modelfile.<sha256>            model.conf
    auth.example.com_userpolicy.<sha256>           userpolicy.csv
    ...
    auth.example.com_timecode.<sha256>             timecode.json, always sealed

Objects are content-addressed (the suffix is the SHA-256 of the stored bytes) and never
overwritten; the manifest names them and is replaced in one PUT. Two savers at once therefore
leave either one complete bundle or the other — never a mix — and a reader verifies every
object against the manifest before using any of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BundleError

__all__ = [
    "FILES",
    "FORMAT",
    "BundleFile",
    "Manifest",
    "ObjectEntry",
    "check_policy_dialect",
    "manifest_name",
    "object_name",
    "sha256_hex",
    "unreferenced_objects",
]

FORMAT = "tokenward-config/1"
#: Largest manifest accepted (it only lists a dozen objects).
MAX_MANIFEST_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of the bundle: its object kind, its name in the data dir, its label in CLI output."""

    kind: str
    filename: str
    label: str
    secret: bool = False
    policy: bool = False


FILES: tuple[BundleFile, ...] = (
    BundleFile("modelfile", "model.conf", "Model Configuration", policy=True),
    BundleFile("userpolicy", "userpolicy.csv", "User Policy Configuration", policy=True),
    BundleFile("resourcepolicy", "resourcepolicy.csv", "Resource Policy Configuration", policy=True),
    BundleFile("clientappspolicy", "clientappspolicy.csv", "Client App Policy Configuration", policy=True),
    BundleFile("clientscopespolicy", "clientscopespolicy.csv", "Client Scopes Policy Configuration", policy=True),
    BundleFile("cmodelfile", "captchamodel.conf", "Captcha Model Configuration", policy=True),
    BundleFile("cpolicyfile", "captchapolicy.csv", "Captcha Policy Configuration", policy=True),
    BundleFile("clientids", "clientids.json", "Client ID Configuration"),
    BundleFile("resources", "resources.json", "Resource Server Configuration"),
    BundleFile("timecode", "timecode.json", "Time Code", secret=True),
    BundleFile("apptokenkey", "apptoken.key", "App Token Key", secret=True),
)
BY_KIND: Mapping[str, BundleFile] = {f.kind: f for f in FILES}
_HEX64 = re.compile(r"[0-9a-f]{64}")


def manifest_name(server: str) -> str:
    return f"{server}_manifest"


def object_name(server: str, kind: str, sha256: str) -> str:
    return f"{server}_{kind}.{sha256}"


def unreferenced_objects(names: Iterable[str], manifest: Manifest) -> list[str]:
    """Bundle objects of ``manifest.server`` in ``names`` that the manifest does not name (prunable).

    Only names of the exact shape ``<server>_<known kind>.<64 hex>`` qualify: the manifest itself,
    other servers' objects and anything written by hand are never candidates.
    """
    prefix = manifest.server + "_"
    keep = {entry.name for entry in manifest.objects.values()}
    found: list[str] = []
    for name in names:
        if not name.startswith(prefix) or name in keep:
            continue
        kind, dot, digest = name[len(prefix) :].partition(".")
        if dot and kind in BY_KIND and _HEX64.fullmatch(digest):
            found.append(name)
    return sorted(found)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    name: str
    sha256: str
    size: int
    sealed: bool


@dataclass(frozen=True, slots=True)
class Manifest:
    """The manifest of one saved bundle."""

    server: str
    version: int
    saved_at: str
    saved_by: str
    objects: Mapping[str, ObjectEntry]
    key_id: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def policy_dialect(self) -> str | None:
        """The ``TOKENWARD_POLICY_DIALECT`` of the instance that saved the bundle; None when not recorded."""
        return self.settings.get("policy_dialect") or None

    @property
    def digest(self) -> str:
        """Identifies the bundle's content: SHA-256 over the kinds and object hashes."""
        text = "\n".join(f"{kind}={entry.sha256}" for kind, entry in sorted(self.objects.items()))
        return sha256_hex(text.encode())

    def render(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "server": self.server,
            "version": self.version,
            "digest": self.digest,
            "saved_at": self.saved_at,
            "saved_by": self.saved_by,
            "key_id": self.key_id,
            "settings": dict(self.settings),
            "objects": {
                kind: {"name": e.name, "sha256": e.sha256, "size": e.size, "sealed": e.sealed}
                for kind, e in sorted(self.objects.items())
            },
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, *, server: str) -> Manifest:
        """Parse and check a manifest; anything off raises BundleError ``bundle_manifest_invalid``."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise BundleError("the bundle manifest is implausibly large", code=ErrorCode.BUNDLE_MANIFEST_INVALID)
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r} is not {FORMAT}")
            objects: dict[str, ObjectEntry] = {}
            for kind, raw in dict(doc["objects"]).items():
                if kind not in BY_KIND:
                    raise ValueError(f"unknown object kind {kind!r}")
                entry = ObjectEntry(str(raw["name"]), str(raw["sha256"]), int(raw["size"]), bool(raw["sealed"]))
                if entry.name != object_name(server, kind, entry.sha256) or len(entry.sha256) != 64:
                    raise ValueError(f"object {kind} is not named after its hash")
                objects[kind] = entry
            manifest = cls(
                server=str(doc["server"]),
                version=int(doc["version"]),
                saved_at=str(doc["saved_at"]),
                saved_by=str(doc["saved_by"]),
                objects=objects,
                key_id=None if doc.get("key_id") is None else str(doc["key_id"]),
                settings={str(k): str(v) for k, v in dict(doc.get("settings") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise BundleError(
                f"the bundle manifest is damaged: {exc}", code=ErrorCode.BUNDLE_MANIFEST_INVALID
            ) from None
        if manifest.server != server:
            raise BundleError(
                f"the bundle manifest is for {manifest.server}, not {server}", code=ErrorCode.BUNDLE_MANIFEST_INVALID
            )
        if doc.get("digest") not in (None, manifest.digest):
            raise BundleError("the bundle manifest's digest does not match its objects", code=ErrorCode.BUNDLE_MISMATCH)
        return manifest

    def verify(self, kind: str, data: bytes | None) -> bytes:
        """Return ``data`` if it is the object the manifest names, else raise BundleError.

        Codes: ``bundle_object_missing`` (deleted from the bucket), ``bundle_mismatch`` (edited).
        """
        entry = self.objects[kind]
        if data is None:
            raise BundleError(
                f"bundle object {entry.name} named by the manifest is missing from the bucket; run "
                "`tokenward config save` again",
                code=ErrorCode.BUNDLE_OBJECT_MISSING,
            )
        if len(data) != entry.size or sha256_hex(data) != entry.sha256:
            raise BundleError(
                f"bundle object {entry.name} does not match the manifest (edited by hand?); the bundle is refused",
                code=ErrorCode.BUNDLE_MISMATCH,
            )
        return data


def check_policy_dialect(manifest: Manifest, *, dialect: str) -> None:
    """Refuse a bundle saved under another policy dialect: BundleError ``policy_dialect_mismatch``.

    The same rows mean different things in ``glob`` and ``compat`` (docs/policies.md), so an
    instance applying another dialect's bundle would answer the same question differently from
    its peers. A manifest that records no dialect (written without one, e.g. by hand) is accepted:
    there is nothing to compare, and refusing it would break bundles that worked before.
    """
    saved = manifest.policy_dialect
    if saved is None or saved == dialect:
        return
    raise BundleError(
        f"config bundle v{manifest.version} (saved by {manifest.saved_by} at {manifest.saved_at}) uses policy "
        f"dialect {saved}, but this instance runs {dialect}; the same policy rows mean different things in the two "
        f"dialects, so the bundle is refused: set TOKENWARD_POLICY_DIALECT={saved} on this instance, or save the "
        f"bundle again from an instance running {dialect}",
        code=ErrorCode.POLICY_DIALECT_MISMATCH,
        fields={"bundle_dialect": saved, "instance_dialect": dialect},
    )
