"""Many instances, one truth: the shared config bundle in S3 and its live propagation.

Importing this package reads nothing and connects nowhere. See ``docs/multi-instance.md``.

- :mod:`.manifest` — the bundle's files, object names and manifest, the policy-dialect check (no I/O);
- :mod:`.seal` — the config key (``TOKENWARD_CONFIG_KEY``) and sealed objects;
- :mod:`.bundle` — save, fetch (verifying every hash), open;
- :mod:`.sync` — :class:`ConfigSync`, start-up load with last-known-good fallback and polling;
- :mod:`.stores` — building stores and the key from settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenward._facade import lazy_exports

if TYPE_CHECKING:
    from tokenward.configsync.bundle import (
        BundleContents,
        FetchedBundle,
        SaveLine,
        fetch_bundle,
        mirror_bundle,
        open_bundle,
        parse_timecodes,
        save_bundle,
    )
    from tokenward.configsync.manifest import (
        FILES,
        BundleFile,
        Manifest,
        ObjectEntry,
        check_policy_dialect,
        manifest_name,
        object_name,
    )
    from tokenward.configsync.seal import ConfigKey
    from tokenward.configsync.sync import CACHE_DIR, ConfigSync, install_files

__all__ = [
    "CACHE_DIR",
    "FILES",
    "BundleContents",
    "BundleFile",
    "ConfigKey",
    "ConfigSync",
    "FetchedBundle",
    "Manifest",
    "ObjectEntry",
    "SaveLine",
    "check_policy_dialect",
    "fetch_bundle",
    "install_files",
    "manifest_name",
    "mirror_bundle",
    "object_name",
    "open_bundle",
    "parse_timecodes",
    "save_bundle",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "tokenward.configsync.bundle": (
            "BundleContents",
            "FetchedBundle",
            "SaveLine",
            "fetch_bundle",
            "mirror_bundle",
            "open_bundle",
            "parse_timecodes",
            "save_bundle",
        ),
        "tokenward.configsync.manifest": (
            "FILES",
            "BundleFile",
            "Manifest",
            "ObjectEntry",
            "check_policy_dialect",
            "manifest_name",
            "object_name",
        ),
        "tokenward.configsync.seal": ("ConfigKey",),
        "tokenward.configsync.sync": ("CACHE_DIR", "ConfigSync", "install_files"),
    },
)
