"""The `tokenward` command: one module per command group, assembled here."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tokenward import __version__
from tokenward.cli._common import DATA_DIR_OPTION, error_exit, fail, load_settings
from tokenward.cli._lazy import LazyGroup, LazySpec
from tokenward.errors import TokenwardError

if TYPE_CHECKING:
    from tokenward.datadir import DataDir

# What a command needs (settings, data dir, keys, the runtime, uvicorn) is imported inside it: `tokenward --help`
# and `--version` import typer and little else.

# Command groups, imported only when invoked (cli/_lazy.py): add new ones here rather than with app.add_typer,
# so that `tokenward --help` and the light commands do not import every group's dependencies.
LAZY_COMMANDS = (
    LazySpec(
        "app-hash",
        "tokenward.cli.client:app_hash",
        "Print the app hash (uppercase SHA-512) of an origin's host[:port], or of a file's bytes.",
        group=False,
    ),
    LazySpec(
        "audit",
        "tokenward.cli.audit:audit",
        "Print audit events, newest first; a full page ends with the --before cursor of the next one.",
        group=False,
    ),
    LazySpec(
        "timecode",
        "tokenward.cli.timecode:app",
        "Manage the time code: the cluster secret every instance of one server name shares. "
        "All keys derive from it (docs/keys.md).",
    ),
    LazySpec(
        "db",
        "tokenward.cli.db:app",
        "Manage the SQL database: apply schema migrations and show the schema revision. The database is "
        "TOKENWARD_DATABASE_URL, or the SQLite file tokenward.db in the data dir (docs/storage.md).",
    ),
    LazySpec("client", "tokenward.cli.client:app", "Register and manage client apps (client IDs and app hashes)."),
    LazySpec("resource", "tokenward.cli.client:resource_app", "Resource servers allowed to log in by machine login."),
    LazySpec("user", "tokenward.cli.user:app", "Users: enrolment of authenticators."),
    LazySpec(
        "authenticator",
        "tokenward.cli.authenticator:app",
        "The reference authenticator: a key pair that reads your captchas.",
    ),
    LazySpec(
        "policy",
        "tokenward.cli.policy:app",
        "Policy files: write commented samples, lint them, check a request and see why (docs/policies.md).",
    ),
    LazySpec(
        "app-token",
        "tokenward.cli.app_token:app",
        "App tokens for third-party tools (HTTP Basic user:token). Works directly on the database; the API is "
        "/auth-app/tokens and /api/app-tokens (docs/app-tokens.md).",
    ),
    LazySpec(
        "config-token",
        "tokenward.cli.config_token:app",
        "Config tokens tell /verify which plugins, assertions and policy apply (docs/forward-auth.md).",
    ),
    LazySpec(
        "oidc",
        "tokenward.cli.oidc:app",
        "The OpenID Provider: register relying parties (client IDs, secrets, redirect URIs); docs/oidc.md.",
    ),
    LazySpec(
        "config",
        "tokenward.cli.config:app",
        "Share the master configuration through S3: policies, client IDs, and the sealed time code.",
    ),
    LazySpec(
        "host",
        "tokenward.cli.host:app",
        "Set up a Linux host for system login through PAM (run on the host).",
    ),
)


class RootGroup(LazyGroup):
    lazy_commands = LAZY_COMMANDS


app = typer.Typer(
    cls=RootGroup,
    name="tokenward",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="tokenward — a self-hosted token server: sessions, client tokens, client IDs, app tokens and forward auth, "
    "authorized by Casbin policy files.\n\nStart with `tokenward init --server-name auth.example.com`, then "
    "`tokenward serve`. Every setting is also an environment variable TOKENWARD_<NAME> (docs/configuration.md).",
)


_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def _set_data_dir(value: Path | None) -> Path | None:
    # Eager, so that -o and -t (which act while options are parsed) see it too.
    DATA_DIR_OPTION.set(value)
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tokenward {__version__}")
        raise typer.Exit()


def _show_owner(value: bool) -> None:
    if value:
        server_name()
        raise typer.Exit()


def _interactive_timecode(value: bool) -> None:
    if value:
        from tokenward.cli import timecode

        try:
            timecode.run_interactive()
        except TokenwardError as exc:
            raise error_exit(exc) from None
        raise typer.Exit()


def _saveconfig(value: bool) -> None:
    if value:
        from tokenward.cli import config

        try:
            config.run_save()
        except TokenwardError as exc:
            raise error_exit(exc) from None
        raise typer.Exit()


def _getconfig(value: bool) -> None:
    if value:
        from tokenward.cli import config

        try:
            config.run_get()
        except TokenwardError as exc:
            raise error_exit(exc) from None
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        "-d",
        envvar="TOKENWARD_DATA_DIR",
        help="Data dir (default ./tokenward-data).",
        show_envvar=True,
        is_eager=True,
        callback=_set_data_dir,
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    show_owner: bool = typer.Option(
        False, "-o", "--showowner", callback=_show_owner, help="Print the server name (same as `server-name`)."
    ),
    interactive: bool = typer.Option(
        False,
        "-t",
        callback=_interactive_timecode,
        help="Set or generate the time code interactively (as the original).",
    ),
    saveconfig: bool = typer.Option(
        False, "--saveconfig", callback=_saveconfig, help="Save the configuration to S3 (same as `config save`)."
    ),
    getconfig: bool = typer.Option(
        False, "--getconfig", callback=_getconfig, help="Load the configuration from S3 (same as `config get`)."
    ),
) -> None:
    """Global options apply to every command."""


@app.command("server-name")
def server_name() -> None:
    """Print the server name (the deployment's resource name, e.g. auth.example.com)."""
    from tokenward.datadir import DataDir, load_server_name

    settings = load_settings()
    typer.echo(load_server_name(settings, DataDir(settings.data_dir)))


@app.command()
def init(
    server_name: str = typer.Option(
        ..., "--server-name", "-s", help="DNS name of this deployment, e.g. auth.example.com."
    ),
    admin: str | None = typer.Option(
        None, "--admin", help="E-mail of the first admin (adds an admin row to userpolicy.csv)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Re-initialize an existing data dir (the old time code is backed up)."
    ),
    exist_ok: bool = typer.Option(
        False, "--exist-ok", help="Succeed without changes if the data dir is already initialized."
    ),
) -> None:
    """Create the data dir (0700) with sample policy files, the server name and a fresh time code."""
    from tokenward.datadir import DataDir
    from tokenward.keys import TimeCode
    from tokenward.settings import validate_server_name

    try:
        name = validate_server_name(server_name)
    except ValueError as exc:
        raise fail(f"--server-name: {exc}") from None
    if admin is not None:
        admin = admin.strip().lower()
        if not _EMAIL.match(admin):
            raise fail(f"--admin: {admin!r} is not an e-mail address like alice@example.com")
    settings = load_settings()
    data_dir = DataDir(settings.data_dir)
    if data_dir.is_initialized() and not force:
        existing = data_dir.read_server_name()
        if exist_ok and existing in (None, name):
            typer.echo(f"{data_dir.path} is already initialized for {existing}; nothing changed.")
            return
        raise fail(
            f"{data_dir.path} is already initialized (server name {existing}); "
            "use --force to re-initialize (the old time code is kept in a backup file)"
        )
    now = time.time()
    data_dir.create()
    backup = data_dir.backup_timecode(now=now)
    data_dir.write_server_name(name)
    code = TimeCode.generate(now=now, random_bytes=secrets.token_bytes(32))
    data_dir.install_timecode(code, now=now, grace_seconds=0)
    data_dir.ensure_apptoken_key()  # kept across --force: existing app tokens stay valid
    from tokenward.cli import client

    first_party = client.ensure_first_party_client(data_dir.path, name)
    written = _write_policy_samples(data_dir, name, admin)
    typer.echo(f"Initialized {data_dir.path} for {name}.")
    typer.echo(f"Client ID of the tokenward UI: {first_party.client_id}")
    typer.echo(f"Time code key id: {code.key_id} (see it with `tokenward timecode show --reveal`).")
    if backup is not None:
        typer.echo(f"The previous time code was saved to {backup}.")
    if written:
        typer.echo(f"Sample policy files: {', '.join(written)}")
    typer.echo("Next: tokenward serve")


def _write_policy_samples(data_dir: DataDir, server: str, admin: str | None) -> list[str]:
    from tokenward.policy.samples import write_samples

    written = [path.name for path in write_samples(data_dir.path, server_name=server)]
    if admin is not None:
        # The first admin is an ordinary policy row: there is no hidden superuser.
        with (data_dir.path / "userpolicy.csv").open("a", encoding="utf-8") as policy:
            policy.write(
                f"\n# First admin, added by `tokenward init --admin`.\np, {admin}, {server}, TOKENWARD, admin\n"
            )
    return written


@app.command()
def serve(
    host: str | None = typer.Option(None, "--host", help="Address to bind [TOKENWARD_HOST, default 127.0.0.1]."),
    port: int | None = typer.Option(None, "--port", "-p", help="Port [TOKENWARD_PORT, default 8080]."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Worker processes [TOKENWARD_WORKERS, default 1]."
    ),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development only)."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate chain [TOKENWARD_TLS_CERT]."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key, mode 0600 [TOKENWARD_TLS_KEY]."),
) -> None:
    """Serve HTTP(S). Checks the configuration and the database first and exits non-zero with a clear message."""
    import asyncio

    import uvicorn
    from pydantic import SecretStr

    from tokenward.logs import configure_logging
    from tokenward.runtime import open_runtime
    from tokenward.web.app import create_app
    from tokenward.web.httpserver import CoalescingHttpToolsProtocol

    settings = load_settings(host=host, port=port, workers=workers, tls_cert=tls_cert, tls_key=tls_key)
    configure_logging(settings.log_level, settings.log_format)

    async def preflight() -> None:
        runtime = await open_runtime(settings, listen=False)
        await runtime.close()

    asyncio.run(preflight())
    ssl = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)} if settings.tls_cert else {}
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        # X-Forwarded-For is believed only from TOKENWARD_TRUSTED_PROXIES (tokenward.clientaddr), not from
        # whatever uvicorn's own default (--forwarded-allow-ips, loopback) would trust.
        "proxy_headers": False,
        # The standard library's loop by default, not uvloop: with a saturated loop uvloop accepted about one
        # connection per loop turn, so at 200 new connections most waited seconds in the kernel's accept queue
        # (bench/README.md, list API); asyncio's loop accepts every waiting connection when the listening socket
        # is readable. TOKENWARD_EVENT_LOOP=uvloop chooses the other trade (docs/deployment.md).
        "loop": settings.event_loop,
        # uvicorn's httptools protocol, each response sent in one write rather than its headers and body in two.
        "http": CoalescingHttpToolsProtocol,
        **ssl,
    }
    if settings.workers > 1 or reload:
        # Workers and the reloader import the app themselves: hand them the settings through the environment.
        for name in type(settings).model_fields:
            value = getattr(settings, name)
            if value is not None and name != "policy_segments":
                text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                os.environ[f"TOKENWARD_{name.upper()}"] = text
        os.environ["TOKENWARD_POLICY_SEGMENTS"] = ",".join(sorted(settings.policy_segments))
        uvicorn.run(
            "tokenward.web.app:create_app_from_env", factory=True, workers=settings.workers, reload=reload, **common
        )
    else:
        uvicorn.run(create_app(settings), **common)


def main() -> None:
    """Console-script entry point."""
    app()
