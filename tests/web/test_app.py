from __future__ import annotations

import dataclasses
import gc
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, insert
from starlette.requests import Request
from starlette.responses import Response

from tokenward.errors import StorageUnavailable
from tokenward.runtime import Runtime
from tokenward.settings import Settings
from tokenward.storage import Database
from tokenward.storage.changes import Change, ChangeKind, ChangeLogRow, write_changes
from tokenward.web.app import create_app


async def test_resourceinfo_is_the_server_name_as_plain_text(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/resourceinfo")
    assert r.status_code == 200
    assert r.text == "auth.example.com"
    assert r.headers["content-type"].startswith("text/plain")


async def test_healthz_and_readyz(client: httpx.AsyncClient, runtime: Runtime) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert body["checks"] == {"config": "ok", "database": "ok", "policy": "ok", "client_ids": "ok", "changes": "ok"}
    assert body["policy"]["version"] == runtime.policy.version
    assert body["timecode"] == runtime.timecodes.current.key_id


async def test_readyz_503_when_database_goes_away(settings: Settings, runtime: Runtime) -> None:
    # The same runtime, but its database is now a server nobody listens on.
    gone = dataclasses.replace(
        runtime, database=Database.connect("postgresql://postgres@127.0.0.1:9/tokenward", connect_timeout=1)
    )
    app = create_app(settings, runtime=gone)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/readyz")
    await gone.close()
    assert r.status_code == 503
    body = r.json()
    assert body["error"] == "not_ready" and body["checks"]["database"] != "ok"
    assert "database" in body["detail"]


async def test_readyz_503_when_the_change_feed_is_stale(client: httpx.AsyncClient, runtime: Runtime) -> None:
    # The feed's clock moves past max lag with no successful read: memory can no longer be vouched for.
    await runtime.changes.stop()  # no read from now on
    later = runtime.changes.monotonic() + runtime.settings.changes_max_lag_seconds + 1
    runtime.changes.monotonic = lambda: later
    r = await client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["error"] == "not_ready" and body["checks"]["changes"].startswith("changes_stale: no successful read")
    assert "changes" in body["detail"]


async def test_readyz_503_before_configuration_is_loaded(settings: Settings) -> None:
    app = create_app(settings)  # lifespan not run: nothing loaded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/readyz")
        info = await c.get("/api/resourceinfo")
    assert r.status_code == 503 and r.json()["error"] == "not_ready"
    assert info.status_code == 503 and info.json()["error"] == "not_ready"


@pytest.fixture
async def raising_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async def storage_down(request: Request) -> Response:
        raise StorageUnavailable("the database did not answer; check TOKENWARD_DATABASE_URL")

    async def bug(request: Request) -> Response:
        raise RuntimeError("secret-ish internal state 1234")

    app.add_route("/test/storage-down", storage_down)
    app.add_route("/test/bug", bug)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_storage_errors_are_503_with_a_code(raising_client: httpx.AsyncClient) -> None:
    r = await raising_client.get("/test/storage-down")
    assert r.status_code == 503
    assert r.json() == {
        "error": "storage_unavailable",
        "detail": "the database did not answer; check TOKENWARD_DATABASE_URL",
    }


async def test_unexpected_errors_are_json_500_without_internals(raising_client: httpx.AsyncClient) -> None:
    r = await raising_client.get("/test/bug", headers={"x-request-id": "req-42"})
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error"
    assert "req-42" in r.json()["detail"]
    assert "1234" not in r.text and "Traceback" not in r.text


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.post("/healthz")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


async def test_oversized_body_by_header_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/healthz", content=b"x" * 4096)
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large" and "2048" in r.json()["detail"]


async def test_oversized_streamed_body_is_413(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def echo(request: Request) -> Response:
        return Response(await request.body())

    app.add_route("/test/echo", echo, methods=["POST"])

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 512

    r = await client.post("/test/echo", content=chunks())
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    ok = await client.post("/test/echo", content=b"z" * 100)
    assert ok.status_code == 200 and ok.content == b"z" * 100


async def test_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/healthz", headers={"content-length": "abc"}, content=b"")
    assert r.status_code == 400 and r.json()["error"] == "bad_content_length"


async def test_request_id_echoed_or_generated(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    generated = r.headers["x-request-id"]
    assert generated != "bad id\twith spaces" and len(generated) == 24 and int(generated, 16) >= 0
    assert (await client.get("/healthz")).headers["x-request-id"] != generated


async def test_metrics_count_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/nope/123")
    text = (await client.get("/metrics")).text
    assert 'tokenward_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "/nope/123" not in text
    assert "tokenward_http_request_duration_seconds_bucket" in text


def _sql_statements(metrics_text: str) -> float:
    found = re.search(r"^tokenward_sql_statements_total (\S+)$", metrics_text, re.MULTILINE)
    assert found, "tokenward_sql_statements_total is missing from /metrics"
    return float(found.group(1))


async def test_metrics_count_sql_statements(client: httpx.AsyncClient, runtime: Runtime) -> None:
    before = _sql_statements((await client.get("/metrics")).text)
    assert before == runtime.database.statements
    await client.get("/healthz")  # no SQL
    assert _sql_statements((await client.get("/metrics")).text) == before
    assert (await client.get("/readyz")).status_code == 200  # pings the database
    after = _sql_statements((await client.get("/metrics")).text)
    assert after > before and after == runtime.database.statements


def _metric(metrics_text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics_text, re.MULTILINE)
    assert found, f"{name} is missing from /metrics"
    return float(found.group(1))


async def test_metrics_follow_the_change_feed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    feed = runtime.changes
    await feed.stop()  # the test drives the reads itself
    engine = runtime.database.engine
    text = (await client.get("/metrics")).text
    start, applied = _metric(text, "tokenward_changes_position"), _metric(text, "tokenward_changes_applied_total")
    assert start == await feed.log.head() and _metric(text, "tokenward_changes_holes") == 0
    assert _metric(text, "tokenward_changes_resets_total") == 0

    # one change applied: the position moves to it
    async with engine.begin() as conn:
        await write_changes(conn, [Change(ChangeKind.APP_TOKEN, secrets.token_hex(8))], datetime.now(UTC))
    assert await feed.poll() == 1
    text = (await client.get("/metrics")).text
    head = await feed.log.head()
    assert head == start + 1
    assert _metric(text, "tokenward_changes_position") == head
    assert _metric(text, "tokenward_changes_applied_total") == applied + 1

    # seq head+2 visible before head+1 (out-of-order commits): one hole outstanding
    async with engine.begin() as conn:
        await conn.execute(
            insert(ChangeLogRow).values(
                seq=head + 2, at=datetime.now(UTC), kind=ChangeKind.APP_TOKEN.value, key=secrets.token_hex(8)
            )
        )
    assert await feed.poll() == 1
    text = (await client.get("/metrics")).text
    assert _metric(text, "tokenward_changes_position") == head + 2
    assert _metric(text, "tokenward_changes_holes") == 1

    # no successful read for a while: the lag grows with the feed's clock
    later = feed.monotonic() + 42
    feed.monotonic = lambda: later
    assert _metric((await client.get("/metrics")).text, "tokenward_changes_lag_seconds") >= 42

    # the log went backwards (a restored database): the feed resets and says so
    async with engine.begin() as conn:
        await conn.execute(delete(ChangeLogRow))
    await feed.prune()
    text = (await client.get("/metrics")).text
    assert _metric(text, "tokenward_changes_resets_total") == 1
    assert _metric(text, "tokenward_changes_position") == 0


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200 and r.json()["info"]["title"] == "tokenward"


def test_metrics_histogram_buckets_are_cumulative() -> None:
    from tokenward.web.metrics import Metrics

    metrics = Metrics()
    for seconds in (0.0004, 0.0005, 0.003, 7.0):
        metrics.observe("/verify", "GET", 200, seconds)
    metrics.observe("/verify", "GET", 401, 0.001)
    text = metrics.render().decode()
    assert 'tokenward_http_requests_total{method="GET",route="/verify",status="200"} 4.0' in text
    assert 'tokenward_http_requests_total{method="GET",route="/verify",status="401"} 1.0' in text
    bucket = 'tokenward_http_request_duration_seconds_bucket{le="%s",route="/verify"} %s'
    assert bucket % ("0.0005", "2.0") in text  # le: 0.0005 itself counts in its bucket
    assert bucket % ("0.001", "3.0") in text
    assert bucket % ("0.005", "4.0") in text
    assert bucket % ("5.0", "4.0") in text
    assert bucket % ("+Inf", "5.0") in text
    assert 'tokenward_http_request_duration_seconds_count{route="/verify"} 5.0' in text
    assert 'tokenward_http_request_duration_seconds_sum{route="/verify"} 7.0049' in text


async def test_a_served_app_keeps_what_start_up_loaded_out_of_full_collections(settings: Settings) -> None:
    # With 100,000 app tokens held, every full collection walked them all: p99 322 ms with the collector, 40 ms without.
    gc.unfreeze()
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_decode_headers_joins_repeats_bounds_size_and_name_memory() -> None:
    """The hot path's header decoding: repeated headers joined (cookies with "; "), the 64 KiB cap on the raw
    header bytes, and a memory of decoded names that many distinct names cannot grow past its bound."""
    from tokenward.errors import BadRequest
    from tokenward.web import middleware
    from tokenward.web.middleware import MAX_HEADER_BYTES, decode_headers

    raw = [(b"x-a", b"1"), (b"cookie", b"a=1"), (b"x-a", b"2"), (b"cookie", b"b=2"), (b"host", b"h\xe9")]
    assert decode_headers(raw) == {"x-a": "1, 2", "cookie": "a=1; b=2", "host": "h\xe9"}
    assert decode_headers([(b"x-big", b"x" * (MAX_HEADER_BYTES - 5))]) == {"x-big": "x" * (MAX_HEADER_BYTES - 5)}
    with pytest.raises(BadRequest) as caught:
        decode_headers([(b"x-big", b"x" * (MAX_HEADER_BYTES - 4))])
    assert caught.value.error_code == "headers_too_large"
    for i in range(middleware._NAMES_MAX * 2):
        assert decode_headers([(f"x-odd-{i}".encode(), b"v")]) == {f"x-odd-{i}": "v"}
    assert len(middleware._NAMES) <= middleware._NAMES_MAX
