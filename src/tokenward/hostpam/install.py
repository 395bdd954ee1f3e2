"""Put the host side where the system python finds it, and the PAM lines that use it.

``tokenward host install`` (run from the project's environment, as root) copies this package to
``<lib>/tokenward_hostpam/`` and writes two entry points whose only job is to put ``<lib>`` on
``sys.path``: ``pam_tokenward.py`` for pam_python.so and ``tokenward-pam-exec`` for pam_exec.so.
The path is written into them (no reliance on ``__file__``, which pam_python may not set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["DEFAULT_LIB_DIR", "PAM_PYTHON_PATHS", "install", "pam_lines", "pam_python_path"]

DEFAULT_LIB_DIR = Path("/usr/local/lib/tokenward-pam")
PACKAGE = "tokenward_hostpam"
#: Where Debian puts pam_python.so (libpam-python installs it outside the multiarch directory).
PAM_PYTHON_PATHS = ("/lib/security/pam_python.so", "/usr/lib/security/pam_python.so")
MODULES = ("__init__.py", "config.py", "client.py", "flow.py", "qr.py", "pam_exec.py", "pam_module.py", "install.py")

_PAM_PYTHON_STUB = '''"""pam_python.so entry point of tokenward system login (written by `tokenward host install`)."""
import sys

sys.path.insert(0, {lib!r})
from tokenward_hostpam.pam_module import pam_sm_authenticate, pam_sm_setcred  # noqa: E402,F401
'''

_PAM_EXEC_STUB = '''#!/usr/bin/python3 -I
"""pam_exec.so helper of tokenward system login (written by `tokenward host install`)."""
import os
import sys

sys.path.insert(0, {lib!r})
from tokenward_hostpam.pam_exec import main  # noqa: E402

sys.exit(main(sys.argv[1:], os.environ, sys.stdin.buffer))
'''


def install(lib_dir: Path = DEFAULT_LIB_DIR) -> list[Path]:
    """Copy the package and write the entry points (root-owned, not writable by others); the paths written."""
    source = Path(__file__).resolve().parent
    target = lib_dir / PACKAGE
    target.mkdir(mode=0o755, parents=True, exist_ok=True)
    written = []
    for name in MODULES:
        shutil.copyfile(source / name, target / name)
        os.chmod(target / name, 0o644)
        written.append(target / name)
    for name, text, mode in (
        ("pam_tokenward.py", _PAM_PYTHON_STUB, 0o644),
        ("tokenward-pam-exec", _PAM_EXEC_STUB, 0o755),
    ):
        path = lib_dir / name
        path.write_text(text.format(lib=str(lib_dir)), encoding="utf-8")
        os.chmod(path, mode)
        written.append(path)
    return written


def pam_python_path() -> str:
    for candidate in PAM_PYTHON_PATHS:
        if os.path.exists(candidate):
            return candidate
    return PAM_PYTHON_PATHS[0]


def pam_lines(mode: str, *, lib_dir: Path = DEFAULT_LIB_DIR, config: str, control: str = "required") -> list[str]:
    """The ``auth`` line(s) for a PAM service file.

    ``conversation`` or ``password`` (pam_python), ``exec`` (pam_exec).
    """
    if mode == "exec":
        helper = f"/usr/bin/python3 -I {lib_dir}/tokenward-pam-exec config={config}"
        return [f"auth {control} pam_exec.so expose_authtok quiet {helper}"]
    if mode not in ("conversation", "password"):
        raise ValueError(f"unknown mode {mode!r}: conversation, password or exec")
    return [f"auth {control} {pam_python_path()} {lib_dir}/pam_tokenward.py config={config} mode={mode}"]
