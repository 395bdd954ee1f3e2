"""The root command imports command groups only when they run (cli/_lazy.py), without changing the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.cli._lazy import LazyCommand, LazyGroup, load_command
from tokenward.cli.main import LAZY_COMMANDS, app

# Libraries that only some commands need; `tokenward --help` and `--version` must not pay for them.
HEAVY = ("sqlalchemy", "alembic", "authlib", "boto3", "uvicorn", "starlette", "jinja2", "httpx", "casbin")


def imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


def root_group() -> LazyGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    return group


def test_stand_ins_match_the_real_commands() -> None:
    group = root_group()
    for spec in LAZY_COMMANDS:
        stand_in = group.commands[spec.name]
        assert isinstance(stand_in, LazyCommand)
        real = load_command(spec)
        assert real.name == spec.name
        assert (real.help or "").split("\n\n")[0] == spec.help, f"{spec.name}: help text differs from the command's"
        assert bool(getattr(real, "commands", None)) == spec.group, f"{spec.name}: group={spec.group} is wrong"


def test_root_help_is_the_same_with_every_command_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    lazy = runner.invoke(app, ["--help"], terminal_width=120)
    assert lazy.exit_code == 0, lazy.output
    built: list[LazyGroup] = []
    lazy_init = LazyGroup.__init__

    def eager_init(self: LazyGroup, *args: Any, **kwargs: Any) -> None:
        lazy_init(self, *args, **kwargs)
        self.load_all()
        built.append(self)

    monkeypatch.setattr(LazyGroup, "__init__", eager_init)
    loaded = runner.invoke(app, ["--help"], terminal_width=120)
    assert loaded.exit_code == 0, loaded.output
    assert built and not [name for name, cmd in built[0].commands.items() if isinstance(cmd, LazyCommand)]
    assert lazy.stdout == loaded.stdout
    for spec in LAZY_COMMANDS:
        assert spec.name in lazy.stdout


@pytest.mark.parametrize("spec", LAZY_COMMANDS, ids=lambda spec: spec.name)
def test_each_lazy_command_runs_its_own_help(spec: object) -> None:
    assert hasattr(spec, "name")
    result = CliRunner().invoke(app, [spec.name, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.stdout and f" {spec.name}" in result.stdout


def test_unknown_command_still_suggests_a_close_name() -> None:
    result = CliRunner().invoke(app, ["polic", "check"])
    assert result.exit_code == 2
    assert "No such command 'polic'" in result.output and "'policy'" in result.output


def test_help_and_version_import_no_heavy_library() -> None:
    assert heavy_in(imported_after("from tokenward.cli.main import app")) == []
    modules = imported_after(
        "from typer.testing import CliRunner\nfrom tokenward.cli.main import app\n"
        "assert CliRunner().invoke(app, ['--version']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0"
    )
    assert heavy_in(modules) == []
    assert "tokenward.settings" not in modules and "tokenward.cli.app_token" not in modules


def test_a_light_command_imports_only_its_group() -> None:
    modules = imported_after(
        "from typer.testing import CliRunner\nfrom tokenward.cli.main import app\n"
        "assert CliRunner().invoke(app, ['app-hash', 'https://app.example.com']).exit_code == 0"
    )
    assert "tokenward.cli.client" in modules
    assert heavy_in(modules) == []
    assert not {"tokenward.cli.app_token", "tokenward.cli.db", "tokenward.runtime"} & modules


def test_commands_import_only_what_they_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clear_tokenward_env(monkeypatch)
    init_data_dir(tmp_path / "data")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "data"))
    invoke = (
        "from typer.testing import CliRunner\nfrom tokenward.cli.main import app\n"
        "result = CliRunner().invoke(app, {})\nassert result.exit_code == 0, result.output"
    )
    # Reading the server name needs settings and the data dir: no SQL, no web stack.
    assert heavy_in(imported_after(invoke.format(["server-name"]))) == []
    # App tokens need the database, not the /verify plugins, OIDC or templates.
    modules = imported_after(invoke.format(["app-token", "list"]))
    assert "sqlalchemy" in modules
    assert not [
        m for m in modules if m.split(".")[0] in ("httpx", "authlib", "jinja2", "jsonpath", "starlette", "uvicorn")
    ]
