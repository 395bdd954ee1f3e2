"""Every error leaves as ``{"error": code, "detail": sentence}`` with the right status."""

from __future__ import annotations

import logging

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tokenward.errors import TokenwardError

__all__ = ["EXCEPTION_HANDLERS", "error_response"]

log = logging.getLogger("tokenward.web")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def error_response(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: object
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


async def _tokenward_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TokenwardError)
    if exc.status >= 500:
        log.warning("%s: %s", exc.error_code, exc.detail)
    if _wants_html(request):
        return _html_error(request, exc)
    return error_response(exc.status, exc.error_code, exc.detail, headers=exc.headers() or None, **exc.fields)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    if _wants_html(request):
        from tokenward.errors import TokenwardError as _Error

        page = _Error(detail if exc.status_code != 404 else "there is no page at this address", code=code)
        page.status = exc.status_code  # type: ignore[misc]
        return _html_error(request, page)
    return error_response(exc.status_code, code, detail)


def _wants_html(request: Request) -> bool:
    """Browsers asking for a portal page get an HTML error page (docs/ui.md), API clients JSON."""
    from tokenward.web.ui.render import wants_html

    return wants_html(request)


def _html_error(request: Request, exc: TokenwardError) -> Response:
    from tokenward.web.ui.render import error_page

    try:
        return error_page(request, exc)
    except TokenwardError:  # not ready (no runtime): fall back to JSON
        return error_response(exc.status, exc.error_code, exc.detail, headers=exc.headers() or None)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path"))
        fields.append({"field": loc or "body", "message": str(err.get("msg", "invalid"))})
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    return error_response(422, "invalid_request", f"{first['field']}: {first['message']}", fields=fields)


EXCEPTION_HANDLERS = {
    TokenwardError: _tokenward_error,
    HTTPException: _http_error,
    RequestValidationError: _validation_error,
}
