"""Config bundle: save/fetch/open round trips, sealing, and every way a bundle can be refused."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest

from tokenward.configsync import (
    ConfigKey,
    Manifest,
    fetch_bundle,
    manifest_name,
    open_bundle,
    save_bundle,
)
from tokenward.datadir import TimeCodes
from tokenward.errors import BundleError, ConfigError
from tokenward.keys import TimeCode
from tokenward.policy.samples import sample_files
from tokenward.storage.blobs import BlobStore, MemoryBlobStore, S3BlobStore, S3Config

SERVER = "auth.example.com"


def timecode_json() -> bytes:
    code = TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32))
    codes = TimeCodes(code)
    return json.dumps({"current": codes.current.format(), "previous": None, "previous_until": None}).encode()


def local_files(**extra: bytes | None) -> dict[str, bytes | None]:
    samples = sample_files(SERVER)
    files: dict[str, bytes | None] = {
        "modelfile": samples["model.conf"].encode(),
        "cmodelfile": samples["captchamodel.conf"].encode(),
        "userpolicy": samples["userpolicy.csv"].encode(),
        "resourcepolicy": None,
        "cpolicyfile": samples["captchapolicy.csv"].encode(),
        "timecode": timecode_json(),
    }
    files.update(extra)
    return files


async def save(
    store: BlobStore,
    key: ConfigKey | None,
    *,
    files: dict[str, bytes | None] | None = None,
    seal_policies: bool = False,
) -> list[str]:
    _, lines = await save_bundle(
        store,
        server=SERVER,
        files=files or local_files(),
        key=key,
        saved_by="alice@host",
        now=time.time(),
        seal_policies=seal_policies,
    )
    return [line.render() for line in lines]


def test_config_key_text() -> None:
    text = ConfigKey.generate()
    assert len(text) == 43
    key = ConfigKey.parse(text)
    assert text not in repr(key) and key.key_id in repr(key)
    for bad in ("short", "!!!not base64!!!"):
        with pytest.raises(ConfigError) as info:
            ConfigKey.parse(bad)
        assert info.value.error_code == "config_key_invalid"


async def test_round_trip_sealed_time_code() -> None:
    store, key = MemoryBlobStore(), ConfigKey(secrets.token_bytes(32))
    lines = await save(store, key)
    assert "- User Policy Configuration Saved Successfully." in lines
    assert "- Time Code Saved Successfully. (sealed)" in lines
    assert any(line.startswith("- Resource Policy Configuration Could Not Be Saved - Skipping File") for line in lines)
    fetched = await fetch_bundle(store, server=SERVER)
    assert fetched is not None and fetched.manifest.version == 1 and fetched.manifest.key_id == key.key_id
    stored = await store.get(fetched.manifest.objects["timecode"].name)
    assert stored is not None and b"tw1." not in stored.data  # never in clear
    contents = open_bundle(fetched, key=key)
    assert set(contents.policy_sources) == {"model.conf", "captchamodel.conf", "userpolicy.csv", "captchapolicy.csv"}
    assert contents.timecodes is not None
    await save(store, key)
    again = await fetch_bundle(store, server=SERVER)
    assert again is not None and again.manifest.version == 2


async def test_without_key_policies_saved_time_code_refused() -> None:
    store = MemoryBlobStore()
    lines = await save(store, None)
    assert "- User Policy Configuration Saved Successfully." in lines
    refused = [line for line in lines if line.startswith("- Time Code Could Not Be Saved")]
    assert refused and "TOKENWARD_CONFIG_KEY is not set" in refused[0]
    fetched = await fetch_bundle(store, server=SERVER)
    assert fetched is not None and "timecode" not in fetched.manifest.objects


async def test_sealed_policies_and_missing_key_on_reader() -> None:
    store, key = MemoryBlobStore(), ConfigKey(secrets.token_bytes(32))
    await save(store, key, seal_policies=True)
    fetched = await fetch_bundle(store, server=SERVER)
    assert fetched is not None and all(entry.sealed for entry in fetched.manifest.objects.values())
    assert open_bundle(fetched, key=key).policy_sources["userpolicy.csv"] == local_files()["userpolicy"]
    with pytest.raises(BundleError) as info:
        open_bundle(fetched, key=None)
    assert info.value.error_code == "config_key_missing"
    with pytest.raises(BundleError) as info:
        await save(store, None, seal_policies=True)
    assert info.value.error_code == "config_key_missing"


async def test_time_code_withheld_without_key() -> None:
    store, key = MemoryBlobStore(), ConfigKey(secrets.token_bytes(32))
    await save(store, key)
    fetched = await fetch_bundle(store, server=SERVER)
    assert fetched is not None
    contents = open_bundle(fetched, key=None)
    assert "timecode.json" in contents.withheld and contents.timecodes is None


async def test_wrong_key_names_both_key_ids() -> None:
    store, key, other = MemoryBlobStore(), ConfigKey(secrets.token_bytes(32)), ConfigKey(secrets.token_bytes(32))
    await save(store, key)
    fetched = await fetch_bundle(store, server=SERVER)
    assert fetched is not None
    with pytest.raises(BundleError) as info:
        open_bundle(fetched, key=other)
    assert info.value.error_code == "config_key_wrong"
    assert key.key_id in info.value.detail and other.key_id in info.value.detail


async def test_object_edited_or_deleted_by_hand() -> None:
    store = MemoryBlobStore()
    await save(store, None)
    fetched = await fetch_bundle(store, server=SERVER)
    assert fetched is not None
    name = fetched.manifest.objects["userpolicy"].name
    await store.put(name, b"p, mallory@evil.example, auth.example.com, *, login\n")
    with pytest.raises(BundleError) as info:
        await fetch_bundle(store, server=SERVER)
    assert info.value.error_code == "bundle_mismatch" and name in info.value.detail
    await store.delete(name)
    with pytest.raises(BundleError) as info:
        await fetch_bundle(store, server=SERVER)
    assert info.value.error_code == "bundle_object_missing"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda doc: doc.update(format="other/9"),
        lambda doc: doc.update(server="evil.example.com"),
        lambda doc: doc["objects"]["userpolicy"].update(sha256="0" * 64),
        lambda doc: doc.update(digest="f" * 64),
        lambda doc: doc.pop("objects"),
    ],
    ids=["format", "server", "hash-renamed", "digest", "no-objects"],
)
async def test_manifest_that_does_not_match(mutate: object) -> None:
    store = MemoryBlobStore()
    await save(store, None)
    blob = await store.get(manifest_name(SERVER))
    assert blob is not None
    doc = json.loads(blob.data)
    mutate(doc)  # type: ignore[operator]
    await store.put(manifest_name(SERVER), json.dumps(doc).encode())
    with pytest.raises(BundleError) as info:
        await fetch_bundle(store, server=SERVER)
    assert info.value.error_code in ("bundle_manifest_invalid", "bundle_mismatch")


async def test_garbage_manifest() -> None:
    store = MemoryBlobStore()
    await store.put(manifest_name(SERVER), b"\xff not json")
    with pytest.raises(BundleError) as info:
        await fetch_bundle(store, server=SERVER)
    assert info.value.error_code == "bundle_manifest_invalid"
    assert await fetch_bundle(store, server="other.example.com") is None


async def test_concurrent_saves_never_mix(s3_config: S3Config) -> None:
    """Many savers at once on a real S3 endpoint: the result is always exactly one saver's bundle."""
    stores = [S3BlobStore(s3_config) for _ in range(6)]
    variants = [f"p, user{i}@example.com, {SERVER}, *, login\n".encode() for i in range(len(stores))]
    try:
        for _ in range(3):
            await asyncio.gather(
                *(save(store, None, files=local_files(userpolicy=v)) for store, v in zip(stores, variants, strict=True))
            )
            fetched = await fetch_bundle(stores[0], server=SERVER)
            assert fetched is not None
            contents = open_bundle(fetched, key=None)
            assert contents.policy_sources["userpolicy.csv"] in variants
    finally:
        for store in stores:
            await store.close()


def test_manifest_parse_render_round_trip() -> None:
    m = Manifest(server=SERVER, version=3, saved_at="2025-01-01T00:00:00Z", saved_by="x", objects={})
    assert Manifest.parse(m.render(), server=SERVER) == m
