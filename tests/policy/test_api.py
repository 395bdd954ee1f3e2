"""Import hygiene, samples and the CLI (``__all__``: tests/test_public_api.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenward.cli.policy import app
from tokenward.policy import POLICY_FILES, build_policy, lint, read_sources, sample_files, write_samples

from .helpers import uncommented


def test_import_has_no_side_effects() -> None:
    code = "import sys, tokenward.policy; assert 'casbin' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_samples_load_clean_and_allow_nothing(tmp_path: Path) -> None:
    written = write_samples(tmp_path, server_name="auth.example.com")
    assert sorted(p.name for p in written) == sorted(POLICY_FILES)
    assert all(p.stat().st_mode & 0o077 == 0 for p in written)
    assert write_samples(tmp_path) == []
    policy = build_policy({n: t.encode() for n, t in sample_files("auth.example.com").items()})
    assert all(len(engine.rules) == 0 for engine in policy.engines.values())
    assert "auth.example.com" in sample_files("auth.example.com")["userpolicy.csv"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"TOKENWARD_DATA_DIR": str(tmp_path)}


def test_cli(tmp_path: Path, env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["samples"], env=env).exit_code == 0
    assert runner.invoke(app, ["lint"], env=env).exit_code == 0
    (tmp_path / "userpolicy.csv").write_text("p, *@example.com, auth.example.com, C1, login\np, *@x, s, C1, logon\n")
    result = runner.invoke(app, ["check", "a@example.com", "auth.example.com", "C1", "login"], env=env)
    assert result.exit_code == 0 and "ALLOW" in result.output and "userpolicy.csv:1" in result.output
    result = runner.invoke(app, ["check", "a@example.org", "auth.example.com", "C1", "login", "--json"], env=env)
    assert result.exit_code == 1 and '"decision": "deny"' in result.output
    result = runner.invoke(app, ["lint"], env=env)
    assert result.exit_code == 1 and "userpolicy.csv:2: unknown-action" in result.output
    (tmp_path / "userpolicy.csv").write_text("p, a(b, s, C1, login\n")
    assert runner.invoke(app, ["lint", "--dialect", "compat"], env=env).exit_code == 2
    result = runner.invoke(app, ["show", "--json"], env=env)
    assert result.exit_code == 0 and '"version"' in result.output


def seed_rows(directory: Path) -> None:
    """Seed 002's rows as written (the sample files, uncommented)."""
    for name, text in sample_files().items():
        (directory / name).write_text(uncommented(text) if name.endswith(".csv") else text)


def test_lint_groups_dialect_notes_and_keeps_problems_visible(tmp_path: Path, env: dict[str, str]) -> None:
    # Seed 002's rows once printed 90 dialect-differs lines and exited 1 in the default dialect.
    runner = CliRunner()
    seed_rows(tmp_path)
    result = runner.invoke(app, ["lint"], env=env)
    assert result.exit_code == 0, result.output  # notes alone: the rows load and mean what glob says
    lines = result.stdout.splitlines()
    assert len(lines) < 20, result.stdout
    assert sum("dialect-differs" in line for line in lines) <= 5  # a header and a few examples, not 90 lines
    assert result.stdout.count("compat searches") == 1  # the difference is explained once
    notes = [f for f in lint(read_sources(tmp_path)) if f.code == "dialect-differs"]
    assert f"{len(notes)} patterns" in result.stdout
    assert "0 problem(s)" in result.stderr
    # --all lists every note; --strict makes notes fail.
    every = runner.invoke(app, ["lint", "--all"], env=env)
    assert sum(": dialect-differs:" in line for line in every.stdout.splitlines()) == len(notes)
    assert runner.invoke(app, ["lint", "--strict"], env=env).exit_code == 1
    # A real problem among them is listed on its own line and fails the lint.
    with (tmp_path / "userpolicy.csv").open("a") as policy:
        policy.write("p, alice@example.com, mytoken.server, C1, logon\n")
    result = runner.invoke(app, ["lint"], env=env)
    assert result.exit_code == 1
    problem = [line for line in result.stdout.splitlines() if ": unknown-action:" in line]
    assert len(problem) == 1 and problem[0].startswith("userpolicy.csv:")
    assert result.stdout.index("unknown-action") < result.stdout.index("dialect-differs")  # problems first
    assert "1 problem(s)" in result.stderr
    # JSON keeps every finding, each with its severity.
    body = json.loads(runner.invoke(app, ["lint", "--json"], env=env).stdout)
    assert {f["severity"] for f in body if f["code"] == "dialect-differs"} == {"note"}
    assert [f["severity"] for f in body if f["code"] == "unknown-action"] == ["problem"]


def test_lint_in_compat_groups_unescaped_dots(tmp_path: Path, env: dict[str, str]) -> None:
    seed_rows(tmp_path)
    result = CliRunner().invoke(app, ["lint", "--dialect", "compat"], env=env)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) < 30 and "unescaped-dot" in result.stdout
