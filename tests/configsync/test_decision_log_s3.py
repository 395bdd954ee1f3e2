"""The decision log's S3 sink against a moto S3: write, read back, expire, replay with --from-log."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import init_data_dir
from tokenward.cli.main import app
from tokenward.policy import PolicyHolder, build_policy, can_login
from tokenward.policy.decisionlog import DecisionLog
from tokenward.storage.blobs import S3BlobStore, S3Config
from tokenward.storage.decisions import BlobDecisionSink

SERVER = "auth.example.com"
USERS = b"p, *@example.com, auth.example.com, APP1, login\np, eve@example.com, auth.example.com, APP1, deny\n"


def record(log: DecisionLog, *subjects: str) -> None:
    holder = PolicyHolder(policy=build_policy({"userpolicy.csv": USERS}))
    holder.set_observer(log.observe)
    for subject in subjects:
        can_login(holder.policy, subject, SERVER, "APP1")


async def test_s3_sink_writes_reads_back_and_expires(s3_config: S3Config) -> None:
    store = S3BlobStore(s3_config)
    sink = BlobDecisionSink(store, server=SERVER, instance="host/1:22", retention_seconds=86400)
    log = DecisionLog(hash_mode="off")
    record(log, "carol@example.com", "eve@example.com")
    assert await sink.flush(log, now=1_000_000.0) == 2
    assert await sink.flush(log, now=1_000_001.0) == 0  # nothing pending: no object
    record(log, "dave@example.com")
    assert await sink.flush(log, now=1_000_002.0) == 1
    names = await store.list("")
    assert names == [
        f"decisions_{SERVER}_000001000000000-host_1_22.jsonl",
        f"decisions_{SERVER}_000001000002000-host_1_22.jsonl",
    ]
    assert not any(name.startswith(SERVER + "_") for name in names)  # `config prune` never sees them
    assert [r.sub for r in await sink.recent(10)] == ["carol@example.com", "eve@example.com", "dave@example.com"]
    assert [r.sub for r in await sink.recent(1)] == ["dave@example.com"]
    await store.put(names[0], b'{"sub": "x"}\nnot json\n' + (await store.get(names[0])).data)  # type: ignore[union-attr]
    assert len(await sink.recent(10)) == 4  # a damaged line costs that line
    record(log, "frank@example.com")
    await sink.flush(log, now=1_000_000.0 + 2 * 86400)  # past the retention: older objects go
    assert len(await store.list("")) == 1
    await sink.close()


def test_from_log_reads_the_s3_sink(s3_config: S3Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("TOKENWARD_", "HEXAEIGHT_")):
            monkeypatch.delenv(key)
    data = tmp_path / "data"
    init_data_dir(data, SERVER)
    (data / "userpolicy.csv").write_bytes(USERS)
    for name, value in {
        "DATA_DIR": str(data),
        "S3_URL": str(s3_config.url),
        "S3_BUCKET": s3_config.bucket,
        "S3_ACCESS_KEY": str(s3_config.access_key),
        "S3_SECRET_KEY": str(s3_config.secret_key),
        "DECISION_LOG_SINK": "s3",
    }.items():
        monkeypatch.setenv(f"TOKENWARD_{name}", value)
    log = DecisionLog(hash_mode="off")
    record(log, "carol@example.com", "eve@example.com")

    async def write() -> None:
        sink = BlobDecisionSink(S3BlobStore(s3_config), server=SERVER, instance="a", retention_seconds=86400)
        await sink.flush(log, now=2_000_000_000.0)
        await sink.close()

    asyncio.run(write())
    edited = tmp_path / "edited.csv"
    edited.write_bytes(USERS + b"p, *@example.com, auth.example.com, APP1, deny\n")
    args = ["policy", "diff", str(data), f"userpolicy.csv={edited}", "--from-log", "--no-generate", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["questions"] == 2 and body["flips"] == 1
    assert body["groups"][0]["examples"][0]["request"]["sub"] == "carol@example.com"


def test_s3_sink_without_a_bucket_is_refused_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenward.errors import ConfigError
    from tokenward.settings import Settings

    for key in list(os.environ):
        if key.startswith(("TOKENWARD_", "HEXAEIGHT_")):
            monkeypatch.delenv(key)
    with pytest.raises(ConfigError, match="TOKENWARD_DECISION_LOG_SINK=s3 needs TOKENWARD_S3_BUCKET"):
        Settings.load(data_dir=tmp_path, decision_log_enabled=True, decision_log_sink="s3")
    assert Settings.load(data_dir=tmp_path, decision_log_sink="s3").decision_log_sink == "s3"  # off: not needed
