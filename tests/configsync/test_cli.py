"""`tokenward config save|get|status|keygen` and the root --saveconfig/--getconfig, against a moto S3."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenward.cli.main import app
from tokenward.configsync import ConfigKey
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.storage.blobs import S3Config

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_config: S3Config) -> S3Config:
    for key in list(os.environ):
        if key.startswith(("TOKENWARD_", "HEXAEIGHT_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("TOKENWARD_S3_URL", str(s3_config.url))
    monkeypatch.setenv("TOKENWARD_S3_BUCKET", s3_config.bucket)
    monkeypatch.setenv("TOKENWARD_S3_ACCESS_KEY", str(s3_config.access_key))
    monkeypatch.setenv("TOKENWARD_S3_SECRET_KEY", str(s3_config.secret_key))
    code, _, err = run("init", "--server-name", "auth.example.com", "--admin", "root@example.com")
    assert code == 0, err
    return s3_config


def test_seed_procedure_save_then_get_on_another_instance(
    env: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ConfigKey.generate()
    monkeypatch.setenv("TOKENWARD_CONFIG_KEY", key)
    code, out, err = run("--saveconfig")
    assert code == 0, err
    assert "- Model Configuration Saved Successfully." in out
    assert "- User Policy Configuration Saved Successfully." in out
    assert "- Time Code Saved Successfully. (sealed)" in out
    assert "Bundle v1" in out
    # a second instance: only the server name and the shared variables
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("TOKENWARD_SERVER_NAME", "auth.example.com")
    code, out, err = run("--getconfig")
    assert code == 0, err
    assert "- Time Code Downloaded Successfully." in out
    for name in ("userpolicy.csv", "timecode.json", "clientids.json", "apptoken.key"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert oct((tmp_path / "b" / "timecode.json").stat().st_mode & 0o777) == "0o600"
    code, out, _ = run("config", "status")
    assert code == 0 and "differs" not in out and "Last-known-good copy: v1 (same)" in out


def test_get_and_status_show_the_bundles_dialect_and_warn_on_a_mismatch(
    env: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENWARD_CONFIG_KEY", ConfigKey.generate())
    monkeypatch.setenv("TOKENWARD_POLICY_DIALECT", "compat")
    assert run("config", "save")[0] == 0
    # another machine still on the default glob
    monkeypatch.delenv("TOKENWARD_POLICY_DIALECT")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("TOKENWARD_SERVER_NAME", "auth.example.com")
    code, out, err = run("--getconfig")
    assert code == 0, err  # the files are written; serve is where the bundle is refused
    assert "Policy dialect: compat in the bundle, glob on this machine (TOKENWARD_POLICY_DIALECT) - MISMATCH" in out
    assert err.startswith("warning: bundle v1 uses policy dialect compat but TOKENWARD_POLICY_DIALECT is glob here")
    assert "set TOKENWARD_POLICY_DIALECT=compat on this machine" in err
    code, out, err = run("config", "status")
    assert code == 2 and "MISMATCH" in out and "differs" not in out and "warning:" in err
    monkeypatch.setenv("TOKENWARD_POLICY_DIALECT", "compat")
    code, out, err = run("config", "status")
    assert code == 0 and "Policy dialect: compat (same as this machine)" in out and err == ""


def test_save_without_key_skips_time_code(env: S3Config) -> None:
    code, out, _ = run("config", "save")
    assert code == 0
    assert "- User Policy Configuration Saved Successfully." in out
    line = next(line for line in out.splitlines() if line.startswith("- Time Code"))
    assert "Could Not Be Saved - Skipping File" in line and "TOKENWARD_CONFIG_KEY is not set" in line


def test_status_shows_local_differences(env: S3Config, tmp_path: Path) -> None:
    assert run("config", "save")[0] == 0
    with (tmp_path / "a" / "userpolicy.csv").open("a") as f:
        f.write("p, bob@example.com, auth.example.com, *, login\n")
    code, out, _ = run("config", "status")
    assert code == 2
    assert any("userpolicy.csv" in line and "differs" in line for line in out.splitlines())
    assert any("timecode.json" in line and "only local" in line for line in out.splitlines())


def test_get_with_wrong_key(env: S3Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_CONFIG_KEY", ConfigKey.generate())
    assert run("config", "save")[0] == 0
    monkeypatch.setenv("TOKENWARD_CONFIG_KEY", ConfigKey.generate())
    code, _, err = run("config", "get")
    assert code == 1 and "sealed with config key" in err


def test_errors_are_one_line(env: S3Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENWARD_S3_BUCKET", "missing-bucket")
    code, _, err = run("config", "save")
    assert code == 1 and "missing-bucket" in err and "does not exist" in err
    assert env.secret_key is not None and env.secret_key not in err
    monkeypatch.delenv("TOKENWARD_S3_BUCKET")
    code, _, err = run("config", "get")
    assert code == 1 and "TOKENWARD_S3_BUCKET" in err
    code, _, err = run("config", "status")
    assert code == 1


def test_hexaeight_aliases(env: S3Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("URL", "BUCKET", "ACCESS_KEY", "SECRET_KEY"):
        monkeypatch.setenv(f"HEXAEIGHT_S3_{name}", os.environ[f"TOKENWARD_S3_{name}"])
        monkeypatch.delenv(f"TOKENWARD_S3_{name}")
    monkeypatch.setattr("tokenward.settings._warned_aliases", set())
    with caplog.at_level(logging.WARNING, logger="tokenward.settings"):
        code, out, err = run("config", "save")
    assert code == 0, err
    assert "Bundle v1" in out
    assert any("HEXAEIGHT_S3_BUCKET is deprecated" in r.getMessage() for r in caplog.records)


def test_keygen() -> None:
    code, out, _ = run("config", "keygen")
    assert code == 0 and ConfigKey.parse(out.strip()).key_id
    assert json.dumps(out)  # printable


def test_prune_lists_then_deletes_only_objects_no_manifest_names(env: S3Config, tmp_path: Path) -> None:
    import boto3

    assert run("config", "save")[0] == 0
    with (tmp_path / "a" / "userpolicy.csv").open("a") as f:
        f.write("p, dave@example.com, auth.example.com, *, login\n")
    assert run("config", "save")[0] == 0
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=env.url,
        aws_access_key_id=env.access_key,
        aws_secret_access_key=env.secret_key,
        region_name="us-east-1",
    )
    try:
        s3.put_object(Bucket=env.bucket, Key="other.example.com_userpolicy." + "0" * 64, Body=b"")
        s3.put_object(Bucket=env.bucket, Key="auth.example.com_notes.txt", Body=b"by hand")

        def names() -> set[str]:
            return {o["Key"] for o in s3.list_objects_v2(Bucket=env.bucket).get("Contents", [])}

        before = names()
        code, out, err = run("config", "prune")
        assert code == 0, err
        assert "auth.example.com_userpolicy." in out and "Would delete (run with --yes) 1 object(s)" in out
        assert names() == before
        code, out, err = run("config", "prune", "--yes")
        assert code == 0, err
        assert "Deleted 1 object(s) not named by bundle v2." in out
        gone = before - names()
        assert len(gone) == 1 and next(iter(gone)).startswith("auth.example.com_userpolicy.")
        assert {"other.example.com_userpolicy." + "0" * 64, "auth.example.com_notes.txt"} <= names()
    finally:
        s3.close()
    # the bundle in force still verifies whole (exit 2: the time code is only local, no config key here)
    code, out, err = run("config", "status")
    assert code == 2 and "Remote: bundle v2" in out and "userpolicy.csv           same" in out, out + err


def test_a_follower_data_dir_remembers_the_server_name(
    env: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A follower started with only TOKENWARD_SERVER_NAME: later CLI commands there, without the
    # variable, must still know the server name (they once failed with "no server name").
    monkeypatch.setenv("TOKENWARD_CONFIG_KEY", ConfigKey.generate())
    assert run("config", "save")[0] == 0
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "follower"))
    monkeypatch.setenv("TOKENWARD_SERVER_NAME", "auth.example.com")

    async def serve_preflight() -> None:  # what `tokenward serve` does before it listens
        runtime = await open_runtime(Settings.load(), listen=False)
        await runtime.close()

    asyncio.run(serve_preflight())
    monkeypatch.delenv("TOKENWARD_SERVER_NAME")
    code, out, err = run("server-name")
    assert (code, out.strip()) == (0, "auth.example.com"), err
    # `config get` into a fresh dir does the same.
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "fetched"))
    monkeypatch.setenv("TOKENWARD_SERVER_NAME", "auth.example.com")
    assert run("config", "get")[0] == 0
    assert (tmp_path / "fetched" / "server-name").read_text().strip() == "auth.example.com"


def test_save_prints_what_flips_against_the_bundle_in_force(env: S3Config, tmp_path: Path) -> None:
    code, out, _ = run("config", "save")
    assert code == 0 and "No bundle in force yet" in out
    with (tmp_path / "a" / "userpolicy.csv").open("a") as f:
        f.write("p, root@example.com, auth.example.com, TOKENWARD, deny\n")
    code, out, err = run("config", "save")  # not a terminal: no question asked, scripts keep working
    assert code == 0, err
    assert "decision(s) flip" in out and "p, root@example.com, auth.example.com, TOKENWARD, deny" in out
    assert "allow -> deny" in out and "Bundle v2" in out
    code, out, _ = run("config", "save")
    assert code == 0 and out.startswith("0 decision(s) flip") and "Bundle v3" in out


def test_save_asks_on_a_terminal(env: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenward.cli import config as config_cli

    assert run("config", "save")[0] == 0
    with (tmp_path / "a" / "userpolicy.csv").open("a") as f:
        f.write("p, carol@example.com, auth.example.com, TOKENWARD, admin\n")
    monkeypatch.setattr(config_cli, "_is_terminal", lambda: True)
    result = runner.invoke(app, ["config", "save"], input="n\n")
    assert result.exit_code == 1 and "(1 decision(s) flip)?" in result.stdout
    assert "nothing saved" in result.stderr and "Bundle v2" not in result.stdout
    result = runner.invoke(app, ["config", "save"], input="y\n")
    assert result.exit_code == 0 and "Bundle v2" in result.stdout
    with (tmp_path / "a" / "userpolicy.csv").open("a") as f:
        f.write("p, dave@example.com, auth.example.com, TOKENWARD, admin\n")
    result = runner.invoke(app, ["config", "save", "--yes"])
    assert result.exit_code == 0 and "Bundle v3" in result.stdout and "Save this configuration" not in result.stdout


def test_save_refuses_a_policy_that_does_not_load(env: S3Config, tmp_path: Path) -> None:
    assert run("config", "save")[0] == 0
    with (tmp_path / "a" / "userpolicy.csv").open("a") as f:
        f.write("p, only, three\n")
    code, out, err = run("config", "save")
    assert code == 1 and "Bundle v2" not in out
    assert err.startswith("error: the policy in ") and "nothing saved" in err and "userpolicy.csv:" in err
    assert len(err.strip().splitlines()) == 1
