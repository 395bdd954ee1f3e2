from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenward.cli.db import app
from tokenward.storage.migrations import head_revision


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("TOKENWARD_DATABASE_URL", "TOKENWARD_DATA_DIR", "TOKENWARD_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_upgrade_then_current(runner: CliRunner, database_url: str) -> None:
    before = runner.invoke(app, ["current", "--database-url", database_url])
    assert before.exit_code == 0, before.output
    assert "no schema yet" in before.output

    result = runner.invoke(app, ["upgrade", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"database schema at revision {head_revision()} (head)"

    again = runner.invoke(app, ["upgrade", "--database-url", database_url])
    assert again.exit_code == 0, again.output

    after = runner.invoke(app, ["current", "--database-url", database_url])
    assert after.exit_code == 0, after.output
    assert after.output.strip() == f"{head_revision()} (head)"


def test_default_database_is_sqlite_in_the_data_dir(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tokenward.db").is_file()


def test_database_url_from_environment(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOKENWARD_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    result = runner.invoke(app, ["upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").is_file()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oracle://scott:tiger@h/db", "unsupported database scheme 'oracle'"),
        (
            "postgresql://tw:tiger@127.0.0.1:1/tw",
            "cannot use the database at postgresql+psycopg://tw:***@127.0.0.1:1/tw",
        ),
    ],
)
@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_failures_are_one_line_without_traceback_or_password(
    runner: CliRunner, url: str, expected: str, command: str
) -> None:
    result = runner.invoke(app, [command, "--database-url", url])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "tiger" not in result.output
    assert "Traceback" not in result.output
