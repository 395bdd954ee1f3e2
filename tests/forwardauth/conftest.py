from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    return path


@pytest.fixture
def stores_setting(token_file: Path) -> str:
    return (
        f"primary: {{adapter: file, options: {{path: '{token_file}', check_interval: 0}}}}\n"
        "plainenv: {adapter: env, options: {var: TW_TEST_TOKENS, allow_plain: true}}\n"
    )


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stores_setting: str) -> Settings:
    clear_tokenward_env(monkeypatch)
    monkeypatch.setenv(
        "TW_TEST_TOKENS",
        '{"anon": {"tokenward": {"plugins": [{"type": "noop"}]}}, "ptr": {"tokenward": '
        '{"config_token_store_id": "plainenv", "config_token_id": "ptr"}}}',
    )
    init_data_dir(tmp_path / "data")
    return Settings.load(
        data_dir=tmp_path / "data",
        config_token_stores=stores_setting,
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await open_runtime(settings)
    yield rt
    await rt.close()


@pytest.fixture
async def client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
