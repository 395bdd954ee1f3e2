"""App token records: the ``app_tokens`` table, an in-memory twin, and their common contract.

A record never holds the secret, only its keyed hash (see :mod:`tokenward.apptokens.format`).
Deleting a token *revokes* it (``revoked_at``): the row stays for the audit trail and so that
every instance sees the revocation on its next read. Both implementations pass the contract
tests in ``tests/apptokens/test_store.py``.
"""

from __future__ import annotations

import builtins
import dataclasses
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Row, String, bindparam, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.errors import Conflict

from .database import Database
from .models import SUBJECT_LEN, Base
from .translate import translate_errors
from .types import UTCDateTime

__all__ = ["AppTokenRecord", "AppTokenRow", "AppTokenStore", "InMemoryAppTokenStore", "SqlAppTokenStore"]

TOKEN_ID_LEN = 16
LABEL_LEN = 200
HASH_LEN = 64
KEY_ID_LEN = 16


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AppTokenRecord:
    """One app token as stored. ``secret_hash`` is hex HMAC-SHA256; no secret is ever kept."""

    id: str
    owner: str
    label: str
    scopes: tuple[str, ...]
    secret_hash: str = dataclasses.field(repr=False)
    key_id: str
    created_at: datetime
    expires_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class AppTokenRow(Base):
    """``app_tokens``: one row per token, looked up by primary key on every cold verification."""

    __tablename__ = "app_tokens"
    __table_args__ = (
        Index("ix_app_tokens_owner", "owner"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[str] = mapped_column(String(TOKEN_ID_LEN), primary_key=True)
    owner: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    label: Mapped[str] = mapped_column(String(LABEL_LEN), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSON(), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(HASH_LEN), nullable=False)
    key_id: Mapped[str] = mapped_column(String(KEY_ID_LEN), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_by: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AppTokenStore(ABC):
    """Where app token records live."""

    @abstractmethod
    async def add(self, record: AppTokenRecord) -> None:
        """Store a new record; :class:`Conflict` if the id exists."""

    @abstractmethod
    async def get(self, token_id: str) -> AppTokenRecord | None:
        """The record with this id (revoked or not), or ``None``."""

    @abstractmethod
    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        """Records of ``owner`` (all owners when ``None``), oldest first."""

    @abstractmethod
    async def count_live(self, owner: str, now: datetime) -> int:
        """How many unrevoked, unexpired tokens ``owner`` holds."""

    @abstractmethod
    async def revoke(self, token_id: str, at: datetime, *, owner: str | None = None) -> bool:
        """Mark the token revoked; ``False`` when it does not exist, is not ``owner``'s, or was already revoked.

        Exactly one of several concurrent revocations of one token returns ``True``.
        """

    @abstractmethod
    async def touch(self, token_id: str, at: datetime) -> None:
        """Set ``last_used_at`` (callers rate-limit this)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (the SQL store does not own its ``Database``)."""


class InMemoryAppTokenStore(AppTokenStore):
    """Records in a dict: for tests and single-process tools."""

    def __init__(self) -> None:
        self._records: dict[str, AppTokenRecord] = {}

    async def add(self, record: AppTokenRecord) -> None:
        if record.id in self._records:
            raise Conflict("an app token with this id exists", code="storage_conflict")
        self._records[record.id] = record

    async def get(self, token_id: str) -> AppTokenRecord | None:
        return self._records.get(token_id)

    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        found = [
            r
            for r in self._records.values()
            if (owner is None or r.owner == owner) and (include_revoked or r.revoked_at is None)
        ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    async def count_live(self, owner: str, now: datetime) -> int:
        return sum(1 for r in self._records.values() if r.owner == owner and r.is_live(now))

    async def revoke(self, token_id: str, at: datetime, *, owner: str | None = None) -> bool:
        record = self._records.get(token_id)
        if record is None or record.revoked_at is not None or (owner is not None and record.owner != owner):
            return False
        self._records[token_id] = dataclasses.replace(record, revoked_at=at)
        return True

    async def touch(self, token_id: str, at: datetime) -> None:
        record = self._records.get(token_id)
        if record is not None:
            self._records[token_id] = dataclasses.replace(record, last_used_at=at)


class SqlAppTokenStore(AppTokenStore):
    """Records in the ``app_tokens`` table of a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: AppTokenRecord) -> None:
        row = AppTokenRow(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})
        row.scopes = list(record.scopes)
        async with self._db.session() as session:
            session.add(row)

    async def get(self, token_id: str) -> AppTokenRecord | None:
        # The cold path of every verification: a Core SELECT by primary key, no ORM session or identity map.
        with translate_errors(self._db.url):
            async with self._db.engine.connect() as conn:
                row = (await conn.execute(_BY_ID, {"id": token_id})).first()
        return None if row is None else _to_record(row)

    async def list(self, *, owner: str | None = None, include_revoked: bool = False) -> builtins.list[AppTokenRecord]:
        query = select(AppTokenRow)
        if owner is not None:
            query = query.where(AppTokenRow.owner == owner)
        if not include_revoked:
            query = query.where(AppTokenRow.revoked_at.is_(None))
        query = query.order_by(AppTokenRow.created_at, AppTokenRow.id)
        async with self._db.session() as session:
            return [_to_record(row) for row in (await session.scalars(query)).all()]

    async def count_live(self, owner: str, now: datetime) -> int:
        query = (
            select(func.count())
            .select_from(AppTokenRow)
            .where(AppTokenRow.owner == owner, AppTokenRow.revoked_at.is_(None), AppTokenRow.expires_at > now)
        )
        async with self._db.session() as session:
            return int((await session.execute(query)).scalar_one())

    async def revoke(self, token_id: str, at: datetime, *, owner: str | None = None) -> bool:
        # One conditional UPDATE: the database decides which of two racing revocations wins.
        query = update(AppTokenRow).where(AppTokenRow.id == token_id, AppTokenRow.revoked_at.is_(None))
        if owner is not None:
            query = query.where(AppTokenRow.owner == owner)
        async with self._db.session() as session:
            result = await session.execute(query.values(revoked_at=at))
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def touch(self, token_id: str, at: datetime) -> None:
        async with self._db.session() as session:
            await session.execute(update(AppTokenRow).where(AppTokenRow.id == token_id).values(last_used_at=at))


_TABLE = AppTokenRow.__table__
_BY_ID = select(_TABLE).where(_TABLE.c.id == bindparam("id"))


def _to_record(row: AppTokenRow | Row[Any]) -> AppTokenRecord:
    """From an ORM row or a Core row of the same table (the cold path reads Core rows)."""
    return AppTokenRecord(
        id=row.id,
        owner=row.owner,
        label=row.label,
        scopes=tuple(row.scopes),
        secret_hash=row.secret_hash,
        key_id=row.key_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
