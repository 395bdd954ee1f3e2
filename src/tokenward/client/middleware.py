"""ASGI middleware for resource servers: only requests under a valid client token reach the app.

    app.add_middleware(TokenwardMiddleware, verifier=Verifier(...))

Per request: ``Authorization: Bearer <client token>`` is verified (:class:`Verifier`), then the
request proves itself with the channel key — a ``Tokenward-Proof`` header, or a sealed body that
is opened here and handed to the app as plain bytes (with its own content type); the answer to a
sealed request is sealed before it leaves. The verified :class:`Caller` is
``scope["tokenward.caller"]`` (see :mod:`tokenward.client.fastapi` for the FastAPI dependency).
Refusals are JSON ``{"error", "detail"}``: 401 (token or proof), 403 (client, origin, scope),
400/413 (sealed body), 503 ``jwks_unavailable``. A :class:`~tokenward.errors.TokenwardError`
raised by the app before it answers (e.g. by :func:`tokenward.client.fastapi.require_scopes`) is
rendered the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import secrets
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenward.client.channel import PROOF_HEADER, SEALED_CONTENT_TYPE, seal_response
from tokenward.client.verifier import Caller, VerifiedToken, Verifier
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Forbidden, PayloadTooLarge, TokenwardError, Unauthorized

__all__ = ["CALLER_SCOPE_KEY", "TokenwardMiddleware"]

log = logging.getLogger(__name__)

#: Where the verified caller is put in the ASGI scope.
CALLER_SCOPE_KEY = "tokenward.caller"
_PROOF = PROOF_HEADER.encode()
_SEALED = SEALED_CONTENT_TYPE.encode()


class TokenwardMiddleware:
    """Verify client tokens in front of ``app`` (keyword options are documented in docs/resource-servers.md)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        exempt_paths: Collection[str] = (),
        require_sealed: bool = False,
        max_body_bytes: int = 1 << 20,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.exempt_paths = frozenset(exempt_paths)
        self.require_sealed = require_sealed
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # No proof scheme for WebSockets yet: refuse rather than let them past unchecked.
            await send({"type": "websocket.close", "code": 1008, "reason": "client tokens do not cover WebSockets"})
            return
        authorization = proof = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == _PROOF:
                proof = value
            elif name == b"content-type":
                content_type = value
        started = False

        async def send_started(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            peer = scope.get("client")
            verified = await self.verifier.verify_token(_bearer(authorization), client=peer[0] if peer else None)
            raw_path = scope.get("raw_path") or scope["path"].encode()
            query = scope.get("query_string", b"")
            target = (raw_path + b"?" + query if query else raw_path).decode("latin-1")
            method = scope["method"]
            if content_type is not None and content_type.split(b";", 1)[0].strip().lower() == _SEALED:
                await self._sealed(verified, scope, receive, send, method=method, target=target)
                return
            if self.require_sealed:
                raise Forbidden("this resource server accepts sealed requests only", code=ErrorCode.SEALING_REQUIRED)
            if proof is None:
                raise Unauthorized(
                    "send a Tokenward-Proof header (tokenward.client does) or a sealed body with the client token",
                    code=ErrorCode.REQUEST_PROOF_MISSING,
                )
            await self.verifier.check_proof(verified, proof.decode("latin-1"), method=method, target=target)
            scope[CALLER_SCOPE_KEY] = verified.caller
            await self.app(scope, receive, send_started)
        except TokenwardError as refusal:
            if started:
                raise
            await _refuse(refusal, send, realm=self.verifier.resource)

    async def _sealed(
        self, verified: VerifiedToken, scope: Scope, receive: Receive, send: Send, *, method: str, target: str
    ) -> None:
        body = await self._read_body(receive)
        opened = await self.verifier.open_sealed(verified, body, method=method, target=target)
        headers = [(n, v) for n, v in scope["headers"] if n not in (b"content-type", b"content-length")]
        if opened.content_type:
            headers.append((b"content-type", opened.content_type.encode("latin-1")))
        headers.append((b"content-length", str(len(opened.body)).encode()))
        caller: Caller = dataclasses.replace(verified.caller, sealed=True)
        inner = {**scope, "headers": headers, CALLER_SCOPE_KEY: caller}
        delivered = False

        async def receive_plain() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": opened.body, "more_body": False}
            return await receive()

        start: Message | None = None
        chunks: list[bytes] = []

        async def send_sealed(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = int(start["status"])
            if status in (204, 304) or method == "HEAD":  # no body allowed: nothing to seal
                await send(start)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            out_headers = list(start.get("headers", []))
            inner_type = next((v.decode("latin-1") for n, v in out_headers if n.lower() == b"content-type"), "")
            sealed = seal_response(
                verified.aead,
                token_id=verified.claims.token_id,
                request_nonce=opened.nonce,
                status=status,
                content_type=inner_type,
                body=b"".join(chunks),
                nonce=secrets.token_bytes(12),
            )
            kept = [(n, v) for n, v in out_headers if n.lower() not in (b"content-type", b"content-length")]
            kept += [(b"content-type", _SEALED), (b"content-length", str(len(sealed)).encode())]
            await send({**start, "headers": kept})
            await send({"type": "http.response.body", "body": sealed, "more_body": False})

        try:
            await self.app(inner, receive_plain, send_sealed)
        except TokenwardError as refusal:
            if start is not None:
                raise
            await _refuse(refusal, send, realm=self.verifier.resource)

    async def _read_body(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest(
                    "the client went away before the sealed body arrived", code=ErrorCode.SEALED_BODY_MALFORMED
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"the sealed body is larger than {self.max_body_bytes} bytes", code=ErrorCode.PAYLOAD_TOO_LARGE
                )
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def _bearer(value: bytes | None) -> str:
    if value is None:
        raise Unauthorized("send the client token as `Authorization: Bearer …`", code=ErrorCode.CLIENT_TOKEN_MISSING)
    scheme, _, token = value.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the client token as `Authorization: Bearer …`", code=ErrorCode.CLIENT_TOKEN_MISSING)
    return token


@functools.lru_cache(maxsize=512)
def _error_body(members: tuple[tuple[str, str], ...]) -> bytes:
    # Most refusals repeat the same few sentences: a flood of bad requests is not a flood of JSON encoding.
    return json.dumps(dict(members)).encode()


@functools.lru_cache(maxsize=16)
def _challenge(realm: str) -> bytes:
    return f'Bearer realm="{realm}", error="invalid_token"'.encode()


async def _refuse(refusal: TokenwardError, send: Send, *, realm: str) -> None:
    log.debug("refused a request: %s", refusal.error_code)
    body = _error_body(tuple(refusal.to_dict().items()))
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers().items()]
    if refusal.status == 401:
        headers.append((b"www-authenticate", _challenge(realm)))
    message: dict[str, Any] = {"type": "http.response.start", "status": refusal.status, "headers": headers}
    await send(message)
    await send({"type": "http.response.body", "body": body})
