"""`tokenward user enroll EMAIL`: an admin-issued one-time enrolment code (docs/protocol.md §3)."""

from __future__ import annotations

import asyncio
import time

import typer

from tokenward.cli._common import cli_runtime
from tokenward.identity.common import ENROLLMENT_CODE_TTL

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Users: enrolment of authenticators.")


@app.command("enroll")
def enroll(email: str = typer.Argument(..., help="E-mail address to enrol.")) -> None:
    """Print a one-time code (valid 24 h) the user types into `tokenward authenticator enroll`."""

    async def run() -> str:
        # The runtime's enrolment flow (start-up checks, the policy in force), no other identity flow is built.
        async with cli_runtime() as runtime:
            return await runtime.enrolment.issue_enrollment_code(email, now=time.time(), actor="cli")

    code = asyncio.run(run())
    typer.echo(f"One-time enrolment code for {email.strip().lower()} (valid {ENROLLMENT_CODE_TTL // 3600} h):")
    typer.echo(f"  {code}")
