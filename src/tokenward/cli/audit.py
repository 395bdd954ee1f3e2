"""`tokenward audit`: read the audit log (issuance, revocation, impersonation, failed use, bans)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import typer

from tokenward.apptokens import parse_duration
from tokenward.cli._common import cli_runtime, fail, load_settings
from tokenward.errors import BadRequest
from tokenward.storage import AuditEvent, SqlAuditLog


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(value)
    except BadRequest:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--since {value!r}: give a duration (1h, 7d) or an ISO time (2026-01-31T12:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit(
    actor: str | None = typer.Option(None, "--actor", help="Only events by this actor."),
    action: str | None = typer.Option(
        None,
        "--action",
        help="Only this action, e.g. apptoken.create, apptoken.delete, apptoken.impersonate, "
        "apptoken.verify_failed, regulation.ban.",
    ),
    since: str | None = typer.Option(None, "--since", help="Only events newer than a duration (1h) or an ISO time."),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="Most events to print (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Print audit events, newest first."""
    settings = load_settings()
    since_at = _since(since)

    async def run() -> list[AuditEvent]:
        async with cli_runtime(settings, migrate=False) as runtime:  # reading the log changes no schema
            return await SqlAuditLog(runtime.database).list(actor=actor, action=action, since=since_at, limit=limit)

    events = asyncio.run(run())
    for e in events:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "id": e.id,
                        "at": e.at.isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "subject": e.subject,
                        "target": e.target,
                        "detail": e.detail,
                        "request_id": e.request_id,
                    }
                )
            )
        else:
            detail = " ".join(f"{k}={v}" for k, v in e.detail.items())
            typer.echo(
                f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.action:<24} {e.actor:<28} {e.subject or '-':<28} "
                f"{e.target or '-':<14} {detail}"
            )
    if not events:
        typer.echo("no audit events", err=True)
