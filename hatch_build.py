"""Build hook: the ``/verify`` hot path compiled with mypyc into the wheel, where a C compiler is there.

``/verify`` answers a refusal (an unknown or wrong credential) in about half the CPU time compiled as
interpreted (bench/README.md, "Compiled with mypyc"). The modules in :data:`COMPILED` are compiled to C
extensions next to their sources, which stay in the wheel: Python imports the extension when there is one.

``TOKENWARD_COMPILE`` chooses, for ``make dist`` and any wheel build:

- ``auto`` (the default): compile when mypyc and a C compiler are there, else say why on stderr and build
  the pure-Python wheel (same behaviour, slower refusals);
- ``1``: compile or fail the build;
- ``0``: the pure-Python wheel.

Editable installs (``make run``, ``make test``'s first pass) always run the sources.

Standalone, ``python hatch_build.py DIR`` makes ``DIR/tokenward``: a copy of ``src/tokenward`` with the same
modules compiled (``make compiled``; ``make test`` runs the suite against it with ``PYTHONPATH=DIR``), compiling
only when the sources changed. ``TOKENWARD_COMPILED_DIR=DIR`` makes a wheel build take its extensions from there
(compiled first if they are not current). ``python hatch_build.py --check`` says whether this machine can compile.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

ROOT = Path(__file__).resolve().parent

#: What a ``/verify`` request and its refusal run through, as paths under ``src/``.
COMPILED = tuple(
    f"tokenward/{module}.py"
    for module in (
        "apptokens/format",
        "apptokens/known",
        "apptokens/regulation",
        "apptokens/cache",
        "apptokens/service",
        "httpauth",
        "clientaddr",
        "storage/audit",
        "forwardauth/request_info",
        "forwardauth/service",
        "forwardauth/plugins/app_token",
        "forwardauth/plugins/basic",
        "web/middleware",
        "web/routes/verify",
    )
)


class CompileError(Exception):
    """The hot path could not be compiled here (no mypyc, no C compiler, or mypyc failed)."""


def missing_tools() -> str | None:
    """Why this machine cannot compile, or None."""
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy: pip install mypy)"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}; on Debian: apt-get install -y gcc python3-dev)"
    if not Path(sysconfig.get_paths()["include"], "Python.h").is_file():
        return "the Python headers are missing (on Debian: apt-get install -y python3-dev)"
    return None


def source_hash() -> str:
    """What the extensions depend on: every module of the package (compiled code relies on the types of what it
    imports), the interpreter's ABI and mypy's version."""
    import mypy.version

    digest = hashlib.sha256(f"{sysconfig.get_config_var('EXT_SUFFIX')} {mypy.version.__version__}".encode())
    for path in sorted((ROOT / "src").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _extensions(out: Path) -> list[Path]:
    return sorted(out.rglob(f"*{sysconfig.get_config_var('EXT_SUFFIX')}"))


def compile_into(out: Path) -> list[Path]:
    """``out/tokenward``: a copy of the sources with :data:`COMPILED` built next to them; the extensions made.

    When ``out`` holds extensions built from these very sources (:func:`source_hash`), the copy is refreshed (the
    templates and data files may have changed) and they are kept: nothing is compiled again."""
    why = missing_tools()
    if why is not None:
        raise CompileError(why)
    wanted = source_hash()
    stamp = out / ".source-hash"
    current = stamp.is_file() and stamp.read_text() == wanted
    kept = {p.relative_to(out): p.read_bytes() for p in _extensions(out)} if current else {}
    stamp.unlink(missing_ok=True)
    shutil.rmtree(out / "tokenward", ignore_errors=True)
    for stale in out.glob("*__mypyc*"):
        stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "src" / "tokenward", out / "tokenward", ignore=shutil.ignore_patterns("__pycache__"))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    expected = {Path(path.removesuffix(".py") + suffix) for path in COMPILED}
    if kept and expected <= set(kept):
        for relative, content in kept.items():
            (out / relative).write_bytes(content)
    else:
        # One C file per module (multi_file), compiled on every core: about half the time of one big file on two.
        setup = (
            "from setuptools import setup\nfrom mypyc.build import mypycify\n"
            f"setup(name='tokenward-hot-path', ext_modules=mypycify({list(COMPILED)!r}, opt_level='3', debug_level='0', multi_file=True))"
        )
        (out / "build").mkdir(exist_ok=True)
        (out / "build" / "setup.py").write_text(setup)
        jobs = str(os.cpu_count() or 1)
        done = subprocess.run(
            [sys.executable, "build/setup.py", "build_ext", "--inplace", "--parallel", jobs],
            cwd=out,
            capture_output=True,
            text=True,
            check=False,
        )
        shutil.rmtree(out / "build", ignore_errors=True)
        if done.returncode != 0:
            raise CompileError(f"mypyc failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        missing = [str(e) for e in sorted(expected) if not (out / e).is_file()]
        if missing:
            raise CompileError(f"mypyc made no extension for {', '.join(missing)}")
    stamp.write_text(wanted)
    return _extensions(out)


class CustomBuildHook(BuildHookInterface[Any]):
    """Adds the compiled extensions to a wheel (not to an editable install) per ``TOKENWARD_COMPILE``."""

    _workdir: tempfile.TemporaryDirectory[str] | None = None

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        mode = os.environ.get("TOKENWARD_COMPILE", "auto").strip().lower()
        if mode not in ("auto", "1", "0"):
            raise ValueError(f"TOKENWARD_COMPILE must be auto, 1 or 0, not {mode!r}")
        if self.target_name != "wheel" or version == "editable" or mode == "0":
            return
        given = os.environ.get("TOKENWARD_COMPILED_DIR")  # make compiled's copy: reused when built from these sources
        if given:
            out = Path(given)
        else:
            self._workdir = tempfile.TemporaryDirectory(prefix="tokenward-mypyc-")
            out = Path(self._workdir.name)
        try:
            extensions = compile_into(out)
        except CompileError as exc:
            if mode == "1":
                raise
            print(f"tokenward: building the pure-Python wheel: {exc}", file=sys.stderr)
            return
        for path in extensions:
            build_data["force_include"][str(path.resolve())] = path.relative_to(out).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        reason = missing_tools()
        print(reason or "this machine can compile the hot path")
        sys.exit(0 if reason is None else 1)
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        sys.exit(
            "usage: python hatch_build.py DIR   (DIR/tokenward: the sources with the hot path compiled)\n"
            "       python hatch_build.py --check   (whether this machine can compile)"
        )
    try:
        built = compile_into(Path(sys.argv[1]))
    except CompileError as exc:
        sys.exit(f"hatch_build: cannot compile: {exc}")
    print(f"compiled {len(COMPILED)} modules into {sys.argv[1]} ({len(built)} extensions)")
