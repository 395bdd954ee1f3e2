"""`tokenward user enroll EMAIL`: an admin-issued one-time enrolment code (docs/protocol.md §3)."""

from __future__ import annotations

import asyncio
import time

import typer

from tokenward.cli._common import load_settings
from tokenward.datadir import DataDir, load_server_name
from tokenward.identity.apps import ClientRegistry
from tokenward.identity.policy import RulesPolicy
from tokenward.identity.service import ENROLLMENT_CODE_TTL, IdentityService
from tokenward.storage import Database
from tokenward.storage.audit import SqlAuditLog
from tokenward.storage.identity import SqlIdentityStore

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Users: enrolment of authenticators.")


@app.command("enroll")
def enroll(email: str = typer.Argument(..., help="E-mail address to enrol.")) -> None:
    """Print a one-time code (valid 24 h) the user types into `tokenward authenticator enroll`."""
    settings = load_settings()
    server = load_server_name(settings, DataDir(settings.data_dir))
    keyring = DataDir(settings.data_dir).read_timecodes().keyring()

    async def run() -> str:
        async with Database.connect(settings.database_url_or_default) as db:
            await db.upgrade()
            service = IdentityService(
                server_name=server,
                keyring=lambda: keyring,
                store=SqlIdentityStore(db),
                policy=lambda: RulesPolicy(server),
                clients=ClientRegistry,
                audit=SqlAuditLog(db),
            )
            return await service.issue_enrollment_code(email, now=time.time(), actor="cli")

    code = asyncio.run(run())
    typer.echo(f"One-time enrolment code for {email.strip().lower()} (valid {ENROLLMENT_CODE_TTL // 3600} h):")
    typer.echo(f"  {code}")
