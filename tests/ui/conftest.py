from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.helpers import clear_tokenward_env
from tests.helpers import enrol as enrol_via_api
from tests.ui.portal import prepare
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app

HTML = {"accept": "text/html"}


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clear_tokenward_env(monkeypatch)
    path = tmp_path / "data"
    prepare(path)
    return path


@pytest.fixture
async def browser(data: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that behaves like a browser on the portal (cookies kept, HTML accepted)."""
    settings = Settings.load(data_dir=data, redirect_domains=".example.com", cookie_domain="example.com")
    runtime = await open_runtime(settings)
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://auth.example.com", headers=HTML) as c:
        yield c
    await runtime.close()


Enrol = Callable[[httpx.AsyncClient, str], Awaitable[X25519PrivateKey]]


@pytest.fixture
def enrol(data: Path) -> Enrol:
    async def run(client: httpx.AsyncClient, email: str) -> X25519PrivateKey:
        return await enrol_via_api(client, data, email)

    return run


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    if match is None:
        raise AssertionError("no CSRF token on the page")
    return match.group(1)
