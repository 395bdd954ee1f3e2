"""The captcha checks the portal's captcha login (:mod:`tokenward.identity.service`) and system login
(:mod:`tokenward.identity.system_login`) both make: the regulation keys, the check and the count of a
request against a :class:`~tokenward.apptokens.regulation.Regulator`, a new sealed challenge, and the
audit event.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tokenward.apptokens.regulation import Regulator, user_key
from tokenward.apptokens.regulation import hard_keys as regulation_hard_keys
from tokenward.errorcodes import ErrorCode
from tokenward.errors import TooManyRequests
from tokenward.identity import captcha as cap
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Keyring, Purpose
from tokenward.storage.audit import AuditEvent, AuditLog
from tokenward.storage.identity import Enrollment, IdentityStore

__all__ = [
    "NewChallenge",
    "account_key",
    "append_audit",
    "check",
    "count_failure",
    "hard_keys",
    "new_challenge",
    "seal_for",
]


def hard_keys(kind: str, email: str, address: str | None) -> tuple[str, ...]:
    """The hard keys of captcha regulation: the client address, or the (e-mail, no address) pair when there is none
    (:func:`~tokenward.apptokens.regulation.hard_keys`, docs/regulation.md). Nobody but the address's own users can
    get them banned."""
    return regulation_hard_keys(f"{kind}:{email}", f"{kind}:{address}" if address else None)


def account_key(kind: str, email: str) -> str:
    """The soft key: the e-mail address from anywhere (refused past the account limit)."""
    return user_key(f"{kind}:{email}")


async def check(
    regulator: Regulator | None, keys: tuple[str, ...], now: float, code: ErrorCode, *, detail: str | None = None
) -> None:
    """Raise 429 ``code`` (with ``detail`` instead of the regulator's sentence when given) if a key is banned."""
    if regulator is None or not regulator.policy.enabled:
        return
    try:
        await regulator.enforce(keys, now)
    except TooManyRequests as exc:
        raise TooManyRequests(detail or exc.detail, code=code, retry_after=exc.retry_after) from None


async def count_failure(
    regulator: Regulator | None,
    keys: tuple[str, ...],
    now: float,
    *,
    audit: Callable[..., Awaitable[None]],
    log: logging.Logger,
    reason: str,
    soft: tuple[str, ...] = (),
    **where: object,
) -> None:
    """Count one request or failure on ``keys``; each key it bans is audited as ``regulation.ban`` with
    ``where`` (the client address). A storage error is logged, never raised: regulation must not turn a
    storage hiccup into a refused (or granted) login."""
    if regulator is None:
        return
    for key in regulator.failure(keys, now, soft=soft):
        await audit(
            now,
            "system",
            "regulation.ban",
            subject=key[:320],
            reason=reason,
            **where,
            seconds=regulator.policy.ban_time,
        )


@dataclass(frozen=True, slots=True)
class NewChallenge:
    captcha_id: str
    code: str
    expires_at: int


async def new_challenge(
    store: IdentityStore,
    keyring: Keyring,
    *,
    random_bytes: Callable[[int], bytes],
    choice: Callable[[str], str],
    kind: str,
    subject: str,
    client_id: str,
    app_hash: str,
    code_challenge: str,
    now: float,
) -> NewChallenge:
    """Make a captcha code and store its challenge (only the code's MAC is kept)."""
    captcha_id = b64u_encode(random_bytes(16))
    code = cap.new_code(choice)
    key_id, key = keyring.key(Purpose.CAPTCHA)
    expires = int(now) + cap.TTL_SECONDS
    await store.add_challenge(
        cap.Challenge(
            id=captcha_id,
            kind=kind,
            subject=subject,
            client_id=client_id,
            app_hash=app_hash,
            code_challenge=code_challenge,
            code_mac=cap.code_mac(key, captcha_id, code),
            key_id=key_id,
            created_at=now,
            expires_at=expires,
        )
    )
    return NewChallenge(captcha_id, code, expires)


def seal_for(enrollment: Enrollment, plain: cap.CaptchaPlaintext) -> str:
    """The captcha payload sealed to the enrolled authenticator's key with its AEAD."""
    return cap.seal_captcha(
        plain, b64u_decode(enrollment.public_key, field="public_key", length=32), aead=enrollment.aead
    )


async def append_audit(audit: AuditLog | None, now: float, actor: str, action: str, detail: dict[str, object]) -> None:
    """Append an event to ``audit`` (nothing without one); ``detail["subject"]`` becomes the event's subject."""
    if audit is None:
        return
    subject = detail.pop("subject", None)
    await audit.append(
        AuditEvent(
            at=datetime.fromtimestamp(now, UTC),
            actor=actor,
            action=action,
            subject=str(subject) if subject is not None else None,
            detail=detail,
        )
    )
