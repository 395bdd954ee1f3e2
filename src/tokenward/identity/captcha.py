"""The encrypted captcha: a one-time code sealed with HPKE to the user's authenticator (docs/protocol.md §4).

Pure functions: the caller passes ``now``, keys and randomness. The server keeps only a MAC of
the code (:func:`code_mac`), never the code itself.

HPKE (RFC 9180) base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AEAD, from
``cryptography.hazmat.primitives.hpke``; ``info`` = ``"tokenward/v1/captcha|" + captcha_id``. The AEAD
is the enrolment's choice (:data:`AEADS`): ChaCha20-Poly1305 (default, payload ``TWC1.<id>.<data>``)
or AES-256-GCM for authenticators built on WebCrypto, which has no ChaCha20-Poly1305
(payload ``TWC2.aes256gcm.<id>.<data>``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Conflict, TooManyRequests, Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Secret
from tokenward.records.challenges import Challenge

__all__ = [
    "AEADS",
    "ALPHABET",
    "CAPTCHA_PREFIX",
    "CAPTCHA_PREFIX_SUITE",
    "CODE_LENGTH",
    "DEFAULT_AEAD",
    "MAX_ATTEMPTS",
    "TTL_SECONDS",
    "CaptchaPlaintext",
    "Challenge",
    "check_pkce",
    "check_usable",
    "code_mac",
    "new_code",
    "normalize_code",
    "open_captcha",
    "pkce_challenge",
    "seal_captcha",
    "validate_aead",
    "validate_code_challenge",
]

#: No 0/O/Q, 1/I/L, 2/Z, 5/S, 8/B, 6/G: letters and digits people do not confuse.
ALPHABET = "ACDEFHJKMNPRTUVWXY3479"
CODE_LENGTH = 5
MAX_ATTEMPTS = 5
TTL_SECONDS = 120
#: ``TWC1.<id>.<data>``: ChaCha20-Poly1305, the format every authenticator reads.
CAPTCHA_PREFIX = "TWC1"
#: ``TWC2.<aead>.<id>.<data>``: the payload names its AEAD (any of :data:`AEADS`).
CAPTCHA_PREFIX_SUITE = "TWC2"
DEFAULT_AEAD = "chacha20poly1305"
#: The AEADs an enrolment may choose (``aead`` at ``POST /api/enroll``), by their wire names.
AEADS = {
    "chacha20poly1305": hpke.AEAD.CHACHA20_POLY1305,
    "aes256gcm": hpke.AEAD.AES_256_GCM,
}
_SUITES = {name: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, aead) for name, aead in AEADS.items()}
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_CAPTCHA_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_code(choice: Callable[[str], str]) -> str:
    """A fresh code; pass ``secrets.choice``."""
    return "".join(choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str:
    """What the user typed, upper-cased without spaces or dashes."""
    return re.sub(r"[\s-]", "", text).upper()


def code_mac(key: Secret, captcha_id: str, code: str) -> str:
    """HMAC-SHA256 hex of ``"tokenward/v1/captcha|" + captcha_id + "|" + code`` under the captcha key."""
    message = f"tokenward/v1/captcha|{captcha_id}|{normalize_code(code)}".encode()
    return hmac.new(key.reveal(), message, hashlib.sha256).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: ``BASE64URL(SHA256(ASCII(code_verifier)))``."""
    return b64u_encode(hashlib.sha256(verifier.encode("ascii")).digest())


def validate_code_challenge(value: str) -> str:
    if not _CHALLENGE.match(value):
        raise BadRequest(
            "code_challenge must be an S256 PKCE challenge (43 base64url characters)", code=ErrorCode.PKCE_MALFORMED
        )
    return value


def check_pkce(verifier: str, challenge: str) -> None:
    """Raise ``pkce_mismatch`` unless ``verifier`` hashes to ``challenge`` (RFC 7636 §4.6)."""
    if not _VERIFIER.match(verifier):
        raise BadRequest(
            "code_verifier must be 43 to 128 unreserved characters (RFC 7636)", code=ErrorCode.PKCE_MALFORMED
        )
    if not hmac.compare_digest(pkce_challenge(verifier), challenge):
        raise Unauthorized(
            "code_verifier does not match the code_challenge of this captcha", code=ErrorCode.PKCE_MISMATCH
        )


