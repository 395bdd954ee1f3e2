"""Column types that behave the same on SQLite, PostgreSQL and MariaDB/MySQL.

Migrations import these too, so change them only in backward-compatible ways: a migration
replays the type as it is *today*.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["ID", "SQLITE_TIME", "UTCDateTime"]

ID = BigInteger().with_variant(Integer(), "sqlite")
"""Surrogate key type: BIGINT, except INTEGER on SQLite, where only that aliases the rowid."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp with microseconds, on every backend.

    PostgreSQL stores ``timestamptz``; SQLite and MySQL have no time zone, so the value is
    stored as naive UTC (``DATETIME(6)`` on MySQL, which otherwise drops fractions of a second)
    and given back as aware UTC. Naive datetimes are refused: a timestamp without a zone is a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[datetime]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps stored by tokenward must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


SQLITE_TIME = "strftime('%Y-%m-%d %H:%M:%S', us / 1000000, 'unixepoch') || printf('.%06d', us % 1000000)"
"""SQLite SQL for a time as :class:`UTCDateTime` stores it there (naive UTC text with microseconds, SQLAlchemy's
DATETIME format), from an integer column ``us`` of microseconds since 1970: for rows built in SQL from one JSON
parameter (``json_each``), with no Python object per row."""
