"""`tokenward authenticator init|enroll|read|system-login`: the reference authenticator (docs/sessions.md).

The private key lives in one file, mode 0600, sealed under a passphrase
(:mod:`tokenward.identity.keyfile`). The passphrase comes from a hidden prompt or, for scripts,
from the environment variable named by ``--passphrase-env`` (deliberately not a ``TOKENWARD_*``
name: those are server settings, and the server refuses unknown ones).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer

from tokenward.datadir import check_secret_file, write_private
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError, TokenwardError
from tokenward.identity.captcha import CaptchaPlaintext, open_captcha
from tokenward.identity.keyfile import open_key_file, parse_key_file, seal_key_file
from tokenward.identity.service import key_fingerprint
from tokenward.keys import Secret

__all__ = ["app", "default_key_file"]

app = typer.Typer(no_args_is_help=True, help="The reference authenticator: a key pair that reads your captchas.")

EXTRA_HINT = "pip install 'tokenward[authenticator]'"
MAX_PAYLOAD = 1024


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/tokenward/authenticator.key`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tokenward" / "authenticator.key"


KEY_FILE = typer.Option(
    None,
    "--key-file",
    "-k",
    # Not "[default …]": Rich would take the brackets for markup and print nothing.
    help="Key file (default: ~/.config/tokenward/authenticator.key).",
    show_default=False,
)
PASSPHRASE_ENV = typer.Option(
    None,
    "--passphrase-env",
    metavar="NAME",
    help="Read the passphrase from environment variable NAME instead of prompting (for scripts).",
)


def _passphrase(env_name: str | None, *, confirm: bool) -> Secret:
    if env_name is not None:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(
                f"--passphrase-env: environment variable {env_name} is not set", code=ErrorCode.PASSPHRASE_EMPTY
            )
        return Secret(value.encode())
    value = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
    return Secret(str(value).encode())


def _read_key_file(path: Path) -> bytes:
    check_secret_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", code=ErrorCode.KEYFILE_UNREADABLE) from None


@app.command("init")
def init(
    key_file: Path | None = KEY_FILE,
    passphrase_env: str | None = PASSPHRASE_ENV,
    force: bool = typer.Option(False, "--force", help="Replace an existing key file (its key is lost)."),
) -> None:
    """Create an X25519 key pair; keep the private key in a 0600 file sealed under a passphrase."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    path = key_file or default_key_file()
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to replace it", code=ErrorCode.KEYFILE_EXISTS)
    passphrase = _passphrase(passphrase_env, confirm=True)
    data = seal_key_file(
        X25519PrivateKey.generate(), passphrase, salt=secrets.token_bytes(16), nonce=secrets.token_bytes(12)
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", code=ErrorCode.KEYFILE_UNWRITABLE) from None
    typer.echo(f"Key file: {path}")
    typer.echo(f"Public key: {parse_key_file(data).public_key}")
    typer.echo("Next: tokenward authenticator enroll SERVER_URL EMAIL --code CODE")


@app.command("enroll")
def enroll(
    server: str = typer.Argument(..., help="Base URL of the tokenward server, e.g. https://auth.example.com."),
    email: str = typer.Argument(..., help="Your e-mail address."),
    code: str | None = typer.Option(None, "--code", "-c", help="The one-time code (prompted when omitted)."),
    key_file: Path | None = KEY_FILE,
    passphrase_env: str | None = PASSPHRASE_ENV,
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, max=300, help="HTTP timeout in seconds."),
) -> None:
    """Bind this authenticator's public key to EMAIL with a one-time code (`tokenward user enroll`)."""
    if not server.startswith(("https://", "http://")):
        raise BadRequest("SERVER_URL must start with https:// (or http:// for local tests)", code=ErrorCode.URL_INVALID)
    path = key_file or default_key_file()
    data = _read_key_file(path)
    open_key_file(data, _passphrase(passphrase_env, confirm=False))  # enrol only a key you can unlock
    if code is None:
        code = str(typer.prompt("One-time code"))
    public_key = parse_key_file(data).public_key
    body = {"email": email, "code": code.strip(), "public_key": public_key}
    url = server.rstrip("/") + "/api/enroll"
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach {url}: {type(exc).__name__}", code=ErrorCode.SERVER_UNREACHABLE) from None
    if response.status_code != 200:
        raise _server_error(response)
    answer: Any = response.json()
    mine = key_fingerprint(public_key)
    theirs = answer.get("fingerprint") if isinstance(answer, dict) else None
    if theirs is not None and theirs != mine:
        raise TokenwardError(
            f"the server recorded key {str(theirs)[:32]!r}, but this authenticator's key is {mine}: "
            "do not trust this enrolment; tell your admin",
            code=ErrorCode.FINGERPRINT_MISMATCH,
        )
    shown = answer.get("email", email) if isinstance(answer, dict) else email
    typer.echo(f"Enrolled {shown} on {server.rstrip('/')}; key fingerprint {mine}.")


