"""The hot lists (``GET /api/app-tokens``, ``GET /auth-app/tokens``) answer as their FastAPI routes would.

The app's hot path serves both lists ahead of FastAPI (web/routes/app_tokens.py); the FastAPI routes stay for
the OpenAPI document. Each case goes to two apps over one runtime: the served app, and the same app with its
extra hot paths removed so that FastAPI's routing, dependencies and response model answer. Status, JSON body and
the headers a client acts on must match.
"""

from __future__ import annotations

import base64
import itertools
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from tests.helpers import clear_tokenward_env, init_data_dir
from tokenward.apptokens import MANAGE_SCOPE, AppTokenService
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage import AppTokenRecord
from tokenward.web.app import create_app
from tokenward.web.deps import SourceIdentifierAuthenticator, chain_of
from tokenward.web.routes import app_tokens as routes

ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"
ADMIN = "admin@example.com"


def basic(user: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


class Pair:
    """One runtime behind two apps: ``hot`` as served, ``routed`` with the lists left to FastAPI."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.service: AppTokenService = runtime.app_tokens
        hot = create_app(settings, runtime=runtime)
        routed = create_app(settings, runtime=runtime)
        assert len(hot.hot_more) == 2
        routed.hot_more = ()
        self.apps = {"hot": hot, "routed": routed}
        self._addresses = itertools.count(1)
        self.clients: list[httpx.AsyncClient] = []

    def client(self, which: str, address: str | None = None) -> httpx.AsyncClient:
        """A client of one app from its own address (so one case's failures never ban another's)."""
        if address is None:
            n = next(self._addresses)
            address = f"10.9.{n // 250}.{n % 250 + 1}"
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.apps[which], raise_app_exceptions=False, client=(address, 4000)),
            base_url="http://testserver",
        )
        self.clients.append(client)
        return client

    async def both(self, path: str, headers: dict[str, str] | None = None) -> tuple[httpx.Response, httpx.Response]:
        hot = await self.client("hot").get(path, headers=headers)
        routed = await self.client("routed").get(path, headers=headers)
        return hot, routed


@pytest.fixture
async def pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> AsyncIterator[Callable[..., Awaitable[Pair]]]:
    clear_tokenward_env(monkeypatch)
    made: list[Pair] = []

    async def make(**overrides: Any) -> Pair:
        data = tmp_path / f"data{len(made)}"
        init_data_dir(data)
        if made:  # every instance of one deployment shares the app-token key
            shutil.copy2(tmp_path / "data0" / "apptoken.key", data / "apptoken.key")
        settings = Settings.load(data_dir=data, database_url=database_url, **overrides)
        runtime = await open_runtime(settings)
        runtime.app_tokens.is_admin = lambda subject: subject == ADMIN
        made.append(Pair(runtime, settings))
        return made[-1]

    yield make
    for each in made:
        for client in each.clients:
            await client.aclose()
        await each.runtime.close()


def _same(hot: httpx.Response, routed: httpx.Response, case: object) -> None:
    assert hot.status_code == routed.status_code, (case, hot.text, routed.text)
    for name in ("www-authenticate", "allow", "content-type"):
        assert hot.headers.get(name) == routed.headers.get(name), (case, name)
    assert ("retry-after" in hot.headers) == ("retry-after" in routed.headers), case
    if "retry-after" in hot.headers:
        assert abs(int(hot.headers["retry-after"]) - int(routed.headers["retry-after"])) <= 1, case
    assert hot.headers["x-request-id"] and routed.headers["x-request-id"], case
    if hot.status_code != 200:
        assert hot.content == routed.content, case  # errors: byte for byte (Retry-After's seconds aside)
        return
    assert hot.headers["content-type"] == "application/json", case
    hot_body, routed_body = hot.json(), routed.json()
    # The caller's own token was used again between the two requests: only its last use may differ.
    for item in (*hot_body, *routed_body):
        if item.get("last_used_at") is not None:
            item["last_used_at"] = "used"
    assert hot_body == routed_body, case


async def test_every_answer_of_the_hot_lists_is_the_routes_answer(pair: Callable[..., Awaitable[Pair]]) -> None:
    p = await pair()
    service = p.service
    _, manager = await service.create(owner=ALICE, created_by="cli", scopes=[MANAGE_SCOPE], label="mgr")
    await service.create(owner=ALICE, created_by=ADMIN, label='sync \u00e9\u20ac "quoted"', scopes=["files:read"])
    _, plain = await service.create(owner=BOB, created_by="cli")
    _, carol = await service.create(owner=CAROL, created_by="cli", scopes=[MANAGE_SCOPE])
    alice = basic(ALICE, manager)
    longest_user = "u" * 242 + "@example.com"  # 254 characters: the most a user parameter takes
    long_user = "v" + longest_user
    cases: list[tuple[str, dict[str, str] | None]] = []
    for path in ("/api/app-tokens", "/auth-app/tokens"):
        cases += [
            (path, None),
            (path, {"Authorization": "Basic !!!"}),
            (path, {"Authorization": "Basic " + base64.b64encode(b"alice:").decode()}),
            (path, {"Authorization": "Bearer some-oidc-token"}),
            (path, {"Authorization": "Bearer tw1si.not-a-session"}),
            (path, basic(ALICE, "twa_short")),
            (path, basic(BOB, plain)),  # no tokenward:manage
            (path, {"Authorization": f"Bearer {manager}"}),
            (path, alice),
            (path, {**alice, "X-Request-ID": "given-1"}),
            (f"{path}?users=x", alice),
            (f"{path}?users=x", None),  # the parameters are checked before the caller
            (f"{path}?a=1&a=2", alice),
            (path, {"Accept": "text/html,application/xhtml+xml"}),  # a browser: an HTML page outside /api/
            (path, {**basic(BOB, plain), "Accept": "text/html"}),
        ]
    cases += [
        ("/api/app-tokens?user=x&user=y", alice),
        ("/api/app-tokens?User=x", alice),
        ("/api/app-tokens?user=", alice),
        (f"/api/app-tokens?user={BOB}", alice),
        ("/api/app-tokens?user=%E2%82%AC", alice),
        (f"/api/app-tokens?user={long_user}", alice),
        (f"/api/app-tokens?user={longest_user}", alice),
        (f"/api/app-tokens?user={long_user}", None),  # the caller before the parameter's length
        ("/auth-app/tokens?userId=x", alice),
        (f"/auth-app/tokens?userID={BOB}", alice),
        (f"/auth-app/tokens?userID={BOB}&userName={BOB}", alice),
        (f"/auth-app/tokens?userName={long_user}&userID={long_user}", alice),
        (f"/auth-app/tokens?userName={longest_user}", alice),
    ]
    for path, headers in cases:
        _same(*await p.both(path, headers), (path, headers))
    page = await p.client("hot").get("/auth-app/tokens", headers={"Accept": "text/html"})
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    # A wrong token of carol's, twice from each app's own address: 401 apptoken_invalid both times (each
    # address sees 2 of the 3 failures a ban takes); then 3 from one address, which bans it: 429 and Retry-After.
    wrong = basic(CAROL, carol[:-2] + ("AA" if not carol.endswith("AA") else "BB"))
    for which in ("hot", "routed"):
        client = p.client(which, address=f"10.8.0.{1 if which == 'hot' else 2}")
        for _ in range(2):
            r = await client.get("/api/app-tokens", headers=wrong)
            assert r.status_code == 401, r.text
    for which in ("hot", "routed", "hot"):
        await p.client(which, address="10.8.1.1").get("/auth-app/tokens", headers=wrong)
    banned = [await p.client(which, address="10.8.1.1").get("/api/app-tokens", headers=alice) for which in p.apps]
    assert banned[0].status_code == 429
    _same(banned[0], banned[1], "banned address")

    q = await pair(app_tokens_impersonation=True)
    _, admin_token = await q.service.create(owner=ADMIN, created_by="cli", scopes=[MANAGE_SCOPE])
    await q.service.create(owner=BOB, created_by=ADMIN, label="for bob")
    _, alice_token = await q.service.create(owner=ALICE, created_by="cli", scopes=[MANAGE_SCOPE])
    admin = basic(ADMIN, admin_token)
    for path, headers in [
        (f"/api/app-tokens?user={BOB}", admin),
        (f"/api/app-tokens?user={BOB}", basic(ALICE, alice_token)),
        ("/api/app-tokens?user=not%20a%20user", admin),
        (f"/auth-app/tokens?userName={BOB}", admin),
        (f"/auth-app/tokens?userID={BOB}&userName={BOB}", admin),
    ]:
        _same(*await q.both(path, headers), (path, headers))
    impersonations = [e for e in await q.service.audit.list(actor=ADMIN) if e.action == "apptoken.impersonate"]
    assert len(impersonations) == 4  # the two successful lists, once on each app


async def test_the_hot_lists_count_under_their_route_and_leave_other_methods_to_the_framework(
    pair: Callable[..., Awaitable[Pair]],
) -> None:
    p = await pair()
    _, token = await p.service.create(owner=ALICE, created_by="cli", scopes=[MANAGE_SCOPE])
    client = p.client("hot")
    r = await client.get("/api/app-tokens", headers=basic(ALICE, token))
    assert r.status_code == 200 and [t["owner"] for t in r.json()] == [ALICE]
    r = await client.post("/api/app-tokens", json={"label": "made"}, headers=basic(ALICE, token))
    assert r.status_code == 201  # POST on the same path: FastAPI's route
    r = await client.put("/api/app-tokens", headers=basic(ALICE, token))
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST"}
    metrics = (await client.get("/metrics")).text
    assert 'route="/api/app-tokens",status="200"' in metrics.replace('method="GET",', "")


def test_the_rendered_lists_are_the_response_models_json() -> None:
    now = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
    records = [
        AppTokenRecord(
            id=f"abcdefghijk{i}",
            owner=ALICE,
            label=label,
            scopes=scopes,
            secret_hash="00" * 32,
            key_id="k1",
            created_at=now,
            expires_at=now + timedelta(days=3, microseconds=i),
            created_by=ADMIN,
            last_used_at=used,
        )
        for i, (label, scopes, used) in enumerate(
            [
                ("sync", (MANAGE_SCOPE, "files:read"), now),
                ('\u00e9\u20ac "quoted" \\ \n\t\u2028', (), None),
                ("", ("a",), now + timedelta(seconds=1)),
            ]
        )
    ]
    out = TypeAdapter(list[routes.AppTokenOut]).dump_json(
        [
            routes.AppTokenOut(
                id=r.id,
                prefix="twa_" + r.id,
                owner=r.owner,
                label=r.label,
                scopes=list(r.scopes),
                created_at=r.created_at,
                expires_at=r.expires_at,
                last_used_at=r.last_used_at,
                created_by=r.created_by,
            )
            for r in records
        ]
    )
    assert routes.render_list(routes._out_item, records) == out
    ocis = TypeAdapter(list[routes.OcisToken]).dump_json(
        [
            routes.OcisToken(
                token="twa_" + r.id, expiration_date=r.expires_at, created_date=r.created_at, label=r.label, id=r.id
            )
            for r in records
        ]
    )
    assert routes.render_list(routes._ocis_item, records) == ocis
    assert b"00" * 32 not in out + ocis  # never the hash
    assert routes.render_list(routes._out_item, []) == b"[]"


def test_the_hot_lists_are_the_routes_the_openapi_document_describes() -> None:
    listed = {
        r.path: r.response_model for r in routes.router.routes if isinstance(r, APIRoute) and "GET" in (r.methods or ())
    }
    assert listed["/api/app-tokens"] == list[routes.AppTokenOut]
    assert listed["/auth-app/tokens"] == list[routes.OcisToken]
    assert list(routes.AppTokenOut.model_fields) == list(routes._out_item(_record()))
    assert list(routes.OcisToken.model_fields) == list(routes._ocis_item(_record()))


def _record() -> AppTokenRecord:
    now = datetime.fromtimestamp(time.time(), UTC)
    return AppTokenRecord(
        id="abcdefghijkl",
        owner=ALICE,
        label="",
        scopes=(),
        secret_hash="",
        key_id="",
        created_at=now,
        expires_at=now,
        created_by=ALICE,
    )


async def test_a_stale_change_feed_refuses_the_hot_lists_as_the_routes_do(
    pair: Callable[..., Awaitable[Pair]], caplog: pytest.LogCaptureFixture
) -> None:
    p = await pair()
    _, token = await p.service.create(owner=ALICE, created_by="cli", scopes=[MANAGE_SCOPE])
    assert (await p.client("hot").get("/api/app-tokens", headers=basic(ALICE, token))).status_code == 200
    feed = p.runtime.changes
    await feed.stop()  # no read from now on, and the feed's clock past the max lag
    later = feed.monotonic() + p.runtime.settings.changes_max_lag_seconds + 1
    feed.monotonic = lambda: later
    for path in ("/api/app-tokens", "/auth-app/tokens"):
        caplog.clear()
        hot, routed = await p.both(path, basic(ALICE, token))
        assert hot.status_code == 503 and hot.json()["error"] == "changes_stale", hot.text
        _same(hot, routed, path)
        # the API's error handler logs a 5xx once per request, on both front doors
        logged = [r.getMessage().split(":")[0] for r in caplog.records if r.name == "tokenward.web"]
        assert logged == ["changes_stale"] * 2


async def test_the_chain_kept_for_the_hot_lists_asks_the_current_admin_check(
    pair: Callable[..., Awaitable[Pair]],
) -> None:
    p = await pair()
    sessions = chain_of(p.runtime)[1]
    assert isinstance(sessions, SourceIdentifierAuthenticator)
    assert not sessions.is_admin("root@example.com")
    p.service.is_admin = lambda subject: subject == "root@example.com"  # e.g. a test's, after the chain was built
    assert sessions.is_admin("root@example.com")
