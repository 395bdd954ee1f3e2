"""SQLAlchemy declarative models: the schema the SQL repositories read and write.

The migrations in ``migrations/versions`` create this schema; ``tests/storage`` checks that the
two agree on every backend (Alembic autogenerate finds no difference). When you add a model,
add a migration in the same change. A repository module may declare its own rows on
:class:`Base`; :func:`all_metadata` imports every ``tokenward.storage`` module so none is missed.

Portability rules (SQLite, PostgreSQL, MariaDB/MySQL):
- every indexed string column has a length, and an index stays under 3072 bytes in utf8mb4
  (4 bytes a character) — MySQL refuses longer keys;
- timestamps are :class:`UTCDateTime`; surrogate keys are :data:`ID`;
- constraint and index names come from the naming convention below, so they are the same
  everywhere and a later migration can drop them by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .types import ID, UTCDateTime

__all__ = ["NAMING_CONVENTION", "AuditEventRow", "Base", "all_metadata"]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column sizes shared by repositories and migrations.
SUBJECT_LEN = 320  # an e-mail address is at most 254; subjects may be longer names
ACTION_LEN = 64
TARGET_LEN = 512
REQUEST_ID_LEN = 64
INSTANCE_LEN = 128


class Base(DeclarativeBase):
    """Declarative base holding tokenward's one ``MetaData``."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuditEventRow(Base):
    """One audit event (see :class:`tokenward.storage.audit.AuditEvent`)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_at", "actor", "at"),
        Index("ix_audit_events_action_at", "action", "at"),
        Index("ix_audit_events_subject_at", "subject", "at"),
        Index("ix_audit_events_request_id", "request_id"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    actor: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    action: Mapped[str] = mapped_column(String(ACTION_LEN), nullable=False)
    subject: Mapped[str | None] = mapped_column(String(SUBJECT_LEN), nullable=True)
    target: Mapped[str | None] = mapped_column(String(TARGET_LEN), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON(), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(REQUEST_ID_LEN), nullable=True)
    instance: Mapped[str | None] = mapped_column(String(INSTANCE_LEN), nullable=True)


def all_metadata() -> MetaData:
    """``Base.metadata`` after importing every ``tokenward.storage`` module, so all tables are in it."""
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name != "migrations":
            importlib.import_module(f"{package}.{module.name}")
    return Base.metadata
