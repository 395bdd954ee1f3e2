"""What the identity flows share: e-mail and key checks, the records they return, audit and regulation helpers.

The flows themselves live in :mod:`~tokenward.identity.enrolment`, :mod:`~tokenward.identity.captcha_login`,
:mod:`~tokenward.identity.resource_login`, :mod:`~tokenward.identity.sessions` and
:mod:`~tokenward.identity.token_service`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from tokenward.apptokens.regulation import Regulator, ip_key, user_key
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.identity import captcha_checks as checks
from tokenward.identity.client_tokens import is_weak_x25519
from tokenward.identity.encoding import b64u_decode
from tokenward.identity.source import SourceIdentity
from tokenward.storage.audit import AuditLog

__all__ = [
    "ENROLLMENT_CODE_TTL",
    "CaptchaIssued",
    "IssuedSession",
    "audit_event",
    "check_limit",
    "count_failure",
    "enrollment_code_hash",
    "key_fingerprint",
    "normalize_email",
    "regulation_keys",
    "session_key",
    "x25519",
]

ENROLLMENT_CODE_TTL = 24 * 3600

log = logging.getLogger("tokenward.identity")


@dataclass(frozen=True, slots=True)
class CaptchaIssued:
    captcha_id: str
    payload: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedSession:
    source_identifier: str
    identity: SourceIdentity


def normalize_email(value: str) -> str:
    """``value`` stripped and lower-cased; 400 ``email_invalid`` unless it looks like an e-mail address."""
    value = value.strip().lower()
    local, at, domain = value.rpartition("@")
    if not (at and local and domain) or len(value) > 254 or any(c.isspace() for c in value):
        raise BadRequest("email is not an e-mail address", code=ErrorCode.EMAIL_INVALID)
    return value


def regulation_keys(kind: str, email: str, client_ip: str | None) -> tuple[str, ...]:
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


def session_key(value: str) -> str:
    return x25519(value, "session_key")


_X25519_CODES = {
    "session_key": (ErrorCode.SESSION_KEY_INVALID, ErrorCode.SESSION_KEY_WEAK),
    "public_key": (ErrorCode.PUBLIC_KEY_INVALID, ErrorCode.PUBLIC_KEY_WEAK),
}


def x25519(value: str, field: str) -> str:
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


async def audit_event(audit: AuditLog | None, now: float, actor: str, action: str, **detail: object) -> None:
    await checks.append_audit(audit, now, actor, action, detail)


async def check_limit(regulator: Regulator | None, keys: tuple[str, ...], now: float, code: ErrorCode) -> None:
    detail = "too many captcha requests; try again later" if code == ErrorCode.CAPTCHA_RATE_LIMITED else None
    await checks.check(regulator, keys, now, code, detail=detail)


async def count_failure(
    regulator: Regulator | None,
    keys: tuple[str, ...],
    now: float,
    *,
    audit: AuditLog | None,
    client_ip: str | None,
    reason: str,
    soft: tuple[str, ...] = (),
) -> None:
    async def append(now: float, actor: str, action: str, **detail: object) -> None:
        await audit_event(audit, now, actor, action, **detail)

    await checks.count_failure(regulator, keys, now, audit=append, log=log, reason=reason, soft=soft, ip=client_ip)
