"""The identity API's facade over its flows, each a service of its own with only the dependencies it uses:

- :class:`~tokenward.identity.enrolment.EnrolmentService`: enrolment codes (admin and e-mail) and enrolment;
- :class:`~tokenward.identity.captcha_login.CaptchaLoginService`: captcha login and device cookies;
- :class:`~tokenward.identity.resource_login.ResourceLoginService`: resource (machine) login;
- :class:`~tokenward.identity.sessions.SessionService`: sessions (issue, check, end);
- :class:`~tokenward.identity.token_service.ClientTokenService`: client tokens and pokes.

:func:`tokenward.runtime.build_identity` builds them; the CLI builds only the flow it uses (``Runtime.enrolment``).
Every method takes ``now``; randomness comes from each flow's ``random_bytes`` / ``choice``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenward.identity import captcha as cap
from tokenward.identity.captcha_login import CaptchaLoginService
from tokenward.identity.common import (
    ENROLLMENT_CODE_TTL,
    CaptchaIssued,
    IssuedSession,
    enrollment_code_hash,
    key_fingerprint,
    normalize_email,
)
from tokenward.identity.enrolment import EnrolmentService
from tokenward.identity.resource_login import ResourceLoginService
from tokenward.identity.sessions import SessionService
from tokenward.identity.source import SourceIdentity
from tokenward.identity.token_service import ClientTokenService
from tokenward.storage.identity import Enrollment, EnrollmentMethod

__all__ = [
    "ENROLLMENT_CODE_TTL",
    "CaptchaIssued",
    "IdentityService",
    "IssuedSession",
    "enrollment_code_hash",
    "key_fingerprint",
    "normalize_email",
]


@dataclass(frozen=True)
class IdentityService:
    """What the identity routes and the portal call; each method delegates to its flow."""

    enrolment: EnrolmentService
    captcha: CaptchaLoginService
    resource: ResourceLoginService
    sessions: SessionService
    tokens: ClientTokenService

    # -- enrolment ------------------------------------------------------------------------------

    async def issue_enrollment_code(
        self, email: str, *, now: float, actor: str = "admin", method: EnrollmentMethod = "admin-code"
    ) -> str:
        return await self.enrolment.issue_enrollment_code(email, now=now, actor=actor, method=method)

    async def email_enrollment_code(self, email: str, *, now: float, client_ip: str | None = None) -> None:
        await self.enrolment.email_enrollment_code(email, now=now, client_ip=client_ip)

    async def enroll(
        self,
        *,
        email: str,
        code: str,
        public_key: str,
        now: float,
        client_ip: str | None = None,
        aead: str = cap.DEFAULT_AEAD,
    ) -> Enrollment:
        return await self.enrolment.enroll(
            email=email, code=code, public_key=public_key, now=now, client_ip=client_ip, aead=aead
        )

    # -- captcha login --------------------------------------------------------------------------

    def device_token(self, email: str, *, now: float) -> str:
        return self.captcha.device_token(email, now=now)

    async def request_captcha(
        self,
        *,
        email: str,
        client_id: str,
        code_challenge: str,
        now: float,
        origin: str | None = None,
        app_hash: str | None = None,
        client_ip: str | None = None,
        device: str | None = None,
    ) -> CaptchaIssued:
        return await self.captcha.request_captcha(
            email=email,
            client_id=client_id,
            code_challenge=code_challenge,
            now=now,
            origin=origin,
            app_hash=app_hash,
            client_ip=client_ip,
            device=device,
        )

    async def verify_captcha(
        self,
        *,
        captcha_id: str,
        code: str,
        code_verifier: str,
        session_key: str,
        now: float,
        scopes: Iterable[str] = (),
        client_ip: str | None = None,
        device: str | None = None,
    ) -> IssuedSession:
        return await self.captcha.verify_captcha(
            captcha_id=captcha_id,
            code=code,
            code_verifier=code_verifier,
            session_key=session_key,
            now=now,
            scopes=scopes,
            client_ip=client_ip,
            device=device,
        )

    def scopes_for(self, *, email: str, client_id: str, app_hash: str) -> list[str]:
        return self.captcha.scopes_for(email=email, client_id=client_id, app_hash=app_hash)

    # -- resource login -------------------------------------------------------------------------

    async def resource_challenge(self, *, resource: str, client_id: str, now: float) -> tuple[str, str, int]:
        return await self.resource.resource_challenge(resource=resource, client_id=client_id, now=now)

    async def resource_login(
        self, *, challenge_id: str, challenge: str, signature: str, session_key: str, now: float
    ) -> IssuedSession:
        return await self.resource.resource_login(
            challenge_id=challenge_id, challenge=challenge, signature=signature, session_key=session_key, now=now
        )

    # -- sessions and client tokens -------------------------------------------------------------

    async def authenticate(self, token: str, *, now: float) -> SourceIdentity:
        return await self.sessions.authenticate(token, now=now)

    async def logout(self, identity: SourceIdentity, *, now: float) -> None:
        await self.sessions.logout(identity, now=now)

    async def client_token(self, identity: SourceIdentity, destination: str, *, now: float) -> str:
        return await self.tokens.client_token(identity, destination, now=now)

    async def poke(self, identity: SourceIdentity, subject: str, *, now: float) -> dict[str, object]:
        return await self.tokens.poke(identity, subject, now=now)
