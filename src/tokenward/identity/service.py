"""The identity flows, combining the pure modules with storage, policy and the audit log.

Every method takes ``now``; randomness comes from ``random_bytes`` / ``choice`` (``secrets`` by
default, fixed in tests). Policy answers come through :class:`~tokenward.identity.policy.IdentityPolicy`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tokenward.apptokens.regulation import Regulator, ip_key, user_key
from tokenward.errorcodes import ErrorCode
from tokenward.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from tokenward.identity import captcha as cap
from tokenward.identity import captcha_checks as checks
from tokenward.identity.apps import ClientRegistry, app_hash_of_origin, normalize_app_hash, normalize_client_id
from tokenward.identity.client_tokens import (
    TOKEN_LIFETIME_SECONDS,
    ClientTokenClaims,
    is_weak_x25519,
    sign_client_token,
)
from tokenward.identity.device import device_proves, issue_device_token
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.identity.mail import Mailer, enrollment_message
from tokenward.identity.policy import IdentityPolicy, resolve_scopes
from tokenward.identity.resources import ResourceRegistry, login_message, verify_login_signature
from tokenward.identity.source import SourceIdentity, open_source_identifier, seal_source_identifier
from tokenward.keys import Keyring, Purpose
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import Enrollment, EnrollmentMethod, IdentityStore, SessionRecord

__all__ = [
    "ENROLLMENT_CODE_TTL",
    "CaptchaIssued",
    "IdentityService",
    "IssuedSession",
    "enrollment_code_hash",
    "key_fingerprint",
    "normalize_email",
]

ENROLLMENT_CODE_TTL = 24 * 3600

log = logging.getLogger("tokenward.identity")


def _regulation_keys(kind: str, email: str, client_ip: str | None) -> tuple[str, ...]:
    """Per e-mail and per IP, both hard (enrolment e-mails: the limit protects the mailbox itself).

    Keys of their own (``user:captcha:…``): a captcha ban never locks the same user out of app tokens.
    """
    keys = (user_key(f"{kind}:{email}"),)
    return (*keys, ip_key(f"{kind}:{client_ip}")) if client_ip else keys


def enrollment_code_hash(code: str) -> str:
    """SHA-256 hex of a normalised enrolment code (128 random bits: a fast hash is enough)."""
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


def key_fingerprint(public_key: str) -> str:
    """First 32 hex characters of SHA-256 of an enrolled public key (docs/protocol.md §3)."""
    return hashlib.sha256(b64u_decode(public_key, field="public_key", length=32)).hexdigest()[:32]


def _session_key(value: str) -> str:
    return _x25519(value, "session_key")


_X25519_CODES = {
    "session_key": (ErrorCode.SESSION_KEY_INVALID, ErrorCode.SESSION_KEY_WEAK),
    "public_key": (ErrorCode.PUBLIC_KEY_INVALID, ErrorCode.PUBLIC_KEY_WEAK),
}


def _x25519(value: str, field: str) -> str:
    """A b64u X25519 public key: 400 ``<field>_invalid`` for bad syntax, ``<field>_weak`` for a low-order one."""
    invalid, weak = _X25519_CODES[field]
    raw = b64u_decode(value, field=field, length=32, code=invalid)
    if is_weak_x25519(raw):
        raise BadRequest(
            f"{field} is a low-order X25519 point (every shared secret with it is zero); send a freshly "
            "generated X25519 public key",
            code=weak,
        )
    return value


@dataclass(frozen=True, slots=True)
class CaptchaIssued:
    captcha_id: str
    payload: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedSession:
    source_identifier: str
    identity: SourceIdentity


@dataclass
class IdentityService:
    server_name: str
    keyring: Callable[[], Keyring]
    store: IdentityStore
    policy: Callable[[], IdentityPolicy]
    clients: Callable[[], ClientRegistry]
    resources: Callable[[], ResourceRegistry] = field(default=ResourceRegistry)
    audit: AuditLog | None = None
    session_lifetime: int = 8 * 3600
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    choice: Callable[[str], str] = secrets.choice
    #: Counts every captcha request per e-mail and per IP (shared across instances through SQL).
    request_regulator: Regulator | None = None
    #: Counts wrong captcha answers and enrolment codes per e-mail and per IP.
    failure_regulator: Regulator | None = None
    #: Sends e-mail enrolment codes; None when SMTP is not configured.
    mailer: Mailer | None = None
    mail_sender: str = ""

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

    async def _check(self, regulator: Regulator | None, keys: tuple[str, ...], now: float, code: ErrorCode) -> None:
        detail = "too many captcha requests; try again later" if code == ErrorCode.CAPTCHA_RATE_LIMITED else None
        await checks.check(regulator, keys, now, code, detail=detail)

    async def _count(
        self,
        regulator: Regulator | None,
        keys: tuple[str, ...],
        now: float,
        *,
        client_ip: str | None,
        reason: str,
        soft: tuple[str, ...] = (),
    ) -> None:
        await checks.count_failure(
            regulator, keys, now, audit=self._audit, log=log, reason=reason, soft=soft, ip=client_ip
        )

    async def _audit(self, now: float, actor: str, action: str, **detail: object) -> None:
        await checks.append_audit(self.audit, now, actor, action, detail)

    # -- enrolment ------------------------------------------------------------------------------

    async def issue_enrollment_code(
        self, email: str, *, now: float, actor: str = "admin", method: EnrollmentMethod = "admin-code"
    ) -> str:
        """A one-time enrolment code for ``email``; the enrolment made with it records ``method``."""
        raw = self.random_bytes(16).hex().upper()
        code = "-".join(raw[i : i + 8] for i in range(0, 32, 8))
        await self.store.add_enrollment_code(
            enrollment_code_hash(code), normalize_email(email), expires_at=now + ENROLLMENT_CODE_TTL, method=method
        )
        await self._audit(now, actor, "enrollment.code_issued", subject=normalize_email(email), method=method)
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
        requests = _regulation_keys("enroll-email", email, client_ip)
        await self._count(self.request_regulator, requests, now, client_ip=client_ip, reason="enrolment e-mail")
        await self._check(self.request_regulator, requests, now, ErrorCode.ENROLLMENT_RATE_LIMITED)
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
            await self._audit(now, email, "enrollment.email_refused", subject=email, ip=client_ip)
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
        await self._check(self.failure_regulator, keys, now, ErrorCode.TOO_MANY_ATTEMPTS)
        _x25519(public_key, "public_key")
        cap.validate_aead(aead)
        redeemed = await self.store.redeem_enrollment_code(enrollment_code_hash(code), now=now)
        if redeemed is None or not hmac.compare_digest(redeemed.email, email):
            await self._audit(now, email, "enrollment.failed", subject=email, ip=client_ip)
            await self._count(self.failure_regulator, keys, now, client_ip=client_ip, reason="enrollment failure")
            raise Unauthorized("the enrolment code is wrong, used or expired", code=ErrorCode.ENROLLMENT_CODE_INVALID)
        enrollment = Enrollment(email=email, public_key=public_key, enrolled_at=now, method=redeemed.method, aead=aead)
        await self.store.put_enrollment(enrollment)
        await self._audit(now, email, "enrollment.completed", subject=email, method=redeemed.method, aead=aead)
        return enrollment

    # -- captcha --------------------------------------------------------------------------------

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
        await self._check(
            self.failure_regulator, self._failure_keys(email, client_ip, device, now), now, ErrorCode.TOO_MANY_ATTEMPTS
        )
        # Count first, then check: the count is one SQL query shared by every instance, so the limit is exact
        # across instances (the regulator's policy allows max + 1, the first request that is refused).
        # Per address and per (e-mail, address) only: a captcha request costs a guesser nothing he could use
        # (the answers are what is limited per account), so counting them per e-mail only handed out lockouts.
        requests = checks.hard_keys("captcha-request", email, client_ip)
        await self._count(self.request_regulator, requests, now, client_ip=client_ip, reason="captcha request")
        await self._check(self.request_regulator, requests, now, ErrorCode.CAPTCHA_RATE_LIMITED)
        client = self.clients().get(normalize_client_id(client_id))
        hashed, shown_origin = self._app_hash(origin, app_hash)
        cap.validate_code_challenge(code_challenge)
        if not client.allows_hash(hashed):
            raise Forbidden(
                f"this origin is not registered for client app {client.name!r}", code=ErrorCode.ORIGIN_NOT_ALLOWED
            )
        policy = self.policy()
        if not policy.captcha_enabled(email).allowed:
            await self._audit(now, email, "captcha.denied", subject=email, client_id=client.client_id)
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
        await self._audit(now, email, "captcha.issued", subject=email, client_id=client.client_id)
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
        await self._check(
            self.failure_regulator,
            self._failure_keys(challenge.subject, client_ip, device, now),
            now,
            ErrorCode.TOO_MANY_ATTEMPTS,
        )
        _session_key(session_key)
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
            await self._audit(
                now, challenge.subject, "captcha.failed", subject=challenge.subject, reason=exc.error_code, ip=client_ip
            )
            await self._count(
                self.failure_regulator,
                keys,
                now,
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
        issued = await self._issue(
            kind="user",
            subject=challenge.subject,
            client_id=challenge.client_id,
            app_hash=challenge.app_hash,
            scopes=granted,
            session_key=session_key,
            now=now,
        )
        return issued

    async def _issue(
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
        await self._audit(now, subject, "session.issued", subject=subject, client_id=client_id, kind=kind)
        return IssuedSession(token, identity)

    def scopes_for(self, *, email: str, client_id: str, app_hash: str) -> list[str]:
        self.clients().get(normalize_client_id(client_id))
        return sorted(self.policy().scopes(normalize_email(email), normalize_app_hash(app_hash), client_id.upper()))

    # -- resources ------------------------------------------------------------------------------

    async def resource_challenge(self, *, resource: str, client_id: str, now: float) -> tuple[str, str, int]:
        self.resources().get(resource)
        client = self.clients().get(normalize_client_id(client_id))
        challenge_id = b64u_encode(self.random_bytes(16))
        nonce = b64u_encode(self.random_bytes(32))
        key_id, key = self.keyring().key(Purpose.CAPTCHA)
        expires = int(now) + cap.TTL_SECONDS
        await self.store.add_challenge(
            cap.Challenge(
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
        _session_key(session_key)
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
        return await self._issue(
            kind="resource",
            subject=record.subject,
            client_id=record.client_id,
            app_hash="",
            scopes=(),
            session_key=session_key,
            now=now,
        )

    # -- sessions -------------------------------------------------------------------------------

    async def authenticate(self, token: str, *, now: float) -> SourceIdentity:
        """Open a bearer source identifier and refuse it if its session was ended (checked on every call)."""
        identity = open_source_identifier(token, keyring=self.keyring(), now=now)
        record = await self.store.get_session(identity.session_id)
        if record is None or record.revoked_at is not None:
            raise Unauthorized("this session was ended; log in again", code=ErrorCode.SESSION_REVOKED)
        return identity

    async def logout(self, identity: SourceIdentity, *, now: float) -> None:
        await self.store.revoke_session(identity.session_id, now=now)
        await self._audit(now, identity.subject, "session.revoked", subject=identity.subject)

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
            await self._audit(
                now, identity.subject, "client_token.denied", subject=identity.subject, destination=destination
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
        await self._audit(
            now, identity.subject, "client_token.granted", subject=identity.subject, destination=destination
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


def normalize_email(value: str) -> str:
    """``value`` stripped and lower-cased; 400 ``email_invalid`` unless it looks like an e-mail address."""
    value = value.strip().lower()
    local, at, domain = value.rpartition("@")
    if not (at and local and domain) or len(value) > 254 or any(c.isspace() for c in value):
        raise BadRequest("email is not an e-mail address", code=ErrorCode.EMAIL_INVALID)
    return value
