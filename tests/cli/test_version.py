"""`tokenward --version` prints the installed distribution's version."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner

import tokenward
from tokenward.cli.main import app


def expected_version(number: str) -> str:
    """What --version prints: the number, and how many modules are compiled when they are (make test's second
    pass, tests/conftest.py: all of them, or the run stops)."""
    compiled = tokenward.compiled_modules()
    return f"tokenward {number}" + (f" (compiled: {len(compiled)} modules)" if compiled else "")


def test_version_option_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected_version(tokenward.__version__) + "\n"
    # The module constant and the installed metadata (pyproject.toml) must not drift apart.
    assert tokenward.__version__ == version("tokenward")


def test_version_option_from_the_console_script() -> None:
    script = Path(sys.executable).parent / "tokenward"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected_version(version("tokenward"))
    assert done.stderr == ""


def test_compiled_modules_are_the_extension_files_of_the_package(tmp_path: Path) -> None:
    from importlib.machinery import EXTENSION_SUFFIXES

    (tmp_path / "web" / "routes").mkdir(parents=True)
    (tmp_path / "web" / "routes" / f"verify{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    (tmp_path / "web" / "routes" / "verify.py").write_text("")
    (tmp_path / "httpauth.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert tokenward.compiled_modules(tmp_path) == ["tokenward.web.routes.verify"]
    assert tokenward.compiled_modules(tmp_path / "web" / "routes" / "nothing") == []
