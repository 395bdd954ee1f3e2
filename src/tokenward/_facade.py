"""Package facades that import their submodules on first use (PEP 562).

``from tokenward.storage import redact`` should not import SQLAlchemy, nor ``tokenward.apptokens``
the whole runtime: a one-shot CLI command pays for what it uses. A package lists its exports per
submodule and gets a module ``__getattr__``/``__dir__``::

    if TYPE_CHECKING:
        from .urls import redact
    __getattr__, __dir__ = lazy_exports(__name__, {".urls": ("redact",)})

The ``TYPE_CHECKING`` imports give type checkers the names; ``tests/test_facades.py`` checks
that both lists agree and that every export resolves.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``__getattr__`` and ``__dir__`` for ``package``, which re-exports ``exports``.

    ``exports`` maps a submodule (relative, ``".urls"``, or absolute) to the names taken from it.
    A name is imported the first time it is asked for, then stored in the package's namespace.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
