"""`tokenward timecode`: generate, set, show, rotate, and the original's interactive `-t`."""

from __future__ import annotations

import secrets
import sys
import time

import typer

from tokenward.cli._common import GuardedGroup, load_settings
from tokenward.datadir import DataDir
from tokenward.keys import TimeCode

app = typer.Typer(
    cls=GuardedGroup,
    no_args_is_help=True,
    help="Manage the time code: the cluster secret every instance of one server name shares. "
    "All keys derive from it (docs/keys.md).",
)


def new_timecode() -> TimeCode:
    return TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32))


def _install(code: TimeCode) -> None:
    settings = load_settings()
    data_dir = DataDir(settings.data_dir)
    data_dir.create()
    codes = data_dir.install_timecode(code, now=time.time(), grace_seconds=settings.timecode_grace_seconds)
    typer.echo("Attempting to Set This Token Server To Use This Time Code... Succeeded.")
    typer.echo(f"Key id: {codes.current.key_id}")
    if codes.previous is not None and codes.previous_until is not None:
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(codes.previous_until))
        typer.echo(f"Previous time code {codes.previous.key_id} is still accepted until {until}.")
    # A server running on this data dir watches the file (docs/keys.md): no restart needed.
    typer.echo(
        f"A server running on {data_dir.path} puts it in force within {settings.policy_watch_seconds:g} s "
        "(at once on SIGHUP); other instances need it too (tokenward timecode set -)."
    )


@app.command()
def generate() -> None:
    """Print a new time code without storing it (store it on each instance with `timecode set -`)."""
    typer.echo(new_timecode().format())


@app.command("set")
def set_(
    code: str = typer.Argument(
        ..., help="The time code, or '-' to read it from stdin (keeps it out of shell history)."
    ),
) -> None:
    """Make CODE the current time code; the old one stays valid for the grace period."""
    text = sys.stdin.readline() if code == "-" else code
    _install(TimeCode.parse(text))


@app.command()
def show(reveal: bool = typer.Option(False, "--reveal", help="Also print the secret time code itself.")) -> None:
    """Show the current (and previous) time code's public label and key id."""
    settings = load_settings()
    codes = DataDir(settings.data_dir).read_timecodes()
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(codes.current.label * 60))
    typer.echo(f"Current:  label {codes.current.label} ({generated}), key id {codes.current.key_id}")
    if reveal:
        typer.echo(f"Time code: {codes.current.format()}")
    if codes.previous is not None and codes.previous_until is not None:
        state = "accepted" if time.time() < codes.previous_until else "expired"
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(codes.previous_until))
        typer.echo(f"Previous: key id {codes.previous.key_id}, {state} until {until}")


@app.command()
def rotate() -> None:
    """Generate and store a new time code, print it for the other instances; the old one gets a grace period."""
    code = new_timecode()
    _install(code)
    typer.echo(f"New Time Code: {code.format()}")
    typer.echo("Set it on every other instance with: tokenward timecode set -")


@app.command()
def interactive() -> None:
    """Ask for a time code like the original `-t`; press Enter to generate a new one."""
    run_interactive()


def run_interactive() -> None:
    answer = typer.prompt(
        "Enter Synchronization Time Code: [Press Enter To Generate a New Time Code]",
        default="",
        show_default=False,
        hide_input=False,
    ).strip()
    if answer:
        code = TimeCode.parse(answer)
    else:
        typer.echo("Generating New Time Code...")
        code = new_timecode()
        typer.echo(f"New Time Code: {code.format()}")
    _install(code)
