"""purge_expired on SQLite, PostgreSQL and MariaDB: what expired past the grace goes, the rest stays."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tokenward.identity.captcha import Challenge
from tokenward.storage import Database
from tokenward.storage.identity import ChallengeRow, EnrollmentCodeRow, SessionRecord, SessionRow, SqlIdentityStore
from tokenward.storage.oidc import AuthorizationCode, OidcCodeRow, RefreshToken, SqlOidcStore
from tokenward.storage.retention import PurgeCounts, purge_expired

NOW = 1_800_000_000.0
GRACE = 3600.0
LONG_AGO = NOW - 2 * GRACE  # expired, past the grace: purged
RECENT = NOW - 60  # expired, within the grace: kept
LATER = NOW + 600  # not expired


def challenge(cid: str, kind: str, expires_at: float) -> Challenge:
    return Challenge(
        id=cid,
        kind=kind,
        subject="alice@example.com",
        client_id="app",
        app_hash="h" * 43,
        code_challenge="c" * 43,
        code_mac="m" * 43,
        key_id="k1",
        created_at=expires_at - 120,
        expires_at=expires_at,
    )


def session(sid: str, kind: str, expires_at: float, *, revoked: bool = False) -> SessionRecord:
    return SessionRecord(
        id=sid,
        kind=kind,
        subject="alice@example.com",
        client_id="app",
        public_key="p" * 43,
        created_at=expires_at - 3600,
        expires_at=expires_at,
        revoked_at=expires_at - 10 if revoked else None,
    )


def code(
    code_hash: str, session_id: str, expires_at: float, *, first_token: str, token_expires: float
) -> tuple[AuthorizationCode, RefreshToken]:
    auth_code = AuthorizationCode(
        code_hash=code_hash,
        client_id="rp",
        subject="alice@example.com",
        session_id=session_id,
        redirect_uri="https://rp.example.com/cb",
        scope="openid",
        nonce=None,
        code_challenge=None,
        code_challenge_method=None,
        auth_time=expires_at - 60,
        expires_at=expires_at,
        family_id="fam-" + code_hash[:8],
    )
    token = RefreshToken(
        token_hash=first_token,
        family_id="fam-" + code_hash[:8],
        client_id="rp",
        subject="alice@example.com",
        session_id=session_id,
        scope="openid",
        auth_time=expires_at - 60,
        issued_at=expires_at - 30,
        expires_at=token_expires,
    )
    return auth_code, token


async def ids(database: Database, column: object) -> set[str]:
    async with database.session() as s:
        return set(await s.scalars(select(column)))  # type: ignore[call-overload]


async def test_purge_deletes_only_what_expired_past_the_grace(database: Database) -> None:
    identity = SqlIdentityStore(database)
    oidc = SqlOidcStore(database)
    for cid, kind, expires in [
        ("web-old", "captcha", LONG_AGO),
        ("system-old", "system", LONG_AGO),  # a system-login (PAM host) challenge
        ("resource-old", "resource", LONG_AGO),
        ("web-recent", "captcha", RECENT),
        ("system-live", "system", LATER),
    ]:
        await identity.add_challenge(challenge(cid, kind, expires))
    for record in [
        session("user-old", "user", LONG_AGO),
        session("resource-old", "resource", LONG_AGO),
        session("revoked-old", "user", LONG_AGO, revoked=True),
        session("user-recent", "user", RECENT),
        session("resource-live", "resource", LATER),
        session("refreshed-old", "user", LONG_AGO),  # a live refresh token still asks about it
        session("dead-refresh-old", "user", LONG_AGO),  # its refresh token expired too
    ]:
        await identity.add_session(record)
    await identity.add_enrollment_code("e" * 64, "alice@example.com", expires_at=LONG_AGO, method="admin-code")
    await identity.add_enrollment_code("f" * 64, "bob@example.com", expires_at=LATER, method="admin-code")
    for code_hash, sid, token_expires in [("a" * 64, "refreshed-old", LATER), ("b" * 64, "dead-refresh-old", RECENT)]:
        auth_code, token = code(code_hash, sid, LONG_AGO, first_token="t" + code_hash[1:], token_expires=token_expires)
        await oidc.add_code(auth_code)
        assert await oidc.redeem_code(auth_code, token, now=LONG_AGO - 30)

    counts = await purge_expired(database, now=NOW, grace=GRACE)

    assert counts == PurgeCounts(challenges=3, sessions=4, enrollment_codes=1, oidc_codes=2)
    assert await ids(database, ChallengeRow.id) == {"web-recent", "system-live"}
    assert await ids(database, SessionRow.id) == {"user-recent", "resource-live", "refreshed-old"}
    assert await ids(database, EnrollmentCodeRow.code_hash) == {"f" * 64}
    assert await ids(database, OidcCodeRow.code_hash) == set()
    # The kept session still answers; purged ones read as unknown (refused like a signed-out session).
    assert await identity.get_session("refreshed-old") is not None
    assert await identity.get_session("user-old") is None
    # Running it again (another instance, the next period) deletes nothing more.
    assert await purge_expired(database, now=NOW, grace=GRACE) == PurgeCounts()


@pytest.mark.parametrize("grace", [0.0, 3 * GRACE])
async def test_the_grace_moves_the_cutoff(database: Database, grace: float) -> None:
    identity = SqlIdentityStore(database)
    await identity.add_challenge(challenge("old", "captcha", LONG_AGO))
    counts = await purge_expired(database, now=NOW, grace=grace)
    assert counts.challenges == (1 if grace < NOW - LONG_AGO else 0)
