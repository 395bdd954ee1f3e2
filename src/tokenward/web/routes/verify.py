"""``/verify``: the forward-auth endpoint reverse proxies ask (nginx ``auth_request``, Caddy ``forward_auth``,
Traefik ``forwardAuth``, Envoy ``ext_authz``).

Served by the app's hot path (:class:`~tokenward.web.middleware.HotPath`): no FastAPI validation, no
Request/Response objects, no body read. Query string and header sizes are capped; the parsed and
validated query string is cached (a proxy sends the same one every time); every refusal is JSON
``{"error", "detail"}`` with a code.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, StorageUnavailable, TokenwardError
from tokenward.forwardauth.service import Decision, ForwardAuthService, VerifyParams
from tokenward.web.auth import current_request_id
from tokenward.web.middleware import Response, decode_headers, hot_error, send_response
from tokenward.web.state import AppState

__all__ = ["MAX_QUERY_STRING", "answer", "routes"]

MAX_QUERY_STRING = 16_384
MAX_PARAMS = 32
QUERY_CACHE_SIZE = 1024
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_JSON = (b"content-type", b"application/json")


def _params(query: bytes, cache: dict[bytes, VerifyParams]) -> VerifyParams:
    params = cache.get(query)
    if params is not None:
        return params
    if len(query) > MAX_QUERY_STRING:
        raise BadRequest("the /verify query string is too long", code=ErrorCode.QUERY_TOO_LARGE)
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_PARAMS)
    except ValueError:
        raise BadRequest("the /verify query string has too many parameters", code=ErrorCode.QUERY_TOO_LARGE) from None
    params = VerifyParams.parse(dict(pairs))
    if len(cache) >= QUERY_CACHE_SIZE:
        cache.clear()
    cache[query] = params
    return params


def _service(state: AppState) -> ForwardAuthService:
    runtime = state.runtime
    if runtime is None:
        raise StorageUnavailable("forward auth is not ready", code=ErrorCode.NOT_READY)
    return runtime.forward_auth


def _client_address(state: AppState, peer: str | None, headers: dict[str, str]) -> str | None:
    runtime = state.runtime
    return peer if runtime is None else runtime.trusted_proxies.client_address(peer, headers)


#: Rendered refusal bodies: a flood of bad credentials gets the same few sentences (bounded, cleared when full).
_BODIES: dict[tuple[str | None, str | None], bytes] = {}
_BODIES_MAX = 256


def _render(decision: Decision) -> Response:
    if decision.body is not None:  # a plain refusal, rendered by the service once for all its kind
        return decision.status, decision.headers, decision.body
    error = decision.error
    if error is None:
        return decision.status, decision.headers, b""
    decision.headers.append(_JSON)
    key = (error.get("error"), error.get("detail"))
    if len(error) != 2 or not isinstance(key[0], str) or not isinstance(key[1], str):
        return decision.status, decision.headers, json.dumps(error).encode("utf-8")  # extra fields: not kept
    body = _BODIES.get(key)
    if body is None:
        body = json.dumps(error).encode("utf-8")
        if len(_BODIES) >= _BODIES_MAX:
            _BODIES.clear()
        _BODIES[key] = body
    return decision.status, decision.headers, body


async def answer(state: AppState, scope: Scope, headers: dict[str, str]) -> Response:
    """The whole ``/verify`` response from the query string (or path) and headers; the hot path binds ``state``."""
    try:
        bound = scope.get("path_params")
        if bound and "store_id" in bound:
            # Envoy ext_authz appends the client's path and query: only the path names the token then.
            params = VerifyParams(store_id=bound["store_id"], token_id=bound["token_id"])
        else:
            params = _params(scope["query_string"], state.verify_queries)
        service = _service(state)
        client = scope.get("client")
        address = _client_address(state, client[0] if client else None, headers)
        decision = await service.verify(params, headers, address, current_request_id())
    except TokenwardError as exc:
        return hot_error(exc)
    return _render(decision)


class _VerifyEndpoint:
    """An object, not a function, so Starlette routes raw ASGI to it instead of wrapping it in Request/Response.

    Requests normally reach :func:`answer` through the app's hot path; this is the same answer
    for callers that go through the router (``url_for``, mounted sub-apps).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers = decode_headers(scope["headers"])
        except TokenwardError as exc:
            await send_response(send, hot_error(exc))
            return
        await send_response(send, await answer(scope["app"].state.tokenward, scope, headers))


_ENDPOINT = _VerifyEndpoint()
routes = [
    Route("/verify", _ENDPOINT, methods=_METHODS, name="verify"),
    # Path-bound form for Envoy ext_authz (path_prefix + original path; the query string is ignored).
    Route("/verify/s/{store_id}/{token_id}", _ENDPOINT, methods=_METHODS, name="verify_bound"),
    Route("/verify/s/{store_id}/{token_id}/{rest:path}", _ENDPOINT, methods=_METHODS, name="verify_bound_path"),
]
