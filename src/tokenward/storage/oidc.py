"""OpenID Provider state shared by every instance: clients, authorization codes, refresh tokens.

Codes and refresh tokens are stored as SHA-256 hashes only. What must hold across instances is
one conditional UPDATE each, the row count saying who won: redeeming a code
(``used_at IS NULL``) and rotating a refresh token (``rotated_at IS NULL AND revoked_at IS NULL``).
A refresh token belongs to a *family* (all the tokens rotated from one code); a replayed code or
a replayed rotated refresh token revokes its whole family (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

from sqlalchemy import Index, String, Text, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Mapped, mapped_column

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, NotFound
from tokenward.records.oidc import OidcClient

from .database import Database
from .models import SUBJECT_LEN, Base
from .types import UTCDateTime

__all__ = ["AuthorizationCode", "OidcClientRow", "OidcCodeRow", "OidcRefreshTokenRow", "RefreshToken", "SqlOidcStore"]

_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
CLIENT_ID_LEN = 40
HASH_LEN = 64
ID_LEN = 43
NAME_LEN = 100
SCOPE_LEN = 255
URI_LEN = 2000


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _rowcount(result: object) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


@dataclasses.dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """A code as stored; the methods are the ones Authlib's code grant calls."""

    code_hash: str
    client_id: str
    subject: str
    session_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: float
    expires_at: float
    family_id: str
    used_at: float | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time)

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["otp"]  # the captcha code from the enrolled authenticator (RFC 8176)


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    family_id: str
    client_id: str
    subject: str
    session_id: str
    scope: str
    auth_time: float
    issued_at: float
    expires_at: float
    rotated_at: float | None = None
    revoked_at: float | None = None

    def get_scope(self) -> str:
        return self.scope

    def check_client(self, client: OidcClient) -> bool:
        return client.client_id == self.client_id


class OidcClientRow(Base):
    __tablename__ = "oidc_clients"
    __table_args__ = (_TABLE_ARGS,)

    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False, unique=True)
    secret_hash: Mapped[str | None] = mapped_column(String(HASH_LEN), nullable=True)
    redirect_uris: Mapped[str] = mapped_column(Text(), nullable=False)
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class OidcCodeRow(Base):
    __tablename__ = "oidc_codes"
    __table_args__ = (Index("ix_oidc_codes_expires_at", "expires_at"), _TABLE_ARGS)

    code_hash: Mapped[str] = mapped_column(String(HASH_LEN), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_LEN), nullable=False)
    subject: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    session_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False)
    redirect_uri: Mapped[str] = mapped_column(Text(), nullable=False)
    scope: Mapped[str] = mapped_column(String(SCOPE_LEN), nullable=False)
    nonce: Mapped[str | None] = mapped_column(Text(), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(8), nullable=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    family_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OidcRefreshTokenRow(Base):
    __tablename__ = "oidc_refresh_tokens"
    __table_args__ = (
        Index("ix_oidc_refresh_tokens_family_id", "family_id"),
        Index("ix_oidc_refresh_tokens_session_id", "session_id"),
        _TABLE_ARGS,
    )

    token_hash: Mapped[str] = mapped_column(String(HASH_LEN), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_LEN), nullable=False)
    subject: Mapped[str] = mapped_column(String(SUBJECT_LEN), nullable=False)
    session_id: Mapped[str] = mapped_column(String(ID_LEN), nullable=False)
    scope: Mapped[str] = mapped_column(String(SCOPE_LEN), nullable=False)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def _client(row: OidcClientRow) -> OidcClient:
    return OidcClient(
        client_id=row.client_id,
        name=row.name,
        redirect_uris=tuple(json.loads(row.redirect_uris)),
        post_logout_redirect_uris=tuple(json.loads(row.post_logout_redirect_uris)),
        secret_hash=row.secret_hash,
        created_at=row.created_at.timestamp(),
    )


def _code(row: OidcCodeRow) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash,
        client_id=row.client_id,
        subject=row.subject,
        session_id=row.session_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        nonce=row.nonce,
        code_challenge=row.code_challenge,
        code_challenge_method=row.code_challenge_method,
        auth_time=row.auth_time.timestamp(),
        expires_at=row.expires_at.timestamp(),
        family_id=row.family_id,
        used_at=_ts(row.used_at),
    )


def _refresh(row: OidcRefreshTokenRow) -> RefreshToken:
    return RefreshToken(
        token_hash=row.token_hash,
        family_id=row.family_id,
        client_id=row.client_id,
        subject=row.subject,
        session_id=row.session_id,
        scope=row.scope,
        auth_time=row.auth_time.timestamp(),
        issued_at=row.issued_at.timestamp(),
        expires_at=row.expires_at.timestamp(),
        rotated_at=_ts(row.rotated_at),
        revoked_at=_ts(row.revoked_at),
    )


