"""A real S3 endpoint for tests: a moto server subprocess on a free 127.0.0.1 port.

Fixtures (import them into a package's ``conftest.py``):

- ``moto_url``: a moto server shared by the session, authentication off (any key works).
- ``s3_config``: an :class:`~tokenward.storage.blobs.S3Config` for a fresh, empty bucket on it.
- ``moto_auth_url``: a second server with IAM authentication on, so every key is refused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import missing
from tokenward.storage.blobs import S3Config

__all__ = ["make_bucket", "moto_auth_url", "moto_url", "s3_config", "start_moto"]

ACCESS_KEY = "testing-access"
SECRET_KEY = "testing-secret"  # moto without auth takes any key; never a real credential


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_command() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    missing("moto_server is not installed: pip install 'moto[server]' (it is in the dev extra)")


def start_moto(*, auth: bool = False, deadline: float = 20.0) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a moto server; return its URL and process once it answers (bounded wait)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOKENWARD_", "HEXAEIGHT_"))}
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    proc = subprocess.Popen(
        [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError("moto_server exited during start-up")
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            return url, proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("moto_server did not answer within 20 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def make_bucket(url: str, bucket: str | None = None) -> S3Config:
    """Create a bucket (fresh random name unless given) and return the config to reach it."""
    import boto3

    name = bucket or f"tw-{secrets.token_hex(6)}"
    client = boto3.session.Session().client(
        "s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1"
    )
    client.create_bucket(Bucket=name)
    client.close()
    return S3Config(bucket=name, url=url, access_key=ACCESS_KEY, secret_key=SECRET_KEY, timeout=2.0)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    url, proc = start_moto()
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def moto_auth_url() -> Iterator[str]:
    url, proc = start_moto(auth=True)
    try:
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def s3_config(moto_url: str) -> S3Config:
    return make_bucket(moto_url)
