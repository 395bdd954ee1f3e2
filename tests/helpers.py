"""Small builders shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tokenward.datadir import DataDir
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.resources import login_message
from tokenward.keys import TimeCode


def init_data_dir(path: Path, server_name: str = "auth.example.com") -> DataDir:
    """A data dir as `tokenward init` leaves it: 0700, server name, fresh time code."""
    data_dir = DataDir(path)
    data_dir.create()
    data_dir.write_server_name(server_name)
    code = TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32))
    data_dir.install_timecode(code, now=time.time(), grace_seconds=0)
    return data_dir


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization: Basic`` header value for ``user:password``."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def clear_tokenward_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every TOKENWARD_* variable for this test (settings refuse unknown ones; none may leak in)."""
    for key in list(os.environ):
        if key.startswith("TOKENWARD_"):
            monkeypatch.delenv(key)


def resource_login_body(
    challenge: Mapping[str, Any],
    signing: Ed25519PrivateKey,
    *,
    client_id: str,
    session_key: str,
    server: str = "auth.example.com",
) -> dict[str, Any]:
    """The body of ``POST /api/resource/login`` answering ``challenge`` (the reply of ``/api/resource/challenge``)
    with the resource's Ed25519 key, for the b64u X25519 ``session_key``."""
    message = login_message(
        server=server,
        challenge_id=challenge["challenge_id"],
        challenge=challenge["challenge"],
        client_id=client_id,
        session_key=session_key,
    )
    return {
        "challenge_id": challenge["challenge_id"],
        "challenge": challenge["challenge"],
        "signature": b64u_encode(signing.sign(message)),
        "session_key": session_key,
    }
