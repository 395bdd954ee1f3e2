"""Every error leaves as ``{"error": code, "detail": sentence}`` with the right status."""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from tokenward.errorcodes import ErrorCode
from tokenward.errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TokenwardError,
    TooManyRequests,
    Unauthorized,
    error_body,
)

__all__ = ["EXCEPTION_HANDLERS", "json_error"]

log = logging.getLogger("tokenward.web")

# Starlette's own HTTP errors (unknown route, wrong method, ...) become the matching tokenward error,
# so that one renderer answers everything.
_HTTP_ERRORS: dict[int, type[TokenwardError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    429: TooManyRequests,
}


def json_error(exc: TokenwardError) -> JSONResponse:
    """The JSON API's renderer: ``exc`` as ``{"error": code, "detail": ...}`` with its status and headers.

    (``/verify`` renders with :func:`tokenward.web.middleware.hot_error`, the CLI with ``cli._common``.)
    """
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers() or None)


async def _tokenward_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenwardError)
    if exc.status >= 500:
        log.warning("%s: %s", exc.error_code, exc.detail)
    if _wants_html(request):
        return _html_error(request, exc)
    return json_error(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_ERRORS.get(exc.status_code)
    if kind is None:
        detail = exc.detail if isinstance(exc.detail, str) else "the request failed"
        return JSONResponse(error_body(ErrorCode.HTTP_ERROR, detail), status_code=exc.status_code)
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    else:
        detail = exc.detail if isinstance(exc.detail, str) else kind.code.replace("_", " ")
    response = await _tokenward_error(request, kind(detail))
    if exc.headers:  # e.g. a 401's WWW-Authenticate
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


def _allowed_methods(request: Request) -> str:
    """Every method some route answers on this path (RFC 9110 §15.5.6).

    Starlette names only the first route whose path matched, and FastAPI has one route per method,
    so ask the router which methods would match this path fully.
    """
    scope = {k: v for k, v in request.scope.items() if k in ("type", "path", "root_path", "app", "headers")}
    routes = request.app.router.routes
    allowed = [m for m in _METHODS if any(r.matches({**scope, "method": m})[0] is Match.FULL for r in routes)]
    return ", ".join(allowed)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _wants_html(request: Request) -> bool:
    """Browsers asking for a portal page get an HTML error page (docs/ui.md), API clients JSON."""
    from tokenward.web.ui.render import wants_html

    return wants_html(request)


def _html_error(request: Request, exc: TokenwardError) -> Response:
    from tokenward.web.ui.render import error_page

    try:
        return error_page(request, exc)
    except TokenwardError:  # not ready (no runtime): fall back to JSON
        return json_error(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path"))
        fields.append({"field": loc or "body", "message": str(err.get("msg", "invalid"))})
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    body = error_body(ErrorCode.INVALID_REQUEST, f"{first['field']}: {first['message']}", fields=fields)
    return JSONResponse(body, status_code=422)


EXCEPTION_HANDLERS = {
    TokenwardError: _tokenward_error,
    HTTPException: _http_error,
    RequestValidationError: _validation_error,
}