def _server_error(response: httpx.Response) -> TokenwardError:
    try:
        body: Any = response.json()
        detail = f"{body['detail']} ({body['error']})"
    except (ValueError, KeyError, TypeError):
        detail = f"HTTP {response.status_code}"
    return TokenwardError(f"the server refused: {detail}"[:300], code=ErrorCode.SERVER_REFUSED)


@app.command("read")
def read(
    payload: str | None = typer.Argument(
        None,
        help=(
            "The captcha text (default: read from stdin): `TWC1.…` (ChaCha20-Poly1305, what keys enrolled with"
            " this CLI get) or `TWC2.<aead>.…` such as `TWC2.aes256gcm.…` (AES-256-GCM, the browser"
            " authenticator's format). Either opens only with the key it was sealed to: a browser"
            " authenticator's captcha cannot be read here."
        ),
    ),
    image: Path | None = typer.Option(None, "--image", "-i", help="A QR code image (PNG) instead of the text."),
    key_file: Path | None = KEY_FILE,
    passphrase_env: str | None = PASSPHRASE_ENV,
    code_only: bool = typer.Option(False, "--code-only", help="Print only the code."),
) -> None:
    """Decrypt a captcha (TWC1 or TWC2) and print its 5-character code with the server, account and app that asked."""
    if image is not None and payload is not None:
        raise BadRequest("give the captcha text or --image, not both", code=ErrorCode.CAPTCHA_UNREADABLE)
    if image is not None:
        text = _decode_image(image)
    elif payload is not None and payload != "-":
        text = payload
    else:
        text = sys.stdin.read(MAX_PAYLOAD + 1)
    if len(text.strip()) > MAX_PAYLOAD:
        raise BadRequest("not a tokenward captcha (too long)", code=ErrorCode.CAPTCHA_UNREADABLE)
    path = key_file or default_key_file()
    key = open_key_file(_read_key_file(path), _passphrase(passphrase_env, confirm=False))
    plain = open_captcha(text.strip(), key)
    if plain.expires_at < time.time():
        raise BadRequest("this captcha has expired; request a new one", code=ErrorCode.CAPTCHA_EXPIRED)
    if code_only:
        typer.echo(plain.code)
    else:
        _show(plain)


@app.command("system-login")
def system_login(
    server: str = typer.Argument(..., help="Base URL of the tokenward server, e.g. https://auth.example.com."),
    email: str = typer.Argument(..., help="Your e-mail address."),
    host: str = typer.Argument(..., help="The host you are about to log in to (its resource name)."),
    key_file: Path | None = KEY_FILE,
    passphrase_env: str | None = PASSPHRASE_ENV,
    code_only: bool = typer.Option(False, "--code-only", help="Print only the code."),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, max=300, help="HTTP timeout in seconds."),
) -> None:
    """Make a captcha for logging in to HOST and print its code: type it at the host's password prompt (2 minutes)."""
    if not server.startswith(("https://", "http://")):
        raise BadRequest("SERVER_URL must start with https:// (or http:// for local tests)", code=ErrorCode.URL_INVALID)
    path = key_file or default_key_file()
    key = open_key_file(_read_key_file(path), _passphrase(passphrase_env, confirm=False))
    url = server.rstrip("/") + "/api/system-login/user-captcha"
    try:
        response = httpx.post(url, json={"email": email, "host": host}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach {url}: {type(exc).__name__}", code=ErrorCode.SERVER_UNREACHABLE) from None
    if response.status_code != 200:
        raise _server_error(response)
    plain = open_captcha(str(response.json().get("captcha", "")), key)
    if plain.origin != host.strip().lower():
        raise TokenwardError(
            f"the server made a captcha for {plain.origin[:100]!r}, not {host!r}: do not type it",
            code=ErrorCode.HOST_MISMATCH,
        )
    if code_only:
        typer.echo(plain.code)
    else:
        _show(plain)


def _show(plain: CaptchaPlaintext) -> None:
    expires = datetime.fromtimestamp(plain.expires_at, UTC).strftime("%H:%M:%S UTC")
    typer.echo(f"code:    {plain.code}")
    typer.echo(f"server:  {plain.server}")
    typer.echo(f"account: {plain.subject}")
    typer.echo(f"app:     {plain.client_name}" + (f" ({plain.origin})" if plain.origin else ""))
    typer.echo(f"expires: {expires}")
    typer.echo("Type the code only if you asked to log in to this server and app.", err=True)


def _decode_image(path: Path) -> str:
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ConfigError(
            f"reading QR images needs the authenticator extra: {EXTRA_HINT}", code=ErrorCode.EXTRA_MISSING
        ) from None
    try:
        with Image.open(path) as img:
            img.load()
            results = zxingcpp.read_barcodes(img)
    except (OSError, UnidentifiedImageError, ValueError):
        raise BadRequest(f"cannot read {path} as an image", code=ErrorCode.IMAGE_UNREADABLE) from None
    for result in results:
        if result.text:
            return str(result.text)
    raise BadRequest(f"no QR code found in {path}", code=ErrorCode.IMAGE_UNREADABLE)
