"""last_used_at, written behind, reaches the database when `tokenward serve` gets SIGTERM (docs/app-tokens.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from tests.e2e.processes import env_for, serving, stop, tokenward
from tests.helpers import init_data_dir


def _last_used(env: dict[str, str]) -> str | None:
    listed = tokenward("app-token", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    value = json.loads(listed.stdout.splitlines()[0])["last_used_at"]
    return None if value is None else str(value)


def test_sigterm_flushes_last_used(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data, "auth.example.com")
    # A day between periodic flushes: only the shutdown can write it within this test.
    env = env_for(data, TOKENWARD_APP_TOKENS_LAST_USED_INTERVAL_SECONDS="86400")
    created = tokenward("app-token", "create", "-u", "alice@example.com", "-s", "tokenward:manage", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[0]
    basic = "Basic " + base64.b64encode(f"alice@example.com:{token}".encode()).decode()
    with serving(env) as (url, proc):
        r = httpx.get(url + "/api/app-tokens", headers={"Authorization": basic}, timeout=30)
        assert r.status_code == 200, r.text
        shown = r.json()[0]["last_used_at"]
        assert shown is not None  # this instance shows the use it has not written yet
        assert _last_used(env) is None  # the request wrote nothing
        stop(proc)  # SIGTERM, then the shutdown: Runtime.close flushes
        assert proc.returncode is not None
    written = _last_used(env)
    assert written is not None
    assert abs(_seconds(written) - _seconds(shown)) < 1e-3


def _seconds(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
