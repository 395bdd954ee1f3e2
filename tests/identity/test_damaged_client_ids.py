"""A damaged clientids.json: /readyz says not ready, captcha requests answer 503 client_ids_invalid (issue 15 #4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app

BODY = {
    "email": "carol@example.com",
    "client_id": "AB" * 20,
    "origin": "https://app.example.com",
    "code_challenge": "x" * 43,
}


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    clear_tokenward_env(monkeypatch)
    data = tmp_path / "data"
    init_data_dir(data)
    runtime = await open_runtime(Settings.load(data_dir=data))
    transport = httpx.ASGITransport(app=create_app(runtime.settings, runtime=runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client, data
    await runtime.close()


@pytest.mark.parametrize("damage", [b"{not json", b'{"version": 1, "clients": [{"name": "x"}]}', b'{"version": 7}'])
async def test_damaged_client_ids_make_the_instance_unready_and_captchas_503(
    node: tuple[httpx.AsyncClient, Path], damage: bytes
) -> None:
    client, data = node
    assert (await client.get("/readyz")).status_code == 200
    (data / "clientids.json").write_bytes(damage)
    r = await client.get("/readyz")
    assert r.status_code == 503, r.text
    assert r.json()["checks"]["client_ids"].startswith("client_ids_invalid: ")
    assert "clientids.json" in r.json()["detail"]
    r = await client.post("/api/captcha", json=BODY)
    assert r.status_code == 503 and r.json()["error"] == "client_ids_invalid", r.text
    assert "restore it" in r.json()["detail"]
    (data / "clientids.json").unlink()  # an absent file is an empty registry: ready again
    assert (await client.get("/readyz")).status_code == 200
    r = await client.post("/api/captcha", json=BODY)
    assert r.status_code < 500 and r.json()["error"] == "client_unknown", r.text
