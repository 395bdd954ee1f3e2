"""POST /api/policy/diff, GET /api/policy/decisions, the SQL sink, and `policy diff --from-log`."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.apptokens.access import MANAGE_SCOPE
from tokenward.cli.main import app as cli
from tokenward.policy import can_login
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings

ADMIN = "admin@example.com"
USERS = (
    f"p, {ADMIN}, auth.example.com, TOKENWARD, admin\n"
    "p, *@example.com, auth.example.com, APP1, login\n"
    "p, eve@example.com, auth.example.com, APP1, deny\n"
)
DENY_ALL = USERS + "p, *@example.com, auth.example.com, APP1, deny\n"


def make_settings(data: Path, **extra: object) -> Settings:
    init_data_dir(data)
    (data / "userpolicy.csv").write_text(USERS, encoding="utf-8")
    return Settings.load(
        data_dir=data,
        max_body_bytes=65536,
        decision_log_enabled=True,
        decision_log_sample_rate=1.0,
        decision_log_sink="sql",
        **extra,
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    clear_tokenward_env(monkeypatch)
    return make_settings(tmp_path / "data")


@pytest.fixture
async def admin_client(runtime: Runtime, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    _, token = await runtime.app_tokens.create(owner=ADMIN, created_by=ADMIN, scopes=[MANAGE_SCOPE])
    auth = base64.b64encode(f"{ADMIN}:{token}".encode()).decode()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"authorization": f"Basic {auth}"}
    ) as c:
        yield c


def login(runtime: Runtime, subject: str) -> bool:
    return can_login(runtime.policy.policy, subject, "auth.example.com", "APP1")


async def test_decisions_are_exported_pseudonymous_and_replayed_by_the_diff(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    assert login(runtime, "carol@example.com") and not login(runtime, "eve@example.com")
    r = await admin_client.get("/api/policy/decisions")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in r.text.splitlines()]
    logins = [rec for rec in records if rec["act"] == "login"]
    assert [rec["decision"] for rec in logins] == ["allow", "deny"]
    assert all(re.fullmatch(r"h-[0-9a-f]{24}@example\.com", rec["sub"]) for rec in logins)
    assert "carol" not in r.text and "eve@" not in r.text
    assert logins[1]["row"] == "userpolicy.csv:3"  # the row names eve: only its place is kept
    assert logins[0]["row"] == "userpolicy.csv:2  p, *@example.com, auth.example.com, APP1, login"
    assert any(rec["act"] == "admin" for rec in records)  # the admin check of this very request

    r = await admin_client.post("/api/policy/diff", json={"files": {"userpolicy.csv": DENY_ALL}, "examples": 50})
    assert r.status_code == 200, r.text
    body = r.json()
    (group,) = body["groups"]
    assert group["change"] == "added" and group["row"] == "p, *@example.com, auth.example.com, APP1, deny"
    flipped = {example["request"]["sub"] for example in group["examples"]}
    assert logins[0]["sub"] in flipped  # the recorded (pseudonymous) carol
    assert body["rows"]["userpolicy.csv"] == {"added": 1, "removed": 0}


async def test_diff_of_a_dialect_only(admin_client: httpx.AsyncClient) -> None:
    # '*@example.com' is no regular expression: the move to compat is refused, naming the row.
    r = await admin_client.post("/api/policy/diff", json={"dialect": "compat"})
    assert r.status_code == 400 and r.json()["error"] == "policy_regex_invalid"
    assert r.json()["detail"].startswith("userpolicy.csv:2: ")
    compatible = USERS.replace("*@example.com", "/*@example.com")
    r = await admin_client.post("/api/policy/diff", json={"files": {"userpolicy.csv": compatible}, "dialect": "compat"})
    assert r.status_code == 200, r.text
    assert r.json()["new"]["dialect"] == "compat" and r.json()["old"]["dialect"] == "glob"
    assert r.json()["flips"] > 0  # compat searches unanchored: 'x@example.comx' now logs in


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"files": {"../etc/passwd": "x"}}, 400, "policy_file_unknown"),
        ({"files": {"userpolicy.csv": "p, only, three\n"}}, 400, "policy_row_invalid"),
        ({"files": {"userpolicy.csv": "p, (bad, d, o, login\n"}, "dialect": "compat"}, 400, "policy_regex_invalid"),
        ({"files": {"model.conf": "[nonsense\n"}}, 400, "policy_model_invalid"),
        ({}, 400, "policy_diff_empty"),
        ({"dialect": "regex"}, 422, "invalid_request"),
        ({"files": {"userpolicy.csv": 5}}, 422, "invalid_request"),
    ],
)
async def test_diff_bad_input(admin_client: httpx.AsyncClient, body: dict[str, object], status: int, code: str) -> None:
    r = await admin_client.post("/api/policy/diff", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    if code == "policy_row_invalid":
        assert "userpolicy.csv:1" in r.json()["detail"]


async def test_decisions_404_when_the_log_is_off(runtime: Runtime, admin_client: httpx.AsyncClient) -> None:
    stats = (await admin_client.get("/api/policy")).json()["decision_log"]
    assert stats["enabled"] is True and stats["sample_rate"] == 1.0 and stats["hash_mode"] == "local"
    assert stats["kept"] >= 1 and stats["dropped"] == 0  # at least this request's admin check
    runtime.decision_log = None
    assert (await admin_client.get("/api/policy")).json()["decision_log"] == {"enabled": False}
    r = await admin_client.get("/api/policy/decisions")
    assert r.status_code == 404 and r.json()["error"] == "decision_log_disabled"


async def test_non_admins_cannot_read_decisions(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/policy/decisions")
    assert r.status_code == 401
    r = await client.post("/api/policy/diff", json={"dialect": "compat"})
    assert r.status_code == 401


async def test_metrics_count_the_decisions(runtime: Runtime, client: httpx.AsyncClient) -> None:
    login(runtime, "carol@example.com")
    text = (await client.get("/metrics")).text
    assert 'tokenward_decision_log_decisions{outcome="kept"} 1.0' in text
    assert 'tokenward_decision_log_decisions{outcome="dropped"} 0.0' in text


async def test_sql_sink_writes_reads_and_prunes(runtime: Runtime) -> None:
    assert runtime.decision_sink is not None and runtime.decision_log is not None
    login(runtime, "carol@example.com")
    login(runtime, "dave@example.com")
    assert await runtime.flush_decisions() == 2
    assert await runtime.flush_decisions() == 0  # nothing new
    sink = runtime.decision_sink
    stored = await sink.recent(10)
    assert [r.decision for r in stored] == ["allow", "allow"]
    assert [r.sub for r in stored] == [r.sub for r in runtime.decision_log.records()]
    assert stored[0].row == runtime.decision_log.records()[0].row
    await sink.flush(runtime.decision_log, now=time.time() + 8 * 86400)  # past the 7-day retention
    assert await sink.recent(10) == []


def test_policy_diff_from_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    settings = make_settings(tmp_path / "data", decision_log_hash_subjects="off")

    async def record() -> None:
        runtime = await open_runtime(settings)
        try:
            login(runtime, "carol@example.com")
            login(runtime, "eve@example.com")
            await runtime.flush_decisions()
        finally:
            await runtime.close()

    asyncio.run(record())
    edited = tmp_path / "edited.csv"
    edited.write_text(DENY_ALL, encoding="utf-8")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(settings.data_dir))
    args = ["policy", "diff", str(settings.data_dir), f"userpolicy.csv={edited}", "--from-log", "--no-generate"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert body["questions"] == 2 and body["flips"] == 1
    assert body["groups"][0]["examples"][0]["request"]["sub"] == "carol@example.com"


def test_from_log_without_the_table_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data)
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(data))
    result = CliRunner().invoke(cli, ["policy", "diff", str(data), str(data), "--from-log"])
    assert result.exit_code == 2
    assert "tokenward db upgrade" in result.stderr and "Traceback" not in result.output
