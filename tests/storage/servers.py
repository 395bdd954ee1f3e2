"""Fresh, uniquely named test databases on SQLite, PostgreSQL and MariaDB.

Each call to :func:`fresh_database_url` creates a new empty database through a sync admin
connection and drops it afterwards, so tests never share state. Server addresses default to
the project machines' (127.0.0.1, trust / no password) and can be overridden with
``TOKENWARD_TEST_POSTGRES_URL`` and ``TOKENWARD_TEST_MARIADB_URL``.

When a server cannot be reached the test is skipped with instructions, or fails when
``CI=true`` — in CI a missing database must never pass silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

__all__ = ["BACKENDS", "REDIS_URL", "admin_url", "backend_params", "fresh_database_url", "redis_client"]

BACKENDS = ("sqlite", "postgresql", "mariadb")

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MARIADB_ADMIN_URL = "mysql://root@127.0.0.1:3306/"
ADMIN_CONNECT_TIMEOUT = 3

_HOW_TO_START = {
    "postgresql": (
        "install it with `apt-get install postgresql` and start it with "
        "`pg_ctlcluster --skip-systemctl-redirect 15 main start` (trust auth for postgres on 127.0.0.1), "
        "or point TOKENWARD_TEST_POSTGRES_URL at a server"
    ),
    "mariadb": (
        "install it with `apt-get install mariadb-server` and start it with `service mariadb start` "
        "(root without password on 127.0.0.1), or point TOKENWARD_TEST_MARIADB_URL at a server"
    ),
}
REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'

# admin URL -> why it could not be reached, so later tests do not wait for the timeout again
_unreachable: dict[str, str] = {}


def backend_params(*extra: str) -> list[object]:
    """``pytest.param`` per backend (marked ``postgres``/``mariadb``), after any ``extra`` plain ids."""
    marks = {"postgresql": pytest.mark.postgres, "mariadb": pytest.mark.mariadb}
    params: list[object] = [pytest.param(name, id=name) for name in extra]
    for name in BACKENDS:
        params.append(pytest.param(name, id=name, marks=[marks[name]] if name in marks else []))
    return params


def admin_url(backend: str) -> str:
    """The admin URL tests use for ``backend`` ("postgresql" or "mariadb")."""
    if backend == "postgresql":
        return os.environ.get("TOKENWARD_TEST_POSTGRES_URL", POSTGRES_ADMIN_URL)
    if backend == "mariadb":
        return os.environ.get("TOKENWARD_TEST_MARIADB_URL", MARIADB_ADMIN_URL)
    raise ValueError(f"{backend!r} has no server")


@contextmanager
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database on ``backend``; drop it afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'tokenward.db'}"
        return
    name = f"tw_test_{os.getpid()}_{secrets.token_hex(4)}"
    if backend == "postgresql":
        with _postgres_database(name) as url:
            yield url
    elif backend == "mariadb":
        with _mariadb_database(name) as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


def _unavailable(backend: str, reason: str) -> None:
    """Skip (or, under CI=true, fail) because ``backend`` cannot be reached."""
    _unreachable[admin_url(backend)] = reason
    message = f"{backend} is not reachable ({reason}); {_HOW_TO_START[backend]}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


@asynccontextmanager
async def redis_client() -> AsyncIterator[Any]:
    """A client for the Redis on 127.0.0.1:6379; skips (or, under CI=true, fails) when it cannot be reached."""
    from tokenward.storage.redisstate import connect_redis

    client = connect_redis(REDIS_URL, timeout=1.0)
    try:
        await client.ping()
    except Exception as exc:  # any reason Redis cannot be reached
        await client.aclose()
        message = f"Redis is not reachable on 127.0.0.1:6379 ({type(exc).__name__}); start one: {REDIS_START}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    try:
        yield client
    finally:
        await client.aclose()


@contextmanager
def _postgres_database(name: str) -> Iterator[str]:
    server = make_url(admin_url("postgresql"))
    if admin_url("postgresql") in _unreachable:
        _unavailable("postgresql", _unreachable[admin_url("postgresql")])
    conninfo = server.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(conninfo, autocommit=True, connect_timeout=ADMIN_CONNECT_TIMEOUT)
    except psycopg.OperationalError as exc:
        _unavailable("postgresql", str(exc).strip().splitlines()[0])
        raise  # unreachable: _unavailable always raises
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=ADMIN_CONNECT_TIMEOUT) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def _mariadb_database(name: str) -> Iterator[str]:
    server = make_url(admin_url("mariadb"))
    if admin_url("mariadb") in _unreachable:
        _unavailable("mariadb", _unreachable[admin_url("mariadb")])

    def connect() -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
        return pymysql.connect(
            host=server.host or "127.0.0.1",
            port=server.port or 3306,
            user=server.username or "root",
            password=server.password or "",
            connect_timeout=ADMIN_CONNECT_TIMEOUT,
            autocommit=True,
        )

    try:
        admin = connect()
    except pymysql.err.OperationalError as exc:
        _unavailable("mariadb", str(exc.args[-1]) if exc.args else type(exc).__name__)
        raise
    with admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
