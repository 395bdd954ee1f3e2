"""Client apps: client IDs, app hashes and the client-ID configuration file (docs/policies.md).

* **client ID** — 40 uppercase hex characters (160 random bits).
* **app hash** — uppercase hex SHA-512 of ``host[:port]`` of an origin (host lower-cased,
  default ports 80/443 dropped, as browsers send ``Origin``), or of the bytes of a binary.
  Compared case-insensitively (the seed's "lowercase has given some mild enforcement issues").

:class:`ClientRegistry` is the parsed ``clientids.json``; parsing and rendering are pure,
:func:`load_registry` / :func:`save_registry` are the only file I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from tokenward.datadir import write_private
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError, Conflict, NotFound, ServiceUnavailable
from tokenward.origins import app_hash_of_origin, origin_host

__all__ = [
    "CLIENT_IDS_FILE",
    "ClientApp",
    "ClientRegistry",
    "app_hash_of_bytes",
    "app_hash_of_origin",
    "hashes_equal",
    "load_registry",
    "load_serving_registry",
    "new_client_id",
    "normalize_app_hash",
    "normalize_client_id",
    "origin_host",
    "save_registry",
]

CLIENT_IDS_FILE = "clientids.json"
FIRST_PARTY_NAME = "tokenward"
_CLIENT_ID = re.compile(r"^[0-9A-Fa-f]{40}$")
_APP_HASH = re.compile(r"^[0-9A-Fa-f]{128}$")


def new_client_id(random_bytes: bytes) -> str:
    """A client ID from 20 random bytes (``secrets.token_bytes(20)``)."""
    if len(random_bytes) != 20:
        raise ValueError("a client ID needs 20 random bytes")
    return random_bytes.hex().upper()


def normalize_client_id(value: str) -> str:
    """The canonical (uppercase) client ID, or BadRequest ``client_id_malformed``."""
    if not _CLIENT_ID.match(value):
        raise BadRequest("client_id must be 40 hexadecimal characters", code=ErrorCode.CLIENT_ID_MALFORMED)
    return value.upper()


def app_hash_of_bytes(data: bytes) -> str:
    """Uppercase SHA-512 hex of a binary (desktop, mobile or script app)."""
    return hashlib.sha512(data).hexdigest().upper()


def normalize_app_hash(value: str) -> str:
    if not _APP_HASH.match(value):
        raise BadRequest("app_hash must be 128 hexadecimal characters (SHA-512)", code=ErrorCode.APP_HASH_MALFORMED)
    return value.upper()


def hashes_equal(a: str, b: str) -> bool:
    """Case-insensitive, constant-time comparison of two app hashes."""
    return hmac.compare_digest(a.upper().encode("ascii", "replace"), b.upper().encode("ascii", "replace"))


@dataclass(frozen=True, slots=True)
class ClientApp:
    """One registered client application."""

    client_id: str
    name: str
    origins: tuple[str, ...] = ()
    app_hashes: tuple[str, ...] = ()
    first_party: bool = True
    created_at: int = 0

    def allows_hash(self, app_hash: str) -> bool:
        """Whether ``app_hash`` is one of this app's registered hashes (any when none are registered)."""
        if not self.app_hashes:
            return True
        return any(hashes_equal(app_hash, known) for known in self.app_hashes)

    def to_json(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "origins": list(self.origins),
            "app_hashes": list(self.app_hashes),
            "first_party": self.first_party,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class ClientRegistry:
    """The client-ID configuration (``clientids.json``): immutable, changed by returning a new one."""

    apps: tuple[ClientApp, ...] = field(default_factory=tuple)

    def get(self, client_id: str) -> ClientApp:
        wanted = client_id.upper()
        for app in self.apps:
            if hmac.compare_digest(app.client_id, wanted):
                return app
        raise NotFound(f"unknown client ID {client_id[:40]!r}", code=ErrorCode.CLIENT_UNKNOWN)

    def find(self, client_id_or_name: str) -> ClientApp:
        for app in self.apps:
            if app.name == client_id_or_name or app.client_id == client_id_or_name.upper():
                return app
        raise NotFound(f"no client app named or numbered {client_id_or_name!r}", code=ErrorCode.CLIENT_UNKNOWN)

    def register(
        self, *, name: str, origins: list[str], client_id: str, now: int, first_party: bool = True
    ) -> tuple[ClientRegistry, ClientApp]:
        name = name.strip()
        if not name or len(name) > 100:
            raise BadRequest("a client app name must be 1 to 100 characters", code=ErrorCode.CLIENT_NAME_INVALID)
        if any(app.name == name for app in self.apps):
            raise Conflict(f"a client app named {name!r} already exists", code=ErrorCode.CLIENT_NAME_TAKEN)
        hosts = tuple(dict.fromkeys(origin_host(o) for o in origins))
        app = ClientApp(
            client_id=normalize_client_id(client_id),
            name=name,
            origins=hosts,
            app_hashes=tuple(app_hash_of_origin(h) for h in hosts),
            first_party=first_party,
            created_at=now,
        )
        return replace(self, apps=(*self.apps, app)), app

    def remove(self, client_id_or_name: str) -> tuple[ClientRegistry, ClientApp]:
        app = self.find(client_id_or_name)
        return replace(self, apps=tuple(a for a in self.apps if a is not app)), app

    def render(self) -> bytes:
        return (json.dumps({"version": 1, "clients": [a.to_json() for a in self.apps]}, indent=2) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, *, source: str = CLIENT_IDS_FILE) -> ClientRegistry:
        try:
            doc = json.loads(data)
            if doc.get("version") != 1:
                raise ValueError("unsupported version")
            apps = tuple(
                ClientApp(
                    client_id=normalize_client_id(str(item["client_id"])),
                    name=str(item["name"]),
                    origins=tuple(str(o) for o in item.get("origins", ())),
                    app_hashes=tuple(normalize_app_hash(str(h)) for h in item.get("app_hashes", ())),
                    first_party=bool(item.get("first_party", True)),
                    created_at=int(item.get("created_at", 0)),
                )
                for item in doc["clients"]
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, BadRequest) as exc:
            raise ConfigError(
                f"{source} is damaged ({type(exc).__name__})", code=ErrorCode.CLIENT_IDS_INVALID
            ) from None
        return cls(apps)


def load_registry(data_dir: Path) -> ClientRegistry:
    """Read ``clientids.json`` from the data dir; an absent file is an empty registry."""
    path = data_dir / CLIENT_IDS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ClientRegistry()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", code=ErrorCode.CLIENT_IDS_UNREADABLE) from None
    return ClientRegistry.parse(data, source=str(path))


def load_serving_registry(data_dir: Path) -> ClientRegistry:
    """:func:`load_registry` for a running server: a damaged or unreadable file is 503 with its code
    (``client_ids_invalid``, ``client_ids_unreadable``) — the operator has to fix it, the caller
    can only retry later — and ``/readyz`` reports the same (``checks.client_ids``)."""
    try:
        return load_registry(data_dir)
    except ConfigError as exc:
        raise ServiceUnavailable(
            f"{exc.detail}; restore it from a backup or the config bundle, or re-register the clients",
            code=exc.error_code,
        ) from None


def save_registry(data_dir: Path, registry: ClientRegistry) -> None:
    """Atomically replace ``clientids.json`` (0600, like every file in the 0700 data dir)."""
    write_private(data_dir / CLIENT_IDS_FILE, registry.render())
