"""`tokenward client …` and `tokenward app-hash`: client apps in the data dir's clientids.json."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import typer

from tokenward.cli._common import load_settings
from tokenward.identity.apps import (
    FIRST_PARTY_NAME,
    ClientApp,
    app_hash_of_bytes,
    app_hash_of_origin,
    load_registry,
    new_client_id,
    save_registry,
)
from tokenward.identity.resources import load_resources, read_public_key, save_resources

__all__ = ["app", "app_hash", "ensure_first_party_client", "resource_app"]

app = typer.Typer(no_args_is_help=True, help="Register and manage client apps (client IDs and app hashes).")


def _data_dir() -> Path:
    return load_settings().data_dir


def _show(client: ClientApp) -> None:
    typer.echo(f"client_id: {client.client_id}")
    typer.echo(f"name:      {client.name}")
    for host, digest in zip(client.origins, client.app_hashes, strict=False):
        typer.echo(f"origin:    {host}")
        typer.echo(f"app hash:  {digest}")


@app.command("register")
def register(
    name: str = typer.Option(..., "--name", help="A name people recognise, e.g. 'Intranet'."),
    origin: list[str] = typer.Option([], "--origin", help="Origin the app runs at (repeatable)."),
) -> None:
    """Issue a client ID for an app and print the app hash of each origin (for clientappspolicy.csv)."""
    data_dir = _data_dir()
    registry, client = load_registry(data_dir).register(
        name=name, origins=origin, client_id=new_client_id(secrets.token_bytes(20)), now=int(time.time())
    )
    save_registry(data_dir, registry)
    _show(client)


@app.command("list")
def list_clients(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List registered client apps."""
    apps = load_registry(_data_dir()).apps
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in apps], indent=2))
        return
    for a in apps:
        typer.echo(f"{a.client_id}  {a.name}  {' '.join(a.origins)}")


@app.command("show")
def show(client: str = typer.Argument(..., help="Client ID or name.")) -> None:
    """Show one client app."""
    _show(load_registry(_data_dir()).find(client))


@app.command("remove")
def remove(client: str = typer.Argument(..., help="Client ID or name.")) -> None:
    """Remove a client app; its sessions end when they expire (revoke them to end them now)."""
    data_dir = _data_dir()
    registry, removed = load_registry(data_dir).remove(client)
    save_registry(data_dir, registry)
    typer.echo(f"Removed {removed.name} ({removed.client_id}).")


def app_hash(origin_or_file: str = typer.Argument(..., help="An origin URL, host[:port], or a file.")) -> None:
    """Print the app hash (uppercase SHA-512) of an origin's host[:port], or of a file's bytes."""
    path = Path(origin_or_file)
    if path.is_file():
        typer.echo(app_hash_of_bytes(path.read_bytes()))
    else:
        typer.echo(app_hash_of_origin(origin_or_file))


def ensure_first_party_client(data_dir: Path, server_name: str) -> ClientApp:
    """The client app of tokenward's own UI, registered at `init` for the server's own origin."""
    registry = load_registry(data_dir)
    for existing in registry.apps:
        if existing.name == FIRST_PARTY_NAME:
            return existing
    registry, client = registry.register(
        name=FIRST_PARTY_NAME,
        origins=[f"https://{server_name}"],
        client_id=new_client_id(secrets.token_bytes(20)),
        now=int(time.time()),
    )
    save_registry(data_dir, registry)
    return client


resource_app = typer.Typer(no_args_is_help=True, help="Resource servers allowed to log in by machine login.")


@resource_app.command("register")
def resource_register(
    name: str = typer.Argument(..., help="Resource name, e.g. api.example.com."),
    public_key: Path = typer.Option(..., "--public-key", help="Ed25519 public key (PEM or raw base64url)."),
) -> None:
    """Register (or re-key) a resource server."""
    data_dir = _data_dir()
    key = read_public_key(public_key.read_bytes())
    save_resources(data_dir, load_resources(data_dir).register(name, key))
    typer.echo(f"Registered resource {name.lower()}.")


@resource_app.command("list")
def resource_list() -> None:
    """List registered resource servers."""
    for name, key in load_resources(_data_dir()).keys:
        typer.echo(f"{name}  {key}")
