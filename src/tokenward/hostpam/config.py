"""The host's configuration file and its unix-user → e-mail mapping (docs/system-login.md §4)."""

from __future__ import annotations

import configparser
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_SESSION_CACHE",
    "ConfigProblem",
    "HostConfig",
    "address_for",
    "load_config",
    "read_key",
    "render_config",
]

DEFAULT_CONFIG = "/etc/tokenward/pam.conf"
#: On tmpfs: a reboot forgets it; root-only, like the host key it stands for.
DEFAULT_SESSION_CACHE = Path("/run/tokenward-pam/session")
SECTION = "tokenward"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+$")


class ConfigProblem(Exception):
    """The host configuration cannot be used; the message says what to fix (never a secret)."""


@dataclass(frozen=True)
class HostConfig:
    """What the PAM side needs: where the server is, who this host is, and how long to wait."""

    server: str
    server_name: str
    host: str
    client_id: str
    key_file: Path
    users_file: Path | None = None
    #: ``dashes``: a unix user ``john.doe--example.com`` is ``john.doe@example.com``; ``none``: only mapped users.
    default_mapping: str = "dashes"
    timeout: float = 10.0
    ca_file: Path | None = None
    log_file: Path | None = None
    #: Where the host's session (its source identifier) is kept between logins; None: log in every time.
    session_cache: Path | None = DEFAULT_SESSION_CACHE


def render_config(config: HostConfig) -> str:
    """The file text for ``config`` (what ``tokenward host init`` writes)."""
    lines = [
        f"[{SECTION}]",
        "# Base URL of the tokenward server (https:// in production).",
        f"server = {config.server}",
        "# The server's name (tokenward server-name): signed into every host login.",
        f"server_name = {config.server_name}",
        "# This host's resource name (tokenward resource register <host>).",
        f"host = {config.host}",
        f"client_id = {config.client_id}",
        "# The host's Ed25519 private key (PEM, root-only 0600).",
        f"key_file = {config.key_file}",
        "# unix user -> e-mail address, one 'user address' pair a line.",
        f"users_file = {config.users_file or ''}",
        "# dashes: john.doe--example.com logs in as john.doe@example.com; none: only users_file entries.",
        f"default_mapping = {config.default_mapping}",
        "# Seconds to wait for the server before refusing the login (fail closed).",
        f"timeout = {config.timeout:g}",
        "# Extra CA bundle for the server's certificate (empty: the system's).",
        f"ca_file = {config.ca_file or ''}",
        "# Also append the auth-log lines to this file (empty: syslog authpriv only).",
        f"log_file = {config.log_file or ''}",
        "# The host's session between logins (root-only 0600; empty: log in to the server at every login).",
        f"session_cache = {config.session_cache or ''}",
    ]
    return "\n".join(lines) + "\n"


def _path(value: str) -> Path | None:
    return Path(value) if value.strip() else None


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG) -> HostConfig:
    """Read and check the configuration file; ConfigProblem names the file and the field at fault."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigProblem(f"cannot read {path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigProblem(f"{path} is not an INI file: {type(exc).__name__}") from None
    if not parser.has_section(SECTION):
        raise ConfigProblem(f"{path} has no [{SECTION}] section")
    section = parser[SECTION]

    def need(name: str) -> str:
        value = section.get(name, "").strip()
        if not value:
            raise ConfigProblem(f"{path}: {name} is missing")
        return value

    server = need("server").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise ConfigProblem(f"{path}: server must be an https:// URL")
    mapping = section.get("default_mapping", "dashes").strip() or "dashes"
    if mapping not in ("dashes", "none"):
        raise ConfigProblem(f"{path}: default_mapping must be 'dashes' or 'none'")
    try:
        timeout = float(section.get("timeout", "10") or "10")
    except ValueError:
        raise ConfigProblem(f"{path}: timeout must be a number of seconds") from None
    if not 0.1 <= timeout <= 120:
        raise ConfigProblem(f"{path}: timeout must be between 0.1 and 120 seconds")
    return HostConfig(
        server=server,
        server_name=need("server_name"),
        host=need("host").lower(),
        client_id=need("client_id").upper(),
        key_file=Path(need("key_file")),
        users_file=_path(section.get("users_file", "")),
        default_mapping=mapping,
        timeout=timeout,
        ca_file=_path(section.get("ca_file", "")),
        log_file=_path(section.get("log_file", "")),
        session_cache=_path(section.get("session_cache", str(DEFAULT_SESSION_CACHE))),
    )


def read_key(path: Path) -> bytes:
    """The private key file's bytes, refused unless it is a regular file only its owner can read."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigProblem(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigProblem(f"{path} is readable by others: chmod 600 {path}")
        return path.read_bytes()
    except OSError as exc:
        raise ConfigProblem(f"cannot read {path}: {exc.strerror}") from None


def address_for(unix_user: str, config: HostConfig) -> str | None:
    """The e-mail address ``unix_user`` logs in as, or None when it has none (the login is refused).

    The users file wins; otherwise, with ``default_mapping = dashes``, the first ``--`` is the ``@``
    (``john.doe--example.com`` → ``john.doe@example.com``; the first, so IDN domains' ``xn--`` survive).
    """
    if config.users_file is not None:
        try:
            text = config.users_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise ConfigProblem(f"cannot read {config.users_file}: {exc.strerror}") from None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(":", " ", 1).split()
            if len(parts) != 2 or not _ADDRESS.match(parts[1]):
                raise ConfigProblem(f"{config.users_file}:{number}: expected 'unixuser address'")
            if parts[0] == unix_user:
                return parts[1].lower()
    if config.default_mapping == "dashes":
        local, dashes, domain = unix_user.partition("--")
        if dashes and local and domain and "@" not in unix_user:
            return f"{local}@{domain}".lower()
    return None
