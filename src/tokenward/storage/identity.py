"""Identity state shared by every instance: enrolments, captcha challenges, sessions.

Shaped like every repository here: :class:`IdentityStore` (abstract), :class:`InMemoryIdentityStore`
and :class:`SqlIdentityStore`. The operations that must hold *across instances* are single
conditional UPDATEs: :meth:`~IdentityStore.use_attempt` (``attempts < max``),
:meth:`~IdentityStore.consume_challenge` (``consumed_at IS NULL``),
:meth:`~IdentityStore.redeem_enrollment_code` (``used_at IS NULL``) — the row count says who won.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Index, Integer, String, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.records.challenges import Challenge

from .changes import Change, ChangeKind, InMemoryChangeLog, write_changes
from .database import Database
from .models import SUBJECT_LEN, Base
from .types import UTCDateTime

__all__ = [
    "ChallengeRow",
    "Enrollment",
    "EnrollmentCodeRow",
    "EnrollmentMethod",
    "EnrollmentRow",
    "IdentityStore",
    "InMemoryIdentityStore",
    "RedeemedCode",
    "SessionRecord",
    "SessionRow",
    "SqlIdentityStore",
]

ID_LEN = 43
KEY_LEN = 64
CLIENT_ID_LEN = 40
HASH_LEN = 128

#: How an enrolment code was issued: by an admin (CLI) or mailed on request (``POST /api/enroll/email``).
#: The enrolment made with the code records the same method.
EnrollmentMethod = Literal["admin-code", "email-code"]


@dataclasses.dataclass(frozen=True, slots=True)
class Enrollment:
    email: str
    public_key: str  # base64url X25519
    enrolled_at: float
    method: str  # "admin-code" | "email-code" (EnrollmentMethod): how its enrolment code was issued
    aead: str = "chacha20poly1305"  # the HPKE AEAD captchas are sealed with (identity.captcha.AEADS)


@dataclasses.dataclass(frozen=True, slots=True)
class RedeemedCode:
    """An enrolment code just used: the address it was issued for and how it was issued."""

    email: str
    method: str  # an EnrollmentMethod


@dataclasses.dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    kind: str
    subject: str
    client_id: str
    public_key: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _ts(value: datetime) -> float:
    return value.timestamp()


class IdentityStore(ABC):
    @abstractmethod
    async def put_enrollment(self, enrollment: Enrollment) -> None: ...
    @abstractmethod
    async def get_enrollment(self, email: str) -> Enrollment | None: ...
    @abstractmethod
    async def add_enrollment_code(
        self, code_hash: str, email: str, *, expires_at: float, method: EnrollmentMethod
    ) -> None: ...
    @abstractmethod
    async def redeem_enrollment_code(self, code_hash: str, *, now: float) -> RedeemedCode | None:
        """Mark the code used and return its e-mail and method, or None if unknown, used or expired."""

    @abstractmethod
    async def add_challenge(self, challenge: Challenge) -> None: ...
    @abstractmethod
    async def get_challenge(self, challenge_id: str) -> Challenge | None: ...
    @abstractmethod
    async def use_attempt(self, challenge_id: str, *, max_attempts: int) -> bool:
        """Count one attempt if fewer than ``max_attempts`` were made and it is unconsumed."""

    @abstractmethod
    async def consume_challenge(self, challenge_id: str, *, now: float) -> bool:
        """Mark consumed; True for exactly one caller across every instance."""

    @abstractmethod
    async def outstanding_challenges(
        self, *, kind: str, subject: str, app_hash: str, now: float, limit: int
    ) -> list[Challenge]:
        """Unconsumed, unexpired challenges of ``kind`` for ``subject`` and ``app_hash``, newest first."""

    @abstractmethod
    async def add_session(self, session: SessionRecord) -> None: ...
    @abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None: ...
    @abstractmethod
    async def latest_session(self, subject: str, client_id: str, *, now: float) -> SessionRecord | None:
        """The newest unrevoked, unexpired session of ``subject`` under ``client_id``."""

    @abstractmethod
    async def live_sessions(self, *, now: float, limit: int) -> list[tuple[str, float]]:
        """``(id, expires_at)`` of up to ``limit`` unrevoked, unexpired sessions, latest expiry first (one query:
        what a serving instance holds in memory at start)."""

    @abstractmethod
    async def revoke_session(self, session_id: str, *, now: float) -> bool:
        """End a session; True for the caller that ended it. Logs a ``session`` change (key: its id,
        subject: its user) in the same transaction, so every instance hears of it."""

    async def close(self) -> None:
        return None


class InMemoryIdentityStore(IdentityStore):
    """For tests and single-process tools; one event loop, so each method is atomic."""

    def __init__(self, changes: InMemoryChangeLog | None = None) -> None:
        self._changes = changes
        self._enrollments: dict[str, Enrollment] = {}
        self._codes: dict[str, tuple[RedeemedCode, float, bool]] = {}
        self._challenges: dict[str, Challenge] = {}
        self._sessions: dict[str, SessionRecord] = {}

    async def put_enrollment(self, enrollment: Enrollment) -> None:
        self._enrollments[enrollment.email.lower()] = enrollment

    async def get_enrollment(self, email: str) -> Enrollment | None:
        return self._enrollments.get(email.lower())

    async def add_enrollment_code(
        self, code_hash: str, email: str, *, expires_at: float, method: EnrollmentMethod
    ) -> None:
        self._codes[code_hash] = (RedeemedCode(email.lower(), method), expires_at, False)

    async def redeem_enrollment_code(self, code_hash: str, *, now: float) -> RedeemedCode | None:
        entry = self._codes.get(code_hash)
        if entry is None or entry[2] or now >= entry[1]:
            return None
        self._codes[code_hash] = (entry[0], entry[1], True)
        return entry[0]

    async def add_challenge(self, challenge: Challenge) -> None:
        self._challenges[challenge.id] = challenge

    async def get_challenge(self, challenge_id: str) -> Challenge | None:
        return self._challenges.get(challenge_id)

    async def use_attempt(self, challenge_id: str, *, max_attempts: int) -> bool:
        c = self._challenges.get(challenge_id)
        if c is None or c.consumed_at is not None or c.attempts >= max_attempts:
            return False
        self._challenges[challenge_id] = dataclasses.replace(c, attempts=c.attempts + 1)
        return True

    async def consume_challenge(self, challenge_id: str, *, now: float) -> bool:
        c = self._challenges.get(challenge_id)
        if c is None or c.consumed_at is not None:
            return False
        self._challenges[challenge_id] = dataclasses.replace(c, consumed_at=now)
        return True

    async def outstanding_challenges(
        self, *, kind: str, subject: str, app_hash: str, now: float, limit: int
    ) -> list[Challenge]:
        found = [
            c
            for c in self._challenges.values()
            if (c.kind, c.subject, c.app_hash) == (kind, subject, app_hash)
            and c.consumed_at is None
            and c.expires_at > now
        ]
        return sorted(found, key=lambda c: c.created_at, reverse=True)[:limit]

    async def add_session(self, session: SessionRecord) -> None:
        self._sessions[session.id] = session

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return self._sessions.get(session_id)

    async def latest_session(self, subject: str, client_id: str, *, now: float) -> SessionRecord | None:
        live = [
            s
            for s in self._sessions.values()
            if s.subject == subject and s.client_id == client_id and s.revoked_at is None and s.expires_at > now
        ]
        return max(live, key=lambda s: s.created_at, default=None)

    async def live_sessions(self, *, now: float, limit: int) -> list[tuple[str, float]]:
        live = [(s.id, s.expires_at) for s in self._sessions.values() if s.revoked_at is None and s.expires_at > now]
        return sorted(live, key=lambda item: item[1], reverse=True)[:limit]

    async def revoke_session(self, session_id: str, *, now: float) -> bool:
        s = self._sessions.get(session_id)
        if s is None or s.revoked_at is not None:
            return False
        self._sessions[session_id] = dataclasses.replace(s, revoked_at=now)
        if self._changes is not None:
            self._changes.append([Change(ChangeKind.SESSION, session_id, subject=s.subject)], _dt(now))
        return True


# -- SQL ---------------------------------------------------------------------------------------

_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


class EnrollmentRow(Base):
    __tablename__ = "identity_enrollments"
    __table_args__ = (_TABLE_ARGS,)

    email: Mapped[str] = mapped_column(String(SUBJECT_LEN), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    aead: Mapped[str] = mapped_column(String(32), nullable=False, server_default="chacha20poly1305")


class EnrollmentCodeRow(Base):
    __tablename__ = "identity_enrollment_codes"
    __table_args__ = (_TABLE_ARGS,)

    code_hash: Mapped[str] = mapped_column(String(KEY_LEN), primary_key=True)
    email: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Rows written before migration 0006 were all issued by an admin.
    method: Mapped[str] = mapped_column(String(16), nullable=False, server_default="admin-code")


class ChallengeRow(Base):
    __tablename__ = "identity_challenges"
    __table_args__ = (Index("ix_identity_challenges_expires_at", "expires_at"), _TABLE_ARGS)

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    subject: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_LEN), nullable=False)
    app_hash: Mapped[str] = mapped_column(String(HASH_LEN), nullable=False)
    code_challenge: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    code_mac: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SessionRow(Base):
    __tablename__ = "identity_sessions"
    __table_args__ = (Index("ix_identity_sessions_subject_client_id", "subject", "client_id"), _TABLE_ARGS)

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    subject: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_LEN), nullable=False)
    public_key: Mapped[str] = mapped_column(String(KEY_LEN), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def _challenge(row: ChallengeRow) -> Challenge:
    return Challenge(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        client_id=row.client_id,
        app_hash=row.app_hash,
        code_challenge=row.code_challenge,
        code_mac=row.code_mac,
        key_id=row.key_id,
        created_at=_ts(row.created_at),
        expires_at=_ts(row.expires_at),
        attempts=row.attempts,
        consumed_at=_ts(row.consumed_at) if row.consumed_at else None,
    )


def _session(row: SessionRow) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        client_id=row.client_id,
        public_key=row.public_key,
        created_at=_ts(row.created_at),
        expires_at=_ts(row.expires_at),
        revoked_at=_ts(row.revoked_at) if row.revoked_at else None,
    )


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


class SqlIdentityStore(IdentityStore):
    def __init__(self, database: Database) -> None:
        self._db = database

    async def put_enrollment(self, enrollment: Enrollment) -> None:
        async with self._db.session() as s:
            row = await s.get(EnrollmentRow, enrollment.email.lower())
            if row is None:
                s.add(
                    EnrollmentRow(
                        email=enrollment.email.lower(),
                        public_key=enrollment.public_key,
                        enrolled_at=_dt(enrollment.enrolled_at),
                        method=enrollment.method,
                        aead=enrollment.aead,
                    )
                )
            else:
                row.public_key = enrollment.public_key
                row.enrolled_at = _dt(enrollment.enrolled_at)
                row.method = enrollment.method
                row.aead = enrollment.aead

    async def get_enrollment(self, email: str) -> Enrollment | None:
        async with self._db.session() as s:
            row = await s.get(EnrollmentRow, email.lower())
            if row is None:
                return None
            return Enrollment(row.email, row.public_key, _ts(row.enrolled_at), row.method, row.aead)

    async def add_enrollment_code(
        self, code_hash: str, email: str, *, expires_at: float, method: EnrollmentMethod
    ) -> None:
        async with self._db.session() as s:
            s.add(
                EnrollmentCodeRow(code_hash=code_hash, email=email.lower(), expires_at=_dt(expires_at), method=method)
            )

    async def redeem_enrollment_code(self, code_hash: str, *, now: float) -> RedeemedCode | None:
        async with self._db.session() as s:
            result = await s.execute(
                update(EnrollmentCodeRow)
                .where(
                    EnrollmentCodeRow.code_hash == code_hash,
                    EnrollmentCodeRow.used_at.is_(None),
                    EnrollmentCodeRow.expires_at > _dt(now),
                )
                .values(used_at=_dt(now))
            )
            if _rowcount(result) != 1:
                return None
            row = (
                await s.execute(
                    select(EnrollmentCodeRow.email, EnrollmentCodeRow.method).where(
                        EnrollmentCodeRow.code_hash == code_hash
                    )
                )
            ).one()
            return RedeemedCode(row.email, row.method)

    async def add_challenge(self, challenge: Challenge) -> None:
        async with self._db.session() as s:
            s.add(
                ChallengeRow(
                    id=challenge.id,
                    kind=challenge.kind,
                    subject=challenge.subject,
                    client_id=challenge.client_id,
                    app_hash=challenge.app_hash,
                    code_challenge=challenge.code_challenge,
                    code_mac=challenge.code_mac,
                    key_id=challenge.key_id,
                    attempts=challenge.attempts,
                    created_at=_dt(challenge.created_at),
                    expires_at=_dt(challenge.expires_at),
                    consumed_at=_dt(challenge.consumed_at) if challenge.consumed_at else None,
                )
            )

    async def get_challenge(self, challenge_id: str) -> Challenge | None:
        async with self._db.session() as s:
            row = await s.get(ChallengeRow, challenge_id)
            return _challenge(row) if row is not None else None

    async def use_attempt(self, challenge_id: str, *, max_attempts: int) -> bool:
        async with self._db.session() as s:
            result = await s.execute(
                update(ChallengeRow)
                .where(
                    ChallengeRow.id == challenge_id,
                    ChallengeRow.consumed_at.is_(None),
                    ChallengeRow.attempts < max_attempts,
                )
                .values(attempts=ChallengeRow.attempts + 1)
            )
            return _rowcount(result) == 1

    async def consume_challenge(self, challenge_id: str, *, now: float) -> bool:
        async with self._db.session() as s:
            result = await s.execute(
                update(ChallengeRow)
                .where(ChallengeRow.id == challenge_id, ChallengeRow.consumed_at.is_(None))
                .values(consumed_at=_dt(now))
            )
            return _rowcount(result) == 1

    async def outstanding_challenges(
        self, *, kind: str, subject: str, app_hash: str, now: float, limit: int
    ) -> list[Challenge]:
        # The expires_at index narrows the scan to the last two minutes' challenges.
        async with self._db.session() as s:
            rows = await s.scalars(
                select(ChallengeRow)
                .where(
                    ChallengeRow.expires_at > _dt(now),
                    ChallengeRow.kind == kind,
                    ChallengeRow.subject == subject,
                    ChallengeRow.app_hash == app_hash,
                    ChallengeRow.consumed_at.is_(None),
                )
                .order_by(ChallengeRow.created_at.desc())
                .limit(limit)
            )
            return [_challenge(row) for row in rows]

    async def add_session(self, session: SessionRecord) -> None:
        async with self._db.session() as s:
            s.add(
                SessionRow(
                    id=session.id,
                    kind=session.kind,
                    subject=session.subject,
                    client_id=session.client_id,
                    public_key=session.public_key,
                    created_at=_dt(session.created_at),
                    expires_at=_dt(session.expires_at),
                    revoked_at=_dt(session.revoked_at) if session.revoked_at else None,
                )
            )

    async def get_session(self, session_id: str) -> SessionRecord | None:
        async with self._db.session() as s:
            row = await s.get(SessionRow, session_id)
            return _session(row) if row is not None else None

    async def latest_session(self, subject: str, client_id: str, *, now: float) -> SessionRecord | None:
        async with self._db.session() as s:
            row = await s.scalar(
                select(SessionRow)
                .where(
                    SessionRow.subject == subject,
                    SessionRow.client_id == client_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > _dt(now),
                )
                .order_by(SessionRow.created_at.desc())
                .limit(1)
            )
            return _session(row) if row is not None else None

    async def live_sessions(self, *, now: float, limit: int) -> list[tuple[str, float]]:
        async with self._db.session() as s:
            rows = await s.execute(
                select(SessionRow.id, SessionRow.expires_at)
                .where(SessionRow.revoked_at.is_(None), SessionRow.expires_at > _dt(now))
                .order_by(SessionRow.expires_at.desc())
                .limit(limit)
            )
            return [(row.id, _ts(row.expires_at)) for row in rows]

    async def revoke_session(self, session_id: str, *, now: float) -> bool:
        async with self._db.session() as s:
            result = await s.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
                .values(revoked_at=_dt(now))
            )
            if _rowcount(result) != 1:
                return False
            subject = await s.scalar(select(SessionRow.subject).where(SessionRow.id == session_id))
            change = Change(ChangeKind.SESSION, session_id, subject=subject)
            await write_changes(await s.connection(), [change], _dt(now))
            return True
