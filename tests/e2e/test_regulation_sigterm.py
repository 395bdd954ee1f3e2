"""Failed checks counted in memory and their audit events, written behind, reach the database when
`tokenward serve` gets SIGTERM; the requests themselves wrote none (docs/regulation.md)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

import httpx

from tests.e2e.processes import env_for, serving, stop
from tests.helpers import init_data_dir
from tokenward.storage import Database, SqlAuditLog
from tokenward.storage.urls import default_sqlite_url


async def _written(data: Path) -> tuple[int, list[str]]:
    from sqlalchemy import func, select

    from tokenward.storage.regulation import AuthFailureRow

    async with Database.connect(default_sqlite_url(data)) as db:
        async with db.session() as session:
            failures = int((await session.execute(select(func.count()).select_from(AuthFailureRow))).scalar_one())
        events = await SqlAuditLog(db).list(action="apptoken.verify_failed")
    return failures, [str(e.detail.get("reason")) for e in events]


def test_sigterm_writes_the_failures_and_audit_events_kept_in_memory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, "auth.example.com")
    # An hour between flushes: only the shutdown can write them within this test.
    env = env_for(data, TOKENWARD_REGULATION_FLUSH_SECONDS="3600")
    wrong = "Basic " + base64.b64encode(f"mallory@example.com:{secrets.token_urlsafe(30)}".encode()).decode()
    with serving(env) as (url, proc):
        for _ in range(2):
            r = httpx.get(url + "/api/app-tokens", headers={"Authorization": wrong}, timeout=30)
            assert r.status_code == 401, r.text
        assert asyncio.run(_written(data)) == (0, [])  # the requests wrote nothing
        stop(proc)  # SIGTERM, then the shutdown: Runtime.close flushes
        assert proc.returncode is not None
    failures, reasons = asyncio.run(_written(data))
    assert failures == 2  # the address, twice (a malformed token is no guess at the user's token: docs/regulation.md)
    assert len(reasons) == 2
