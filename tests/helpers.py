"""Small builders shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from tokenward.datadir import DataDir
from tokenward.keys import TimeCode


def init_data_dir(path: Path, server_name: str = "auth.example.com") -> DataDir:
    """A data dir as `tokenward init` leaves it: 0700, server name, fresh time code."""
    data_dir = DataDir(path)
    data_dir.create()
    data_dir.write_server_name(server_name)
    code = TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32))
    data_dir.install_timecode(code, now=time.time(), grace_seconds=0)
    return data_dir


def clear_tokenward_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every TOKENWARD_* variable for this test (settings refuse unknown ones; none may leak in)."""
    for key in list(os.environ):
        if key.startswith("TOKENWARD_"):
            monkeypatch.delenv(key)
