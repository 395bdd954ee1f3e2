"""The client's conversations with tokenward as sans-I/O generators (docs/protocol.md §4 to §8).

A flow yields :class:`Call` (an HTTP request to tokenward; it is sent the :class:`Reply`) or
:class:`Ask` (a captcha for the authenticator; it is sent the code) and returns its result. The
sync and async clients (:mod:`tokenward.client.session`) only drive them, so the protocol logic
exists once.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenward.errorcodes import ErrorCode
from tokenward.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TokenwardError,
    TooManyRequests,
    Unauthorized,
)
from tokenward.identity.captcha import pkce_challenge
from tokenward.identity.client_tokens import ClientTokenClaims, b64u_of_public, channel_key, claims_from_payload
from tokenward.identity.encoding import b64u_decode, b64u_encode
from tokenward.identity.resources import login_message

__all__ = [
    "Ask",
    "Authenticator",
    "Call",
    "CaptchaChallenge",
    "ClientToken",
    "Reply",
    "Session",
    "captcha_login",
    "client_token",
    "error_from_reply",
    "resource_login",
]

_KNOWN_CODES = frozenset(code.value for code in ErrorCode)


@dataclass(frozen=True, slots=True)
class CaptchaChallenge:
    """What the authenticator is asked to read: the sealed captcha (also the QR code's text)."""

    email: str
    captcha_id: str
    captcha: str
    qr_svg: str
    expires_at: int


#: Answers a captcha with the 5-character code (a prompt, the reference authenticator, a test).
Authenticator = Callable[[CaptchaChallenge], str | Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in session: the source identifier and the session's X25519 private key."""

    subject: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: int
    kind: str  # "user" or "resource"
    source_identifier: str = field(repr=False)
    session_key: X25519PrivateKey = field(repr=False)
    #: After a captcha login: the device token that exempts this client from the account's limit on wrong
    #: answers next time (docs/regulation.md); :class:`Tokenward` sends it back by itself.
    device: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ClientToken:
    """A client token for one destination, with the channel cipher for requests under it."""

    destination: str
    claims: ClientTokenClaims
    token: str = field(repr=False)
    aead: ChaCha20Poly1305 = field(repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    bearer: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Ask:
    challenge: CaptchaChallenge


Flow = Generator[Call | Ask, Any, Any]

_BY_STATUS: dict[int, type[TokenwardError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


def error_from_reply(reply: Reply) -> TokenwardError:
    """tokenward's error answer as the exception of the same code (the detail sentence kept)."""
    try:
        doc = json.loads(reply.body)
        code, detail = str(doc["error"]), str(doc["detail"])
    except (ValueError, KeyError, TypeError):
        code, detail = ErrorCode.ISSUER_ERROR, f"tokenward answered HTTP {reply.status} without an error body"
    cls = _BY_STATUS.get(reply.status, ServiceUnavailable if reply.status >= 500 else BadRequest)
    # The server's code, as a member when this version knows it; a newer server's code passes through as is.
    known = ErrorCode(code) if code in _KNOWN_CODES else cast(ErrorCode, code)
    return cls(detail, code=known)


def _json(reply: Reply) -> dict[str, Any]:
    if not 200 <= reply.status < 300:
        raise error_from_reply(reply)
    try:
        doc = json.loads(reply.body)
    except ValueError:
        raise ServiceUnavailable(
            "tokenward answered with something that is not JSON", code=ErrorCode.ISSUER_ERROR
        ) from None
    if not isinstance(doc, dict):
        raise ServiceUnavailable(
            "tokenward answered with something that is not a JSON object", code=ErrorCode.ISSUER_ERROR
        )
    return doc


def _session(doc: dict[str, Any], *, kind: str, key: X25519PrivateKey) -> Session:
    return Session(
        subject=str(doc["subject"]),
        client_id=str(doc["client_id"]),
        scopes=tuple(str(s) for s in doc["scopes"]),
        expires_at=int(doc["expires_at"]),
        kind=kind,
        source_identifier=str(doc["source_identifier"]),
        session_key=key,
        device=str(doc["device"]) if doc.get("device") else None,
    )


def captcha_login(
    *,
    email: str,
    client_id: str,
    origin: str | None = None,
    app_hash: str | None = None,
    scopes: tuple[str, ...] = (),
    device: str | None = None,
) -> Flow:
    """Captcha 2FA (§4, §5): ask for a captcha, have the authenticator read it, verify with PKCE.

    ``device``: the device token of an earlier login as ``email`` (:attr:`Session.device`), if any.
    """
    verifier = secrets.token_urlsafe(48)
    body: dict[str, Any] = {"email": email, "client_id": client_id, "code_challenge": pkce_challenge(verifier)}
    if device is not None:
        body["device"] = device
    if app_hash is not None:
        body["app_hash"] = app_hash
    else:
        body["origin"] = origin
    issued = _json((yield Call("POST", "/api/captcha", body)))
    challenge = CaptchaChallenge(
        email=email,
        captcha_id=str(issued["captcha_id"]),
        captcha=str(issued["captcha"]),
        qr_svg=str(issued.get("qr_svg", "")),
        expires_at=int(issued["expires_at"]),
    )
    code = yield Ask(challenge)
    key = X25519PrivateKey.generate()
    verify = {
        "captcha_id": challenge.captcha_id,
        "code": str(code).strip(),
        "code_verifier": verifier,
        "session_key": b64u_of_public(key),
        "scopes": list(scopes),
    }
    if device is not None:
        verify["device"] = device
    return _session(_json((yield Call("POST", "/api/captcha/verify", verify))), kind="user", key=key)


def resource_login(*, resource: str, client_id: str, signing_key: Ed25519PrivateKey) -> Flow:
    """Resource machine login (§8): sign the server's challenge with the registered Ed25519 key."""
    server_reply = yield Call("GET", "/api/resourceinfo")
    if server_reply.status != 200:
        raise error_from_reply(server_reply)
    server = server_reply.body.decode("utf-8").strip()
    challenge = _json((yield Call("POST", "/api/resource/challenge", {"resource": resource, "client_id": client_id})))
    key = X25519PrivateKey.generate()
    session_key = b64u_of_public(key)
    message = login_message(
        server=server,
        challenge_id=str(challenge["challenge_id"]),
        challenge=str(challenge["challenge"]),
        client_id=client_id,
        session_key=session_key,
    )
    login = {
        "challenge_id": challenge["challenge_id"],
        "challenge": challenge["challenge"],
        "signature": b64u_encode(signing_key.sign(message)),
        "session_key": session_key,
    }
    return _session(_json((yield Call("POST", "/api/resource/login", login))), kind="resource", key=key)


def client_token(session: Session, destination: str) -> Flow:
    """A client token for ``destination`` (§6) and the channel key to use under it (§7).

    The claims are read without checking the signature: they come from the issuer over the
    connection the client chose; the resource server is the one that verifies.
    """
    doc = _json((yield Call("POST", "/api/client-token", {"destination": destination}, session.source_identifier)))
    token = str(doc["client_token"])
    try:
        payload = json.loads(b64u_decode(token.split(".")[1], field="client token"))
        claims = claims_from_payload(payload)
    except (ValueError, KeyError, TypeError, IndexError, TokenwardError):
        raise ServiceUnavailable(
            "tokenward answered with a client token that cannot be read", code=ErrorCode.ISSUER_ERROR
        ) from None
    return ClientToken(
        destination=destination,
        claims=claims,
        token=token,
        aead=ChaCha20Poly1305(channel_key(session.session_key, claims)),
    )
