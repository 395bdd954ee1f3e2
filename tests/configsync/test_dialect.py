"""The policy dialect recorded in the manifest is enforced: a bundle of the other dialect is refused.

While running, the instance keeps its last good policy and ``/readyz`` says ``degraded`` with the
reason ``policy_dialect_mismatch``; at start, ``tokenward serve`` exits 1 with one ``error:`` line.
Manifests that record no dialect keep working under either.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.configsync.test_bundle import SERVER, local_files
from tests.configsync.test_sync import ROW, dead_s3, policy_version
from tokenward.cli.main import app as cli
from tokenward.configsync import ConfigKey, ConfigSync, Manifest, check_policy_dialect, manifest_name, save_bundle
from tokenward.errors import BundleError
from tokenward.policy import PolicyHolder
from tokenward.policy.patterns import Dialect
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage.blobs import BlobStore, LocalBlobStore, S3BlobStore, S3Config
from tokenward.web.app import create_app


async def publish(store: BlobStore, dialect: str | None, **files: bytes | None) -> None:
    settings = {} if dialect is None else {"policy_dialect": dialect}
    await save_bundle(
        store, server=SERVER, files=local_files(**files), key=None, saved_by="t", now=time.time(), settings=settings
    )


def make_sync(remote: BlobStore, tmp_path: Path, dialect: Dialect) -> tuple[ConfigSync, PolicyHolder]:
    holder = PolicyHolder(dialect=dialect)
    sync = ConfigSync(
        remote=remote, cache=LocalBlobStore(tmp_path / "configsync"), server=SERVER, key=None, holder=holder
    )
    return sync, holder


def manifest(settings: dict[str, str]) -> Manifest:
    return Manifest(
        server=SERVER, version=4, saved_at="2026-01-01T00:00:00Z", saved_by="ops@a", objects={}, settings=settings
    )


# -- the check, no I/O ------------------------------------------------------------------------


def test_check_names_both_dialects_and_the_setting() -> None:
    check_policy_dialect(manifest({"policy_dialect": "glob"}), dialect="glob")
    with pytest.raises(BundleError) as caught:
        check_policy_dialect(manifest({"policy_dialect": "compat"}), dialect="glob")
    exc = caught.value
    assert exc.error_code == "policy_dialect_mismatch"
    assert exc.to_dict()["bundle_dialect"] == "compat" and exc.to_dict()["instance_dialect"] == "glob"
    assert "uses policy dialect compat, but this instance runs glob" in exc.detail
    assert "TOKENWARD_POLICY_DIALECT=compat" in exc.detail and "v4" in exc.detail


def test_a_manifest_without_the_field_parses_and_passes() -> None:
    doc = json.loads(manifest({}).render())
    del doc["settings"]  # as a manifest written without settings at all
    old = Manifest.parse(json.dumps(doc).encode(), server=SERVER)
    assert old.policy_dialect is None
    for dialect in ("glob", "compat"):
        check_policy_dialect(old, dialect=dialect)


# -- ConfigSync against S3 --------------------------------------------------------------------


async def test_poll_refuses_the_other_dialect_and_keeps_the_last_good_policy(
    s3_config: S3Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote = S3BlobStore(s3_config)
    await publish(remote, "glob", userpolicy=ROW)
    sync, holder = make_sync(remote, tmp_path, "glob")
    await sync.start()
    good = policy_version(userpolicy=ROW)
    assert sync.source == "s3" and holder.version == good
    assert sync.status()["state"] == "ok" and sync.status()["policy_dialect"] == "glob"

    await publish(remote, "compat", userpolicy=ROW + ROW)
    with caplog.at_level(logging.WARNING, logger="tokenward.configsync"):
        assert await sync.poll() is False
        assert await sync.poll() is False  # not fetched again, and the reason is not forgotten
    assert holder.version == good and holder.policy.dialect == "glob"
    status = sync.status()
    assert status["state"] == "degraded" and status["reason"] == "policy_dialect_mismatch", status
    assert status["version"] == 1  # the bundle in force
    last = status["last_error"]
    assert isinstance(last, dict) and last["error"] == "policy_dialect_mismatch"
    assert last["bundle_dialect"] == "compat" and last["instance_dialect"] == "glob"
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR, [r.getMessage() for r in logged]
    message = logged[0].getMessage()
    assert "compat" in message and "glob" in message and "TOKENWARD_POLICY_DIALECT" in message

    # saved again under the instance's dialect: applied, no longer degraded
    await publish(remote, "glob", userpolicy=ROW + ROW)
    assert await sync.poll() is True
    assert holder.version == policy_version(userpolicy=ROW + ROW)
    assert sync.status()["state"] == "ok" and sync.status()["last_error"] is None
    await sync.close()


async def test_a_matching_compat_bundle_is_applied(s3_config: S3Config, tmp_path: Path) -> None:
    remote = S3BlobStore(s3_config)
    await publish(remote, "compat", userpolicy=ROW)
    sync, holder = make_sync(remote, tmp_path, "compat")
    await sync.start()
    assert sync.source == "s3" and holder.version == policy_version(userpolicy=ROW)
    assert holder.policy.dialect == "compat" and sync.status()["policy_dialect"] == "compat"
    await publish(remote, "compat", userpolicy=ROW + ROW)
    assert await sync.poll() is True and holder.version == policy_version(userpolicy=ROW + ROW)
    assert sync.status()["state"] == "ok"
    await sync.close()


async def test_start_refuses_the_other_dialect_even_with_a_good_last_known_copy(
    s3_config: S3Config, tmp_path: Path
) -> None:
    remote = S3BlobStore(s3_config)
    await publish(remote, "glob", userpolicy=ROW)
    first, _ = make_sync(remote, tmp_path, "glob")
    await first.start()  # leaves a glob last-known-good copy
    await first.stop()
    await publish(remote, "compat", userpolicy=ROW + ROW)
    sync, holder = make_sync(S3BlobStore(s3_config), tmp_path, "glob")
    with pytest.raises(BundleError) as caught:
        await sync.start()
    assert caught.value.error_code == "policy_dialect_mismatch" and not holder.loaded
    await sync.close()
    # an instance switched to compat while S3 is down: the glob last-known-good copy is refused too
    down, holder = make_sync(dead_s3(s3_config), tmp_path, "compat")
    with pytest.raises(BundleError) as caught:
        await down.start()
    assert caught.value.error_code == "policy_dialect_mismatch" and not holder.loaded
    assert "uses policy dialect glob, but this instance runs compat" in caught.value.detail
    await down.close()
    await first.close()


@pytest.mark.parametrize("dialect", ["glob", "compat"])
async def test_a_bundle_recording_no_dialect_applies_under_either(
    s3_config: S3Config, tmp_path: Path, dialect: Dialect, caplog: pytest.LogCaptureFixture
) -> None:
    remote = S3BlobStore(s3_config)
    await publish(remote, None, userpolicy=ROW)
    blob = await remote.get(manifest_name(SERVER))
    assert blob is not None and "policy_dialect" not in json.loads(blob.data)["settings"]
    sync, holder = make_sync(remote, tmp_path, dialect)
    with caplog.at_level(logging.WARNING, logger="tokenward.configsync"):
        await sync.start()
    assert sync.source == "s3" and holder.version == policy_version(userpolicy=ROW)
    assert holder.policy.dialect == dialect and sync.status()["policy_dialect"] is None
    assert any("records no policy dialect" in r.getMessage() for r in caplog.records)
    await sync.close()


# -- a served instance and `tokenward serve` ----------------------------------------------------


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_config: S3Config) -> Iterator[Path]:
    """An admin data dir that saved a glob bundle; the environment every instance shares."""
    for key in list(os.environ):
        if key.startswith(("TOKENWARD_", "HEXAEIGHT_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TOKENWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    monkeypatch.setenv("TOKENWARD_S3_URL", str(s3_config.url))
    monkeypatch.setenv("TOKENWARD_S3_BUCKET", s3_config.bucket)
    monkeypatch.setenv("TOKENWARD_S3_ACCESS_KEY", str(s3_config.access_key))
    monkeypatch.setenv("TOKENWARD_S3_SECRET_KEY", str(s3_config.secret_key))
    monkeypatch.setenv("TOKENWARD_CONFIG_KEY", ConfigKey.generate())  # the time code travels sealed
    admin = tmp_path / "admin"
    cli_ok("-d", str(admin), "init", "--server-name", SERVER, "--admin", "root@example.com")
    cli_ok("-d", str(admin), "config", "save")
    yield admin


def cli_ok(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def instance_dir(tmp_path: Path, name: str) -> Path:
    data = tmp_path / name
    data.mkdir(mode=0o700)
    (data / "server-name").write_text(SERVER + "\n")
    return data


async def test_readyz_says_degraded_and_serve_refuses_to_start(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.load(data_dir=instance_dir(tmp_path, "b"))
    runtime = await open_runtime(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, runtime=runtime)), base_url="http://b"
        ) as client:
            body = (await client.get("/readyz")).json()
            assert body["status"] == "ready" and "degraded" not in body, body
            assert body["config_sync"]["policy_dialect"] == "glob"
            good = body["policy"]["version"]

            # the admin machine switches to compat and saves: `config save` warns, B refuses the bundle
            monkeypatch.setenv("TOKENWARD_POLICY_DIALECT", "compat")
            with (shared / "userpolicy.csv").open("a") as f:
                f.write("p, dave@example.com, auth.example.com, *, login\n")
            saved = await asyncio.to_thread(CliRunner().invoke, cli, ["-d", str(shared), "config", "save"])
            assert saved.exit_code == 0, saved.output
            assert "warning: bundle v1 used policy dialect glob; v2 is saved with compat" in saved.stderr
            assert runtime.config_sync is not None and await runtime.config_sync.poll() is False

            response = await client.get("/readyz")
            body = response.json()
            assert response.status_code == 200, body  # still serving its last good policy
            assert body["status"] == "degraded" and body["degraded"] == {"config_sync": "policy_dialect_mismatch"}
            sync = body["config_sync"]
            assert sync["state"] == "degraded" and sync["reason"] == "policy_dialect_mismatch"
            assert sync["version"] == 1 and sync["last_error"]["bundle_dialect"] == "compat"
            assert body["policy"]["version"] == good and body["policy"]["dialect"] == "glob"
    finally:
        await runtime.close()

    # a new glob instance does not start on the compat bundle: one error line, exit 1, no server
    import uvicorn

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn.run reached: serve did not refuse the bundle")

    monkeypatch.setattr(uvicorn, "run", never)
    monkeypatch.setenv("TOKENWARD_POLICY_DIALECT", "glob")
    # the CLI runs its own event loop: give it a thread
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["-d", str(instance_dir(tmp_path, "c")), "serve"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
    assert "uses policy dialect compat, but this instance runs glob" in errors[0]
    assert "TOKENWARD_POLICY_DIALECT=compat" in errors[0]
    # the same instance set to compat starts on it
    monkeypatch.setenv("TOKENWARD_POLICY_DIALECT", "compat")
    runtime = await open_runtime(Settings.load(data_dir=tmp_path / "c"))
    try:
        assert runtime.config_sync is not None and runtime.config_sync.status()["version"] == 2
        assert runtime.policy.policy.dialect == "compat"
    finally:
        await runtime.close()
