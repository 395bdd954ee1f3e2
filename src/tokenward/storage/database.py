"""The SQL database: one async engine, its sessions, and schema migrations.

:class:`Database` is the only object that touches SQLAlchemy's engine. Repositories take a
``Database`` and open :meth:`Database.session` blocks; every driver exception raised inside
becomes a tokenward error (see :mod:`tokenward.storage.translate`).

    db = Database.connect("sqlite:///var/lib/tokenward/tokenward.db")
    await db.upgrade()                      # Alembic migrations to head
    async with db.session() as session:     # commits on success, rolls back on error
        ...
    await db.close()
"""

from __future__ import annotations

import asyncio
import math
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from tokenward.errors import ConfigError

from .schema_head import packaged_head
from .translate import extra_hint, translate_errors
from .urls import SETTING, redact, to_async_url

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "Database"]

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a connection, so an unreachable database fails fast instead of hanging."""

# Advisory lock ids so that instances starting together apply migrations one at a time.
_MIGRATION_LOCK_NAME = "tokenward_migrations"
_AUTOCOMMIT = "AUTOCOMMIT"
_MIGRATION_LOCK_ID = zlib.crc32(_MIGRATION_LOCK_NAME.encode())
# Alembic keeps its `context`/`op` proxies in module globals, so two upgrades interleaving in one
# process corrupt each other; serialise them per event loop (an asyncio.Lock belongs to one loop).
_upgrade_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _upgrade_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _upgrade_locks.get(loop)
    if lock is None:
        lock = _upgrade_locks[loop] = asyncio.Lock()
    return lock


class Database:
    """An async SQL database (SQLite, PostgreSQL or MariaDB/MySQL) with tokenward's schema.

    Build it with :meth:`connect`; the constructor is for tests that bring their own engine.
    No connection is opened until first use. Use as ``async with Database.connect(url) as db``
    or call :meth:`close` when done.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        count_into: Database | None = None,
        autocommit: bool = False,
    ) -> None:
        self._engine = engine
        self._autocommit = autocommit
        self._url = engine.url
        self._connect_timeout = connect_timeout
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._counter: Database = count_into or self
        self.statements = 0
        """SQL statements sent since the engine was built (``tokenward_sql_statements_total``); a
        :meth:`companion`'s are counted here too."""
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "before_cursor_execute", self._count_statement)
        event.listen(sync_engine, "commit", self._count_transaction_end)
        event.listen(sync_engine, "rollback", self._count_transaction_end)

    def _count_statement(self, *_args: Any) -> None:
        # Every statement SQLAlchemy executes (one per executemany batch); an int increment, on every
        # query, so benches and /metrics can tell the SQL load of an instance.
        self._counter.statements += 1

    def _count_transaction_end(self, conn: Any, *_args: Any) -> None:
        # COMMIT / ROLLBACK of a transaction a block opened: a round trip too. Not in autocommit mode: there the
        # driver sent no BEGIN, and SQLAlchemy's closing "rollback" sends nothing either.
        if not (self._autocommit or conn.get_execution_options().get("isolation_level") == _AUTOCOMMIT):
            self._counter.statements += 1

    @classmethod
    def connect(
        cls,
        url: str | URL,
        *,
        echo: bool = False,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> Database:
        """Create the engine for ``url`` (any form :func:`to_async_url` accepts).

        Raises :class:`ConfigError` for a bad URL or a missing driver extra. Does not connect:
        call :meth:`ping` or :meth:`upgrade` to find out whether the database is reachable.
        """
        return cls(_build_engine(to_async_url(url), connect_timeout, echo=echo), connect_timeout=connect_timeout)

    def companion(self, *, pool_size: int = 1, autocommit: bool = False) -> Database:
        """The same database through its own small pool, for a background reader that must never wait
        behind request traffic for a pooled connection (the change feed). Its statements count in this
        one's :attr:`statements`. ``autocommit``: its connections are in autocommit mode from the start (no
        switch per :meth:`autocommit` block; :meth:`session` then commits statement by statement). An
        in-memory SQLite database has one connection: it is its own companion. Close it with :meth:`close`
        (closing self does not close it)."""
        if _is_sqlite_memory(self._url):
            return self
        options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0}
        if autocommit:
            options["isolation_level"] = _AUTOCOMMIT
        engine = _build_engine(self._url, self._connect_timeout, **options)
        return type(self)(engine, connect_timeout=self._connect_timeout, count_into=self, autocommit=autocommit)

    @property
    def url(self) -> URL:
        """The async driver URL (``str()`` of it masks the password)."""
        return self._url

    @property
    def dialect(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB reports ``"mysql"`` too)."""
        return self._engine.dialect.name

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine, for repositories that need Core-level access."""
        return self._engine

    async def ping(self) -> None:
        """Check that the database answers; raise :class:`StorageUnavailable` if not."""
        with translate_errors(self._url):
            async with asyncio.timeout(self._guard_timeout()), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

    async def upgrade(self) -> None:
        """Apply the packaged Alembic migrations up to head (a no-op when already there).

        Safe to run from several instances at once on PostgreSQL and MariaDB: an advisory lock
        serialises them, and the later ones find the schema already current.
        """
        head = packaged_head()
        if head is not None and await self._recorded_revisions() == {head}:
            return  # current: no need to import Alembic to find that out
        from .migrations import alembic_config

        config = alembic_config()
        with translate_errors(self._url):
            async with _upgrade_lock(), self._engine.begin() as conn:
                await self._lock_migrations(conn)
                try:
                    await conn.run_sync(_run_upgrade, config)
                finally:
                    await self._unlock_migrations(conn)

    async def current_revision(self) -> str | None:
        """The schema revision the database is at, or ``None`` before the first upgrade."""
        recorded = await self._recorded_revisions()
        if recorded is None or len(recorded) <= 1:
            return next(iter(recorded or ()), None)
        with translate_errors(self._url):  # several heads recorded: Alembic says what is wrong
            async with self._engine.connect() as conn:
                return await conn.run_sync(_current_revision)

    async def is_current(self) -> bool:
        """Whether the schema is at the newest revision this tokenward ships."""
        from .migrations import head_revision

        return await self.current_revision() == head_revision()

    async def _recorded_revisions(self) -> set[str] | None:
        """The rows of ``alembic_version`` (``None``: no such table yet), read with plain SQL."""
        with translate_errors(self._url):
            async with asyncio.timeout(self._guard_timeout()), self._engine.connect() as conn:
                if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
                    return None
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
                return {str(row[0]) for row in rows}

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed when the block ends, rolled back on error.

        Driver errors inside the block (and from the commit) come out as tokenward errors.
        """
        with translate_errors(self._url):
            async with self._sessions() as session, session.begin():
                yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit mode: each statement is its own transaction, with no BEGIN or COMMIT
        round trip around it (one statement in :attr:`statements`, where a :meth:`session` block costs its
        COMMIT too). For a read that needs no snapshot (a change-log poll) or a write that is one statement
        (a batch of rows). Driver errors come out as tokenward errors."""
        with translate_errors(self._url):
            async with self._engine.connect() as conn:
                if not self._autocommit:
                    await conn.execution_options(isolation_level=_AUTOCOMMIT)
                yield conn

    async def close(self) -> None:
        """Close every pooled connection. Safe to call more than once."""
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Database(url={redact(self._url)!r})"

    def _guard_timeout(self) -> float:
        # Drivers enforce connect_timeout themselves; this outer limit only guards against a
        # driver that ignores it (DNS stalls, half-open sockets).
        return self._connect_timeout * 2 + 1

    async def _lock_migrations(self, conn: AsyncConnection) -> None:
        if self.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        elif self.dialect == "mysql":
            await conn.execute(text("SELECT GET_LOCK(:name, 60)"), {"name": _MIGRATION_LOCK_NAME})

    async def _unlock_migrations(self, conn: AsyncConnection) -> None:
        # PostgreSQL releases the transaction lock at commit; MySQL locks live with the session.
        if self.dialect == "mysql" and not conn.invalidated:
            await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MIGRATION_LOCK_NAME})