class SqlOidcStore:
    """The provider's SQL repository (SQLite, PostgreSQL, MariaDB)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    # -- clients --------------------------------------------------------------------------------

    async def add_client(self, client: OidcClient) -> None:
        async with self._db.session() as s:
            taken = await s.scalar(select(OidcClientRow.client_id).where(OidcClientRow.name == client.name))
            if taken is not None:
                raise Conflict(
                    f"an OpenID client named {client.name!r} already exists", code=ErrorCode.OIDC_CLIENT_NAME_TAKEN
                )
            s.add(
                OidcClientRow(
                    client_id=client.client_id,
                    name=client.name,
                    secret_hash=client.secret_hash,
                    redirect_uris=json.dumps(list(client.redirect_uris)),
                    post_logout_redirect_uris=json.dumps(list(client.post_logout_redirect_uris)),
                    created_at=_dt(client.created_at),
                )
            )

    async def get_client(self, client_id: str) -> OidcClient | None:
        if len(client_id) != CLIENT_ID_LEN:
            return None
        async with self._db.session() as s:
            row = await s.get(OidcClientRow, client_id.upper())
            return None if row is None else _client(row)

    async def find_client(self, client_id_or_name: str) -> OidcClient:
        async with self._db.session() as s:
            row = await s.scalar(
                select(OidcClientRow).where(
                    (OidcClientRow.name == client_id_or_name)
                    | (OidcClientRow.client_id == client_id_or_name.upper()[:CLIENT_ID_LEN])
                )
            )
            if row is None:
                raise NotFound(
                    f"no OpenID client named or numbered {client_id_or_name!r}", code=ErrorCode.OIDC_CLIENT_UNKNOWN
                )
            return _client(row)

    async def list_clients(self) -> list[OidcClient]:
        async with self._db.session() as s:
            rows = (await s.scalars(select(OidcClientRow).order_by(OidcClientRow.name))).all()
            return [_client(r) for r in rows]

    async def set_client_secret(self, client_id: str, secret_hash: str) -> None:
        async with self._db.session() as s:
            await s.execute(
                update(OidcClientRow).where(OidcClientRow.client_id == client_id).values(secret_hash=secret_hash)
            )

    async def remove_client(self, client_id: str, *, now: float) -> None:
        """Delete the client and end every refresh token it holds."""
        async with self._db.session() as s:
            await s.execute(delete(OidcClientRow).where(OidcClientRow.client_id == client_id))
            await s.execute(
                update(OidcRefreshTokenRow)
                .where(OidcRefreshTokenRow.client_id == client_id, OidcRefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=_dt(now))
            )

    # -- codes ----------------------------------------------------------------------------------

    async def add_code(self, code: AuthorizationCode) -> None:
        async with self._db.session() as s:
            s.add(
                OidcCodeRow(
                    code_hash=code.code_hash,
                    client_id=code.client_id,
                    subject=code.subject,
                    session_id=code.session_id,
                    redirect_uri=code.redirect_uri,
                    scope=code.scope,
                    nonce=code.nonce,
                    code_challenge=code.code_challenge,
                    code_challenge_method=code.code_challenge_method,
                    auth_time=_dt(code.auth_time),
                    expires_at=_dt(code.expires_at),
                    family_id=code.family_id,
                )
            )

    async def get_code(self, code_hash: str) -> AuthorizationCode | None:
        async with self._db.session() as s:
            row = await s.get(OidcCodeRow, code_hash)
            return None if row is None else _code(row)

    async def redeem_code(self, code: AuthorizationCode, first_token: RefreshToken | None, *, now: float) -> bool:
        """Mark ``code`` used and store the family's first refresh token, in one transaction.

        False when another request used the code first (nothing is stored then).
        """
        async with self._db.session() as s:
            result = await s.execute(
                update(OidcCodeRow)
                .where(OidcCodeRow.code_hash == code.code_hash, OidcCodeRow.used_at.is_(None))
                .values(used_at=_dt(now))
            )
            if _rowcount(result) != 1:
                return False
            if first_token is not None:
                s.add(_refresh_row(first_token))
            return True

    async def delete_expired_codes(self, *, now: float) -> int:
        async with self._db.session() as s:
            return _rowcount(await s.execute(delete(OidcCodeRow).where(OidcCodeRow.expires_at < _dt(now))))

    # -- refresh tokens -------------------------------------------------------------------------

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        async with self._db.session() as s:
            row = await s.get(OidcRefreshTokenRow, token_hash)
            return None if row is None else _refresh(row)

    async def rotate_refresh_token(self, old: RefreshToken, new: RefreshToken | None, *, now: float) -> bool:
        """Retire ``old`` and store ``new`` in one transaction; False when ``old`` was already used or revoked."""
        async with self._db.session() as s:
            result = await s.execute(
                update(OidcRefreshTokenRow)
                .where(
                    OidcRefreshTokenRow.token_hash == old.token_hash,
                    OidcRefreshTokenRow.rotated_at.is_(None),
                    OidcRefreshTokenRow.revoked_at.is_(None),
                )
                .values(rotated_at=_dt(now))
            )
            if _rowcount(result) != 1:
                return False
            if new is not None:
                s.add(_refresh_row(new))
            return True

    async def revoke_family(self, family_id: str, *, now: float) -> int:
        async with self._db.session() as s:
            result = await s.execute(
                update(OidcRefreshTokenRow)
                .where(OidcRefreshTokenRow.family_id == family_id, OidcRefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=_dt(now))
            )
            return _rowcount(result)

    async def revoke_session(self, session_id: str, *, now: float) -> int:
        async with self._db.session() as s:
            result = await s.execute(
                update(OidcRefreshTokenRow)
                .where(OidcRefreshTokenRow.session_id == session_id, OidcRefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=_dt(now))
            )
            return _rowcount(result)


def _refresh_row(token: RefreshToken) -> OidcRefreshTokenRow:
    return OidcRefreshTokenRow(
        token_hash=token.token_hash,
        family_id=token.family_id,
        client_id=token.client_id,
        subject=token.subject,
        session_id=token.session_id,
        scope=token.scope,
        auth_time=_dt(token.auth_time),
        issued_at=_dt(token.issued_at),
        expires_at=_dt(token.expires_at),
    )
