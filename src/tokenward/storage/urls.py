"""Database URLs: turn what a person writes into the async driver URL we connect with.

People write ``sqlite:///path``, ``postgresql://…`` or ``mysql://…``; SQLAlchemy's async engine
needs an async driver in the URL. Each backend has one driver we install through an extra:

    sqlite:///path                      -> sqlite+aiosqlite:///path        (always installed)
    postgresql:// or postgres://        -> postgresql+psycopg://           (tokenward[postgres])
    mysql:// or mariadb://              -> mysql+aiomysql://?charset=utf8mb4 (tokenward[mysql])

A URL may carry a password, so nothing here ever renders one: :func:`redact` is the only way a
URL reaches a message, and error messages never echo the raw input.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tokenward.errors import ConfigError

__all__ = ["SETTING", "default_sqlite_url", "redact", "to_async_url"]

SETTING = "TOKENWARD_DATABASE_URL"
"""The setting every URL message names, so a person knows where to fix it."""

DEFAULT_SQLITE_FILE = "tokenward.db"

# backend as written -> (backend in the URL we build, the async driver we use)
_BACKENDS: dict[str, tuple[str, str]] = {
    "sqlite": ("sqlite", "aiosqlite"),
    "postgresql": ("postgresql", "psycopg"),
    "postgres": ("postgresql", "psycopg"),
    "mysql": ("mysql", "aiomysql"),
    "mariadb": ("mysql", "aiomysql"),
}
# Drivers a person may name explicitly. Sync drivers are swapped for our async one, so a URL
# copied from another tool (``postgresql+psycopg2://``) just works.
_ACCEPTED_DRIVERS: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"aiosqlite", "pysqlite"}),
    "postgresql": frozenset({"psycopg", "psycopg_async", "psycopg2", "pg8000"}),
    "mysql": frozenset({"aiomysql", "pymysql", "mysqldb", "mysqlconnector"}),
}
_SUPPORTED = "sqlite:///PATH, postgresql://USER@HOST/DB (or postgres://), mysql://USER@HOST/DB (or mariadb://)"


def to_async_url(url: str | URL) -> URL:
    """Return the async-driver URL for a user-supplied database URL.

    Raises :class:`ConfigError` naming ``TOKENWARD_DATABASE_URL`` for a malformed URL, an unknown
    scheme or an unsupported driver. The returned ``URL`` masks its password in ``str``/``repr``.
    """
    parsed = _parse(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in _BACKENDS:
        raise ConfigError(f"{SETTING}: unsupported database scheme {backend!r}; supported: {_SUPPORTED}")
    target, async_driver = _BACKENDS[backend]
    if driver and driver not in _ACCEPTED_DRIVERS[target]:
        raise ConfigError(
            f"{SETTING}: unsupported driver {driver!r} for {backend}; leave the driver out "
            f"(tokenward uses {target}+{async_driver}) — supported: {_SUPPORTED}"
        )
    result = parsed.set(drivername=f"{target}+{async_driver}")
    if target == "mysql" and "charset" not in result.query:
        # utf8mb4 is the only MySQL charset that holds every e-mail address and subject name.
        result = result.update_query_dict({"charset": "utf8mb4"})
    return result


def redact(url: str | URL) -> str:
    """Render a URL for messages and reprs with its password replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        return "<unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def default_sqlite_url(data_dir: Path) -> str:
    """The default database: the SQLite file ``tokenward.db`` inside the data directory."""
    return f"sqlite:///{(data_dir.expanduser().absolute() / DEFAULT_SQLITE_FILE).as_posix()}"


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    try:
        return make_url(url.strip())
    except (ArgumentError, ValueError):
        # The raw text may hold a password: do not echo it.
        raise ConfigError(f"{SETTING} is not a valid database URL; expected one of: {_SUPPORTED}") from None
