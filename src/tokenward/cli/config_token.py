"""`tokenward config-token`: create, decode and revoke config tokens for `/verify` (docs/forward-auth.md)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import typer

from tokenward.apptokens import cli_actor
from tokenward.cli._common import GuardedGroup, cli_runtime, fail, load_settings
from tokenward.datadir import DataDir
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.forwardauth.config_token import decode_token, encode_token, peek_header
from tokenward.forwardauth.documents import load_text
from tokenward.forwardauth.schema import parse_document
from tokenward.keys import Keyring
from tokenward.storage import AuditEvent, SqlAuditLog
from tokenward.storage.config_tokens import ConfigTokenRevocation, SqlConfigTokenRevocations

app = typer.Typer(
    cls=GuardedGroup,
    no_args_is_help=True,
    help="Config tokens tell /verify which plugins, assertions and policy apply (docs/forward-auth.md).",
)


def _keyring() -> Keyring:
    return DataDir(load_settings().data_dir).read_timecodes().keyring()


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot read {source}: {exc.strerror}", code=ErrorCode.DOCUMENT_UNREADABLE) from None


@app.command()
def create(
    source: str | None = typer.Argument(None, help="JSON or YAML document file, or - for stdin."),
    signed_only: bool = typer.Option(False, "--signed-only", help="Sign (HS256) instead of encrypting: readable."),
    pointer: tuple[str, str] | None = typer.Option(
        None, "--pointer", metavar="STORE_ID TOKEN_ID", help="Make a pointer token to a token held in a store."
    ),
    jti: str | None = typer.Option(None, "--jti", help="Token id for revocation [default: random]."),
    expires_in: int | None = typer.Option(None, "--expires-in", min=1, help="Lifetime in seconds [default: none]."),
) -> None:
    """Validate a document and print the token, then its URL-encoded form (for ?config_token=)."""
    if pointer is not None:
        if source is not None:
            raise BadRequest("give a document or --pointer, not both", code=ErrorCode.USAGE)
        data: object = {"tokenward": {"config_token_store_id": pointer[0], "config_token_id": pointer[1]}}
    elif source is None:
        raise BadRequest("give a document file (or - for stdin) or --pointer STORE_ID TOKEN_ID", code=ErrorCode.USAGE)
    else:
        data = load_text(_read(source))
    if not isinstance(data, dict):
        raise BadRequest("the document must be an object with a tokenward key", code=ErrorCode.CONFIG_TOKEN_SCHEMA)
    now = int(time.time())
    data.setdefault("jti", jti or secrets.token_urlsafe(12))
    data.setdefault("iat", now)
    if expires_in is not None:
        data["exp"] = now + expires_in
    document = parse_document(data)
    token = encode_token(document, _keyring(), signed_only=signed_only)
    typer.echo(token)
    typer.echo("config_token=" + quote(token, safe=""))
    kind = "signed (readable by anyone holding it)" if signed_only else "encrypted"
    typer.echo(f"created {kind} config token jti={document.jti}", err=True)


@app.command()
def decode(
    token: str = typer.Argument(..., help="The token, or - to read it from stdin."),
    ignore_expiry: bool = typer.Option(False, "--ignore-expiry", help="Show an expired token too."),
) -> None:
    """Verify a token and print its document as JSON (for admins: shows everything it holds)."""
    text = sys.stdin.read().strip() if token == "-" else token
    decoded = decode_token(text, _keyring(), now=time.time(), check_expiry=not ignore_expiry)
    out = {
        "kind": decoded.kind,
        "kid": decoded.key_id,
        "document": decoded.document.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
    }
    typer.echo(json.dumps(out, indent=2))


@app.command()
def revoke(
    jti: str = typer.Argument(..., help="The token's jti, or the token itself (its jti is read)."),
) -> None:
    """Revoke a config token by jti; every instance refuses it within its change feed's interval (0.25 s)."""
    if jti.count(".") in (2, 4):
        peek_header(jti)
        decoded = decode_token(jti, _keyring(), now=time.time(), check_expiry=False)
        if decoded.document.jti is None:
            raise BadRequest(
                "this token has no jti and cannot be revoked; stop using it", code=ErrorCode.CONFIG_TOKEN_NO_JTI
            )
        jti = decoded.document.jti
    settings = load_settings()

    async def main() -> None:
        async with cli_runtime(settings) as runtime:
            db = runtime.database
            now = datetime.now(UTC)
            try:
                revocation = ConfigTokenRevocation(jti=jti, revoked_at=now, revoked_by=cli_actor())
            except ValueError as exc:
                raise BadRequest(str(exc), code=ErrorCode.CONFIG_TOKEN_JTI_INVALID) from None
            await SqlConfigTokenRevocations(db).revoke(revocation)  # with its change-log entry
            await SqlAuditLog(db).append(
                AuditEvent(at=now, actor=cli_actor(), action="configtoken.revoke", target=jti[:512])
            )
            await runtime.changes.announce()  # wakes the serving instances over Redis, when configured

    asyncio.run(main())
    typer.echo(f"revoked config token {jti}")


@app.command("import-eas")
def import_eas(
    token: str = typer.Argument(..., help="The eas config token (base64 or URL-encoded), or - for stdin."),
    sign_secret: str = typer.Option(
        ..., "--sign-secret", envvar="EAS_CONFIG_TOKEN_SIGN_SECRET", help="eas config_token_sign_secret."
    ),
    encrypt_secret: str = typer.Option(
        ..., "--encrypt-secret", envvar="EAS_CONFIG_TOKEN_ENCRYPT_SECRET", help="eas config_token_encrypt_secret."
    ),
    signed_only: bool = typer.Option(False, "--signed-only", help="Sign the result instead of encrypting it."),
    print_document: bool = typer.Option(False, "--print-document", help="Print the converted document, not a token."),
    strict: bool = typer.Option(False, "--strict", help="Make no token when anything is left behind."),
) -> None:
    """Turn an eas config token into a tokenward one; prints what could not be carried over on stderr.

    Each plugin is imported or reported on its own (`not imported: eas.plugins.N (type): why`);
    exit 1 when no plugin can be imported, or when anything is left behind with --strict.
    """
    from tokenward.forwardauth.eas import convert, open_eas_token

    text = sys.stdin.read() if token == "-" else token
    payload = open_eas_token(text, sign_secret=sign_secret, encrypt_secret=encrypt_secret)
    doc, notes = convert(payload)
    document = parse_document(doc)
    for note in notes:
        typer.echo(f"not imported: {note}", err=True)
    given = payload["eas"].get("plugins")
    if isinstance(given, list):
        imported = len(document.tokenward.plugins)
        typer.echo(f"imported {imported} of {len(given)} plugins", err=True)
    if strict and notes:
        raise fail(f"{len(notes)} item(s) not imported (above); no token made (--strict)")
    if print_document:
        typer.echo(json.dumps(document.model_dump(mode="json", exclude_none=True, exclude_defaults=True), indent=2))
        return
    sealed = encode_token(document, _keyring(), signed_only=signed_only)
    typer.echo(sealed)
    typer.echo("config_token=" + quote(sealed, safe=""))
