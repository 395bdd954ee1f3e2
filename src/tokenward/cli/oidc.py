"""`tokenward oidc`: the OpenID Provider's relying parties (docs/oidc.md). Works directly on the database."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from tokenward.cli._common import GuardedGroup, load_settings
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.identity.apps import new_client_id
from tokenward.oidc.clients import CLIENT_SECRET_PREFIX, OidcClient, check_redirect_uri, hash_secret, new_secret
from tokenward.runtime import Runtime, open_runtime
from tokenward.storage.audit import AuditEvent
from tokenward.storage.oidc import SqlOidcStore

app = typer.Typer(
    cls=GuardedGroup,
    no_args_is_help=True,
    help="The OpenID Provider: register relying parties (client IDs, secrets, redirect URIs); docs/oidc.md.",
)
client_app = typer.Typer(cls=GuardedGroup, no_args_is_help=True, help="OpenID Connect clients (relying parties).")
app.add_typer(client_app, name="client")

T = TypeVar("T")


def _run(action: Callable[[SqlOidcStore, Runtime], Awaitable[T]]) -> T:
    async def main() -> T:
        runtime = await open_runtime(load_settings(), listen=False, eager=False)
        try:
            return await action(runtime.oidc.store, runtime)
        finally:
            await runtime.close()

    return asyncio.run(main())


async def _audit(runtime: Runtime, action: str, client: OidcClient) -> None:
    from datetime import UTC, datetime

    from tokenward.storage.audit import SqlAuditLog

    await SqlAuditLog(runtime.database).append(
        AuditEvent(
            at=datetime.fromtimestamp(time.time(), UTC),
            actor="cli",
            action=action,
            target=client.client_id,
            detail={"name": client.name},
        )
    )


def _public(client: OidcClient) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "type": "public" if client.public else "confidential",
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "app_hash": client.app_hash,
    }


@client_app.command("add")
def add(
    name: str = typer.Argument(..., help="A name to recognise the client by (unique)."),
    redirect_uri: list[str] = typer.Option(
        ..., "--redirect-uri", "-r", help="Where codes may be sent (exact match; https, or http on localhost). Repeat."
    ),
    post_logout_redirect_uri: list[str] = typer.Option(
        [], "--post-logout-redirect-uri", help="Where the browser may go after RP-initiated logout. Repeat."
    ),
    public: bool = typer.Option(
        False, "--public", help="A public client (SPA, native app): no secret, PKCE S256 required."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (with the secret) instead of lines."),
) -> None:
    """Register a client; prints its client ID and, for a confidential client, its secret (shown once)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise BadRequest("a client name must be 1 to 100 characters", code=ErrorCode.OIDC_CLIENT_NAME_INVALID)
    if len(redirect_uri) > 20 or len(post_logout_redirect_uri) > 20:
        raise BadRequest("at most 20 redirect URIs of each kind", code=ErrorCode.OIDC_REDIRECT_URI_INVALID)
    uris = tuple(dict.fromkeys(check_redirect_uri(u) for u in redirect_uri))
    logout_uris = tuple(
        dict.fromkeys(check_redirect_uri(u, what="post-logout redirect URI") for u in post_logout_redirect_uri)
    )
    secret = None if public else new_secret(CLIENT_SECRET_PREFIX)
    client = OidcClient(
        client_id=new_client_id(secrets.token_bytes(20)),
        name=name,
        redirect_uris=uris,
        post_logout_redirect_uris=logout_uris,
        secret_hash=hash_secret(secret) if secret is not None else None,
        created_at=time.time(),
    )

    async def action(store: SqlOidcStore, runtime: Runtime) -> None:
        await store.add_client(client)
        await _audit(runtime, "oidc.client_added", client)

    _run(action)
    if as_json:
        typer.echo(json.dumps({**_public(client), "client_secret": secret}))
        return
    typer.echo(f"client_id:     {client.client_id}")
    if secret is not None:
        typer.echo(f"client_secret: {secret}")
    typer.echo(f"app hash:      {client.app_hash}")
    typer.echo(
        "Allow sign-in with a userpolicy.csv row: "
        f"p, <e-mail pattern>, <server name>, {client.client_id}, login"
        + ("; the secret is shown only once" if secret else ""),
        err=True,
    )


@client_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table.")) -> None:
    """List the registered clients (never a secret)."""

    async def action(store: SqlOidcStore, runtime: Runtime) -> list[OidcClient]:
        return await store.list_clients()

    clients = _run(action)
    for client in clients:
        if as_json:
            typer.echo(json.dumps(_public(client)))
        else:
            kind = "public" if client.public else "confidential"
            typer.echo(f"{client.client_id}  {client.name}  {kind}  {' '.join(client.redirect_uris)}")
    if not clients and not as_json:
        typer.echo("no OpenID clients; add one with `tokenward oidc client add NAME --redirect-uri URL`", err=True)


@client_app.command("show")
def show(client: str = typer.Argument(..., help="Client ID or name.")) -> None:
    """Show one client as JSON."""

    async def action(store: SqlOidcStore, runtime: Runtime) -> OidcClient:
        return await store.find_client(client)

    typer.echo(json.dumps(_public(_run(action)), indent=2))


@client_app.command("remove")
def remove(client: str = typer.Argument(..., help="Client ID or name.")) -> None:
    """Remove a client and end every refresh token it holds."""

    async def action(store: SqlOidcStore, runtime: Runtime) -> OidcClient:
        found = await store.find_client(client)
        await store.remove_client(found.client_id, now=time.time())
        await _audit(runtime, "oidc.client_removed", found)
        return found

    found = _run(action)
    typer.echo(f"removed OpenID client {found.name} ({found.client_id})")


@client_app.command("rotate-secret")
def rotate_secret(client: str = typer.Argument(..., help="Client ID or name.")) -> None:
    """Give a confidential client a new secret (printed once); the old one stops working at once."""
    secret = new_secret(CLIENT_SECRET_PREFIX)

    async def action(store: SqlOidcStore, runtime: Runtime) -> OidcClient:
        found = await store.find_client(client)
        if found.public:
            raise BadRequest(f"{found.name} is a public client; it has no secret", code=ErrorCode.OIDC_CLIENT_PUBLIC)
        await store.set_client_secret(found.client_id, hash_secret(secret))
        await _audit(runtime, "oidc.client_secret_rotated", found)
        return found

    _run(action)
    typer.echo(secret)
