"""Sessions: issue a source identifier at the end of a login, check it on every call, end it (docs/sessions.md).

A serving process holds which sessions are alive in memory (:class:`SessionMemory`), kept true by
the change feed: ending a session logs a ``session`` change in the same transaction, this instance
forgets the session at once and the others when their feed reads the change. Without a memory
(one-shot tools) every check reads the session row.

The last :data:`OPENED_SIZE` identifiers opened are also kept decrypted, keyed by their exact
string, so a busy session is not decrypted and parsed on every request; a kept one is re-checked
against its expiry and against the time codes in force (a rotation's grace ends it).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenward.changefeed import ChangeFeed
from tokenward.errorcodes import ErrorCode
from tokenward.errors import TokenwardError, Unauthorized
from tokenward.identity.common import IssuedSession, audit_event
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.session_memory import DEAD, SessionMemory
from tokenward.identity.source import SourceIdentity, open_source_identifier, seal_source_identifier
from tokenward.keys import Keyring, Purpose, TimeCode
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import IdentityStore, SessionRecord

__all__ = ["OPENED_SIZE", "SessionService"]

log = logging.getLogger("tokenward.sessions")

#: Source identifiers kept opened (about 1.6 KB each with their string: ~16 MB), oldest dropped first.
OPENED_SIZE = 10_000


class _Opened:
    """Exact identifier string → (identity, the time code that opened it); bounded, oldest first out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: dict[str, tuple[SourceIdentity, TimeCode]] = {}

    def get(self, token: str, keyring: Keyring, now: float) -> SourceIdentity | None:
        hit = self.items.get(token)
        if hit is None:
            return None
        identity, code = hit
        # The same objects as when it was opened: a new time code (or the end of a rotation's grace) opens again.
        in_force = code is keyring.current or (
            code is keyring.previous and keyring.previous_until is not None and now < keyring.previous_until
        )
        if in_force and now < identity.expires_at:
            return identity
        del self.items[token]
        return None

    def put(self, token: str, identity: SourceIdentity, keyring: Keyring) -> None:
        key_id = token.split(".", 2)[1]
        code = keyring.current if key_id == keyring.current.key_id else keyring.previous
        if code is None:  # pragma: no cover - open_source_identifier accepted one of the two
            return
        if len(self.items) >= self.size:
            del self.items[next(iter(self.items))]
        self.items[token] = (identity, code)


@dataclass
class SessionService:
    keyring: Callable[[], Keyring]
    store: IdentityStore
    audit: AuditLog | None = None
    session_lifetime: int = 8 * 3600
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    #: Sessions held in memory; None: read the row on every check.
    memory: SessionMemory | None = None
    #: The change feed that keeps ``memory`` true (fail closed while it is stale) and hears of our revocations.
    changes: ChangeFeed | None = None
    opened_size: int = OPENED_SIZE

    def __post_init__(self) -> None:
        self._opened = _Opened(self.opened_size)

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
        if self.memory is not None:
            self.memory.hold(session_id, identity.expires_at)
        key_id, key = self.keyring().key(Purpose.SOURCE_IDENTIFIER)
        token = seal_source_identifier(identity, key_id=key_id, key=key, nonce=self.random_bytes(12))
        await audit_event(self.audit, now, subject, "session.issued", subject=subject, client_id=client_id, kind=kind)
        return IssuedSession(token, identity)

    async def authenticate(self, token: str, *, now: float) -> SourceIdentity:
        """Open a bearer source identifier and refuse it if its session was ended (checked on every call).

        The identifier is sealed (AEAD), so a forged, altered or garbage one is refused before any
        lookup: only a session id this server issued reaches the store.
        """
        keyring = self.keyring()
        identity = self._opened.get(token, keyring, now)
        if identity is None:
            identity = open_source_identifier(token, keyring=keyring, now=now)
            self._opened.put(token, identity, keyring)
        if not await self.alive(identity.session_id):
            raise Unauthorized("this session was ended; log in again", code=ErrorCode.SESSION_REVOKED)
        return identity

    async def alive(self, session_id: str) -> bool:
        """Whether the session exists and was not ended (its expiry is the identifier's business: a refresh
        token may outlive it). From memory when held; 503 ``changes_stale`` while the feed is stale."""
        memory = self.memory
        if memory is None:
            record = await self.store.get_session(session_id)
            return record is not None and record.revoked_at is None
        until = memory.held(session_id)
        if until is None:
            until = await memory.load(session_id)  # read from the store: the truth, whatever the feed
        elif self.changes is not None and not self.changes.fresh():
            self.changes.check_fresh()  # memory may miss a revocation made elsewhere: refuse (503)
        return until != DEAD

    async def warm(self, *, now: float) -> int:
        """Hold the live sessions now (at start, after the change feed started), so a restart under traffic
        does not read them one by one; how many. A failed read is logged: sessions are then read on first use."""
        memory = self.memory
        if memory is None:
            return 0
        try:
            count = await memory.fill(lambda: self.store.live_sessions(now=now, limit=memory.max_entries))
        except TokenwardError as exc:
            log.warning("cannot read the live sessions at start: %s", exc.detail)
            return 0
        log.info("holding %d live sessions in memory", count)
        return count

    async def revoke(self, session_id: str, *, now: float) -> bool:
        """End a session everywhere: the row and its ``session`` change in one transaction, this instance's
        memory at once, the other instances at their feed's next read (woken now over Redis)."""
        revoked = await self.store.revoke_session(session_id, now=now)
        if self.memory is not None:
            self.memory.revoke(session_id)
        if revoked and self.changes is not None:
            await self.changes.announce()
        return revoked

    async def logout(self, identity: SourceIdentity, *, now: float) -> None:
        await self.revoke(identity.session_id, now=now)
        await audit_event(self.audit, now, identity.subject, "session.revoked", subject=identity.subject)
