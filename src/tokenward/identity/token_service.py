"""Client tokens and pokes: what a signed-in subject may ask about another (docs/protocol.md)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Forbidden, NotFound
from tokenward.identity.client_tokens import TOKEN_LIFETIME_SECONDS, ClientTokenClaims, sign_client_token
from tokenward.identity.common import audit_event, key_fingerprint
from tokenward.identity.encoding import b64u_encode
from tokenward.identity.policy import IdentityPolicy
from tokenward.identity.source import SourceIdentity
from tokenward.keys import Keyring, Purpose
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import IdentityStore

__all__ = ["ClientTokenService"]


@dataclass
class ClientTokenService:
    server_name: str
    keyring: Callable[[], Keyring]
    store: IdentityStore
    policy: Callable[[], IdentityPolicy]
    audit: AuditLog | None = None
    random_bytes: Callable[[int], bytes] = secrets.token_bytes

    async def client_token(self, identity: SourceIdentity, destination: str, *, now: float) -> str:
        destination = destination.strip()
        if not destination or len(destination) > 320:
            raise BadRequest(
                "destination must be an e-mail address or a resource name", code=ErrorCode.DESTINATION_INVALID
            )
        if "@" in destination:
            destination = destination.lower()
        decision = self.policy().can_ask(identity.subject, destination, identity.client_id)
        if not decision.allowed:
            await audit_event(
                self.audit,
                now,
                identity.subject,
                "client_token.denied",
                subject=identity.subject,
                destination=destination,
            )
            why = f" (denied by {decision.rule})" if decision.rule else " (no policy row allows it)"
            code = ErrorCode.ASK_DENIED_BY_RULE if decision.rule else ErrorCode.ASK_NOT_ALLOWED
            fields = {"rule": decision.rule} if decision.rule else None
            raise Forbidden(f"{identity.subject} may not ask for {destination}{why}", code=code, fields=fields)
        peer = await self.store.latest_session(destination, identity.client_id, now=now)
        if peer is None:
            raise NotFound(
                f"{destination} has no active session under this client ID", code=ErrorCode.DESTINATION_UNKNOWN
            )
        claims = ClientTokenClaims(
            issuer=self.server_name,
            source=identity.subject,
            destination=destination,
            source_key=identity.session_key,
            destination_key=peer.public_key,
            client_id=identity.client_id,
            scopes=identity.scopes,
            token_id=b64u_encode(self.random_bytes(16)),
            issued_at=int(now),
            expires_at=int(now) + TOKEN_LIFETIME_SECONDS,
            app_hash=identity.app_hash,
        )
        token = sign_client_token(claims, self.keyring())
        await audit_event(
            self.audit, now, identity.subject, "client_token.granted", subject=identity.subject, destination=destination
        )
        return token

    async def poke(self, identity: SourceIdentity, subject: str, *, now: float) -> dict[str, object]:
        subject = subject.strip().lower() if "@" in subject else subject.strip()
        decision = self.policy().can_poke(identity.subject, subject, identity.client_id)
        if not decision.allowed:
            why = f" (denied by {decision.rule})" if decision.rule else ""
            fields = {"rule": decision.rule} if decision.rule else None
            raise Forbidden(
                f"{identity.subject} may not poke {subject}{why}", code=ErrorCode.POKE_DENIED, fields=fields
            )
        enrollment = await self.store.get_enrollment(subject) if "@" in subject else None
        _, key = self.keyring().key(Purpose.PSEUDONYM)
        pseudonym = hmac.new(key.reveal(), f"{identity.client_id}|{subject}".encode(), hashlib.sha256).digest()
        return {
            "subject": subject,
            "enrolled": enrollment is not None,
            "fingerprint": key_fingerprint(enrollment.public_key) if enrollment is not None else None,
            "pseudonym": b64u_encode(pseudonym[:16]),
        }
