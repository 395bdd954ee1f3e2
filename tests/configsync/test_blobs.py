"""Blob store contract on memory, a local folder and a real S3 endpoint (moto), plus S3 failures."""

from __future__ import annotations

import dataclasses
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tokenward.errors import StorageError, StorageUnavailable
from tokenward.storage.blobs import BlobStore, LocalBlobStore, MemoryBlobStore, S3BlobStore, S3Config


@pytest.fixture(params=["memory", "local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    made: BlobStore
    if request.param == "memory":
        made = MemoryBlobStore()
    elif request.param == "local":
        made = LocalBlobStore(tmp_path / "blobs")
    else:
        made = S3BlobStore(request.getfixturevalue("s3_config"))
    try:
        yield made
    finally:
        await made.close()


async def test_put_get_head_list_delete(store: BlobStore) -> None:
    assert await store.get("a.example_manifest") is None
    assert await store.head("a.example_manifest") is None
    etag = await store.put("a.example_manifest", b"one")
    blob = await store.get("a.example_manifest")
    assert blob is not None and blob.data == b"one" and blob.etag == etag
    assert await store.head("a.example_manifest") == etag
    etag2 = await store.put("a.example_manifest", b"two")
    assert etag2 != etag
    await store.put("a.example_userpolicy.abc", b"")
    await store.put("b.example_manifest", b"x")
    assert await store.list("a.example_") == ["a.example_manifest", "a.example_userpolicy.abc"]
    empty = await store.get("a.example_userpolicy.abc")
    assert empty is not None and empty.data == b""
    await store.delete("a.example_manifest")
    await store.delete("a.example_manifest")  # idempotent
    assert await store.get("a.example_manifest") is None


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".hidden", "x" * 600])
async def test_bad_names_refused(name: str) -> None:
    with pytest.raises(StorageError) as info:
        await MemoryBlobStore().put(name, b"")
    assert info.value.error_code == "blob_name_invalid"


async def test_local_files_are_private(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    await store.put("n_manifest", b"secret-ish")
    assert stat.S_IMODE((tmp_path / "blobs").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "blobs" / "n_manifest").stat().st_mode) == 0o600


async def test_missing_bucket(s3_config: S3Config) -> None:
    store = S3BlobStore(dataclasses.replace(s3_config, bucket="no-such-bucket-here"))
    calls = (lambda: store.get("x_manifest"), lambda: store.head("x_manifest"), lambda: store.put("x_manifest", b""))
    for call in calls:
        with pytest.raises(StorageError) as info:
            await call()
        assert info.value.error_code == "s3_bucket_missing"
        assert "no-such-bucket-here" in info.value.detail
    await store.close()


async def test_wrong_credentials(moto_auth_url: str) -> None:
    config = S3Config(
        bucket="any", url=moto_auth_url, access_key="AKIAWRONG", secret_key="wrong-secret-value", timeout=2
    )
    store = S3BlobStore(config)
    with pytest.raises(StorageError) as info:
        await store.get("x_manifest")
    assert info.value.error_code == "s3_credentials"
    assert "TOKENWARD_S3_ACCESS_KEY" in info.value.detail
    assert "wrong-secret-value" not in info.value.detail and "wrong-secret-value" not in repr(config)
    await store.close()


async def test_unreachable_endpoint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        store = S3BlobStore(S3Config(bucket="b", url=f"http://127.0.0.1:{port}", access_key="a", secret_key="s"))
        with pytest.raises(StorageUnavailable) as info:
            await store.head("x_manifest")
    assert info.value.error_code == "s3_unreachable"
    await store.close()
