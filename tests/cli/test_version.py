"""`tokenward --version` prints the installed distribution's version."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

import tokenward
from tokenward.cli.main import app


def test_version_option_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"tokenward {tokenward.__version__}\n"
    # The module constant and the installed metadata (pyproject.toml) must not drift apart.
    assert tokenward.__version__ == version("tokenward")


def test_version_option_from_the_console_script() -> None:
    script = Path(sys.executable).parent / "tokenward"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"tokenward {version('tokenward')}"
    assert done.stderr == ""
