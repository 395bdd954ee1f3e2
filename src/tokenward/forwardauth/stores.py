"""Server-side config token stores (docs/forward-auth.md): ``file``, ``env`` and ``sql``.

Declared in ``TOKENWARD_CONFIG_TOKEN_STORES`` (JSON or YAML)::

    primary: {adapter: file, options: {path: /etc/tokenward/tokens.yaml, cache_ttl: 60}}
    envstore: {adapter: env, options: {var: CONFIG_TOKENS}}
    db: {adapter: sql, options: {url: "mysql://…/eas", cache_ttl: 30,
         query: "SELECT token as token from config_tokens WHERE id = ? AND revoked != 1"}}

A stored value is an encrypted or signed config token, or — only in a store with
``allow_plain: true`` — a plain JSON/YAML document (object). ``file`` keeps serving its last good
content when the file turns bad (and logs it); ``sql`` down is a 503 ``config_token_store_unavailable``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError, StorageError, StorageUnavailable
from tokenward.forwardauth.documents import load_text
from tokenward.storespecs import EnvOptions, FileOptions, SqlOptions, StoreSpec, outside_quotes, parse_store_specs

__all__ = [
    "EnvOptions",
    "EnvStore",
    "FileOptions",
    "FileStore",
    "SqlOptions",
    "SqlStore",
    "StoreSpec",
    "StoredValue",
    "TokenStore",
    "build_stores",
    "parse_store_specs",
]

log = logging.getLogger("tokenward.forwardauth.stores")

StoredValue = str | dict[str, Any]
MAX_STORE_BYTES = 16 * 1_048_576
_ID = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,256}$")


def _check_id(token_id: str) -> None:
    if not _ID.match(token_id):
        raise BadRequest(
            "config_token_id has characters or a length a store does not accept", code=ErrorCode.CONFIG_TOKEN_ID_INVALID
        )


class TokenStore(ABC):
    """One store: ``get(id)`` gives the stored value or None. ``version`` changes when memory content is replaced."""

    cache_ttl: float = 0.0
    allow_plain: bool = False
    in_memory: bool = False
    version: int = 0

    def refresh(self) -> None:  # noqa: B027 - optional hook
        """Pick up changes (a file store re-reads its file when it changed). Called per lookup: keep it cheap."""

    @abstractmethod
    async def get(self, token_id: str) -> StoredValue | None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


def _parse_map(text_value: str, what: str) -> dict[str, StoredValue]:
    data = load_text(text_value, what=what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest(f"{what} must map token ids to tokens", code=ErrorCode.DOCUMENT_INVALID)
    out: dict[str, StoredValue] = {}
    for key, value in data.items():
        if not isinstance(value, str | dict):
            raise BadRequest(
                f"{what}: the value of {key!r} is neither a token nor a document", code=ErrorCode.DOCUMENT_INVALID
            )
        out[str(key)] = value
    return out


class _MapStore(TokenStore):
    in_memory = True

    def __init__(self, options: FileOptions | EnvOptions) -> None:
        self.cache_ttl = options.cache_ttl
        self.allow_plain = options.allow_plain
        self._content: dict[str, StoredValue] = {}

    async def get(self, token_id: str) -> StoredValue | None:
        _check_id(token_id)
        return self._content.get(token_id)


class FileStore(_MapStore):
    """A JSON/YAML file ``{id: token}``, re-read (at most once a second) when its size, mtime or inode change."""

    def __init__(self, options: FileOptions, *, clock: Any = time.monotonic) -> None:
        super().__init__(options)
        self.path = options.path
        self.check_interval = options.check_interval
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._load()

    def _load(self) -> None:
        self._checked = self._clock()
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            if st.st_size > MAX_STORE_BYTES:
                raise BadRequest(f"larger than {MAX_STORE_BYTES} bytes", code=ErrorCode.DOCUMENT_TOO_LARGE)
            content = _parse_map(self.path.read_text(encoding="utf-8"), f"token file {self.path}")
        except OSError as exc:
            log.warning(
                "config token file %s cannot be read (%s); keeping the last good content", self.path, exc.strerror
            )
            return
        except (BadRequest, UnicodeDecodeError) as exc:
            detail = exc.detail if isinstance(exc, BadRequest) else "not UTF-8"
            log.warning("config token file %s is invalid (%s); keeping the last good content", self.path, detail)
            self._stamp = stamp
            return
        self._content = content
        self._stamp = stamp
        self.version += 1

    def refresh(self) -> None:
        if self._clock() - self._checked >= self.check_interval:
            self._load()


class EnvStore(_MapStore):
    """A JSON/YAML map ``{id: token}`` in an environment variable, read once at start."""

    def __init__(self, options: EnvOptions, *, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(options)
        env = os.environ if environ is None else environ
        raw = env.get(options.var)
        if raw is None:
            raise ConfigError(
                f"the env config token store needs the variable {options.var}", code=ErrorCode.SETTING_INVALID
            )
        try:
            self._content = _parse_map(raw, f"variable {options.var}")
        except BadRequest as exc:
            raise ConfigError(exc.detail, code=ErrorCode.SETTING_INVALID) from None
        self.version = 1


class SqlStore(TokenStore):
    """A table read with the operator's query; the ``token`` column of the first row is the value."""

    def __init__(self, options: SqlOptions) -> None:
        from sqlalchemy import text

        from tokenward.storage import Database

        self.cache_ttl = options.cache_ttl
        self.allow_plain = options.allow_plain
        body = outside_quotes(options.query)
        if body != options.query and "?" not in body:  # pragma: no cover - validated
            raise ConfigError("the query placeholder is inside quotes", code=ErrorCode.SETTING_INVALID)
        self._query = text(_replace_placeholder(options.query))
        self._db = Database.connect(options.url)

    async def get(self, token_id: str) -> StoredValue | None:
        _check_id(token_id)
        try:
            async with self._db.session() as session:
                row = (await session.execute(self._query, {"config_token_id": token_id})).mappings().first()
        except StorageUnavailable:
            raise StorageUnavailable(
                "the config token database cannot be reached", code=ErrorCode.CONFIG_TOKEN_STORE_UNAVAILABLE
            ) from None
        except StorageError as exc:
            raise StorageError(
                f"the config token query failed: {exc.detail}", code=ErrorCode.CONFIG_TOKEN_STORE_ERROR
            ) from None
        if row is None:
            return None
        if "token" not in row:
            raise StorageError(
                "the config token query must select a column named token", code=ErrorCode.CONFIG_TOKEN_STORE_ERROR
            )
        value = row["token"]
        return None if value is None else str(value)

    async def close(self) -> None:
        await self._db.close()


def _replace_placeholder(query: str) -> str:
    out, quote = [], ""
    for ch in query:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append(":config_token_id")
            continue
        out.append("\\:" if ch == ":" else ch)  # a literal colon, not a bind parameter
    return "".join(out)


def build_stores(specs: Mapping[str, StoreSpec], *, environ: Mapping[str, str] | None = None) -> dict[str, TokenStore]:
    stores: dict[str, TokenStore] = {}
    for store_id, spec in specs.items():
        options = spec.parsed_options()
        if isinstance(options, FileOptions):
            stores[store_id] = FileStore(options)
        elif isinstance(options, EnvOptions):
            stores[store_id] = EnvStore(options, environ=environ)
        else:
            stores[store_id] = SqlStore(options)
    return stores
