"""The app token management APIs through the ASGI app, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.apptokens import MANAGE_SCOPE, AppTokenService
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage import SqlAuditLog
from tokenward.web.app import create_app

ALICE = "alice@example.com"
BOB = "bob@example.com"
ADMIN = "admin@example.com"

Api = Callable[..., Awaitable[tuple[httpx.AsyncClient, AppTokenService]]]


def basic(user: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


@pytest.fixture
async def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> AsyncIterator[Callable[..., Awaitable[tuple[httpx.AsyncClient, AppTokenService]]]]:

    clear_tokenward_env(monkeypatch)
    runtimes: list[Runtime] = []
    clients: list[httpx.AsyncClient] = []

    async def make(
        *, policy: str | None = None, clock: Callable[[], float] = time.time, **overrides: Any
    ) -> tuple[httpx.AsyncClient, AppTokenService]:
        data = tmp_path / f"data{len(runtimes)}"
        if not data.exists():
            init_data_dir(data)
        if runtimes:  # every instance of one deployment shares the app-token key
            shutil.copy2(tmp_path / "data0" / "apptoken.key", data / "apptoken.key")
        if policy is not None:
            (data / "userpolicy.csv").write_text(policy)
        settings = Settings.load(data_dir=data, database_url=database_url, **overrides)
        runtime = await open_runtime(settings, clock=clock)
        runtimes.append(runtime)
        if policy is None:
            runtime.app_tokens.is_admin = lambda subject: subject == ADMIN
        app = create_app(settings, runtime=runtime)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://testserver"
        )
        clients.append(client)
        return client, runtime.app_tokens

    yield make
    for client in clients:
        await client.aclose()
    for runtime in runtimes:
        await runtime.close()


async def manager_token(service: AppTokenService, user: str = ALICE, *scopes: str) -> dict[str, str]:
    _, token = await service.create(owner=user, created_by="cli", scopes=[MANAGE_SCOPE, *scopes])
    return basic(user, token)


async def test_ocis_create_list_delete_and_use(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service)
    r = await client.post("/auth-app/tokens?expiry=72h", headers=auth)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["label"] == "Generated via API" and created["token"].startswith("twa_")
    assert set(created) >= {"token", "expiration_date", "created_date", "label"}
    # the new token authenticates as alice (but cannot manage: no scope)
    r = await client.get("/auth-app/tokens", headers=basic(ALICE, created["token"]))
    assert r.status_code == 403 and r.json()["error"] == "scope_missing"
    listed = (await client.get("/auth-app/tokens", headers=auth)).json()
    assert len(listed) == 2
    assert all(len(item["token"]) == 16 for item in listed)  # twa_<id>: no secret, no hash
    assert created["token"] not in r.text
    r = await client.delete(f"/auth-app/tokens?token={created['token']}", headers=auth)
    assert r.status_code == 200
    r = await client.delete(f"/auth-app/tokens?token={created['token']}", headers=auth)
    assert r.status_code == 404 and r.json()["error"] == "apptoken_not_found"
    r = await client.get("/auth-app/tokens", headers=basic(ALICE, created["token"]))
    assert r.status_code == 401 and r.json()["error"] == "apptoken_revoked"


async def test_rest_crud(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service, ALICE, "files:read")
    r = await client.post(
        "/api/app-tokens", json={"label": "sync", "expires_in": "1h30m", "scopes": ["files:read"]}, headers=auth
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/app-tokens/{body['id']}"
    assert body["token"].startswith(body["prefix"] + "_") and body["scopes"] == ["files:read"]
    assert body["created_by"] == ALICE and "secret_hash" not in body
    r = await client.get(f"/api/app-tokens/{body['id']}", headers=auth)
    assert r.status_code == 200 and "token" not in r.json()
    assert len((await client.get("/api/app-tokens", headers=auth)).json()) == 2
    r = await client.delete(f"/api/app-tokens/{body['id']}", headers=auth)
    assert r.status_code == 204
    r = await client.get(f"/api/app-tokens/{body['id']}", headers=auth)
    assert r.status_code == 404 and r.json()["error"] == "apptoken_not_found"
    # another user's token is "not found", never "forbidden"
    bob_auth = await manager_token(service, BOB)
    bob_id = (await client.get("/api/app-tokens", headers=bob_auth)).json()[0]["id"]
    for method in ("GET", "DELETE"):
        r = await client.request(method, f"/api/app-tokens/{bob_id}", headers=auth)
        assert r.status_code == 404 and r.json()["error"] == "apptoken_not_found"
    r = await client.post("/api/app-tokens", json={"scopes": ["admin:all"]}, headers=auth)
    assert r.status_code == 403 and r.json()["error"] == "scope_escalation"
    r = await client.post("/api/app-tokens", json={"expires_in": "1y"}, headers=auth)
    assert r.status_code == 400 and r.json()["error"] == "expiry_invalid"
    r = await client.post("/api/app-tokens", json={"bogus": 1}, headers=auth)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"


async def test_concurrent_deletes_of_one_token(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service)
    token_id = (await client.post("/api/app-tokens", json={}, headers=auth)).json()["id"]
    results = await asyncio.gather(*(client.delete(f"/api/app-tokens/{token_id}", headers=auth) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [204, 404, 404]


async def test_impersonation(api: Api) -> None:
    client, service = await api()
    admin = await manager_token(service, ADMIN)
    alice = await manager_token(service, ALICE)
    r = await client.post(f"/auth-app/tokens?expiry=1h&userName={BOB}", headers=admin)
    assert r.status_code == 403 and r.json()["error"] == "impersonation_disabled"

    client, service = await api(app_tokens_impersonation=True)
    service.is_admin = lambda subject: subject == ADMIN
    admin = await manager_token(service, ADMIN)
    alice = await manager_token(service, ALICE)
    r = await client.post(f"/auth-app/tokens?expiry=1h&userName={BOB}", headers=alice)
    assert r.status_code == 403 and r.json()["error"] == "impersonation_forbidden"
    r = await client.post(f"/auth-app/tokens?expiry=1h&userName={BOB}", headers=admin)
    assert r.status_code == 200 and r.json()["label"] == "Generated via Impersonation API"
    bob_token = r.json()["token"]
    listed = (await client.get(f"/api/app-tokens?user={BOB}", headers=admin)).json()
    assert [t["created_by"] for t in listed] == [ADMIN] and listed[0]["owner"] == BOB
    r = await client.get(f"/auth-app/tokens?userID={BOB}", headers=admin)
    assert r.status_code == 200 and len(r.json()) == 1
    r = await client.get("/auth-app/tokens?userID=not%20a%20user", headers=admin)
    assert r.status_code == 404 and r.json()["error"] == "user_not_found"
    r = await client.get(f"/auth-app/tokens?userID={BOB}&userName={BOB}", headers=admin)
    assert r.status_code == 400 and r.json()["error"] == "parameter_conflict"
    r = await client.delete(f"/auth-app/tokens?token={bob_token}&userName={BOB}", headers=admin)
    assert r.status_code == 200
    actions = [e.action for e in await service.audit.list(actor=ADMIN)]
    assert actions.count("apptoken.impersonate") == 4 and "apptoken.delete" in actions


BAD_OCIS_PARAMETERS = [
    ("expiry=1h&userId=bob@example.com", "unknown_parameter"),
    ("expiry=1h&expiry=2h", "duplicate_parameter"),
    ("expiry=0", "expiry_invalid"),
    ("expiry=-1h", "expiry_invalid"),
    ("expiry=1y", "expiry_invalid"),
    ("expiry=abc", "expiry_invalid"),
    ("expiry=9999d", "expiry_too_long"),
]


async def test_bad_ocis_parameters(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service)
    for query, code in BAD_OCIS_PARAMETERS:
        r = await client.post(f"/auth-app/tokens?{query}", headers=auth)
        assert (r.status_code, r.json()["error"]) == (400, code), query
        if code == "unknown_parameter":
            assert "userID" in r.json()["detail"]


BAD_HEADERS = [
    ({}, 401, "authentication_required"),
    ({"Authorization": "Basic !!!"}, 401, "authorization_malformed"),
    ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, 401, "authorization_malformed"),
    ({"Authorization": "Basic " + base64.b64encode(b":secret").decode()}, 401, "authorization_malformed"),
    ({"Authorization": "Basic " + base64.b64encode(b"alice:").decode()}, 401, "authorization_malformed"),
    ({"Authorization": "Basic " + "A" * 5000}, 401, "authorization_malformed"),
    ({"Authorization": "Bearer some-oidc-token"}, 401, "authentication_required"),
    (basic(ALICE, "twa_short"), 401, "apptoken_malformed"),
]


async def test_bad_credentials(api: Api) -> None:
    client, _service = await api()
    for headers, status, code in BAD_HEADERS:
        r = await client.get("/api/app-tokens", headers=headers)
        assert (r.status_code, r.json()["error"]) == (status, code), headers
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Basic")


async def test_brute_force_is_answered_with_429_and_retry_after(api: Api) -> None:
    client, service = await api()
    _record, token = await service.create(owner=ALICE, created_by="cli", scopes=[MANAGE_SCOPE])
    _, bob_token = await service.create(owner=BOB, created_by="cli", scopes=[MANAGE_SCOPE])
    codes = [(await client.get("/api/app-tokens", headers=basic(ALICE, bob_token))).json()["error"] for _ in range(3)]
    assert codes == ["apptoken_invalid"] * 3
    r = await client.get("/api/app-tokens", headers=basic(ALICE, token))
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    assert 295 <= int(r.headers["retry-after"]) <= 300
    # a second instance on the same database refuses too (the ban is in SQL once the first one flushed:
    # within a second in a serving process)
    await service.regulator.regulation.flush(time.time())
    other, _ = await api()
    r = await other.get("/api/app-tokens", headers=basic(BOB, bob_token))
    assert r.status_code == 429


async def test_expired_token(api: Api) -> None:
    client, service = await api()
    _, token = await service.create(owner=ALICE, created_by="cli", scopes=[MANAGE_SCOPE])
    service.clock = lambda: 10_000_000_000.0
    r = await client.get("/api/app-tokens", headers=basic(ALICE, token))
    assert r.status_code == 401 and r.json()["error"] == "apptoken_expired"


async def test_openapi_documents_the_rest_api(api: Api) -> None:
    client, _ = await api()
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"get", "post"} <= set(paths["/api/app-tokens"])
    assert {"get", "delete"} <= set(paths["/api/app-tokens/{token_id}"])
    assert {"get", "post", "delete"} <= set(paths["/auth-app/tokens"])


async def test_delete_reference_with_a_typo_is_a_400_not_a_401(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service)
    token = (await client.post("/auth-app/tokens?expiry=1h", headers=auth)).json()["token"]
    typo = token[:-1] + ("A" if token[-1] != "A" else "B")
    r = await client.delete(f"/auth-app/tokens?token={typo}", headers=auth)
    assert r.status_code == 400 and r.json()["error"] == "token_reference_invalid"
    r = await client.delete("/auth-app/tokens?token=nope", headers=auth)
    assert r.status_code == 404 and r.json()["error"] == "apptoken_not_found"
    r = await client.delete("/auth-app/tokens", headers=auth)
    assert r.status_code == 422


async def test_token_limit_per_user_is_a_409(api: Api) -> None:
    client, service = await api(app_tokens_max_per_user=2)
    auth = await manager_token(service)
    assert (await client.post("/api/app-tokens", json={}, headers=auth)).status_code == 201
    r = await client.post("/api/app-tokens", json={}, headers=auth)
    assert r.status_code == 409 and r.json()["error"] == "apptoken_limit"


async def test_a_create_whose_audit_write_fails_is_a_503_and_leaves_no_token(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service)
    assert isinstance(service.audit, SqlAuditLog)
    async with service.audit.database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE audit_events"))  # the audit write fails; the token table is fine
    for path, body in (("/auth-app/tokens?expiry=1h", None), ("/api/app-tokens", {})):
        r = await client.post(path, json=body, headers=auth)
        assert r.status_code == 503 and r.json()["error"] == "storage_schema_missing", r.text
    assert len(await service.list(ALICE)) == 1  # only the manager token


async def test_a_delete_whose_audit_write_fails_is_a_503_and_leaves_the_token_live(api: Api) -> None:
    client, service = await api()
    auth = await manager_token(service)
    rest, rest_token = await service.create(owner=ALICE, created_by=ALICE)
    ocis, ocis_token = await service.create(owner=ALICE, created_by=ALICE)
    assert isinstance(service.audit, SqlAuditLog)
    async with service.audit.database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE audit_events"))  # the audit write fails; the token table is fine
    for path in (f"/api/app-tokens/{rest.id}", f"/auth-app/tokens?token=twa_{ocis.id}"):
        r = await client.delete(path, headers=auth)
        assert r.status_code == 503 and r.json()["error"] == "storage_schema_missing", r.text
    assert {rest.id, ocis.id} <= {t.id for t in await service.list(ALICE)}
    for token in (rest_token, ocis_token):
        await service.verify(ALICE, token)  # still accepted
    r = await client.get(f"/api/app-tokens/{rest.id}", headers=auth)
    assert r.status_code == 200 and r.json()["id"] == rest.id, r.text  # a deleted one is a 404


async def test_admin_comes_from_the_policy(api: Api) -> None:
    client, service = await api(
        policy="p, admin@example.com, auth.example.com, TOKENWARD, admin\n", app_tokens_impersonation=True
    )
    admin = await manager_token(service, ADMIN)
    alice = await manager_token(service, ALICE)
    r = await client.get(f"/auth-app/tokens?userName={BOB}", headers=admin)
    assert r.status_code == 200 and r.json() == []
    r = await client.get(f"/auth-app/tokens?userName={BOB}", headers=alice)
    assert r.status_code == 403 and r.json()["error"] == "impersonation_forbidden"


async def test_a_delete_on_one_instance_is_honoured_by_another_after_its_next_poll(api: Api) -> None:
    a, service = await api()
    b, other = await api()
    auth = await manager_token(service)
    created = (await a.post("/api/app-tokens", json={"scopes": [MANAGE_SCOPE]}, headers=auth)).json()
    own = basic(ALICE, created["token"])
    await other.feed.poll()
    assert (await b.get("/api/app-tokens", headers=own)).status_code == 200  # b holds it in memory now
    assert (await a.delete(f"/api/app-tokens/{created['id']}", headers=auth)).status_code == 204
    r = await a.get("/api/app-tokens", headers=own)
    assert r.status_code == 401 and r.json()["error"] == "apptoken_revoked"  # the writer: at once
    await other.feed.poll()  # what b's feed does every TOKENWARD_CHANGES_POLL_SECONDS
    r = await b.get("/api/app-tokens", headers=own)
    assert r.status_code == 401 and r.json()["error"] == "apptoken_revoked"
    r = await b.get("/api/app-tokens", headers=auth)  # the list b held for alice was dropped with it
    assert [t["id"] for t in r.json()] == [t["id"] for t in (await a.get("/api/app-tokens", headers=auth)).json()]


async def test_too_long_expiry_quotes_the_value_and_the_maximum_as_written(api: Api) -> None:
    # Once answered "expiry 57w1d is longer than the maximum of 52w1d" for 400d against 365d.
    client, service = await api(app_tokens_max_expiry="365d")
    r = await client.post("/auth-app/tokens?expiry=400d", headers=await manager_token(service))
    assert (r.status_code, r.json()["error"]) == (400, "expiry_too_long")
    assert "expiry 400d is longer than the maximum of 365d" in r.json()["detail"]
