"""Fixtures for the client library, the resource-server middleware and the interop tests."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import missing
from tests.storage import servers
from tokenward.identity.client_tokens import ClientTokenClaims
from tokenward.keys import Keyring, TimeCode

NODE_DIR = Path(__file__).parent / "node"


def require_program(name: str, hint: str) -> str:
    """The program's path; outside CI a missing one skips with ``hint``, under ``CI=true`` it fails."""
    found = shutil.which(name)
    if found:
        return found
    missing(f"{name} is not installed: {hint}", pytrace=False)


@pytest.fixture(scope="session")
def node_jose() -> Path:
    """``tests/client/node`` with Node's ``jose`` installed from the lock file (``npm ci``, once)."""
    node = require_program("node", "apt-get install nodejs npm")
    npm = require_program("npm", "apt-get install nodejs npm")
    if not (NODE_DIR / "node_modules" / "jose" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            missing(f"npm ci in {NODE_DIR} failed: {done.stderr.strip()[-500:]}", pytrace=False)
    assert node
    return NODE_DIR


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32)))


def make_claims(
    *,
    now: float,
    destination: str = "api.example.com",
    source_key: str = "eaYx7t4b-cmPEgMs3q3Q56B5OY_HhriMyEbsia-FpRo",
    destination_key: str = "Z13VdO13iTELPS52gfN5C0ZsdzsVIf7PNld5WDcepS8",
    scopes: tuple[str, ...] = ("DEFAULT",),
    app_hash: str = "",
    issuer: str = "auth.example.com",
    lifetime: int = 900,
) -> ClientTokenClaims:
    return ClientTokenClaims(
        issuer=issuer,
        source="alice@example.com",
        destination=destination,
        source_key=source_key,
        destination_key=destination_key,
        client_id="0123456789ABCDEF0123456789ABCDEF01234567",
        scopes=scopes,
        token_id=secrets.token_urlsafe(16),
        issued_at=int(now),
        expires_at=int(now) + lifetime,
        app_hash=app_hash,
    )


@pytest.fixture
async def redis_client() -> AsyncIterator[Any]:
    """A client for the Redis on 127.0.0.1:6379 (fails under CI=true when absent, skips otherwise)."""
    async with servers.redis_client() as client:
        yield client
