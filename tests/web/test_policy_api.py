"""Admin policy endpoints, reload into a running app, and the policy version in /readyz and /metrics."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tokenward.apptokens.access import MANAGE_SCOPE
from tokenward.runtime import Runtime
from tokenward.settings import Settings

ADMIN, BOB = "admin@example.com", "bob@example.com"


def write_policy(settings: Settings, text: str) -> None:
    (settings.data_dir / "userpolicy.csv").write_text(text, encoding="utf-8")


@pytest.fixture
async def admin_client(settings: Settings, runtime: Runtime, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    write_policy(
        settings,
        f"p, {ADMIN}, auth.example.com, TOKENWARD, admin\np, *@example.com, auth.example.com, APP1, login\n"
        "p, eve@example.com, auth.example.com, APP1, deny\n",
    )
    assert runtime.policy.reload().changed
    _, token = await runtime.app_tokens.create(owner=ADMIN, created_by=ADMIN, scopes=[MANAGE_SCOPE])
    auth = base64.b64encode(f"{ADMIN}:{token}".encode()).decode()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"authorization": f"Basic {auth}"}
    ) as c:
        yield c


async def test_check_explains_allow_and_deny(admin_client: httpx.AsyncClient) -> None:
    r = await admin_client.post(
        "/api/policy/check", json={"sub": "carol@example.com", "dom": "auth.example.com", "obj": "APP1", "act": "login"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == "allow"
    assert "userpolicy.csv:2" in str(body)
    r = await admin_client.post(
        "/api/policy/check", json={"sub": "eve@example.com", "dom": "auth.example.com", "obj": "APP1", "act": "login"}
    )
    assert r.json()["decision"] == "deny" and "userpolicy.csv:3" in str(r.json())


async def test_summary_and_lint(admin_client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await admin_client.get("/api/policy")
    assert r.status_code == 200 and r.json()["version"] == runtime.policy.version
    r = await admin_client.get("/api/policy/lint")
    assert r.status_code == 200 and r.json()["dialect"] == "glob" and isinstance(r.json()["findings"], list)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"sub": "a@example.com", "dom": "d", "obj": "o"}, 422, "invalid_request"),
        ({"sub": "", "dom": "d", "obj": "o", "act": "login"}, 422, "invalid_request"),
        ({"sub": "a", "dom": "d", "obj": "o", "act": "login", "extra": 1}, 422, "invalid_request"),
        ({"sub": "a", "dom": "d", "obj": "o", "act": "login", "file": "../etc/passwd"}, 400, "policy_file_unknown"),
    ],
)
async def test_check_bad_input(
    admin_client: httpx.AsyncClient, body: dict[str, object], status: int, code: str
) -> None:
    r = await admin_client.post("/api/policy/check", json=body)
    assert r.status_code == status and r.json()["error"] == code


async def test_non_admin_and_anonymous_are_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.get("/api/policy")
    assert r.status_code == 401 and r.json()["error"] == "authentication_required"
    _, token = await runtime.app_tokens.create(owner=BOB, created_by=BOB, scopes=[MANAGE_SCOPE])
    auth = base64.b64encode(f"{BOB}:{token}".encode()).decode()
    r = await client.get("/api/policy", headers={"authorization": f"Basic {auth}"})
    assert r.status_code == 403 and r.json()["error"] == "not_admin"


async def test_reload_swaps_version_and_bad_file_keeps_the_old_one(
    settings: Settings, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    holder = runtime.policy
    assert holder is not None
    first = holder.version
    write_policy(settings, "p, *@example.com, auth.example.com, APP1, login\n")
    assert holder.reload().changed
    ready = (await client.get("/readyz")).json()
    assert ready["policy"]["version"] == holder.version != first
    assert (
        f'tokenward_policy_info{{dialect="glob",version="{holder.version}"}} 1.0' in (await client.get("/metrics")).text
    )
    good = holder.version
    write_policy(settings, "p, broken row\n")
    result = holder.reload()
    assert result.error is not None and "userpolicy.csv:1" in result.error.detail
    ready = (await client.get("/readyz")).json()
    assert ready["status"] == "ready" and ready["policy"]["version"] == good
    assert "userpolicy.csv:1" in ready["policy"]["last_reload_error"]
    assert 'tokenward_policy_reloads{outcome="refused"} 1.0' in (await client.get("/metrics")).text


async def test_start_refuses_a_broken_policy(settings: Settings) -> None:
    from tokenward.errors import PolicyError
    from tokenward.runtime import open_runtime

    write_policy(settings, "p, a, b\n")
    with pytest.raises(PolicyError) as info:
        await open_runtime(settings)
    assert "userpolicy.csv:1" in info.value.detail


async def test_watcher_is_started_by_the_served_app(settings: Settings) -> None:
    """Through the real lifespan: a file change is picked up without a reload call."""
    import asyncio
    import time

    from tokenward.web.app import create_app

    app = create_app(Settings.load(data_dir=settings.data_dir, policy_watch_seconds=0.05))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as tc:
            before = (await tc.get("/readyz")).json()["policy"]["version"]
            write_policy(settings, "p, *@example.com, auth.example.com, APP9, login\n")
            deadline = time.monotonic() + 5
            after = before
            while after == before and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                after = (await tc.get("/readyz")).json()["policy"]["version"]
    assert after != before


async def test_no_policy_loaded_means_no_admin(
    admin_client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin API and the app-token API ask the same check; without a loaded policy it says no."""
    assert (await admin_client.get("/api/policy")).status_code == 200
    monkeypatch.setattr(runtime.policy, "_policy", None)  # as before the first successful load
    r = await admin_client.get("/api/policy")
    assert r.status_code == 403 and r.json()["error"] == "not_admin"
    r = await admin_client.post("/api/app-tokens", json={"scopes": ["files:write"]})
    assert r.status_code == 403 and r.json()["error"] == "scope_escalation"
