"""``/verify``: the forward-auth endpoint reverse proxies ask (nginx ``auth_request``, Caddy ``forward_auth``,
Traefik ``forwardAuth``, Envoy ``ext_authz``).

A plain Starlette route on the hot path: no FastAPI validation, no body read. Query string and
header sizes are capped before parsing; every refusal is a JSON ``{"error", "detail"}`` with a code.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokenward.errors import BadRequest, StorageUnavailable, TokenwardError
from tokenward.forwardauth.plugins import SessionCheck
from tokenward.forwardauth.service import Decision, ForwardAuthService
from tokenward.web.auth import current_request_id
from tokenward.web.state import get_state

__all__ = ["MAX_HEADER_BYTES", "MAX_QUERY_STRING", "routes"]

MAX_QUERY_STRING = 16_384
MAX_HEADER_BYTES = 65_536
MAX_PARAMS = 32
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _service(request: Request) -> ForwardAuthService:
    runtime = get_state(request).runtime
    service: ForwardAuthService | None = None if runtime is None else runtime.forward_auth
    if service is None:
        raise StorageUnavailable("forward auth is not ready", code="not_ready")
    if service.deps.sessions is None:
        service.deps.sessions = _sessions(request)
    return service


def _sessions(request: Request) -> SessionCheck:
    # The identity service is built by the identity routes once per app; /verify borrows it.
    from tokenward.web.routes.identity import get_identity

    identity = get_identity(request)

    async def check(token: str) -> tuple[str, tuple[str, ...]]:
        found = await identity.authenticate(token, now=time.time())
        return found.subject, tuple(found.scopes)

    return check


def _headers(request: Request) -> dict[str, str]:
    total = 0
    out: dict[str, str] = {}
    for raw_name, raw_value in request.scope["headers"]:
        total += len(raw_name) + len(raw_value)
        if total > MAX_HEADER_BYTES:
            raise BadRequest("the request headers are too large", code="headers_too_large")
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out and name != "cookie" else value
    return out


def _render(decision: Decision) -> Response:
    response = (
        Response(status_code=decision.status)
        if decision.error is None
        else JSONResponse(decision.error, status_code=decision.status)
    )
    for name, value in decision.headers:
        response.raw_headers.append((name.lower().encode("latin-1"), value.encode("utf-8")))
    return response


async def verify(request: Request) -> Response:
    try:
        query = request.scope["query_string"]
        if len(query) > MAX_QUERY_STRING:
            raise BadRequest("the /verify query string is too long", code="query_too_large")
        try:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_PARAMS)
        except ValueError:
            raise BadRequest("the /verify query string has too many parameters", code="query_too_large") from None
        service = _service(request)
        client = request.client.host if request.client else None
        decision = await service.verify(
            dict(pairs), _headers(request), client_ip=client, request_id=current_request_id()
        )
    except TokenwardError as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers() or None)
    return _render(decision)


routes = [Route("/verify", verify, methods=_METHODS, name="verify")]
