"""System login on Linux hosts: the captcha as the second factor of a PAM login (docs/system-login.md).

A host is a resource: it logs in with its Ed25519 key (docs/protocol.md §8) and, with that
session, asks for a captcha sealed to a user's authenticator (:meth:`SystemLoginService.host_captcha`,
the PAM conversation) and then checks the code the user typed (:meth:`SystemLoginService.verify`).
The user may also make the captcha from their authenticator first and type the code at the
password prompt (:meth:`SystemLoginService.user_captcha`, the original plugin's flow); the host
then sends no captcha id and the code is checked against the user's outstanding captchas for
that host.

Every answer needs ``p, <e-mail>, <host>, <server name>, systemlogin`` in resourcepolicy.csv (and
no ``deny`` row for the same triple). Captcha requests and wrong codes are regulated like portal
logins (per address and per remote address); every issuance and every outcome is audited with
the host as the actor.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenward.apptokens.regulation import Regulator
from tokenward.errorcodes import ErrorCode
from tokenward.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from tokenward.identity import captcha as cap
from tokenward.identity import captcha_checks as checks
from tokenward.identity.policy import IdentityPolicy
from tokenward.identity.resources import ResourceRegistry
from tokenward.keys import Keyring, Purpose
from tokenward.storage.audit import AuditLog
from tokenward.storage.identity import IdentityStore

__all__ = ["KIND", "MAX_OUTSTANDING", "SystemCaptcha", "SystemLoginGranted", "SystemLoginService", "host_hash"]

log = logging.getLogger("tokenward.identity.system_login")

#: The ``kind`` of system-login challenges in the challenge table.
KIND = "system"
#: At most this many outstanding captchas of one user for one host are tried against a code.
MAX_OUTSTANDING = 5


def host_hash(host: str) -> str:
    """The challenge table's ``app_hash`` of a system-login captcha: uppercase SHA-512 hex of the host name."""
    return hashlib.sha512(f"tokenward/v1/systemlogin|{host.lower()}".encode()).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class SystemCaptcha:
    captcha_id: str
    payload: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class SystemLoginGranted:
    user: str
    host: str


def _account(kind: str, email: str) -> tuple[str, ...]:
    """The soft key, the user from anywhere: hosts have no device token, so past the account limit
    (``TOKENWARD_CAPTCHA_ACCOUNT_MAX_FAILURES`` wrong codes from many addresses) it is refused."""
    return (checks.account_key(kind, email),)


