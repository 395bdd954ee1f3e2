"""Small builders shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tokenward.datadir import DataDir
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.resources import login_message
from tokenward.keys import TimeCode


def missing(message: str, *, pytrace: bool = True) -> NoReturn:
    """A tool or package a test needs is missing: the test fails under ``CI=true``, else it is skipped
    with ``message`` (which says how to install it)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=pytrace)
    pytest.skip(message)


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


def write_policy_files(data: Path, files: Mapping[str, str]) -> None:
    """Write policy CSV files (name: text) into the data dir ``data``, mode 0600 as tokenward requires."""
    for name, text in files.items():
        path = data / name
        path.write_text(text)
        path.chmod(0o600)


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


def enrollment_code_in(output: str) -> str:
    """The one-time code in the output of ``tokenward user enroll`` (the last word of its last line)."""
    return output.strip().splitlines()[-1].split()[-1]


async def enrollment_code(data: Path, email: str) -> str:
    """A one-time enrolment code for ``email`` from ``tokenward user enroll`` on the data dir ``data``."""
    from typer.testing import CliRunner

    from tokenward.cli.main import app as cli

    # The CLI runs its own event loop: give it a thread.
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["-d", str(data), "user", "enroll", email])
    assert result.exit_code == 0, result.output
    return enrollment_code_in(result.stdout)


async def enrol(http: httpx.AsyncClient, data: Path, email: str) -> X25519PrivateKey:
    """Enrol a fresh authenticator key for ``email`` through ``POST /api/enroll``; the key."""
    code = await enrollment_code(data, email)
    key = X25519PrivateKey.generate()
    r = await http.post("/api/enroll", json={"email": email, "code": code, "public_key": b64u_of_public(key)})
    assert r.status_code == 200, r.text
    return key
