"""Resource (machine) login: a challenge, its Ed25519-signed answer, the session it opens (docs/protocol.md)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Conflict, Forbidden, NotFound, Unauthorized
from tokenward.identity import captcha as cap
from tokenward.identity.apps import ClientRegistry, normalize_client_id
from tokenward.identity.common import IssuedSession
from tokenward.identity.common import session_key as check_session_key
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.policy import IdentityPolicy
from tokenward.identity.resources import ResourceRegistry, login_message, verify_login_signature
from tokenward.identity.sessions import SessionService
from tokenward.keys import Keyring, Purpose
from tokenward.records.challenges import Challenge
from tokenward.storage.identity import IdentityStore

__all__ = ["ResourceLoginService"]


@dataclass
class ResourceLoginService:
    server_name: str
    keyring: Callable[[], Keyring]
    store: IdentityStore
    policy: Callable[[], IdentityPolicy]
    clients: Callable[[], ClientRegistry]
    sessions: SessionService
    resources: Callable[[], ResourceRegistry] = field(default=ResourceRegistry)
    random_bytes: Callable[[int], bytes] = secrets.token_bytes

    async def resource_challenge(self, *, resource: str, client_id: str, now: float) -> tuple[str, str, int]:
        self.resources().get(resource)
        client = self.clients().get(normalize_client_id(client_id))
        challenge_id = b64u_encode(self.random_bytes(16))
        nonce = b64u_encode(self.random_bytes(32))
        key_id, key = self.keyring().key(Purpose.CAPTCHA)
        expires = int(now) + cap.TTL_SECONDS
        await self.store.add_challenge(
            Challenge(
                id=challenge_id,
                kind="resource",
                subject=resource.lower(),
                client_id=client.client_id,
                app_hash="",
                code_challenge="",
                code_mac=cap.code_mac(key, challenge_id, nonce),
                key_id=key_id,
                created_at=now,
                expires_at=expires,
            )
        )
        return challenge_id, nonce, expires

    async def resource_login(
        self, *, challenge_id: str, challenge: str, signature: str, session_key: str, now: float
    ) -> IssuedSession:
        record = await self.store.get_challenge(challenge_id)
        if record is None or record.kind != "resource":
            raise NotFound("no such login challenge", code=ErrorCode.CHALLENGE_UNKNOWN)
        check_session_key(session_key)
        if record.consumed_at is not None:
            raise Conflict("this challenge was already used", code=ErrorCode.CHALLENGE_USED)
        cap.check_usable(record, now=now)
        key = self.keyring().key_by_id(Purpose.CAPTCHA, record.key_id, now=now)
        if key is None:
            raise self.keyring().mismatch(record.key_id, what="login challenge", now=now)
        if not hmac.compare_digest(cap.code_mac(key, challenge_id, challenge), record.code_mac):
            raise Unauthorized("the challenge does not match", code=ErrorCode.CHALLENGE_MISMATCH)
        public_key = self.resources().get(record.subject)
        message = login_message(
            server=self.server_name,
            challenge_id=challenge_id,
            challenge=challenge,
            client_id=record.client_id,
            session_key=session_key,
        )
        verify_login_signature(public_key, signature, message)
        if not self.policy().can_login(record.subject, record.client_id).allowed:
            raise Forbidden("resourcepolicy.csv does not allow this resource to log in", code=ErrorCode.LOGIN_DENIED)
        if not await self.store.consume_challenge(challenge_id, now=now):
            raise Conflict("this challenge was already used", code=ErrorCode.CHALLENGE_USED)
        return await self.sessions.issue(
            kind="resource",
            subject=record.subject,
            client_id=record.client_id,
            app_hash="",
            scopes=(),
            session_key=session_key,
            now=now,
        )
