from __future__ import annotations

import asyncio
import json
import logging
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.storage.servers import REDIS_URL
from tests.storage.test_redisstate import redis  # noqa: F401 - the fixture (skips without Redis)
from tokenward.cli.main import app
from tokenward.storage.redisstate import ChangeNotices, key_prefix

runner = CliRunner()


def test_create_list_delete_and_audit(data_dir: Path) -> None:
    r = runner.invoke(app, ["app-token", "create", "--user-name", "alice@example.com", "-e", "1h30m", "-s", "read"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("twa_") and len(token) == 45
    assert stat.S_IMODE((data_dir / "apptoken.key").stat().st_mode) == 0o600

    r = runner.invoke(app, ["app-token", "list", "--json"])
    [item] = [json.loads(line) for line in r.stdout.splitlines()]
    assert item["owner"] == "alice@example.com" and item["scopes"] == ["read"]
    assert token not in r.stdout and token[17:] not in r.stdout
    assert "alice@example.com" in runner.invoke(app, ["app-token", "list"]).stdout

    assert runner.invoke(app, ["app-token", "delete", token[:16]]).exit_code == 0
    r = runner.invoke(app, ["app-token", "delete", token])
    assert r.exit_code == 1 and "no app token" in r.output

    r = runner.invoke(app, ["audit", "--json", "--since", "1h"])
    actions = [json.loads(line)["action"] for line in r.stdout.splitlines()]
    assert actions == ["apptoken.delete", "apptoken.create"]
    r = runner.invoke(app, ["audit", "--action", "apptoken.create"])
    assert "apptoken.create" in r.stdout and "apptoken.delete" not in r.stdout


@pytest.mark.parametrize("expiration", ["0", "0s", "-1h", "1y", "abc", "9999d"])
def test_bad_expirations_are_refused_with_an_example(data_dir: Path, expiration: str) -> None:
    r = runner.invoke(app, ["app-token", "create", "--user-name", "alice@example.com", "--expiration", expiration])
    assert r.exit_code == 1
    assert "error: expiry" in r.output and ("72h" in r.output or "maximum" in r.output)


def test_bad_since(data_dir: Path) -> None:
    r = runner.invoke(app, ["audit", "--since", "yesterday"])
    assert r.exit_code == 2 and "--since" in r.output  # a usage error, like every bad audit option


def test_world_readable_key_is_refused(data_dir: Path) -> None:
    assert runner.invoke(app, ["app-token", "list"]).exit_code == 0
    (data_dir / "apptoken.key").chmod(0o644)
    r = runner.invoke(app, ["app-token", "list"])
    assert r.exit_code == 1 and "chmod 600" in r.output


async def test_delete_announces_the_revocation_to_other_instances(
    data_dir: Path,
    redis: Any,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A unique server name: the channel is per deployment, so parallel runs do not hear each other.
    server_name = f"cli-{secrets.token_hex(4)}.example.com"
    (data_dir / "server-name").write_text(server_name + "\n")
    monkeypatch.setenv("TOKENWARD_REDIS_URL", REDIS_URL)
    notices: list[bool] = []
    listener = ChangeNotices(redis, prefix=key_prefix(server_name))  # what another instance runs
    listener.start(lambda: notices.append(True))
    try:
        assert await listener.wait_subscribed(5.0)
        # The CLI runs its own event loop (asyncio.run): give it a thread, as a shell would a process.
        created = await asyncio.to_thread(runner.invoke, app, ["app-token", "create", "-u", "alice@example.com"])
        assert created.exit_code == 0, created.output
        token = created.stdout.strip()
        woken = len(notices)  # the create woke it too
        deleted = await asyncio.to_thread(runner.invoke, app, ["app-token", "delete", token])
        assert deleted.exit_code == 0, deleted.output
        for _ in range(1000):  # a generous deadline, not a clock
            if len(notices) > woken:
                break
            await asyncio.sleep(0.01)
        assert len(notices) > woken
    finally:
        await listener.close()


def test_delete_without_redis_still_deletes_and_warns(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = runner.invoke(app, ["app-token", "create", "-u", "alice@example.com"]).stdout.strip()
    monkeypatch.setenv("TOKENWARD_REDIS_URL", "redis://:hunter2-secret@127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING):
        r = runner.invoke(app, ["app-token", "delete", token])
    assert r.exit_code == 0, r.output
    assert f"deleted app token twa_{token[4:16]}" in r.stdout
    assert "change wake-up not published (redis_unavailable)" in caplog.text
    assert "hunter2" not in r.output + caplog.text
    assert "retrying" not in caplog.text  # a one-shot command does not subscribe to other instances' notices
    monkeypatch.delenv("TOKENWARD_REDIS_URL")
    assert runner.invoke(app, ["app-token", "list", "--json"]).stdout == ""


async def test_the_cli_services_ask_the_one_admin_check(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app-token commands' service (built as serve builds it) asks PolicyHolder.is_admin: no policy, no admin."""
    from tokenward.runtime import open_runtime
    from tokenward.settings import Settings

    admin = "admin@example.com"
    (data_dir / "userpolicy.csv").write_text(f"p, {admin}, auth.example.com, TOKENWARD, admin\n", encoding="utf-8")
    runtime = await open_runtime(Settings.load(), listen=False, eager=False)
    try:
        assert runtime.app_tokens.is_admin(admin) and not runtime.app_tokens.is_admin("bob@example.com")
        monkeypatch.setattr(runtime.policy, "_policy", None)  # as before the first successful load
        assert not runtime.app_tokens.is_admin(admin)
    finally:
        await runtime.close()
