"""Package facades import their submodules on first use (tokenward/_facade.py)."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

FACADES = ("tokenward.storage", "tokenward.apptokens", "tokenward.forwardauth", "tokenward.configsync")


def type_checking_imports(package: str) -> dict[str, str]:
    """name -> absolute module, from the package's ``if TYPE_CHECKING:`` block."""
    source = Path(importlib.import_module(package).__file__ or "").read_text(encoding="utf-8")
    names: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                module = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package)
                names.update({alias.name: module for alias in stmt.names})
    return names


@pytest.mark.parametrize("package", FACADES)
def test_every_export_resolves_to_the_module_type_checkers_see(package: str) -> None:
    module = importlib.import_module(package)
    declared = type_checking_imports(package)
    assert sorted(declared) == sorted(module.__all__)
    for name, source in declared.items():
        assert getattr(module, name) is getattr(importlib.import_module(source), name), name
    assert set(module.__all__) <= set(dir(module))


@pytest.mark.parametrize("package", FACADES)
def test_unknown_name_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = importlib.import_module(package).Nope


def imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_packages_imports_no_driver_or_framework() -> None:
    modules = imported_after("\n".join(f"import {package}" for package in FACADES))
    assert not [m for m in modules if m.split(".")[0] in ("sqlalchemy", "alembic", "authlib", "boto3", "jsonpath")]


def test_blob_stores_and_the_config_bundle_do_not_import_sqlalchemy() -> None:
    # `tokenward config save|get` works on files and S3 only.
    modules = imported_after("import tokenward.storage.blobs, tokenward.cli.config")
    assert "tokenward.cli.config" in modules
    assert not [m for m in modules if m.split(".")[0] in ("sqlalchemy", "alembic")]
