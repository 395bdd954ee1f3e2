"""tokenward — a self-hosted token server.

Importing this package has no side effects: no environment reads, no files, no connections.
"""

from pathlib import Path

__version__ = "0.1.0"

__all__ = ["__version__", "compiled_modules"]


def compiled_modules(root: Path | None = None) -> list[str]:
    """The package's modules installed as C extensions (the hot path compiled with mypyc, ``hatch_build.py``);
    empty when it runs from its sources. ``root``: the package directory (this one by default)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    root = root or Path(__file__).parent
    found = []
    for path in root.rglob("*.*"):
        for suffix in EXTENSION_SUFFIXES:
            if path.name.endswith(suffix):
                found.append(".".join(("tokenward", *path.relative_to(root).parts))[: -len(suffix)])
                break  # the longest first: ".cpython-311-x86_64-linux-gnu.so" before ".so"
    return sorted(found)
