"""Device cookies: proof that this browser signed in as an account before (docs/regulation.md).

A wrong captcha answer counts against the account (a *soft* key, see
:mod:`tokenward.apptokens.regulation`). When an account collects too many, requests that
cannot show they come from a browser which signed in as it before are refused — and those
that can go on, so a stranger guessing against somebody's address cannot lock them out
(NIST SP 800-63B §5.2.2; Authelia and others do the same).

The cookie is ``kid.payload.mac``: ``payload`` is the issue time and 12 random bytes;
``mac = HMAC-SHA256(device key, "device|" subject "|" payload)`` under the time code's
``device`` key (current or previous: a cookie outlives one rotation, not two). The subject is
not in the cookie: it is the account the request names, so a cookie proves that account only.
Pure: keys, ``now`` and randomness are passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from tokenward.errors import BadRequest
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Keyring, Purpose

__all__ = ["DEVICE_COOKIE", "DEVICE_MAX_AGE", "device_proves", "issue_device_token"]

DEVICE_COOKIE = "tokenward_device"
DEVICE_MAX_AGE = 180 * 86400
"""Seconds a device cookie is honoured (and its ``Max-Age``)."""

_MAX_LENGTH = 200


def _mac(key: bytes, subject: str, payload: str) -> str:
    message = b"device|" + subject.lower().encode("utf-8", "surrogatepass") + b"|" + payload.encode("ascii")
    return b64u_encode(hmac.new(key, message, hashlib.sha256).digest())


def issue_device_token(keyring: Keyring, subject: str, *, now: float, nonce: bytes) -> str:
    """A device cookie value for a browser that just signed in as ``subject`` (``nonce``: 12 random bytes)."""
    kid, key = keyring.key(Purpose.DEVICE)
    payload = b64u_encode(struct.pack(">Q", int(now)) + nonce)
    return f"{kid}.{payload}.{_mac(key.reveal(), subject, payload)}"


def device_proves(keyring: Keyring, token: str | None, subject: str, *, now: float) -> bool:
    """Whether ``token`` is a device cookie issued to ``subject``, under a key still accepted, and not too old."""
    if not token or len(token) > _MAX_LENGTH or token.count(".") != 2:
        return False
    kid, payload, mac = token.split(".")
    key = keyring.key_by_id(Purpose.DEVICE, kid, now=now)
    if key is None or not hmac.compare_digest(mac.encode(), _mac(key.reveal(), subject, payload).encode()):
        return False
    try:
        raw = b64u_decode(payload, field="device")
    except BadRequest:
        return False
    if len(raw) < 8:
        return False
    issued: int = struct.unpack(">Q", raw[:8])[0]
    return issued <= now + 60 and now - issued <= DEVICE_MAX_AGE
