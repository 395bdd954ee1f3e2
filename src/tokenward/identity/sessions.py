"""Sessions: issue a source identifier at the end of a login, check it on every call, end it (docs/sessions.md)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.identity.common import IssuedSession, audit_event
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.source import SourceIdentity, open_source_identifier, seal_source_identifier
from tokenward.keys import Keyring, Purpose
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import IdentityStore, SessionRecord

__all__ = ["SessionService"]


@dataclass
class SessionService:
    keyring: Callable[[], Keyring]
    store: IdentityStore
    audit: AuditLog | None = None
    session_lifetime: int = 8 * 3600
    random_bytes: Callable[[int], bytes] = secrets.token_bytes

    async def issue(
        self,
        *,
        kind: str,
        subject: str,
        client_id: str,
        app_hash: str,
        scopes: Iterable[str],
        session_key: str,
        now: float,
    ) -> IssuedSession:
        """A session row and its sealed source identifier: what a captcha or resource login ends with."""
        session_id = b64u_encode(self.random_bytes(16))
        identity = SourceIdentity(
            session_id=session_id,
            kind=kind,
            subject=subject,
            client_id=client_id,
            app_hash=app_hash,
            scopes=tuple(sorted(scopes)),
            session_key=session_key,
            issued_at=int(now),
            expires_at=int(now) + self.session_lifetime,
        )
        await self.store.add_session(
            SessionRecord(session_id, kind, subject, client_id, session_key, now, identity.expires_at)
        )
        key_id, key = self.keyring().key(Purpose.SOURCE_IDENTIFIER)
        token = seal_source_identifier(identity, key_id=key_id, key=key, nonce=self.random_bytes(12))
        await audit_event(self.audit, now, subject, "session.issued", subject=subject, client_id=client_id, kind=kind)
        return IssuedSession(token, identity)

    async def authenticate(self, token: str, *, now: float) -> SourceIdentity:
        """Open a bearer source identifier and refuse it if its session was ended (checked on every call)."""
        identity = open_source_identifier(token, keyring=self.keyring(), now=now)
        record = await self.store.get_session(identity.session_id)
        if record is None or record.revoked_at is not None:
            raise Unauthorized("this session was ended; log in again", code=ErrorCode.SESSION_REVOKED)
        return identity

    async def logout(self, identity: SourceIdentity, *, now: float) -> None:
        await self.store.revoke_session(identity.session_id, now=now)
        await audit_event(self.audit, now, identity.subject, "session.revoked", subject=identity.subject)
