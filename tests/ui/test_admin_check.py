"""The portal's admin pages ask the one admin check (PolicyHolder.is_admin): no policy loaded, no admin."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import HTML, Enrol
from tests.ui.portal import ADMIN
from tests.ui.test_login import sign_in
from tokenward.runtime import open_runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app


async def test_admin_pages_refuse_everyone_while_no_policy_is_loaded(
    data: Path, enrol: Enrol, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.load(data_dir=data, redirect_domains=".example.com", cookie_domain="example.com")
    runtime = await open_runtime(settings)
    transport = httpx.ASGITransport(app=create_app(settings, runtime=runtime), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://auth.example.com", headers=HTML) as c:
            await sign_in(c, enrol, ADMIN)
            assert (await c.get("/admin/audit")).status_code == 200  # the policy makes ADMIN an admin
            monkeypatch.setattr(runtime.policy, "_policy", None)  # as before the first successful load
            r = await c.get("/admin/audit")
            assert r.status_code == 403 and "not an admin" in r.text
    finally:
        await runtime.close()