@dataclass
class SystemLoginService:
    """Host-initiated and user-initiated system-login captchas and their verification."""

    server_name: str
    keyring: Callable[[], Keyring]
    store: IdentityStore
    policy: Callable[[], IdentityPolicy | None]
    resources: Callable[[], ResourceRegistry] = field(default=ResourceRegistry)
    audit: AuditLog | None = None
    #: Counts captcha requests per address and per remote address (like ``POST /api/captcha``).
    request_regulator: Regulator | None = None
    #: Counts wrong or missing codes per address and per remote address.
    failure_regulator: Regulator | None = None
    random_bytes: Callable[[int], bytes] = secrets.token_bytes
    choice: Callable[[str], str] = secrets.choice

    # -- issuing ----------------------------------------------------------------------------------

    async def host_captcha(
        self, *, host: str, client_id: str, user: str, now: float, remote: str | None = None
    ) -> SystemCaptcha:
        """A captcha for ``user`` logging in to ``host``, asked by the host itself (the PAM conversation)."""
        return await self._issue(host=host, client_id=client_id, user=user, now=now, remote=remote, by="host")

    async def user_captcha(self, *, host: str, user: str, now: float, client_ip: str | None = None) -> SystemCaptcha:
        """A captcha for ``user`` logging in to ``host``, asked by the user's authenticator (password-prompt flow).

        Anybody may ask, as for ``POST /api/captcha``: only the enrolled authenticator can read the code.
        """
        host = host.strip().lower()
        self.resources().get(host)  # 404 resource_unknown: only registered hosts
        return await self._issue(host=host, client_id="", user=user, now=now, remote=client_ip, by="user")

    async def _issue(
        self, *, host: str, client_id: str, user: str, now: float, remote: str | None, by: str
    ) -> SystemCaptcha:
        from tokenward.identity.common import normalize_email

        email = normalize_email(user)
        host = host.lower()
        failures = checks.hard_keys("systemlogin", email, remote) + _account("systemlogin", email)
        await checks.check(self.failure_regulator, failures, now, ErrorCode.TOO_MANY_ATTEMPTS)
        requests = checks.hard_keys("systemlogin-request", email, remote)
        await self._count(self.request_regulator, requests, now, remote=remote, reason="system-login captcha")
        await checks.check(self.request_regulator, requests, now, ErrorCode.CAPTCHA_RATE_LIMITED)
        await self._allowed(email, host, now, remote=remote)
        enrollment = await self.store.get_enrollment(email)
        if enrollment is None:
            raise NotFound("this e-mail address has no enrolled authenticator", code=ErrorCode.NOT_ENROLLED)
        new = await checks.new_challenge(
            self.store,
            self.keyring(),
            random_bytes=self.random_bytes,
            choice=self.choice,
            kind=KIND,
            subject=email,
            client_id=client_id,
            app_hash=host_hash(host),
            code_challenge="",
            now=now,
        )
        # The authenticator shows "system login on <host>": a captcha asked for another host is recognisable.
        plain = cap.CaptchaPlaintext(
            new.captcha_id, new.code, self.server_name, email, f"system login on {host}", host, new.expires_at
        )
        payload = checks.seal_for(enrollment, plain)
        await self._audit(now, host, "systemlogin.captcha_issued", subject=email, host=host, by=by, remote=remote)
        return SystemCaptcha(new.captcha_id, payload, new.expires_at)

    # -- verifying --------------------------------------------------------------------------------

    async def verify(
        self,
        *,
        host: str,
        user: str,
        code: str,
        now: float,
        captcha_id: str | None = None,
        remote: str | None = None,
    ) -> SystemLoginGranted:
        """Accept ``code`` for ``user`` on ``host`` once, or raise the refusal (401/403/409/429)."""
        from tokenward.identity.common import normalize_email

        email = normalize_email(user)
        host = host.lower()
        keys = checks.hard_keys("systemlogin", email, remote)
        await checks.check(
            self.failure_regulator, keys + _account("systemlogin", email), now, ErrorCode.TOO_MANY_ATTEMPTS
        )
        await self._allowed(email, host, now, remote=remote)
        candidates = await self._candidates(email, host, captcha_id, now)
        typed = cap.normalize_code(code)
        matched: cap.Challenge | None = None
        tried = 0
        for challenge in candidates:
            key = self.keyring().key_by_id(Purpose.CAPTCHA, challenge.key_id, now=now)
            # Count the attempt first, atomically: guesses on several instances share the captcha's budget.
            if key is None or not await self.store.use_attempt(challenge.id, max_attempts=cap.MAX_ATTEMPTS):
                continue
            tried += 1
            if hmac.compare_digest(cap.code_mac(key, challenge.id, typed), challenge.code_mac) and matched is None:
                matched = challenge
        if matched is None:
            reason = ErrorCode.SYSTEM_LOGIN_WRONG_CODE if tried else ErrorCode.SYSTEM_LOGIN_NO_CAPTCHA
            await self._audit(now, host, "systemlogin.failed", subject=email, host=host, reason=reason, remote=remote)
            await self._count(
                self.failure_regulator,
                keys,
                now,
                remote=remote,
                reason="system-login failure",
                soft=_account("systemlogin", email),
            )
            if tried:
                raise Unauthorized("wrong code for this system login", code=reason)
            raise Unauthorized(
                f"no outstanding captcha for {email} on {host}; make a new one and type its code", code=reason
            )
        if not await self.store.consume_challenge(matched.id, now=now):
            await self._audit(
                now, host, "systemlogin.failed", subject=email, host=host, reason="captcha_used", remote=remote
            )
            raise Conflict("this captcha was already used; make a new one", code=ErrorCode.CAPTCHA_USED)
        await self._audit(now, host, "systemlogin.granted", subject=email, host=host, remote=remote)
        return SystemLoginGranted(email, host)

    async def _candidates(self, email: str, host: str, captcha_id: str | None, now: float) -> list[cap.Challenge]:
        if captcha_id is None:
            return await self.store.outstanding_challenges(
                kind=KIND, subject=email, app_hash=host_hash(host), now=now, limit=MAX_OUTSTANDING
            )
        challenge = await self.store.get_challenge(captcha_id)
        ours = (
            challenge is not None
            and challenge.kind == KIND
            and challenge.subject == email
            and hmac.compare_digest(challenge.app_hash, host_hash(host))
        )
        if challenge is None or not ours:
            raise NotFound("no such system-login captcha for this user on this host", code=ErrorCode.CAPTCHA_UNKNOWN)
        cap.check_usable(challenge, now=now)
        return [challenge]

    # -- helpers ----------------------------------------------------------------------------------

    async def _allowed(self, email: str, host: str, now: float, *, remote: str | None) -> None:
        policy = self.policy()
        if policy is None:
            raise ServiceUnavailable(
                "the policy is not loaded; system login is refused", code=ErrorCode.POLICY_NOT_LOADED
            )
        decision = policy.can_system_login(email, host)
        if not decision.allowed:
            await self._audit(
                now, host, "systemlogin.denied", subject=email, host=host, rule=decision.rule, remote=remote
            )
            why = f" (denied by {decision.rule})" if decision.rule else " (no systemlogin row allows it)"
            raise Forbidden(f"{email} may not log in to {host}{why}", code=ErrorCode.SYSTEM_LOGIN_DENIED)

    async def _count(
        self,
        regulator: Regulator | None,
        keys: tuple[str, ...],
        now: float,
        *,
        remote: str | None,
        reason: str,
        soft: tuple[str, ...] = (),
    ) -> None:
        await checks.count_failure(
            regulator, keys, now, audit=self._audit, log=log, reason=reason, soft=soft, remote=remote
        )

    async def _audit(self, now: float, actor: str, action: str, **detail: object) -> None:
        await checks.append_audit(self.audit, now, actor, action, {k: v for k, v in detail.items() if v is not None})
