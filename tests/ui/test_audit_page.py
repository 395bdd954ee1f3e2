"""/admin/audit: filters by actor, action and time range, pages of events, clear errors for bad filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import Enrol
from tests.ui.portal import ADMIN
from tests.ui.test_login import sign_in
from tokenward.settings import Settings
from tokenward.storage import AuditEvent, Database, SqlAuditLog

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROW = re.compile(r'<tr class="event" data-id="(\d+)"')


async def seed_events(data: Path) -> None:
    """120 events on 2026-01-01, one a minute: alice and bob, apptoken.create and apptoken.revoke in turn."""
    async with Database.connect(Settings.load(data_dir=data).database_url_or_default) as db:
        log = SqlAuditLog(db)
        for i in range(120):
            actor = ("alice@example.com", "bob@example.com")[i % 2]
            action = ("apptoken.create", "apptoken.create", "apptoken.revoke", "apptoken.revoke")[i % 4]
            detail = {"label": f"token {i}", "scopes": ["read", "write"], "note": "x" * 60}
            await log.append(
                AuditEvent(at=T0 + timedelta(minutes=i), actor=actor, action=action, target=f"tok_{i}", detail=detail)
            )


@pytest.fixture
async def signed_in(browser: httpx.AsyncClient, enrol: Enrol) -> httpx.AsyncClient:
    await sign_in(browser, enrol, ADMIN)
    return browser


@pytest.fixture
async def admin(signed_in: httpx.AsyncClient, data: Path) -> httpx.AsyncClient:
    await seed_events(data)
    return signed_in


def rows(html: str) -> list[int]:
    return [int(n) for n in ROW.findall(html)]


async def test_filters_by_actor_and_action(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/admin/audit", params={"actor": "alice@example.com", "action": "apptoken.create"})
    assert r.status_code == 200
    assert len(rows(r.text)) == 30  # every other event is alice's, every other pair a create
    assert "bob@example.com</td>" not in r.text and "apptoken.revoke" not in r.text.split("<tbody>")[1]
    assert 'value="alice@example.com"' in r.text  # the form keeps the filter


async def test_pages_walk_every_event_once(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/admin/audit", params={"actor": "alice@example.com"})
    first = rows(r.text)
    assert len(first) == 50  # the default page size
    older = re.search(r'href="(/admin/audit\?[^"]*before=[^"]+)"', r.text)
    assert older is not None and "actor=alice%40example.com" in older.group(1)
    r = await admin.get(older.group(1).replace("&amp;", "&"))
    second = rows(r.text)
    assert len(second) == 10 and not set(first) & set(second)
    assert "before=" not in r.text.split("</table>")[1]  # the last page has no older link
    assert sorted(first + second, reverse=True) == first + second  # newest first throughout


async def test_time_range(admin: httpx.AsyncClient) -> None:
    r = await admin.get("/admin/audit", params={"since": "2026-01-01T00:10", "until": "2026-01-01T00:20"})
    assert r.status_code == 200 and len(rows(r.text)) == 10  # since inclusive, until exclusive
    r = await admin.get("/admin/audit", params={"until": "2026-01-01", "limit": "500"})
    assert len(rows(r.text)) == 120  # a bare date means through the end of that day
    r = await admin.get("/admin/audit", params={"since": "2026-01-02"})
    assert T0.strftime("%Y-%m-%d") not in r.text.split("<tbody>")[1]  # only today's sign-in events


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"since": "yesterday"}, "is not a date"),
        ({"until": "2026-13-45"}, "is not a date"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "after since"),
        ({"limit": "x"}, "between 1 and 500"),
        ({"limit": "0"}, "between 1 and 500"),
        ({"limit": "100000"}, "between 1 and 500"),
        ({"before": "garbage"}, "paging link"),
        ({"before": "99999999999999999999999-1"}, "paging link"),
        ({"actor": "a" * 400}, "at most 320"),
    ],
)
async def test_bad_filters_are_a_400_form_error(
    signed_in: httpx.AsyncClient, params: dict[str, str], text: str
) -> None:
    r = await signed_in.get("/admin/audit", params=params)
    assert r.status_code == 400, r.text
    assert 'role="alert"' in r.text and text in r.text and "Traceback" not in r.text
    assert rows(r.text) == []
