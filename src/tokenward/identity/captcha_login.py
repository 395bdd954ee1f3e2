"""The portal's captcha login: a captcha sealed to the enrolled authenticator, its answer, the session it opens
(docs/sessions.md). The shared checks are in :mod:`~tokenward.identity.captcha_checks`."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenward.apptokens.regulation import Regulator
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from tokenward.identity import captcha as cap
from tokenward.identity import captcha_checks as checks
from tokenward.identity.apps import ClientRegistry, app_hash_of_origin, normalize_app_hash, normalize_client_id
from tokenward.identity.common import (
    CaptchaIssued,
    IssuedSession,
    audit_event,
    check_limit,
    count_failure,
    normalize_email,
)
from tokenward.identity.common import (
    session_key as check_session_key,
)
from tokenward.identity.device import device_proves, issue_device_token
from tokenward.identity.policy import IdentityPolicy, resolve_scopes
from tokenward.identity.sessions import SessionService
from tokenward.keys import Keyring, Purpose
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import IdentityStore

__all__ = ["CaptchaLoginService"]


@dataclass
class CaptchaLoginService:
    server_name: str
    keyring: Callable[[], Keyring]
    store: IdentityStore
    policy: Callable[[], IdentityPolicy]
    clients: Callable[[], ClientRegistry]
    sessions: SessionService
    audit: AuditLog | None = None
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    choice: Callable[[str], str] = secrets.choice
    #: Counts every captcha request per e-mail and per IP (shared across instances through SQL).
    request_regulator: Regulator | None = None
    #: Counts wrong captcha answers per e-mail and per IP.
    failure_regulator: Regulator | None = None

    def _failure_keys(self, email: str, client_ip: str | None, device: str | None, now: float) -> tuple[str, ...]:
        """The captcha-failure keys a request is checked against: the hard ones, and the account's unless the
        request shows the device cookie of a browser that signed in as ``email`` before."""
        keys = checks.hard_keys("captcha", email, client_ip)
        if device_proves(self.keyring(), device, email, now=now):
            return keys
        return (*keys, checks.account_key("captcha", email))

    def device_token(self, email: str, *, now: float) -> str:
        """A device cookie for a browser that just signed in as ``email`` (:mod:`tokenward.identity.device`)."""
        return issue_device_token(self.keyring(), normalize_email(email), now=now, nonce=self.random_bytes(12))

    def _app_hash(self, origin: str | None, app_hash: str | None) -> tuple[str, str]:
        if app_hash:
            return normalize_app_hash(app_hash), origin or ""
        if origin:
            return app_hash_of_origin(origin), origin
        raise BadRequest("give origin or app_hash", code=ErrorCode.ORIGIN_MISSING)

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
        email = normalize_email(email)
        # Failures ban new captchas too (else a fresh captcha would reset the guessing budget); every request
        # is counted before any policy answer, so probing which addresses are enrolled is limited as well.
        await check_limit(
            self.failure_regulator, self._failure_keys(email, client_ip, device, now), now, ErrorCode.TOO_MANY_ATTEMPTS
        )
        # Count first, then check: the count is one SQL query shared by every instance, so the limit is exact
        # across instances (the regulator's policy allows max + 1, the first request that is refused).
        # Per address only (hard_keys): a captcha request costs a guesser nothing he could use
        # (the answers are what is limited per account), so counting them per e-mail only handed out lockouts.
        requests = checks.hard_keys("captcha-request", email, client_ip)
        await count_failure(
            self.request_regulator, requests, now, audit=self.audit, client_ip=client_ip, reason="captcha request"
        )
        await check_limit(self.request_regulator, requests, now, ErrorCode.CAPTCHA_RATE_LIMITED)
        client = self.clients().get(normalize_client_id(client_id))
        hashed, shown_origin = self._app_hash(origin, app_hash)
        cap.validate_code_challenge(code_challenge)
        if not client.allows_hash(hashed):
            raise Forbidden(
                f"this origin is not registered for client app {client.name!r}", code=ErrorCode.ORIGIN_NOT_ALLOWED
            )
        policy = self.policy()
        if not policy.captcha_enabled(email).allowed:
            await audit_event(self.audit, now, email, "captcha.denied", subject=email, client_id=client.client_id)
            raise Forbidden("the captcha policy does not allow this e-mail address", code=ErrorCode.CAPTCHA_DENIED)
        if not policy.can_login(email, client.client_id).allowed:
            raise Forbidden("the user policy does not allow this login to this client app", code=ErrorCode.LOGIN_DENIED)
        if not policy.client_access(hashed, client.client_id).allowed:
            raise Forbidden(
                "clientappspolicy.csv does not allow this app for this client ID", code=ErrorCode.CLIENT_ACCESS_DENIED
            )
        enrollment = await self.store.get_enrollment(email)
        if enrollment is None:
            raise NotFound("this e-mail address has no enrolled authenticator", code=ErrorCode.NOT_ENROLLED)
        new = await checks.new_challenge(
            self.store,
            self.keyring(),
            random_bytes=self.random_bytes,
            choice=self.choice,
            kind="captcha",
            subject=email,
            client_id=client.client_id,
            app_hash=hashed,
            code_challenge=code_challenge,
            now=now,
        )
        plain = cap.CaptchaPlaintext(
            new.captcha_id, new.code, self.server_name, email, client.name, shown_origin, new.expires_at
        )
        payload = checks.seal_for(enrollment, plain)
        await audit_event(self.audit, now, email, "captcha.issued", subject=email, client_id=client.client_id)
        return CaptchaIssued(new.captcha_id, payload, new.expires_at)

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
        challenge = await self.store.get_challenge(captcha_id)
        if challenge is None or challenge.kind != "captcha":
            raise NotFound("no such captcha", code=ErrorCode.CAPTCHA_UNKNOWN)
        keys = checks.hard_keys("captcha", challenge.subject, client_ip)
        await check_limit(
            self.failure_regulator,
            self._failure_keys(challenge.subject, client_ip, device, now),
            now,
            ErrorCode.TOO_MANY_ATTEMPTS,
        )
        check_session_key(session_key)
        cap.check_usable(challenge, now=now)
        # A captcha made by an instance with another time code is a configuration fault, not a guess:
        # refuse it before it costs the user an attempt.
        key = self.keyring().key_by_id(Purpose.CAPTCHA, challenge.key_id, now=now)
        if key is None:
            raise self.keyring().mismatch(challenge.key_id, what="captcha", now=now)
        # Count the attempt first, atomically: concurrent guesses on several instances share the budget.
        if not await self.store.use_attempt(captcha_id, max_attempts=cap.MAX_ATTEMPTS):
            fresh = await self.store.get_challenge(captcha_id)
            cap.check_usable(fresh or challenge, now=now)
            raise Conflict("this captcha was already used; request a new one", code=ErrorCode.CAPTCHA_USED)
        try:
            cap.check_pkce(code_verifier, challenge.code_challenge)
            if not hmac.compare_digest(cap.code_mac(key, captcha_id, code), challenge.code_mac):
                left = cap.MAX_ATTEMPTS - challenge.attempts - 1
                raise Unauthorized(f"wrong code; {left} attempt(s) left", code=ErrorCode.CAPTCHA_WRONG_CODE)
        except (Unauthorized, BadRequest) as exc:
            await audit_event(
                self.audit,
                now,
                challenge.subject,
                "captcha.failed",
                subject=challenge.subject,
                reason=exc.error_code,
                ip=client_ip,
            )
            await count_failure(
                self.failure_regulator,
                keys,
                now,
                audit=self.audit,
                client_ip=client_ip,
                reason="captcha failure",
                soft=(checks.account_key("captcha", challenge.subject),),
            )
            raise
        granted, missing = resolve_scopes(
            self.policy().scopes(challenge.subject, challenge.app_hash, challenge.client_id), scopes
        )
        if missing:
            raise Forbidden(f"scope(s) not granted: {', '.join(sorted(missing))}", code=ErrorCode.SCOPE_NOT_GRANTED)
        if not await self.store.consume_challenge(captcha_id, now=now):
            raise Conflict("this captcha was already used; request a new one", code=ErrorCode.CAPTCHA_USED)
        return await self.sessions.issue(
            kind="user",
            subject=challenge.subject,
            client_id=challenge.client_id,
            app_hash=challenge.app_hash,
            scopes=granted,
            session_key=session_key,
            now=now,
        )

    def scopes_for(self, *, email: str, client_id: str, app_hash: str) -> list[str]:
        self.clients().get(normalize_client_id(client_id))
        return sorted(self.policy().scopes(normalize_email(email), normalize_app_hash(app_hash), client_id.upper()))
