"""Requests between a client and a resource server under a client token (docs/protocol.md §7.1).

Sans-I/O: both ends call these with the channel key (:func:`tokenward.identity.client_tokens.channel_key`)
and get bytes or header values back. Every request carries ``Authorization: Bearer <client token>``
and either

* a **proof** header ``Tokenward-Proof: <ts>.<nonce>.<tag>`` — ``tag`` is the ChaCha20-Poly1305 tag
  of an empty message under the channel key over the request line (:func:`request_aad`): only the
  holder of the source session's private key can make it, and ``(jti, nonce)`` is never accepted
  twice; or
* a **sealed** body (``Content-Type: application/tokenward-sealed+json``)
  ``{"client_token", "ts", "nonce", "ciphertext", "content_type"}`` — the request body encrypted
  under the same key with the same associated data. The answer to a sealed request is sealed:
  ``{"nonce", "ciphertext", "content_type"}`` with :func:`response_aad`.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, TokenwardError, Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode

__all__ = [
    "PROOF_HEADER",
    "SEALED_CONTENT_TYPE",
    "SealedRequest",
    "make_proof",
    "open_request",
    "open_response",
    "parse_proof",
    "read_sealed_request",
    "request_aad",
    "response_aad",
    "seal_request",
    "seal_response",
    "verify_proof",
]

PROOF_HEADER = "tokenward-proof"
SEALED_CONTENT_TYPE = "application/tokenward-sealed+json"
NONCE_BYTES = 12
_MAX_CONTENT_TYPE = 200
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def request_aad(*, token_id: str, ts: int, method: str, target: str, content_type: str) -> bytes:
    """Associated data of a request: ``tokenward/v1/request|jti|ts|METHOD|target|content_type``.

    ``target`` is the path with its query string exactly as sent (``/items?id=3``).
    """
    return f"tokenward/v1/request|{token_id}|{ts}|{method.upper()}|{target}|{content_type}".encode()


def response_aad(*, token_id: str, request_nonce: str, status: int, content_type: str) -> bytes:
    """Associated data of a sealed answer: ``tokenward/v1/response|jti|request nonce|status|content_type``."""
    return f"tokenward/v1/response|{token_id}|{request_nonce}|{status}|{content_type}".encode()


def make_proof(aead: ChaCha20Poly1305, *, token_id: str, ts: int, nonce: bytes, method: str, target: str) -> str:
    """The ``Tokenward-Proof`` value for an unsealed request."""
    aad = request_aad(token_id=token_id, ts=ts, method=method, target=target, content_type="")
    tag = aead.encrypt(nonce, b"", aad)
    return f"{ts}.{b64u_encode(nonce)}.{b64u_encode(tag)}"


def parse_proof(value: str) -> tuple[int, bytes, bytes]:
    """``(ts, nonce, tag)`` of a proof header; ``request_proof_invalid`` when it is not one."""
    parts = value.split(".")
    # Lengths first (12-byte nonce = 16 characters, 16-byte tag = 22): nothing longer is decoded.
    if len(parts) != 3 or len(parts[1]) != 16 or len(parts[2]) != 22 or not parts[0].isdigit() or len(parts[0]) > 12:
        raise Unauthorized(
            "Tokenward-Proof must be `<unix seconds>.<nonce>.<tag>`", code=ErrorCode.REQUEST_PROOF_INVALID
        )
    try:
        # One decode for both: 16 characters are whole base64 quanta, so the two can be joined.
        raw = binascii.a2b_base64((parts[1] + parts[2] + "==").encode().translate(_FROM_URLSAFE), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeError):
        raw = b""
    nonce, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if len(raw) != NONCE_BYTES + 16:
        raise Unauthorized(
            "Tokenward-Proof's nonce or tag is not base64url of the right length", code=ErrorCode.REQUEST_PROOF_INVALID
        )
    # The replay window keys on the decoded nonce, so another spelling of the same bytes is the same request.
    return int(parts[0]), nonce, tag


def verify_proof(
    aead: ChaCha20Poly1305, *, token_id: str, ts: int, nonce: bytes, tag: bytes, method: str, target: str
) -> None:
    """Raise ``request_proof_invalid`` unless ``tag`` proves this request line under the channel key."""
    aad = request_aad(token_id=token_id, ts=ts, method=method, target=target, content_type="")
    try:
        aead.decrypt(nonce, tag, aad)
    except InvalidTag:
        raise Unauthorized(
            "Tokenward-Proof does not match this request and client token (made for another request, "
            "altered, or by someone without the session key)",
            code=ErrorCode.REQUEST_PROOF_INVALID,
        ) from None


@dataclass(frozen=True, slots=True)
class SealedRequest:
    """An opened sealed request body."""

    client_token: str
    ts: int
    nonce: str  # base64url, as sent (the answer's associated data uses it)
    nonce_bytes: bytes  # the replay window's key
    content_type: str
    body: bytes


def seal_request(
    aead: ChaCha20Poly1305,
    *,
    client_token: str,
    token_id: str,
    ts: int,
    nonce: bytes,
    method: str,
    target: str,
    content_type: str,
    body: bytes,
) -> bytes:
    """The sealed JSON body for a request (docs/protocol.md §7.1)."""
    aad = request_aad(token_id=token_id, ts=ts, method=method, target=target, content_type=content_type)
    doc = {
        "client_token": client_token,
        "ts": ts,
        "nonce": b64u_encode(nonce),
        "ciphertext": b64u_encode(aead.encrypt(nonce, body, aad)),
        "content_type": content_type,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def read_sealed_request(data: bytes) -> tuple[str, int, str, bytes, bytes, str]:
    """``(client_token, ts, nonce text, nonce, ciphertext, content_type)``; ``sealed_body_malformed`` otherwise."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise TypeError("body")
        token, ts, nonce_text = doc["client_token"], doc["ts"], doc["nonce"]
        ciphertext, content_type = doc["ciphertext"], doc.get("content_type", "")
        if not (isinstance(token, str) and isinstance(nonce_text, str) and isinstance(ciphertext, str)):
            raise TypeError("member")
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0:
            raise TypeError("ts")
        if not isinstance(content_type, str) or len(content_type) > _MAX_CONTENT_TYPE:
            raise TypeError("content_type")
        nonce = b64u_decode(nonce_text, field="nonce", length=NONCE_BYTES)
        sealed = b64u_decode(ciphertext, field="ciphertext")
    except (ValueError, KeyError, TypeError, TokenwardError):
        raise BadRequest(
            "a sealed body must be JSON {client_token, ts, nonce, ciphertext, content_type} "
            "with a 12-byte base64url nonce",
            code=ErrorCode.SEALED_BODY_MALFORMED,
        ) from None
    return token, ts, nonce_text, nonce, sealed, content_type


