"""Translate driver exceptions into tokenward storage errors.

SQLAlchemy, the DB-API drivers and the socket layer each raise their own exceptions; nothing
above the storage adapter should see them. :func:`translate_errors` is the one place that maps
them, so every message says what to check and none carries a password or a bound parameter:

    IntegrityError (unique key, foreign key, not null)   -> Conflict
    connection refused / lost / timed out / pool timeout -> StorageUnavailable (503)
    schema missing (table does not exist)                -> StorageError, "run tokenward db upgrade"
    anything else from SQLAlchemy or the driver          -> StorageError
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, StorageError, StorageUnavailable

from .urls import SETTING, redact

__all__ = ["extra_hint", "translate_errors"]

_MAX_REASON = 200
# Driver messages that mean "the schema is not there", across SQLite, PostgreSQL and MariaDB.
_SCHEMA_MISSING = re.compile(r"no such table|relation .* does not exist|table .* doesn't exist", re.IGNORECASE)
# OperationalErrors that are about the connection rather than the statement.
_CONNECTION_TROUBLE = re.compile(
    r"connect|connection|server has gone away|lost connection|timeout|timed out|refused|"
    r"unable to open database file|could not translate host|name or service|no route|unreachable|"
    r"access denied|authentication failed|password|unknown database|database .* does not exist|"
    r"readonly database|disk i/o error|database is locked",
    re.IGNORECASE,
)


@contextmanager
def translate_errors(url: URL) -> Iterator[None]:
    """Re-raise driver errors met inside the block as tokenward errors.

    ``url`` is only used, redacted, to tell a person which database failed.
    """
    try:
        yield
    except sa_exc.IntegrityError as exc:
        # The driver's text quotes the duplicate value; keep it out of the message.
        raise Conflict(
            "the change conflicts with data already stored (duplicate key or missing reference)",
            code=ErrorCode.STORAGE_CONFLICT,
        ) from exc
    except sa_exc.TimeoutError as exc:
        raise StorageUnavailable(
            f"no database connection became free in time for {redact(url)}; "
            "the server may be overloaded or connections are leaking"
        ) from exc
    except sa_exc.DBAPIError as exc:
        raise _from_dbapi(exc, url) from exc
    except sa_exc.NoSuchModuleError as exc:
        raise StorageError(f"the database driver for {redact(url)} is not installed; {extra_hint(url)}") from exc
    except sa_exc.SQLAlchemyError as exc:
        raise StorageError(f"database operation failed on {redact(url)} ({type(exc).__name__})") from exc
    except OSError as exc:  # includes TimeoutError / asyncio.TimeoutError and socket errors
        raise StorageUnavailable(
            f"cannot reach the database at {redact(url)} ({_reason(exc, url)}); {_what_to_check(url)}"
        ) from exc


def _from_dbapi(exc: sa_exc.DBAPIError, url: URL) -> StorageError:
    reason = _reason(exc.orig if exc.orig is not None else exc, url)
    if _SCHEMA_MISSING.search(reason):
        return StorageError(
            f"the database schema at {redact(url)} is missing or out of date; run `tokenward db upgrade`",
            code=ErrorCode.STORAGE_SCHEMA_MISSING,
        )
    connection_trouble = (
        exc.connection_invalidated
        or isinstance(exc, sa_exc.InterfaceError)
        or (isinstance(exc, sa_exc.OperationalError) and _CONNECTION_TROUBLE.search(reason) is not None)
    )
    if connection_trouble:
        return StorageUnavailable(f"cannot use the database at {redact(url)} ({reason}); {_what_to_check(url)}")
    # Statement errors may quote a stored value, so only the error class is named here.
    return StorageError(f"database operation failed on {redact(url)} ({type(exc.orig).__name__})")


def _reason(exc: BaseException, url: URL) -> str:
    """First line of a driver message, shortened, with any password scrubbed.

    Drivers quote hosts, users and database names, never parameters, in connection errors —
    but a password can still sneak in through a DSN echo, so remove it if it is there.
    """
    args = exc.args
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        raw = f"{args[1]} [{args[0]}]"  # PyMySQL-style (errno, message)
    else:
        raw = str(exc).strip()
    if not raw:
        raw = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    text = raw.splitlines()[0]
    if url.password:
        text = text.replace(str(url.password), "***")
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 1] + "…"
    return text


def _what_to_check(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return (
            "check that the directory holding the database file exists and is writable "
            f"(`tokenward init` creates it) and that {SETTING} is right"
        )
    return (
        "check that the server is running and reachable, that the database exists, "
        f"that the user and password are right, and that {SETTING} is right"
    )


def extra_hint(url: URL) -> str:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return "install it with `pip install 'tokenward[postgres]'`"
    if backend in ("mysql", "mariadb"):
        return "install it with `pip install 'tokenward[mysql]'`"
    return "reinstall tokenward"
