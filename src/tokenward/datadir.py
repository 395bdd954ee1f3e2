"""The data dir: server name, time codes and policy files of one tokenward deployment.

Layout::

    <data_dir>/            0700
      server-name          the deployment's resource name (the original server: "Current Resource Owner")
      timecode.json        0600: current code, previous code and the end of its grace period
      apptoken.key         0600: the key app-token hashes are made with (docs/app-tokens.md)
      *.conf, *.csv        policy files (docs/policies.md)
      tokenward.db         SQLite database when no TOKENWARD_DATABASE_URL is set

This is the only module that reads or writes those files; the rest gets values.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tokenward.errorcodes import ErrorCode
from tokenward.errors import ConfigError, InsecureFileError, TimeCodeError
from tokenward.keys import Keyring, Secret, TimeCode
from tokenward.settings import Settings, validate_server_name

__all__ = ["DataDir", "TimeCodes", "check_secret_file", "load_server_name", "write_private"]

SERVER_NAME_FILE = "server-name"
TIMECODE_FILE = "timecode.json"
APPTOKEN_KEY_FILE = "apptoken.key"


def check_secret_file(path: Path) -> None:
    """Refuse a secret file that group or others may read or write; say which chmod fixes it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"secret file {path} does not exist", code=ErrorCode.SECRET_MISSING) from None
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}", code=ErrorCode.SECRET_UNREADABLE) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureFileError(
            f"secret file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"fix it with: chmod 600 {path}"
        )


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600 from the first byte (no window of wider access)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(frozen=True)
class TimeCodes:
    current: TimeCode
    previous: TimeCode | None = None
    previous_until: float | None = None

    def keyring(self) -> Keyring:
        return self._keyring

    @cached_property
    def _keyring(self) -> Keyring:
        # Built once: /verify asks for it on every session check, and both are immutable.
        return Keyring(self.current, self.previous, self.previous_until)


@dataclass(frozen=True)
class DataDir:
    """Accessor for one data dir. Construct freely; nothing is read until a method is called."""

    path: Path

    @property
    def server_name_file(self) -> Path:
        return self.path / SERVER_NAME_FILE

    @property
    def timecode_file(self) -> Path:
        return self.path / TIMECODE_FILE

    @property
    def apptoken_key_file(self) -> Path:
        return self.path / APPTOKEN_KEY_FILE

    def is_initialized(self) -> bool:
        return self.server_name_file.exists() or self.timecode_file.exists()

    def create(self) -> None:
        """Create the folder with mode 0700 (and tighten it if it exists)."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path.chmod(0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create data dir {self.path} (TOKENWARD_DATA_DIR): {exc.strerror}",
                code=ErrorCode.DATA_DIR_UNUSABLE,
            ) from None

    # -- server name -----------------------------------------------------------------------

    def read_server_name(self) -> str | None:
        try:
            text = self.server_name_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read {self.server_name_file}: {exc}", code=ErrorCode.SERVER_NAME_INVALID
            ) from None
        try:
            return validate_server_name(text)
        except ValueError as exc:
            raise ConfigError(f"{self.server_name_file}: {exc}", code=ErrorCode.SERVER_NAME_INVALID) from None

    def write_server_name(self, name: str) -> None:
        self.server_name_file.write_text(validate_server_name(name) + "\n", encoding="utf-8")

    def remember_server_name(self, name: str) -> bool:
        """Write ``server-name`` when the data dir has none (a follower started from TOKENWARD_SERVER_NAME).

        Later CLI commands in this data dir then work without the variable. An existing file is
        left alone. Returns True when the file was written.
        """
        if self.server_name_file.exists():
            return False
        self.write_server_name(name)
        return True

    # -- time codes ------------------------------------------------------------------------

    def read_timecodes(self) -> TimeCodes:
        """Read ``timecode.json`` after checking it is 0600. Raises ConfigError when missing or unsafe."""
        path = self.timecode_file
        if not path.exists():
            raise ConfigError(
                f"no time code in {self.path}: run `tokenward init --server-name NAME` or `tokenward timecode set`",
                code=ErrorCode.TIMECODE_MISSING,
            )
        check_secret_file(path)
        try:
            data = json.loads(path.read_bytes())
            current = TimeCode.parse(data["current"])
            previous = TimeCode.parse(data["previous"]) if data.get("previous") else None
            until = float(data["previous_until"]) if data.get("previous_until") is not None else None
        except TimeCodeError as exc:
            raise ConfigError(f"{path}: {exc.detail}", code=ErrorCode.TIMECODE_INVALID) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path} is damaged ({type(exc).__name__}); restore it or run `tokenward timecode set`",
                code=ErrorCode.TIMECODE_INVALID,
            ) from None
        return TimeCodes(current, previous, until)

    def write_timecodes(self, codes: TimeCodes) -> None:
        data = {
            "current": codes.current.format(),
            "previous": codes.previous.format() if codes.previous else None,
            "previous_until": codes.previous_until,
        }
        write_private(self.timecode_file, (json.dumps(data, indent=2) + "\n").encode("ascii"))

    def install_timecode(self, code: TimeCode, *, now: float, grace_seconds: int) -> TimeCodes:
        """Make ``code`` current; the old current code stays valid for ``grace_seconds``."""
        # A damaged or unsafe existing file raises here: we never replace what we cannot read.
        old = self.read_timecodes() if self.timecode_file.exists() else None
        if old is not None and old.current.secret.equals(code.secret):
            return old
        codes = TimeCodes(code, old.current if old else None, now + grace_seconds if old else None)
        self.write_timecodes(codes)
        return codes

    # -- app-token key ---------------------------------------------------------------------

    def read_apptoken_key(self) -> Secret:
        """Read ``apptoken.key`` (32 random bytes, base64url) after checking it is 0600."""
        path = self.apptoken_key_file
        check_secret_file(path)
        try:
            raw = base64.urlsafe_b64decode(path.read_text(encoding="ascii").strip() + "==")
        except (OSError, UnicodeDecodeError, binascii.Error, ValueError) as exc:
            raise ConfigError(
                f"{path} is damaged ({type(exc).__name__}); restore it from another instance",
                code=ErrorCode.APPTOKEN_KEY_INVALID,
            ) from None
        if len(raw) < 32:
            raise ConfigError(f"{path} holds fewer than 32 bytes; restore it", code=ErrorCode.APPTOKEN_KEY_INVALID)
        return Secret(raw)

    def ensure_apptoken_key(self) -> Secret:
        """Read ``apptoken.key``, creating it (0600, 256 random bits) when it does not exist yet."""
        if not self.apptoken_key_file.exists():
            encoded = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")
            write_private(self.apptoken_key_file, encoded + b"\n")
        return self.read_apptoken_key()

    def backup_timecode(self, *, now: float) -> Path | None:
        """Copy the time code file aside (0600) before it is replaced; return the backup path."""
        if not self.timecode_file.exists():
            return None
        backup = self.path / f"{TIMECODE_FILE}.bak-{int(now)}"
        write_private(backup, self.timecode_file.read_bytes())
        return backup


def load_server_name(settings: Settings, data_dir: DataDir) -> str:
    """The server name from settings, else from the data dir; ConfigError when neither has one."""
    name = settings.server_name or data_dir.read_server_name()
    if name is None:
        raise ConfigError(
            f"no server name in {data_dir.path}: run `tokenward init --server-name auth.example.com` "
            "or set TOKENWARD_SERVER_NAME",
            code=ErrorCode.SERVER_NAME_MISSING,
        )
    return name