def open_request(aead: ChaCha20Poly1305, *, token_id: str, method: str, target: str, data: bytes) -> SealedRequest:
    """Open a sealed request body; ``sealed_body_unreadable`` when the key or request line do not match."""
    token, ts, nonce_text, nonce, sealed, content_type = read_sealed_request(data)
    aad = request_aad(token_id=token_id, ts=ts, method=method, target=target, content_type=content_type)
    try:
        body = aead.decrypt(nonce, sealed, aad)
    except InvalidTag:
        raise Unauthorized(
            "the sealed body does not open with this client token's channel key for this request "
            "(sealed for another token or request, or altered)",
            code=ErrorCode.SEALED_BODY_UNREADABLE,
        ) from None
    return SealedRequest(
        client_token=token, ts=ts, nonce=nonce_text, nonce_bytes=nonce, content_type=content_type, body=body
    )


def seal_response(
    aead: ChaCha20Poly1305,
    *,
    token_id: str,
    request_nonce: str,
    status: int,
    content_type: str,
    body: bytes,
    nonce: bytes,
) -> bytes:
    """The sealed JSON answer to a sealed request."""
    aad = response_aad(token_id=token_id, request_nonce=request_nonce, status=status, content_type=content_type)
    doc = {
        "nonce": b64u_encode(nonce),
        "ciphertext": b64u_encode(aead.encrypt(nonce, body, aad)),
        "content_type": content_type,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def open_response(
    aead: ChaCha20Poly1305, *, token_id: str, request_nonce: str, status: int, data: bytes
) -> tuple[str, bytes]:
    """``(content_type, body)`` of a sealed answer; ``sealed_body_unreadable`` when it does not open."""
    try:
        doc = json.loads(data)
        nonce = b64u_decode(str(doc["nonce"]), field="nonce", length=NONCE_BYTES)
        sealed = b64u_decode(str(doc["ciphertext"]), field="ciphertext")
        content_type = str(doc.get("content_type", ""))
        aad = response_aad(token_id=token_id, request_nonce=request_nonce, status=status, content_type=content_type)
        return content_type, aead.decrypt(nonce, sealed, aad)
    except (ValueError, KeyError, TypeError, TokenwardError, InvalidTag):
        raise Unauthorized(
            "the resource server's sealed answer does not open with this channel key",
            code=ErrorCode.SEALED_BODY_UNREADABLE,
        ) from None
