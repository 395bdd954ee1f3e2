"""The alerts in docs/deployment.md name metrics and labels that /metrics really exposes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import FastAPI

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def alert_expressions() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Monitoring", 1)[1]
    return re.findall(r"^\| [^|]+ \| `([^`]+)`", section, re.M)


async def test_every_tokenward_metric_in_the_alerts_is_exposed(app: FastAPI, client: httpx.AsyncClient) -> None:
    expressions = alert_expressions()
    assert len(expressions) >= 6, "the alert table in docs/deployment.md lost its rows"
    async with app.router.lifespan_context(app):  # as `serve` runs it: sets tokenward_info
        await client.get("/healthz")
        await client.get("/verify", headers={"x-forwarded-uri": "/", "x-forwarded-host": "app.example.com"})
        exposed = (await client.get("/metrics")).text
    names = {name for expr in expressions for name in re.findall(r"\btokenward_[a-z_]+", expr)}
    assert names, "no tokenward metric named in the alerts"
    for name in sorted(names):
        assert re.search(rf"^{name}[{{ ]", exposed, re.M), f"docs/deployment.md alerts on {name}, not in /metrics"
    for label, value in {(m[0], m[1]) for expr in expressions for m in re.findall(r'(\w+)="([^"~=]+)"', expr)}:
        if label == "job":  # Prometheus' own target label
            continue
        if label == "status":  # any status code is a value of the same label
            assert re.search(r'status="\d{3}"', exposed), "no status label in /metrics"
            continue
        assert f'{label}="{value}"' in exposed, f"docs/deployment.md alerts on {label}={value!r}, never exposed"
