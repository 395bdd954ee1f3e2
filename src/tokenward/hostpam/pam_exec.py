"""The ``pam_exec.so expose_authtok`` helper: the code typed at the password prompt (the original flow).

``auth sufficient pam_exec.so expose_authtok quiet /usr/bin/python3 -I <lib>/tokenward-pam-exec [config=FILE]``:
pam_exec gives the user name and the remote host in ``PAM_USER`` / ``PAM_RHOST`` and writes the
password (NUL-terminated) to our standard input. Exit status 0 lets the user in; anything else
refuses. pam_exec can only pass a password: the conversation with a QR code is :mod:`.pam_module`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from .config import DEFAULT_CONFIG, ConfigProblem, load_config
from .flow import UNAVAILABLE, Outcome, log_line, password_login

__all__ = ["main"]

#: A code is 5 characters; a password longer than this is not a code and is not read further.
MAX_AUTHTOK = 256


def _option(argv: Sequence[str], name: str, default: str) -> str:
    for arg in argv:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def main(argv: Sequence[str], env: Mapping[str, str], stdin: BinaryIO) -> int:
    """0 when the server accepted the code for this user on this host, 1 otherwise (fail closed)."""
    user = env.get("PAM_USER", "")
    remote = env.get("PAM_RHOST") or None
    if env.get("PAM_TYPE", "auth") != "auth":
        # Only the auth phase is ours: refuse (fail closed) rather than wave a misplaced line through.
        log_line(None, user, None, Outcome(UNAVAILABLE, f"configured for {env.get('PAM_TYPE')!r}, not auth"), remote)
        return 1
    try:
        config = load_config(_option(argv, "config", DEFAULT_CONFIG))
    except ConfigProblem as exc:
        log_line(None, user, None, Outcome(UNAVAILABLE, f"configuration: {exc}"), remote)
        return 1
    raw = stdin.read(MAX_AUTHTOK + 1)
    code = raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
    if len(raw) > MAX_AUTHTOK:
        code = ""
    return 0 if password_login(config, user, code, remote).ok else 1


if __name__ == "__main__":  # pragma: no cover - run through the installed entry point
    sys.exit(main(sys.argv[1:], os.environ, sys.stdin.buffer))
