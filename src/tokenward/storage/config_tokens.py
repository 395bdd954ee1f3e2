"""Revoked config tokens: the ``config_token_revocations`` table, an in-memory twin, their contract.

A config token is revoked by its ``jti``. A revocation logs a ``config_token`` change in the same
transaction; every serving instance reads the whole (small) set of revoked ids once at start (and
again when its change feed resets) and adds each ``config_token`` change it reads, so a revocation
made anywhere is honoured by all of them without per-request queries (``_Revoked`` in
:mod:`tokenward.forwardauth.service`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict

from .changes import Change, ChangeKind, InMemoryChangeLog, write_changes
from .database import Database
from .models import SUBJECT_LEN, Base
from .types import UTCDateTime

__all__ = [
    "JTI_LEN",
    "ConfigTokenRevocation",
    "ConfigTokenRevocationRow",
    "ConfigTokenRevocations",
    "InMemoryConfigTokenRevocations",
    "SqlConfigTokenRevocations",
]

JTI_LEN = 128


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ConfigTokenRevocation:
    """One revoked config token id."""

    jti: str
    revoked_at: datetime
    revoked_by: str

    def __post_init__(self) -> None:
        if not self.jti or len(self.jti) > JTI_LEN:
            raise ValueError(f"a config token jti must be 1-{JTI_LEN} characters")


class ConfigTokenRevocationRow(Base):
    """``config_token_revocations``: one row per revoked ``jti``."""

    __tablename__ = "config_token_revocations"
    __table_args__ = ({"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},)

    jti: Mapped[str] = mapped_column(String(JTI_LEN), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_by: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)


class ConfigTokenRevocations(ABC):
    """Where revoked config token ids live."""

    @abstractmethod
    async def revoke(self, revocation: ConfigTokenRevocation) -> None:
        """Record a revocation and its ``config_token`` change (one transaction); :class:`Conflict` (code
        ``config_token_already_revoked``) if already revoked."""

    @abstractmethod
    async def revoked_ids(self) -> frozenset[str]:
        """Every revoked ``jti``."""

    @abstractmethod
    async def list(self) -> list[ConfigTokenRevocation]:
        """Every revocation, oldest first."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (the SQL store does not own its ``Database``)."""


def _already(jti: str) -> Conflict:
    return Conflict(f"config token {jti} is already revoked", code=ErrorCode.CONFIG_TOKEN_ALREADY_REVOKED)


class InMemoryConfigTokenRevocations(ConfigTokenRevocations):
    """Revocations in a dict: for tests and single-process tools."""

    def __init__(self, changes: InMemoryChangeLog | None = None) -> None:
        self._changes = changes
        self._items: dict[str, ConfigTokenRevocation] = {}

    async def revoke(self, revocation: ConfigTokenRevocation) -> None:
        if revocation.jti in self._items:
            raise _already(revocation.jti)
        self._items[revocation.jti] = revocation
        if self._changes is not None:
            self._changes.append([Change(ChangeKind.CONFIG_TOKEN, revocation.jti)], revocation.revoked_at)

    async def revoked_ids(self) -> frozenset[str]:
        return frozenset(self._items)

    async def list(self) -> list[ConfigTokenRevocation]:
        return sorted(self._items.values(), key=lambda r: (r.revoked_at, r.jti))


class SqlConfigTokenRevocations(ConfigTokenRevocations):
    """Revocations in the ``config_token_revocations`` table of a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def revoke(self, revocation: ConfigTokenRevocation) -> None:
        try:
            async with self._db.session() as session:
                session.add(ConfigTokenRevocationRow(**dataclasses.asdict(revocation)))
                await session.flush()  # the row first: a second revocation fails here, before its change
                change = Change(ChangeKind.CONFIG_TOKEN, revocation.jti)
                await write_changes(await session.connection(), [change], revocation.revoked_at)
        except Conflict:
            raise _already(revocation.jti) from None

    async def revoked_ids(self) -> frozenset[str]:
        async with self._db.session() as session:
            return frozenset((await session.scalars(select(ConfigTokenRevocationRow.jti))).all())

    async def list(self) -> list[ConfigTokenRevocation]:
        query = select(ConfigTokenRevocationRow).order_by(
            ConfigTokenRevocationRow.revoked_at, ConfigTokenRevocationRow.jti
        )
        async with self._db.session() as session:
            rows = (await session.scalars(query)).all()
        return [ConfigTokenRevocation(jti=r.jti, revoked_at=r.revoked_at, revoked_by=r.revoked_by) for r in rows]
