"""Every module's ``__all__``, one test for the whole package.

It fails when a listed name does not resolve, when a name is listed twice, and when a public
class or function defined in a module (or, for a package, in one of its submodules and imported
into it) is missing from ``__all__``. A name that is not part of the API gets a leading underscore.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import tokenward

#: Scripts and generated files, not importable API: PAM runs pam_module under the system python;
#: migrations are loaded by alembic.
_SKIP = ("tokenward.__main__", "tokenward.hostpam.pam_module", "tokenward.storage.migrations")
#: Route, page and command modules: their API is the router or Typer app they register handlers on.
_HANDLERS = ("tokenward.cli", "tokenward.web.routes", "tokenward.web.ui")


def _modules() -> list[str]:
    names = ["tokenward"]
    for info in pkgutil.walk_packages(tokenward.__path__, "tokenward."):
        if not info.name.startswith(_SKIP):
            names.append(info.name)
    return sorted(names)


def _defined_here(module: ModuleType) -> list[str]:
    name = module.__name__
    is_package = hasattr(module, "__path__")
    found = []
    for attr, value in vars(module).items():
        if attr.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        origin = str(getattr(value, "__module__", ""))
        if origin == name or (is_package and origin.startswith(name + ".")):
            found.append(attr)
    return found


@pytest.mark.parametrize("name", _modules())
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    if name.startswith(_HANDLERS):
        for attr in getattr(module, "__all__", ()):
            assert getattr(module, attr, None) is not None, f"{name}.__all__ lists {attr!r}, which does not resolve"
        return
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    for attr in exported:
        assert getattr(module, attr, None) is not None, f"{name}.__all__ lists {attr!r}, which does not resolve"
    missing = sorted(set(_defined_here(module)) - set(exported))
    assert not missing, f"public names of {name} missing from __all__ (or make them private): {missing}"
