"""`tokenward app-token`: create, list and delete app tokens directly in the database (operator access)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from tokenward.apptokens import PREFIX, AppTokenService, cli_actor, format_duration, parse_duration
from tokenward.cli._common import GuardedGroup, load_settings
from tokenward.runtime import open_runtime
from tokenward.storage import AppTokenRecord

app = typer.Typer(
    cls=GuardedGroup,
    no_args_is_help=True,
    help="App tokens for third-party tools (HTTP Basic user:token). Works directly on the database; "
    "the API is /auth-app/tokens and /api/app-tokens (docs/app-tokens.md).",
)

T = TypeVar("T")


def _run(action: Callable[[AppTokenService], Awaitable[T]]) -> T:
    async def main() -> T:
        runtime = await open_runtime(load_settings(), listen=False, eager=False)
        try:
            return await action(runtime.app_tokens)
        finally:
            await runtime.close()

    return asyncio.run(main())


@app.command()
def create(
    user_name: str = typer.Option(..., "--user-name", "-u", help="Owner of the token (e-mail or name)."),
    expiration: str | None = typer.Option(
        None, "--expiration", "-e", help="Lifetime: 72h, 30m, 1h30m, 45s, 7d, 2w [default: 72h]."
    ),
    label: str = typer.Option("Generated via CLI", "--label", "-l", help="A note to recognise the token by."),
    scope: list[str] = typer.Option([], "--scope", "-s", help="Scope to grant; repeat for more (tokenward:manage)."),
) -> None:
    """Create a token and print it once on stdout (details go to stderr)."""
    lifetime = parse_duration(expiration) if expiration is not None else None

    async def action(service: AppTokenService) -> tuple[AppTokenRecord, str]:
        return await service.create(owner=user_name, created_by=cli_actor(), expiry=lifetime, label=label, scopes=scope)

    record, token = _run(action)
    typer.echo(token)
    typer.echo(
        f"created app token {PREFIX}{record.id} for {record.owner}, expires {record.expires_at:%Y-%m-%d %H:%M:%S}Z "
        f"({format_duration(record.expires_at - record.created_at)}); it is shown only once",
        err=True,
    )


@app.command("list")
def list_(
    user_name: str | None = typer.Option(None, "--user-name", "-u", help="Only this user's tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List unrevoked tokens (never a secret or a hash)."""

    async def action(service: AppTokenService) -> list[AppTokenRecord]:
        return await service.list(user_name)

    records = _run(action)
    if as_json:
        for r in records:
            typer.echo(json.dumps(_public(r)))
        return
    if not records:
        typer.echo("no app tokens", err=True)
        return
    typer.echo(f"{'ID':<12}  {'OWNER':<28} {'EXPIRES (UTC)':<19}  {'LAST USED':<19}  {'SCOPES':<20} LABEL")
    for r in records:
        last = f"{r.last_used_at:%Y-%m-%d %H:%M:%S}" if r.last_used_at else "never"
        typer.echo(
            f"{r.id:<12}  {r.owner:<28} {r.expires_at:%Y-%m-%d %H:%M:%S}  {last:<19}  "
            f"{','.join(r.scopes) or '-':<20} {r.label}"
        )


@app.command()
def delete(
    token: str = typer.Argument(..., help="Token id, its twa_<id> prefix, or the token itself."),
    user_name: str | None = typer.Option(None, "--user-name", "-u", help="Only delete it if this user owns it."),
) -> None:
    """Delete (revoke) a token. Every instance refuses it within a second."""

    async def action(service: AppTokenService) -> AppTokenRecord:
        return await service.revoke(service.resolve_reference(token), owner=user_name, actor=cli_actor())

    record = _run(action)
    typer.echo(f"deleted app token {PREFIX}{record.id} of {record.owner}")


def _public(r: AppTokenRecord) -> dict[str, object]:
    return {
        "id": r.id,
        "prefix": PREFIX + r.id,
        "owner": r.owner,
        "label": r.label,
        "scopes": list(r.scopes),
        "created_at": r.created_at.isoformat(),
        "expires_at": r.expires_at.isoformat(),
        "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
        "created_by": r.created_by,
    }
