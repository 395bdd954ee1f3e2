"""An OpenID Provider in-process, a browser signed in on its portal, and relying parties made with Authlib's client."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.helpers import clear_tokenward_env
from tests.ui.conftest import HTML, Enrol, enrol
from tests.ui.portal import SERVER, prepare
from tokenward.cli.main import app as cli
from tokenward.runtime import Runtime, build_oidc, open_runtime
from tokenward.settings import Settings
from tokenward.web.app import TokenwardAPI, create_app

__all__ = ["enrol"]  # the portal tests' fixture, used here too

ISSUER = f"https://{SERVER}"
ALICE = "alice@example.com"
BOB = "bob@example.com"  # may sign in on the portal, but not to the OpenID clients
RP = "https://rp.example.net/callback"
RP_OTHER = "https://rp.example.net/other"
RP_LOGOUT = "https://rp.example.net/bye"
SPA = "http://localhost:5173/cb"


class Clock:
    """The provider's clock; tests move it instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Registered:
    client_id: str
    client_secret: str | None


@dataclass
class Provider:
    app: TokenwardAPI
    runtime: Runtime
    clock: Clock
    confidential: Registered
    public: Registered
    data: Path

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app, raise_app_exceptions=False)


def cli_ok(data: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["-d", str(data), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def register(data: Path, name: str, *args: str) -> Registered:
    doc = json.loads(cli_ok(data, "oidc", "client", "add", name, "--json", *args))
    return Registered(doc["client_id"], doc["client_secret"])


@pytest.fixture
def oidc_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Registered, Registered]:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    prepare(data)
    confidential = register(data, "Wiki", "-r", RP, "-r", RP_OTHER, "--post-logout-redirect-uri", RP_LOGOUT)
    public = register(data, "SPA", "--public", "-r", SPA)
    with (data / "userpolicy.csv").open("a") as f:
        f.write(f"p, {ALICE}, {SERVER}, {confidential.client_id}, login\n")
        f.write(f"p, {ALICE}, {SERVER}, {public.client_id}, login\n")
    with (data / "clientscopespolicy.csv").open("a") as f:
        f.write(f"p, {ALICE}, *, {confidential.client_id}, wiki-admins\n")
        f.write(f"p, {ALICE}, *, {confidential.client_id}, DEFAULT\n")
    return data, confidential, public


@pytest.fixture
def data(oidc_data: tuple[Path, Registered, Registered]) -> Path:
    return oidc_data[0]


@pytest.fixture
async def provider(oidc_data: tuple[Path, Registered, Registered]) -> AsyncIterator[Provider]:
    data, confidential, public = oidc_data
    settings = Settings.load(data_dir=data, redirect_domains=".example.com", cookie_domain="example.com")
    runtime = await open_runtime(settings)
    clock = Clock(time.time())
    runtime.oidc = build_oidc(runtime, clock=clock)
    app = create_app(settings, runtime=runtime)
    yield Provider(app, runtime, clock, confidential, public, data)
    await runtime.close()


@pytest.fixture
async def browser(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=provider.transport(), base_url=ISSUER, headers=HTML) as c:
        yield c


async def signed_in(browser: httpx.AsyncClient, enrol: Enrol, email: str = ALICE) -> httpx.AsyncClient:
    from tests.ui.test_login import sign_in

    r = await sign_in(browser, enrol, email)
    assert r.status_code == 303, r.text
    return browser