def _build_engine(async_url: URL, connect_timeout: float, *, echo: bool = False, **pool: Any) -> AsyncEngine:
    """The engine for ``async_url`` with tokenward's options (``pool`` overrides the pool's), its SQLite
    pragmas and directory check; a bad URL or a missing driver is a :class:`ConfigError`."""
    options = {**_engine_options(async_url, connect_timeout), **pool}
    try:
        engine = create_async_engine(async_url, echo=echo, hide_parameters=True, **options)
    except (NoSuchModuleError, ModuleNotFoundError):
        raise ConfigError(
            f"{SETTING}: the driver for {redact(async_url)} is not installed; {extra_hint(async_url)}"
        ) from None
    except (ArgumentError, TypeError, ValueError) as exc:
        raise ConfigError(f"{SETTING}: cannot use {redact(async_url)} ({type(exc).__name__})") from exc
    if async_url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(async_url, connect_timeout))
        if not _is_sqlite_memory(async_url) and not async_url.query.get("uri"):
            event.listen(engine.sync_engine, "do_connect", _sqlite_directory_check(Path(str(async_url.database))))
    return engine


def _engine_options(url: URL, connect_timeout: float) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "sqlite":
        options: dict[str, Any] = {"connect_args": {"timeout": connect_timeout}}
        if _is_sqlite_memory(url):
            # Every connection to ":memory:" would be a new empty database; share one.
            options["poolclass"] = StaticPool
        return options
    server_options: dict[str, Any] = {
        "pool_pre_ping": True,  # a restarted server or a dropped idle connection is retried, not raised
        "pool_timeout": max(connect_timeout * 2, 10.0),
    }
    if backend == "postgresql":
        # libpq counts whole seconds and treats anything below 2 as 2.
        server_options["connect_args"] = {
            "connect_timeout": max(2, math.ceil(connect_timeout)),
            "application_name": "tokenward",
        }
    else:
        server_options["async_creator"] = _mysql_connector(url, connect_timeout)
        server_options["pool_recycle"] = 1800  # below MySQL's default wait_timeout (8 h) and proxies' idle limits
    return server_options


def _mysql_connector(url: URL, connect_timeout: float) -> Callable[[], Awaitable[Any]]:
    # aiomysql's connect_timeout covers only the TCP connect; a server (or proxy) that accepts
    # and then never sends its greeting would hang the handshake forever. Bound the whole of it.
    cargs, cparams = url.get_dialect()().create_connect_args(url)
    cparams["connect_timeout"] = connect_timeout

    async def connect() -> Any:
        import aiomysql

        return await asyncio.wait_for(aiomysql.connect(*cargs, **cparams), connect_timeout)

    return connect


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_pragmas(url: URL, connect_timeout: float) -> Any:
    memory = _is_sqlite_memory(url)
    busy_ms = int(connect_timeout * 1000)

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                # WAL lets readers work while a writer commits; NORMAL is durable across app crashes.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_directory_check(path: Path) -> Any:
    # Checked before aiosqlite opens the file: when its connect fails, aiosqlite's worker thread
    # later reports to the (by then often closed) event loop and crashes noisily
    # (omnilib/aiosqlite#241, #389). A missing data dir is by far the most common cause.
    def check(*_args: Any) -> None:
        if not path.parent.is_dir():
            raise FileNotFoundError(f"directory {path.parent} does not exist")

    return check


def _run_upgrade(connection: Connection, config: Any) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()
