"""Jinja2 rendering for the portal: one environment, security headers on every page, HTML error pages."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tokenward import __version__
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, TokenwardError, TooManyRequests
from tokenward.web.state import get_runtime
from tokenward.web.ui.security import CSRF_COOKIE, SECURITY_HEADERS, SESSION_COOKIE, check_csrf, csrf_token

__all__ = ["Form", "error_page", "read_form", "redirect", "render", "retry_after", "wants_html"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("tokenward.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
MAX_FORM_BYTES = 16 * 1024


def _breakable(value: object, before: str = "@", after: str = "") -> Markup:
    """``value`` escaped, with a line-break opportunity (``<wbr>``) before ``before`` and after ``after``.

    For narrow table cells: ``alice@example.com`` may wrap before the ``@`` instead of mid-word,
    and copying the text still gives the address (a ``<wbr>`` is not a character).
    """
    text = escape(str(value))
    wbr = Markup("<wbr>")
    if before:
        text = text.replace(escape(before), wbr + escape(before))
    if after:
        text = text.replace(escape(after), escape(after) + wbr)
    return text


_ENV.filters["breakable"] = _breakable


def _csrf_nonce(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie nonce, or a new one (``True``: the response must set it)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and 20 <= len(nonce) <= 100:
        return nonce, False
    return secrets.token_urlsafe(32), True


def secure_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the CSRF token, the signed-in user (``user``/``admin`` in context) and headers."""
    nonce, fresh = _csrf_nonce(request)
    runtime = get_runtime(request)
    context.setdefault("user", None)
    context.setdefault("admin", False)
    html = _ENV.get_template(template).render(
        csrf=csrf_token(runtime.keyring, nonce, request.cookies.get(SESSION_COOKIE)),
        server_name=runtime.server_name,
        version=__version__,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=runtime.settings.cookie_secure,
            path="/",
        )
    secure_headers(response)
    return response


def redirect(url: str) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    secure_headers(response)
    return response


def error_page(request: Request, exc: TokenwardError, **context: Any) -> HTMLResponse:
    """The HTML page for an error: its status, a short title and the error's own sentence (never a trace)."""
    titles = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found", 429: "Slow down"}
    title = titles.get(exc.status, "Something went wrong")
    return retry_after(render(request, "error.html", status=exc.status, title=title, error=exc, **context), exc)


def retry_after(response: HTMLResponse, exc: TokenwardError) -> HTMLResponse:
    """``response`` with the ``Retry-After`` of a 429 ``exc`` (RFC 6585 §4), as the JSON API sends it."""
    if isinstance(exc, TooManyRequests):
        response.headers.update(exc.headers())
    return response


def wants_html(request: Request) -> bool:
    """Whether an error for this request should be an HTML page: a browser asking for a non-API page."""
    path = request.url.path
    if path.startswith("/api/") or path in ("/verify", "/healthz", "/readyz", "/metrics"):
        return False
    return "text/html" in request.headers.get("accept", "")


class Form:
    """A parsed ``application/x-www-form-urlencoded`` body: first value, or every value of a field."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "", *, max_length: int = 1000) -> str:
        values = self.fields.get(name)
        if not values:
            return default
        value = values[0]
        if len(value) > max_length:
            raise BadRequest(f"{name} is longer than {max_length} characters", code=ErrorCode.FIELD_TOO_LONG)
        return value

    def getlist(self, name: str) -> list[str]:
        return self.fields.get(name, [])[:64]


async def read_form(request: Request, *, max_bytes: int = MAX_FORM_BYTES) -> Form:
    """Read a form and check its CSRF token (403 ``csrf_invalid``) before anything else looks at it.

    ``max_bytes`` raises the size cap for a form that carries a file (the policy what-if page).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("send the form as application/x-www-form-urlencoded", code=ErrorCode.FORM_INVALID)
    body = await request.body()
    if len(body) > max_bytes:
        raise BadRequest("the form is too large", code=ErrorCode.FORM_INVALID)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form could not be read", code=ErrorCode.FORM_INVALID) from None
    form = Form(fields)
    runtime = get_runtime(request)
    check_csrf(
        runtime.keyring,
        request.cookies.get(CSRF_COOKIE),
        form.get("csrf"),
        session=request.cookies.get(SESSION_COOKIE),
        now=time.time(),
    )
    return form