@dataclass(frozen=True, slots=True)
class CaptchaPlaintext:
    """What the authenticator shows: the code and the context to check it against (anti-phishing)."""

    captcha_id: str
    code: str
    server: str
    subject: str
    client_name: str
    origin: str
    expires_at: int

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": 1,
                "cid": self.captcha_id,
                "code": self.code,
                "srv": self.server,
                "sub": self.subject,
                "app": self.client_name,
                "org": self.origin,
                "exp": self.expires_at,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()


def _info(captcha_id: str) -> bytes:
    return f"tokenward/v1/captcha|{captcha_id}".encode()


def validate_aead(name: str) -> str:
    """An enrolment's AEAD name, or BadRequest ``aead_unsupported``."""
    if name not in AEADS:
        raise BadRequest(f"aead must be one of {', '.join(sorted(AEADS))}", code=ErrorCode.AEAD_UNSUPPORTED)
    return name


def seal_captcha(plain: CaptchaPlaintext, public_key: bytes, *, aead: str = DEFAULT_AEAD) -> str:
    """The QR payload text: ``TWC1.<captcha_id>.<b64u(enc || ct)>`` for ChaCha20-Poly1305 (so every
    authenticator reads it), ``TWC2.<aead>.<captcha_id>.<b64u(enc || ct)>`` for another AEAD."""
    recipient = X25519PublicKey.from_public_bytes(public_key)
    sealed = b64u_encode(_SUITES[validate_aead(aead)].encrypt(plain.to_json(), recipient, info=_info(plain.captcha_id)))
    if aead == DEFAULT_AEAD:
        return f"{CAPTCHA_PREFIX}.{plain.captcha_id}.{sealed}"
    return f"{CAPTCHA_PREFIX_SUITE}.{aead}.{plain.captcha_id}.{sealed}"


def _split(text: str) -> tuple[str, str, str]:
    """``(aead, captcha_id, data)`` of a ``TWC1`` or ``TWC2`` payload."""
    parts = text.strip().split(".")
    if len(parts) == 3 and parts[0] == CAPTCHA_PREFIX:
        parts = [CAPTCHA_PREFIX_SUITE, DEFAULT_AEAD, *parts[1:]]
    if len(parts) != 4 or parts[0] != CAPTCHA_PREFIX_SUITE or parts[1] not in AEADS or not _CAPTCHA_ID.match(parts[2]):
        raise BadRequest(
            "not a tokenward captcha (expected TWC1.<id>.<data> or TWC2.<aead>.<id>.<data>)",
            code=ErrorCode.CAPTCHA_UNREADABLE,
        )
    return parts[1], parts[2], parts[3]


def open_captcha(text: str, private_key: X25519PrivateKey) -> CaptchaPlaintext:
    """The authenticator's side: decrypt a captcha payload; BadRequest ``captcha_unreadable`` if it is not ours."""
    aead, captcha_id, body = _split(text)
    sealed = b64u_decode(body, field="captcha", code=ErrorCode.CAPTCHA_UNREADABLE)
    try:
        data = json.loads(_SUITES[aead].decrypt(sealed, private_key, info=_info(captcha_id)))
        plain = CaptchaPlaintext(
            captcha_id=str(data["cid"]),
            code=str(data["code"]),
            server=str(data["srv"]),
            subject=str(data["sub"]),
            client_name=str(data["app"]),
            origin=str(data["org"]),
            expires_at=int(data["exp"]),
        )
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise BadRequest(
            "this captcha was not encrypted to this authenticator's key", code=ErrorCode.CAPTCHA_UNREADABLE
        ) from None
    if plain.captcha_id != captcha_id:
        raise BadRequest("captcha id mismatch", code=ErrorCode.CAPTCHA_UNREADABLE)
    return plain


def check_usable(challenge: Challenge, *, now: float) -> None:
    """Raise the specific error when a challenge can no longer be answered."""
    if challenge.consumed_at is not None:
        raise Conflict("this captcha was already used; request a new one", code=ErrorCode.CAPTCHA_USED)
    if now >= challenge.expires_at:
        raise Unauthorized("this captcha has expired; request a new one", code=ErrorCode.CAPTCHA_EXPIRED)
    if challenge.attempts >= MAX_ATTEMPTS:
        raise TooManyRequests(
            f"this captcha had {MAX_ATTEMPTS} wrong attempts; request a new one",
            code=ErrorCode.CAPTCHA_ATTEMPTS_EXHAUSTED,
        )
