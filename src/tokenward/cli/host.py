"""`tokenward host init|install|pam-config|check`: set up a Linux host for system login (docs/system-login.md).

Run on the host, as root, from an environment where tokenward is installed. At login time PAM
runs only the copied :mod:`tokenward.hostpam` under the system ``python3``; this CLI is set-up only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tokenward.datadir import write_private
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError
from tokenward.hostpam.client import Refused, ServerClient, Unreachable
from tokenward.hostpam.config import (
    DEFAULT_CONFIG,
    ConfigProblem,
    HostConfig,
    address_for,
    load_config,
    render_config,
)
from tokenward.hostpam.install import DEFAULT_LIB_DIR, install, pam_lines

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Set up a Linux host for system login through PAM (run on the host).")

CONFIG = typer.Option(Path(DEFAULT_CONFIG), "--config", "-c", help="The host configuration file.")
LIB_DIR = typer.Option(DEFAULT_LIB_DIR, "--lib-dir", help="Where the PAM side is installed.")
USERS_HELP = """# unix user -> e-mail address for tokenward system login, one pair a line:
#   jdoe  john.doe@example.com
# Users not listed log in as <local>@<domain> when their unix name is <local>--<domain>
# (default_mapping = dashes in pam.conf), e.g. john.doe--example.com.
"""


def _server_name(server: str, timeout: float) -> str:
    url = server.rstrip("/") + "/api/resourceinfo"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"cannot reach {url}: {type(exc).__name__}; give --server-name", code=ErrorCode.SERVER_UNREACHABLE
        ) from None
    if response.status_code != 200 or not response.text.strip():
        raise ConfigError(
            f"{url} answered HTTP {response.status_code}; give --server-name", code=ErrorCode.SERVER_UNREACHABLE
        )
    return response.text.strip()


@app.command("init")
def init(
    host: str = typer.Argument(..., help="This host's resource name, e.g. myunix.example.com."),
    server: str = typer.Option(..., "--server", help="Base URL of the tokenward server."),
    client_id: str = typer.Option(
        ..., "--client-id", help="The client ID the host logs in under (tokenward client list)."
    ),
    server_name: str | None = typer.Option(
        None, "--server-name", help="The server's name (default: asked from the server)."
    ),
    directory: Path = typer.Option(
        Path("/etc/tokenward"), "--dir", help="Where to write pam.conf, host.key, host.pub, pam-users."
    ),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, max=120, help="Seconds PAM waits for the server."),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing key (the server must register the new one)."
    ),
) -> None:
    """Make the host's Ed25519 key and its pam.conf; print what to register and the policy rows to write."""
    if not server.startswith(("https://", "http://")):
        raise BadRequest("--server must be an https:// URL", code=ErrorCode.URL_INVALID)
    key_file, public_file = directory / "host.key", directory / "host.pub"
    if key_file.exists() and not force:
        raise ConfigError(f"{key_file} already exists; use --force to replace it", code=ErrorCode.KEYFILE_EXISTS)
    name = server_name or _server_name(server, timeout)
    config = HostConfig(
        server=server.rstrip("/"),
        server_name=name,
        host=host.strip().lower(),
        client_id=client_id.strip().upper(),
        key_file=key_file,
        users_file=directory / "pam-users",
        timeout=timeout,
    )
    key = Ed25519PrivateKey.generate()
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_private(
            key_file,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        public_file.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        write_private(directory / "pam.conf", render_config(config).encode())
        if config.users_file is not None and not config.users_file.exists():
            write_private(config.users_file, USERS_HELP.encode())
    except OSError as exc:
        raise ConfigError(f"cannot write in {directory}: {exc.strerror}", code=ErrorCode.HOST_DIR_UNWRITABLE) from None
    if force and config.session_cache is not None:
        config.session_cache.unlink(missing_ok=True)  # the old key's session must not outlive it
    typer.echo(f"Wrote {directory / 'pam.conf'}, {key_file} (0600), {public_file}.")
    typer.echo("On the server:")
    typer.echo(f"  tokenward resource register {config.host} --public-key host.pub   # copy {public_file} there")
    typer.echo("  and in resourcepolicy.csv:")
    typer.echo(f"  p, {config.host}, {name}, {config.client_id}, login")
    typer.echo(f"  p, <user e-mail>, {config.host}, {name}, systemlogin")
    typer.echo("Then: tokenward host install; tokenward host check; tokenward host pam-config")


@app.command("install")
def install_cmd(lib_dir: Path = LIB_DIR) -> None:
    """Copy the PAM side (pure Python for the system python3) to LIB_DIR and print the PAM lines."""
    try:
        written = install(lib_dir)
    except OSError as exc:
        raise ConfigError(
            f"cannot install into {lib_dir}: {exc.strerror}", code=ErrorCode.HOST_DIR_UNWRITABLE
        ) from None
    typer.echo(f"Installed {len(written)} files in {lib_dir}.")
    typer.echo("Needs Debian's python3-cryptography (and python3-segno for the QR code, libpam-python for the")
    typer.echo(
        "conversation). Next: tokenward host pam-config, and read docs/system-login.md before editing /etc/pam.d."
    )


@app.command("pam-config")
def pam_config(
    mode: str = typer.Option(
        "conversation",
        "--mode",
        help="conversation (pam_python: captcha + QR shown, code asked), password (pam_python: code typed as the"
        " password), exec (pam_exec: code typed as the password, the original's way).",
    ),
    control: str = typer.Option("required", "--control", help="The PAM control: required, sufficient, …"),
    config: Path = CONFIG,
    lib_dir: Path = LIB_DIR,
) -> None:
    """Print the `auth` line to put at the top of /etc/pam.d/sshd (or login, su)."""
    try:
        lines = pam_lines(mode, lib_dir=lib_dir, config=str(config), control=control)
    except ValueError as exc:
        raise BadRequest(str(exc), code=ErrorCode.MODE_INVALID) from None
    for line in lines:
        typer.echo(line)


@app.command("check")
def check(
    config: Path = CONFIG,
    user: list[str] = typer.Option([], "--user", "-u", help="Also show the address this unix user logs in as."),
) -> None:
    """Log in to the server as this host, as PAM will (configuration, key, network, policy `login` row)."""
    try:
        host = load_config(config)
        for name in user:
            address = address_for(name, host)
            typer.echo(f"{name} -> {address or 'no address: refused (users_file, default_mapping)'}")
        client = ServerClient(host, deadline=time.monotonic() + host.timeout)
        client.login()
    except ConfigProblem as exc:
        raise ConfigError(str(exc), code=ErrorCode.HOST_CONFIG_INVALID) from None
    except Refused as exc:
        raise ConfigError(
            f"the server refused the host login: {exc.code}: {exc.detail}", code=ErrorCode.HOST_LOGIN_REFUSED
        ) from None
    except Unreachable as exc:
        raise ConfigError(f"cannot reach {host.server}: {exc}", code=ErrorCode.SERVER_UNREACHABLE) from None
    typer.echo(f"ok: {host.host} logged in to {host.server} ({host.server_name}) as a resource")
    if os.geteuid() != 0:
        typer.echo("note: PAM runs as root; run this check as root to test the same file permissions", err=True)
