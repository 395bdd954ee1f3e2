"""`tokenward audit --until/--before`: the same window and paging as /admin/audit, bad values exit 2."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tokenward.cli.main import app
from tokenward.settings import Settings
from tokenward.storage import AuditEvent, Database, SqlAuditLog
from tokenward.web.ui.audit_filters import cursor_of

runner = CliRunner()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def seed(count: int) -> list[AuditEvent]:
    """``count`` events one minute apart from T0, plus two at the same instant (paging must split them)."""

    async def run() -> list[AuditEvent]:
        async with Database.connect(Settings.load().database_url_or_default) as db:
            await db.upgrade()
            log = SqlAuditLog(db)
            stored = [
                await log.append(AuditEvent(at=T0 + timedelta(minutes=m), actor="a", action="x")) for m in range(count)
            ]
            stored.append(await log.append(AuditEvent(at=T0, actor="a", action="x", target="twin")))
            return stored

    return asyncio.run(run())


def listed(*args: str) -> tuple[list[dict[str, Any]], str]:
    r = runner.invoke(app, ["audit", "--json", *args])
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def test_until_is_exclusive_and_a_bare_date_means_the_whole_day(data_dir: Path) -> None:
    seed(5)
    events, _ = listed("--until", "2026-03-01T12:03:00Z")
    assert [e["at"] for e in events] == [(T0 + timedelta(minutes=m)).isoformat() for m in (2, 1)] + [T0.isoformat()] * 2
    events, _ = listed("--since", "2026-03-01T12:01", "--until", "2026-03-01T12:03")
    assert [e["at"] for e in events] == [(T0 + timedelta(minutes=m)).isoformat() for m in (2, 1)]
    assert len(listed("--until", "2026-03-01")[0]) == 6  # through the end of that day
    assert listed("--until", "2026-02-28")[0] == []


def test_paging_with_before_walks_every_event_once(data_dir: Path) -> None:
    stored = seed(5)
    seen: list[int] = []
    args: list[str] = []
    while True:
        page, stderr = listed("-n", "2", *args)
        seen += [e["id"] for e in page]
        if len(page) < 2:
            assert "--before" not in stderr
            break
        # A full page names the next one's cursor, the same text the /admin/audit "Older" link carries.
        assert page[-1]["cursor"] in stderr and f"--before {page[-1]['cursor']}" in stderr
        args = ["--before", str(page[-1]["cursor"])]
    assert set(seen) == {e.id for e in stored} and len(seen) == len(set(seen)) == 6
    last = stored[-2]  # the page cursor and the CLI cursor are the same format
    assert listed("-n", "1")[0][0]["cursor"] == cursor_of(last)
    text = runner.invoke(app, ["audit", "-n", "1"])
    assert text.exit_code == 0 and f"older events: add --before {cursor_of(last)}" in text.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--until", "tomorrow"], "--until"),
        (["--until", "2026-13-01"], "--until"),
        (["--since", "yesterday"], "--since"),
        (["--since", "2026-03-02", "--until", "2026-03-01T00:00"], "must be after --since"),
        (["--before", "garbage"], "--before"),
        (["--before", "12-"], "--before"),
        (["--before", "1-" + "9" * 20], "--before"),  # an id longer than any stored one
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_values_are_usage_errors(data_dir: Path, args: list[str], needle: str) -> None:
    r = runner.invoke(app, ["audit", *args])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
