"""The key schedule: one key per purpose, derived from the time code with HKDF-SHA256.

``key = HKDF-SHA256(ikm=secret, salt="tokenward/v1/" + label, info="tokenward/v1/" + purpose, L=32)``

The keyring holds the current code and, during its grace period, the previous one, so that a
rotation does not break identifiers made a moment before. See docs/keys.md for the labels.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.keys.secret import Secret
from tokenward.keys.timecode import TimeCode

__all__ = ["TIMECODE_MISMATCH", "Keyring", "Purpose", "derive_key"]

KEY_BYTES = 32
#: The error code for anything made under a time code this instance does not accept.
TIMECODE_MISMATCH = ErrorCode.TIMECODE_MISMATCH


class Purpose(enum.StrEnum):
    """Every purpose a time-code key is used for. One purpose, one key: never reuse a key."""

    SOURCE_IDENTIFIER = "source-identifier"
    CLIENT_TOKEN_SIGNING = "client-token-signing"
    CAPTCHA = "captcha"
    CONFIG_TOKEN_ENCRYPTION = "config-token-encryption"
    CONFIG_TOKEN_SIGNING = "config-token-signing"
    SESSION_COOKIE = "session-cookie"
    CSRF = "csrf"
    PSEUDONYM = "pseudonym"
    FORWARD_AUTH_COOKIE = "forward-auth-cookie"
    DECISION_LOG = "decision-log"
    DEVICE = "device"


def derive_key(code: TimeCode, purpose: Purpose) -> Secret:
    """The 32-byte key for ``purpose`` under ``code``."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=f"tokenward/v1/{code.label}".encode("ascii"),
        info=f"tokenward/v1/{purpose.value}".encode("ascii"),
    )
    return Secret(hkdf.derive(code.secret.reveal()))


@dataclass(frozen=True)
class Keyring:
    """Current time code plus an optional previous one (accepted until ``previous_until``)."""

    current: TimeCode
    previous: TimeCode | None = None
    previous_until: float | None = None

    def key(self, purpose: Purpose) -> tuple[str, Secret]:
        """``(key_id, key)`` to make something new with."""
        return self.current.key_id, derive_key(self.current, purpose)

    def verification_keys(self, purpose: Purpose, *, now: float) -> list[tuple[str, Secret]]:
        """Keys to try when reading: current first, then the previous one while its grace lasts."""
        keys = [self.key(purpose)]
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            keys.append((self.previous.key_id, derive_key(self.previous, purpose)))
        return keys

    def key_by_id(self, purpose: Purpose, key_id: str, *, now: float) -> Secret | None:
        """The key a token names by ``key_id``, or None if that code is unknown or expired."""
        for kid, key in self.verification_keys(purpose, now=now):
            if kid == key_id:
                return key
        return None

    def mismatch(self, key_id: str, *, what: str, now: float) -> Unauthorized:
        """The 401 ``timecode_mismatch`` for ``what`` (e.g. "source identifier") made under ``key_id``.

        Distinct from a tampered token: the token is intact but names a time code this instance
        does not hold. Key ids are public (they travel in every token and in the JWKS), so the
        sentence names them to let the operator compare with ``tokenward timecode show``.
        """
        held = [kid for kid, _ in self.verification_keys(Purpose.SOURCE_IDENTIFIER, now=now)]
        if self.previous is not None and key_id == self.previous.key_id:
            detail = (
                f"the {what} was made under the previous time code {key_id}, whose grace period is over; log in again"
            )
        else:
            detail = (
                f"the {what} was made under time code {key_id}, which this instance does not hold "
                f"(it accepts {', '.join(held)}): it comes from another cluster or from an instance whose time code "
                "was not synchronised. Operator: run `tokenward timecode show` on both instances and copy the "
                "cluster's code to this one with `tokenward timecode set -`"
            )
        return Unauthorized(detail, code=TIMECODE_MISMATCH)

    def __repr__(self) -> str:
        prev = self.previous.key_id if self.previous else None
        return f"Keyring(current={self.current.key_id}, previous={prev})"
