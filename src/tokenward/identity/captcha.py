"""The encrypted captcha: a one-time code sealed with HPKE to the user's authenticator (docs/protocol.md §4).

Pure functions: the caller passes ``now``, keys and randomness. The server keeps only a MAC of
the code (:func:`code_mac`), never the code itself.

HPKE (RFC 9180) base mode, suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305,
from ``cryptography.hazmat.primitives.hpke``; ``info`` = ``"tokenward/v1/captcha|" + captcha_id``.
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

from tokenward.errors import BadRequest, Conflict, TooManyRequests, Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.keys import Secret

__all__ = [
    "ALPHABET",
    "CAPTCHA_PREFIX",
    "CODE_LENGTH",
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
    "validate_code_challenge",
]

#: No 0/O/Q, 1/I/L, 2/Z, 5/S, 8/B, 6/G: letters and digits people do not confuse.
ALPHABET = "ACDEFHJKMNPRTUVWXY3479"
CODE_LENGTH = 5
MAX_ATTEMPTS = 5
TTL_SECONDS = 120
CAPTCHA_PREFIX = "TWC1"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
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
            "code_challenge must be an S256 PKCE challenge (43 base64url characters)", code="pkce_malformed"
        )
    return value


def check_pkce(verifier: str, challenge: str) -> None:
    """Raise ``pkce_mismatch`` unless ``verifier`` hashes to ``challenge`` (RFC 7636 §4.6)."""
    if not _VERIFIER.match(verifier):
        raise BadRequest("code_verifier must be 43 to 128 unreserved characters (RFC 7636)", code="pkce_malformed")
    if not hmac.compare_digest(pkce_challenge(verifier), challenge):
        raise Unauthorized("code_verifier does not match the code_challenge of this captcha", code="pkce_mismatch")


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


def seal_captcha(plain: CaptchaPlaintext, public_key: bytes) -> str:
    """``TWC1.<captcha_id>.<base64url(enc || ciphertext)>``, the QR payload text."""
    recipient = X25519PublicKey.from_public_bytes(public_key)
    sealed = _SUITE.encrypt(plain.to_json(), recipient, info=_info(plain.captcha_id))
    return f"{CAPTCHA_PREFIX}.{plain.captcha_id}.{b64u_encode(sealed)}"


def open_captcha(text: str, private_key: X25519PrivateKey) -> CaptchaPlaintext:
    """The authenticator's side: decrypt a captcha payload; BadRequest ``captcha_unreadable`` if it is not ours."""
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != CAPTCHA_PREFIX or not _CAPTCHA_ID.match(parts[1]):
        raise BadRequest("not a tokenward captcha (expected TWC1.<id>.<data>)", code="captcha_unreadable")
    sealed = b64u_decode(parts[2], field="captcha", code="captcha_unreadable")
    try:
        data = json.loads(_SUITE.decrypt(sealed, private_key, info=_info(parts[1])))
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
            "this captcha was not encrypted to this authenticator's key", code="captcha_unreadable"
        ) from None
    if plain.captcha_id != parts[1]:
        raise BadRequest("captcha id mismatch", code="captcha_unreadable")
    return plain


@dataclass(frozen=True, slots=True)
class Challenge:
    """Server-side state of one captcha (or one resource login challenge, ``kind="resource"``)."""

    id: str
    kind: str
    subject: str
    client_id: str
    app_hash: str
    code_challenge: str
    code_mac: str
    key_id: str
    created_at: float
    expires_at: float
    attempts: int = 0
    consumed_at: float | None = None


def check_usable(challenge: Challenge, *, now: float) -> None:
    """Raise the specific error when a challenge can no longer be answered."""
    if challenge.consumed_at is not None:
        raise Conflict("this captcha was already used; request a new one", code="captcha_used")
    if now >= challenge.expires_at:
        raise Unauthorized("this captcha has expired; request a new one", code="captcha_expired")
    if challenge.attempts >= MAX_ATTEMPTS:
        raise TooManyRequests(
            f"this captcha had {MAX_ATTEMPTS} wrong attempts; request a new one", code="captcha_attempts_exhausted"
        )
