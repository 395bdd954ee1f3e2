"""The host side of system login: PAM on a Linux host asks tokenward (docs/system-login.md).

This package runs at login time under the **system** ``python3`` (Debian's), not the project's
virtualenv: it imports only the standard library, ``cryptography`` (Debian's
python3-cryptography) and, when present, ``segno`` (python3-segno) for the terminal QR code.
``tokenward host install`` copies it to ``/usr/local/lib/tokenward-pam/tokenward_hostpam/``
beside two entry points: a ``pam_python.so`` module (the PAM conversation) and a ``pam_exec.so``
helper (the code typed at the password prompt). Relative imports only, so it works under
either package name; ``tests/hostpam/test_isolation.py`` keeps it free of other imports.
"""

from __future__ import annotations

__all__: list[str] = []
