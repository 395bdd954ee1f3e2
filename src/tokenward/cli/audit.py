"""`tokenward audit`: read the audit log (issuance, revocation, impersonation, failed use, bans)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import typer

from tokenward.apptokens import parse_duration
from tokenward.cli._common import cli_runtime, load_settings
from tokenward.errors import BadRequest
from tokenward.storage import AuditEvent, SqlAuditLog
from tokenward.storage.audit import Cursor, format_cursor, parse_cursor

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _time(option: str, value: str | None, *, end_of_day: bool = False) -> datetime | None:
    """A duration ago (``1h``, ``7d``) or an ISO time (UTC unless it names a zone); a bad value is a usage error."""
    if value is None:
        return None
    try:
        return datetime.now(UTC) - parse_duration(value)
    except BadRequest:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give a duration ago (1h, 7d) or an ISO time (2026-01-31 or 2026-01-31T12:00:00Z)",
            param_hint=option,
        ) from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if end_of_day and _DATE_ONLY.match(value):
        parsed += timedelta(days=1)  # a bare --until date means through the end of that day
    return parsed


def _cursor(value: str | None) -> Cursor | None:
    if value is None:
        return None
    try:
        return parse_cursor(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a paging cursor; pass the one the previous page printed (like 1767225600000000-42)",
            param_hint="--before",
        ) from None


def audit(
    actor: str | None = typer.Option(None, "--actor", help="Only events by this actor."),
    action: str | None = typer.Option(
        None,
        "--action",
        help="Only this action, e.g. apptoken.create, apptoken.delete, apptoken.impersonate, "
        "apptoken.verify_failed, regulation.ban.",
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only events at or after a duration ago (1h, 7d) or an ISO time (inclusive)."
    ),
    until: str | None = typer.Option(
        None,
        "--until",
        help="Only events before a duration ago (1h) or an ISO time (exclusive; a bare date: through that day).",
    ),
    before: str | None = typer.Option(
        None,
        "--before",
        help="The next (older) page: the cursor the previous page printed after its last event.",
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="Most events to print (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Print audit events, newest first; a full page ends with the --before cursor of the next one."""
    since_at = _time("--since", since)
    until_at = _time("--until", until, end_of_day=True)
    if since_at is not None and until_at is not None and until_at <= since_at:
        raise typer.BadParameter(
            "must be after --since (--since is inclusive, --until exclusive)", param_hint="--until"
        )
    cursor = _cursor(before)
    settings = load_settings()

    async def run() -> list[AuditEvent]:
        async with cli_runtime(settings, migrate=False) as runtime:  # reading the log changes no schema
            return await SqlAuditLog(runtime.database).list(
                actor=actor, action=action, since=since_at, until=until_at, before=cursor, limit=limit
            )

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
                        "cursor": format_cursor(e),
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
    elif len(events) == limit:  # maybe more: say how to get them (stderr, so stdout stays the events)
        typer.echo(f"older events: add --before {format_cursor(events[-1])}", err=True)
