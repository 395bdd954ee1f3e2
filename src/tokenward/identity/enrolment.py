"""Enrolment of authenticators: admin-issued and e-mailed one-time codes, and redeeming them (docs/protocol.md §3)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from tokenward.apptokens.regulation import Regulator
from tokenward.errorcodes import ErrorCode
from tokenward.errors import ServiceUnavailable, Unauthorized
from tokenward.identity import captcha as cap
from tokenward.identity import captcha_checks as checks
from tokenward.identity.common import (
    ENROLLMENT_CODE_TTL,
    audit_event,
    check_limit,
    count_failure,
    enrollment_code_hash,
    normalize_email,
    regulation_keys,
    x25519,
)
from tokenward.identity.mail import Mailer, enrollment_message
from tokenward.identity.policy import IdentityPolicy
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import Enrollment, EnrollmentMethod, IdentityStore

__all__ = ["EnrolmentService"]


@dataclass
class EnrolmentService:
    server_name: str
    store: IdentityStore
    policy: Callable[[], IdentityPolicy]
    audit: AuditLog | None = None
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    #: Counts enrolment e-mails per e-mail and per IP.
    request_regulator: Regulator | None = None
    #: Counts wrong enrolment codes per e-mail and per IP (shared with the captcha answers).
    failure_regulator: Regulator | None = None
    #: Sends e-mail enrolment codes; None when SMTP is not configured.
    mailer: Mailer | None = None
    mail_sender: str = ""

    async def issue_enrollment_code(
        self, email: str, *, now: float, actor: str = "admin", method: EnrollmentMethod = "admin-code"
    ) -> str:
        """A one-time enrolment code for ``email``; the enrolment made with it records ``method``."""
        raw = self.random_bytes(16).hex().upper()
        code = "-".join(raw[i : i + 8] for i in range(0, 32, 8))
        await self.store.add_enrollment_code(
            enrollment_code_hash(code), normalize_email(email), expires_at=now + ENROLLMENT_CODE_TTL, method=method
        )
        await audit_event(
            self.audit, now, actor, "enrollment.code_issued", subject=normalize_email(email), method=method
        )
        return code

    async def email_enrollment_code(self, email: str, *, now: float, client_ip: str | None = None) -> None:
        """E-mail a one-time enrolment code to ``email`` if the captcha policy enables it (docs/sessions.md).

        The caller learns nothing about the address: the answer, the SMTP round trip (``send(None)``
        checks the server for refused addresses too) and the rate limit are the same either way.
        """
        if self.mailer is None:
            raise ServiceUnavailable(
                "e-mail enrolment is not configured on this server (TOKENWARD_SMTP_HOST); ask an admin for a code",
                code=ErrorCode.SMTP_NOT_CONFIGURED,
            )
        email = normalize_email(email)
        requests = regulation_keys("enroll-email", email, client_ip)
        await count_failure(
            self.request_regulator, requests, now, audit=self.audit, client_ip=client_ip, reason="enrolment e-mail"
        )
        await check_limit(self.request_regulator, requests, now, ErrorCode.ENROLLMENT_RATE_LIMITED)
        message = None
        if self.policy().captcha_enabled(email).allowed:
            code = await self.issue_enrollment_code(email, now=now, actor="email", method="email-code")
            message = enrollment_message(
                server=self.server_name,
                sender=self.mail_sender or f"tokenward@{self.server_name}",
                to=email,
                code=code,
                valid_hours=ENROLLMENT_CODE_TTL // 3600,
                now=now,
            )
        else:
            await audit_event(self.audit, now, email, "enrollment.email_refused", subject=email, ip=client_ip)
        await self.mailer.send(message)

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
        email = normalize_email(email)
        keys = checks.hard_keys("captcha", email, client_ip)  # enrolment codes carry 128 bits: no account limit
        await check_limit(self.failure_regulator, keys, now, ErrorCode.TOO_MANY_ATTEMPTS)
        x25519(public_key, "public_key")
        cap.validate_aead(aead)
        redeemed = await self.store.redeem_enrollment_code(enrollment_code_hash(code), now=now)
        if redeemed is None or not hmac.compare_digest(redeemed.email, email):
            await audit_event(self.audit, now, email, "enrollment.failed", subject=email, ip=client_ip)
            await count_failure(
                self.failure_regulator, keys, now, audit=self.audit, client_ip=client_ip, reason="enrollment failure"
            )
            raise Unauthorized("the enrolment code is wrong, used or expired", code=ErrorCode.ENROLLMENT_CODE_INVALID)
        enrollment = Enrollment(email=email, public_key=public_key, enrolled_at=now, method=redeemed.method, aead=aead)
        await self.store.put_enrollment(enrollment)
        await audit_event(
            self.audit, now, email, "enrollment.completed", subject=email, method=redeemed.method, aead=aead
        )
        return enrollment
