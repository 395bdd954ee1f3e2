"""An :class:`httpx.Auth` for requests to a resource server under a client token (docs/protocol.md §7.1).

    with Tokenward(url, client_id=cid) as tw:
        tw.login_captcha("alice@example.com", authenticator=..., origin="https://app.example.com")
        api = httpx.Client(base_url="https://api.example.com", auth=tw.auth("api.example.com"))
        api.post("/reports", json={...})       # sealed; the answer is opened before you see it

Each request gets ``Authorization: Bearer <client token>`` (from the client's per-destination
cache) and either a sealed body (``seal=True``, the default: body and answer are encrypted with
the channel key) or a ``Tokenward-Proof`` header (``seal=False``). When the resource server says
the token is no longer good for it (it logged in again, or the token expired on its clock), the
token is dropped and the request sent once more with a new one.
"""

from __future__ import annotations

import inspect
import json
import secrets
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, Protocol

import httpx

from tokenward.client.channel import PROOF_HEADER, SEALED_CONTENT_TYPE, make_proof, open_response, seal_request
from tokenward.client.flows import ClientToken
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.identity.encoding import b64u_encode

__all__ = ["TokenwardAuth"]

#: Refusals after which a new client token may succeed (the old one is dropped and the request retried once).
_RETRY_CODES = frozenset({"client_token_not_for_me", "client_token_expired", "timecode_mismatch"})


class _Source(Protocol):
    clock: Callable[[], float]

    def client_token(self, destination: str) -> ClientToken | Awaitable[ClientToken]: ...

    def forget_token(self, destination: str) -> None: ...


class TokenwardAuth(httpx.Auth):
    """Attach the client token for ``destination`` and seal (or prove) each request."""

    requires_request_body = True
    requires_response_body = True

    def __init__(self, source: _Source, destination: str, *, seal: bool = True) -> None:
        self._source = source
        self.destination = destination
        self.seal = seal

    # Both flows are overridden, so they read the bodies themselves (httpx.Auth's defaults would).
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        for attempt in range(2):
            token = self._source.client_token(self.destination)
            if inspect.isawaitable(token):
                raise BadRequest("an AsyncTokenward's auth needs an httpx.AsyncClient", code=ErrorCode.INVALID_REQUEST)
            sent, nonce = self._build(request, token)
            response = yield sent
            response.read()
            if attempt == 0 and _retry(response):
                self._source.forget_token(self.destination)
                continue
            self._finish(response, token, nonce)
            return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        for attempt in range(2):
            got = self._source.client_token(self.destination)
            token = await got if inspect.isawaitable(got) else got
            sent, nonce = self._build(request, token)
            response = yield sent
            await response.aread()
            if attempt == 0 and _retry(response):
                self._source.forget_token(self.destination)
                continue
            self._finish(response, token, nonce)
            return

    def _build(self, request: httpx.Request, token: ClientToken) -> tuple[httpx.Request, str | None]:
        ts = int(self._source.clock())
        nonce = secrets.token_bytes(12)
        target = request.url.raw_path.decode("ascii")
        token_id = token.claims.token_id
        if not self.seal:
            request.headers["authorization"] = f"Bearer {token.token}"
            request.headers[PROOF_HEADER] = make_proof(
                token.aead, token_id=token_id, ts=ts, nonce=nonce, method=request.method, target=target
            )
            return request, None
        sealed = seal_request(
            token.aead,
            client_token=token.token,
            token_id=token_id,
            ts=ts,
            nonce=nonce,
            method=request.method,
            target=target,
            content_type=request.headers.get("content-type", ""),
            body=request.content,
        )
        headers = request.headers.copy()
        for name in ("content-length", "transfer-encoding", PROOF_HEADER):
            headers.pop(name, None)
        headers["authorization"] = f"Bearer {token.token}"
        headers["content-type"] = SEALED_CONTENT_TYPE
        out = httpx.Request(request.method, request.url, headers=headers, content=sealed, extensions=request.extensions)
        return out, b64u_encode(nonce)

    def _finish(self, response: httpx.Response, token: ClientToken, nonce: str | None) -> None:
        if nonce is None or response.headers.get("content-type", "").split(";")[0].strip() != SEALED_CONTENT_TYPE:
            return  # unsealed request, or a refusal from the middleware (never sealed)
        content_type, plain = open_response(
            token.aead,
            token_id=token.claims.token_id,
            request_nonce=nonce,
            status=response.status_code,
            data=response.content,
        )
        # The caller reads the opened answer as if it had come in the clear.
        response._content = plain
        if content_type:
            response.headers["content-type"] = content_type
        else:
            del response.headers["content-type"]
        response.headers["content-length"] = str(len(plain))


def _retry(response: httpx.Response) -> bool:
    if response.status_code != 401:
        return False
    try:
        doc: Any = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("error") in _RETRY_CODES
