"""The OpenID Provider's endpoints (docs/oidc.md). Thin: read the request, ask the provider, render.

Plain Starlette routes (not in the management API's OpenAPI document): their wire format is
OAuth 2.0 / OpenID Connect's (``{"error", "error_description"}``), not tokenward's API format.
Sign-in is the portal's: an authorization request without a portal session goes to ``/login``
and comes back here afterwards.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, TokenwardError, Unauthorized
from tokenward.oidc.provider import EndUser, Incoming, OidcProvider, Outgoing
from tokenward.web.state import get_runtime, request_client_ip
from tokenward.web.ui.pages import signed_in
from tokenward.web.ui.security import SESSION_COOKIE

__all__ = ["routes"]

MAX_PARAMETERS = 50
MAX_FORM_BYTES = 64 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _provider(request: Request) -> OidcProvider:
    provider = get_runtime(request).oidc
    if provider is None:
        raise TokenwardError("the OpenID Provider is not configured")
    return provider


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers={**NO_STORE, **(headers or {})}
    )


async def _incoming(request: Request, provider: OidcProvider) -> Incoming:
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    form: dict[str, list[str]] = {}
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise BadRequest("send the parameters as application/x-www-form-urlencoded", code=ErrorCode.INVALID_REQUEST)
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("the request body is too large", code=ErrorCode.INVALID_REQUEST)
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_PARAMETERS)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the form could not be read", code=ErrorCode.INVALID_REQUEST) from None
    if sum(len(v) for v in query.values()) + sum(len(v) for v in form.values()) > MAX_PARAMETERS:
        raise BadRequest("too many parameters", code=ErrorCode.INVALID_REQUEST)
    uri = provider.url(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k in ("authorization", "content-type")}
    if "authorization" in headers:
        headers["Authorization"] = headers.pop("authorization")
    return Incoming(method=request.method, uri=uri, headers=headers, query=query, form=form)


def _render(out: Outgoing) -> Response:
    headers = dict(out.headers)
    if out.status in (301, 302, 303, 307):
        location = out.location or "/"
        return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})
    if isinstance(out.body, dict):
        headers.pop("Content-Type", None)
        return JSONResponse(out.body, status_code=out.status, headers={**headers, **NO_STORE})
    return Response(str(out.body), status_code=out.status, headers=headers)


async def discovery(request: Request) -> Response:
    return JSONResponse(_provider(request).discovery())


async def authorize(request: Request) -> Response:
    provider = _provider(request)
    try:
        incoming = await _incoming(request, provider)
    except BadRequest as exc:
        return _oauth_error(400, "invalid_request", exc.detail)
    session = await signed_in(request)
    user = None
    if session is not None and session.kind == "user":
        user = EndUser(session.subject, session.session_id, float(session.issued_at))
    answer = await provider.authorize(incoming, user)
    if answer == "login":
        # Back here after the portal's sign-in; without prompt=login, or it would ask again forever.
        params = [(k, v) for k, values in incoming.query.items() if k != "prompt" for v in values]
        params += [(k, v) for k, values in incoming.form.items() if k != "prompt" for v in values]
        return RedirectResponse("/login?" + urlencode({"rd": "/oidc/authorize?" + urlencode(params)}), 302)
    assert isinstance(answer, Outgoing)
    return _render(answer)


async def token(request: Request) -> Response:
    provider = _provider(request)
    if request.method != "POST":
        return _oauth_error(405, "invalid_request", "the token endpoint takes POST", {"Allow": "POST"})
    try:
        incoming = await _incoming(request, provider)
    except BadRequest as exc:
        return _oauth_error(400, "invalid_request", exc.detail)
    return _render(await provider.token(incoming, client_ip=request_client_ip(request)))


async def userinfo(request: Request) -> Response:
    provider = _provider(request)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    challenge = 'Bearer realm="tokenward"'
    if scheme.lower() != "bearer" or not value.strip():
        return _oauth_error(
            401, "invalid_token", "send the access token as Authorization: Bearer", {"WWW-Authenticate": challenge}
        )
    try:
        claims = await provider.userinfo(value.strip())
    except Unauthorized as exc:
        header = f'{challenge}, error="{exc.error_code}", error_description="{exc.detail}"'
        return _oauth_error(401, exc.error_code, exc.detail, {"WWW-Authenticate": header})
    return JSONResponse(claims, headers=NO_STORE)


async def logout(request: Request) -> Response:
    provider = _provider(request)
    try:
        incoming = await _incoming(request, provider)
    except BadRequest as exc:
        return _oauth_error(400, "invalid_request", exc.detail)
    answer, session_id = await provider.end_session(incoming)
    if answer is not None and answer.status != 302:
        return _render(answer)
    if session_id is None:
        # No valid id_token_hint: end nothing without the user's say-so; the portal's Sign out button does.
        return RedirectResponse("/login", 302)
    response = _render(answer) if answer is not None else RedirectResponse("/login?signed_out=1", 302)
    session = await signed_in(request)
    if session is None or session.session_id == session_id:
        settings = get_runtime(request).settings
        response.delete_cookie(SESSION_COOKIE, domain=settings.cookie_domain, path="/")
    return response


routes = [
    Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
    Route("/oidc/authorize", authorize, methods=["GET", "POST"]),
    Route("/oidc/token", token, methods=["POST"]),
    Route("/oidc/userinfo", userinfo, methods=["GET", "POST"]),
    Route("/oidc/logout", logout, methods=["GET", "POST"]),
]
