"""ConfigSync: start-up load, polling, refusal of bad bundles, last-known-good when S3 is down."""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import time
from pathlib import Path

from tests.configsync.test_bundle import SERVER, local_files
from tokenward.configsync import BundleContents, ConfigKey, ConfigSync, manifest_name, save_bundle
from tokenward.policy import PolicyHolder, content_version
from tokenward.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore, S3Config


def dead_s3(config: S3Config) -> S3BlobStore:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return S3BlobStore(dataclasses.replace(config, url=f"http://127.0.0.1:{port}", timeout=0.5))


async def publish(store: BlobStore, key: ConfigKey | None = None, **files: bytes | None) -> None:
    await save_bundle(store, server=SERVER, files=local_files(**files), key=key, saved_by="t", now=time.time())


def make_sync(remote: BlobStore, tmp_path: Path, key: ConfigKey | None = None) -> tuple[ConfigSync, PolicyHolder]:
    holder = PolicyHolder()
    seen: list[BundleContents] = []
    sync = ConfigSync(
        remote=remote,
        cache=LocalBlobStore(tmp_path / "configsync"),
        server=SERVER,
        key=key,
        holder=holder,
        interval=0.05,
        on_contents=seen.append,
    )
    return sync, holder


def policy_version(**files: bytes | None) -> str:
    names = {"modelfile": "model.conf", "cmodelfile": "captchamodel.conf", "userpolicy": "userpolicy.csv"}
    names |= {"cpolicyfile": "captchapolicy.csv", "resourcepolicy": "resourcepolicy.csv"}
    merged = local_files(**files)
    return content_version({names[k]: v for k, v in merged.items() if k in names and v is not None})


ROW = b"p, carol@example.com, auth.example.com, *, login\n"


async def test_start_poll_and_refuse(s3_config: S3Config, tmp_path: Path) -> None:
    remote = S3BlobStore(s3_config)
    key = ConfigKey(secrets.token_bytes(32))
    sync, holder = make_sync(remote, tmp_path, key)
    await sync.start()
    assert not holder.loaded and sync.source == "local-files"  # empty bucket: the local files decide
    await publish(remote, key)
    assert await sync.poll() is True
    assert sync.source == "s3" and holder.version == policy_version()
    assert sync.contents is not None and sync.contents.timecodes is not None
    assert await sync.poll() is False  # unchanged manifest: one HEAD, nothing fetched
    await publish(remote, key, userpolicy=ROW)
    assert await sync.poll() is True and holder.version == policy_version(userpolicy=ROW)
    # a bundle whose policy does not parse is refused; the one in force stays
    await publish(remote, key, userpolicy=b"p, only-two-fields\n")
    assert await sync.poll() is False
    assert holder.version == policy_version(userpolicy=ROW)
    status = sync.status()
    assert status["last_error"] is not None and status["version"] == 2
    assert await sync.poll() is False  # the refused manifest is not fetched again
    await publish(remote, key, userpolicy=ROW + ROW)
    assert await sync.poll() is True and sync.status()["last_error"] is None
    await sync.close()


async def test_hand_edited_object_and_wrong_key_are_refused(s3_config: S3Config, tmp_path: Path) -> None:
    remote = S3BlobStore(s3_config)
    key = ConfigKey(secrets.token_bytes(32))
    await publish(remote, key)
    sync, holder = make_sync(remote, tmp_path, key)
    await sync.start()
    good = holder.version
    # someone edits the manifest to point at a policy they uploaded by hand
    blob = await remote.get(manifest_name(SERVER))
    assert blob is not None
    doc = json.loads(blob.data)
    doc["version"] = 99
    doc["objects"]["userpolicy"]["size"] += 1
    await remote.put(manifest_name(SERVER), json.dumps(doc).encode())
    assert await sync.poll() is False and holder.version == good
    last = sync.status()["last_error"]
    assert isinstance(last, dict) and last["error"] in ("bundle_mismatch", "bundle_manifest_invalid")
    # a bundle saved with another config key
    await publish(remote, ConfigKey(secrets.token_bytes(32)), userpolicy=ROW)
    assert await sync.poll() is False and holder.version == good
    last = sync.status()["last_error"]
    assert isinstance(last, dict) and last["error"] == "config_key_wrong"
    await sync.close()


async def test_s3_down_serves_last_known_good_and_catches_up(s3_config: S3Config, tmp_path: Path) -> None:
    remote = S3BlobStore(s3_config)
    await publish(remote, userpolicy=ROW)
    first, _ = make_sync(remote, tmp_path)
    await first.start()
    assert first.source == "s3"
    await first.stop()
    # restart while S3 is unreachable: the last-known-good copy is used, and it says so
    down, holder = make_sync(dead_s3(s3_config), tmp_path)
    started = time.monotonic()
    await down.start()
    assert time.monotonic() - started < 60  # gave up on S3 rather than hanging (not a speed check)
    assert down.source == "last-known-good" and holder.version == policy_version(userpolicy=ROW)
    last = down.status()["last_error"]
    assert isinstance(last, dict) and last["error"] == "s3_unreachable"
    assert await down.poll() is False and down.source == "last-known-good"
    # the network comes back, with a newer bundle: the next poll catches up
    await down.remote.close()
    down.remote = remote
    await publish(remote, userpolicy=ROW + b"# v3\n")
    assert await down.poll() is True
    assert down.source == "s3" and holder.version == policy_version(userpolicy=ROW + b"# v3\n")
    await publish(remote, userpolicy=ROW + ROW)
    back, holder = make_sync(remote, tmp_path)
    back.holder = holder
    await back.start()
    assert back.source == "s3" and holder.version == policy_version(userpolicy=ROW + ROW)
    await back.close()
    await down.stop()
