"""Deleting what has expired: captcha challenges (web and ``system`` ones), sessions, enrolment codes, OIDC codes.

Nothing reads these rows once they have expired, but nothing deleted them either: every captcha
request left a row behind for good. :func:`purge_expired` deletes the rows that expired more than
``grace`` seconds before ``now``, in one short transaction per table (every instance may run it:
deleting twice is harmless). A session an unexpired, unrevoked OIDC refresh token still points at
is kept — the OpenID Provider asks it whether the user signed out (docs/storage.md, *Retention*).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import delete, exists, select

from .database import Database
from .identity import ChallengeRow, EnrollmentCodeRow, SessionRow
from .oidc import OidcCodeRow, OidcRefreshTokenRow

__all__ = ["PurgeCounts", "purge_expired"]


@dataclasses.dataclass(frozen=True, slots=True)
class PurgeCounts:
    challenges: int = 0
    sessions: int = 0
    enrollment_codes: int = 0
    oidc_codes: int = 0

    @property
    def total(self) -> int:
        return self.challenges + self.sessions + self.enrollment_codes + self.oidc_codes


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_expired(database: Database, *, now: float, grace: float) -> PurgeCounts:
    """Delete rows that expired before ``now - grace`` (Unix seconds); the number deleted per table."""
    cutoff = datetime.fromtimestamp(now - grace, UTC)
    alive = datetime.fromtimestamp(now, UTC)
    async with database.session() as s:
        challenges = _count(await s.execute(delete(ChallengeRow).where(ChallengeRow.expires_at < cutoff)))
    # MariaDB refuses a DELETE whose subquery reads the same table; this one reads another, which is fine.
    still_used = exists(
        select(OidcRefreshTokenRow.token_hash).where(
            OidcRefreshTokenRow.session_id == SessionRow.id,
            OidcRefreshTokenRow.revoked_at.is_(None),
            OidcRefreshTokenRow.rotated_at.is_(None),
            OidcRefreshTokenRow.expires_at > alive,
        )
    )
    async with database.session() as s:
        sessions = _count(await s.execute(delete(SessionRow).where(SessionRow.expires_at < cutoff, ~still_used)))
    async with database.session() as s:
        codes = _count(await s.execute(delete(EnrollmentCodeRow).where(EnrollmentCodeRow.expires_at < cutoff)))
    async with database.session() as s:
        oidc_codes = _count(await s.execute(delete(OidcCodeRow).where(OidcCodeRow.expires_at < cutoff)))
    return PurgeCounts(challenges, sessions, codes, oidc_codes)
