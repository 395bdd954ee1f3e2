"""Portal pages for everyone: sign-in with the encrypted captcha, sign-out, enrolment, my app tokens.

Thin like the API routes: parse the form (CSRF first), call the same services the API calls,
render a page. The portal is tokenward's own first-party client app (``tokenward init``
registers it for ``https://<server name>``); the browser holds the source identifier in an
HttpOnly cookie that ``/verify``'s ``source_identifier`` plugin also reads.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tokenward.apptokens import MANAGE_SCOPE, Caller, parse_duration
from tokenward.apptokens.access import check_scopes
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, NotFound, StorageUnavailable, TokenwardError
from tokenward.identity.apps import FIRST_PARTY_NAME, ClientApp, app_hash_of_origin, load_serving_registry
from tokenward.identity.captcha import DEFAULT_AEAD, pkce_challenge
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.device import DEVICE_COOKIE, DEVICE_MAX_AGE
from tokenward.identity.source import SourceIdentity
from tokenward.web.state import get_app_tokens, get_identity, get_runtime, get_state, request_client_ip
from tokenward.web.ui.render import error_page, read_form, redirect, render, retry_after
from tokenward.web.ui.security import (
    LOGIN_COOKIE,
    LOGIN_STATE_TTL,
    SESSION_COOKIE,
    LoginState,
    open_login_state,
    safe_return,
    seal_login_state,
)

__all__ = ["admin_of", "routes", "signed_in"]

# Sentences for the sessions API's failure codes; anything else shows the error's own detail.
LOGIN_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.NOT_ENROLLED: (
        "This e-mail address has no authenticator yet. Ask an admin for an enrolment code, then enrol."
    ),
    ErrorCode.CAPTCHA_DENIED: "Sign-in with a captcha is not allowed for this e-mail address.",
    ErrorCode.LOGIN_DENIED: "This e-mail address may not sign in to this portal.",
    ErrorCode.CLIENT_ACCESS_DENIED: "The policy does not allow this portal to sign users in.",
    ErrorCode.CAPTCHA_EXPIRED: "The captcha has expired. Ask for a new one.",
    ErrorCode.CAPTCHA_USED: "The captcha was already used. Ask for a new one.",
    ErrorCode.CAPTCHA_ATTEMPTS_EXHAUSTED: "Too many wrong codes for this captcha. Ask for a new one.",
    ErrorCode.CAPTCHA_UNKNOWN: "The captcha is no longer known. Ask for a new one.",
    ErrorCode.TOO_MANY_ATTEMPTS: "Too many failed attempts. Wait a few minutes and try again.",
    ErrorCode.CAPTCHA_RATE_LIMITED: "Too many captchas were requested. Wait a few minutes and try again.",
}
LOGIN_EXPIRED = "The sign-in took too long or was started in another tab. Start again."


def _first_party(request: Request) -> ClientApp:
    registry = load_serving_registry(get_runtime(request).settings.data_dir)
    for app in registry.apps:
        if app.name == FIRST_PARTY_NAME:
            return app
    raise StorageUnavailable(
        "the portal's client app is not registered; run `tokenward init`", code=ErrorCode.PORTAL_MISSING
    )


def _origin(request: Request) -> str:
    return f"https://{get_runtime(request).server_name}"


async def signed_in(request: Request) -> SourceIdentity | None:
    """The session in the browser's cookie, or ``None`` (missing, expired, ended, forged)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 3000:
        return None
    try:
        return await get_identity(request).authenticate(token, now=time.time())
    except TokenwardError:
        return None


def admin_of(request: Request, user: SourceIdentity | None) -> bool:
    runtime = get_runtime(request)
    return user is not None and runtime.policy.is_admin(user.subject, runtime.server_name)


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect("/login?rd=" + quote(target, safe=""))


# -- sign-in --------------------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return redirect("/account/tokens" if await signed_in(request) else "/login")


async def login_form(request: Request) -> Response:
    user = await signed_in(request)
    rd = request.query_params.get("rd", "")[:2000]
    return render(request, "login.html", user=user, admin=admin_of(request, user), rd=rd, email="", message=None)


async def login_start(request: Request) -> Response:
    form = await read_form(request)
    email = form.get("email", max_length=254).strip()
    rd = form.get("rd", max_length=2000)
    service = get_identity(request)
    verifier = secrets.token_urlsafe(48)
    origin = _origin(request)
    try:
        client = _first_party(request)
        issued = await service.request_captcha(
            email=email,
            client_id=client.client_id,
            origin=origin,
            code_challenge=pkce_challenge(verifier),
            now=time.time(),
            client_ip=request_client_ip(request),
            device=request.cookies.get(DEVICE_COOKIE),
        )
        scopes = service.scopes_for(email=email, client_id=client.client_id, app_hash=app_hash_of_origin(origin))
    except TokenwardError as exc:
        message = LOGIN_MESSAGES.get(exc.error_code, exc.detail)
        page = render(
            request, "login.html", status=exc.status, rd=rd, email=email, message=message, code=exc.error_code
        )
        return retry_after(page, exc)
    state = LoginState(
        captcha_id=issued.captcha_id,
        verifier=verifier,
        email=email.lower(),
        rd=rd,
        payload=issued.payload,
        scopes=tuple(scopes),
        expires_at=min(issued.expires_at, int(time.time()) + LOGIN_STATE_TTL),
    )
    response = _captcha_page(request, state, message=None)
    _set_login_state(request, response, state)
    return response


def _captcha_page(request: Request, state: LoginState, *, message: str | None, status: int = 200) -> Response:
    import segno

    qr = segno.make(state.payload, error="m").svg_inline(scale=4, title="QR code of the encrypted captcha")
    choices = [s for s in state.scopes if s != "DEFAULT"]
    return render(
        request, "captcha.html", status=status, state=state, qr_svg=qr, scope_choices=choices, message=message
    )


def _set_login_state(request: Request, response: Response, state: LoginState) -> None:
    runtime = get_runtime(request)
    response.set_cookie(
        LOGIN_COOKIE,
        seal_login_state(runtime.keyring, state, nonce=secrets.token_bytes(12)),
        max_age=LOGIN_STATE_TTL,
        httponly=True,
        samesite="strict",
        secure=runtime.settings.cookie_secure,
        path="/login",
    )


async def login_code(request: Request) -> Response:
    form = await read_form(request)
    runtime = get_runtime(request)
    state = open_login_state(runtime.keyring, request.cookies.get(LOGIN_COOKIE))
    if state is None:
        return render(request, "login.html", status=400, rd="", email="", message=LOGIN_EXPIRED, code=None)
    picked = [s for s in form.getlist("scope") if s in state.scopes][:32]
    session_key = b64u_of_public(X25519PrivateKey.generate())  # browsers never ask for client tokens
    try:
        issued = await get_identity(request).verify_captcha(
            captcha_id=state.captcha_id,
            code=form.get("code", max_length=16).strip(),
            code_verifier=state.verifier,
            session_key=session_key,
            scopes=picked,
            now=time.time(),
            client_ip=request_client_ip(request),
            device=request.cookies.get(DEVICE_COOKIE),
        )
    except TokenwardError as exc:
        message = LOGIN_MESSAGES.get(exc.error_code, exc.detail)
        if exc.error_code == ErrorCode.CAPTCHA_WRONG_CODE:
            return _captcha_page(request, state, message=message, status=exc.status)
        page = render(request, "login.html", status=exc.status, rd=state.rd, email=state.email, message=message)
        return retry_after(page, exc)
    settings = runtime.settings
    response = redirect(safe_return(state.rd, settings.redirect_domains))
    response.set_cookie(
        SESSION_COOKIE,
        issued.source_identifier,
        max_age=max(0, issued.identity.expires_at - int(time.time())),
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        domain=settings.cookie_domain,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    # This browser signed in as this account: it may go on signing in while strangers' wrong answers hold
    # the account over its limit (docs/regulation.md). Sent to the sign-in pages only.
    response.set_cookie(
        DEVICE_COOKIE,
        get_identity(request).device_token(issued.identity.subject, now=time.time()),
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/login",
    )
    return response


async def logout(request: Request) -> Response:
    user = await signed_in(request)
    if user is not None:  # the CSRF token is bound to the session: without one there is nothing to end
        await read_form(request)
        # Ends the session server-side: every instance and /verify refuse it from now on.
        await get_identity(request).logout(user, now=time.time())
    settings = get_runtime(request).settings
    response = redirect("/login?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, domain=settings.cookie_domain, path="/")
    return response


# -- enrolment ------------------------------------------------------------------------------------


async def enroll_form(request: Request) -> Response:
    return render(request, "enroll.html", message=None, done=None, email="")


async def enroll_submit(request: Request) -> Response:
    return await _enroll(request, "enroll.html", aead=DEFAULT_AEAD)


async def authenticator_page(request: Request) -> Response:
    """The browser authenticator: a WebCrypto key in IndexedDB that opens AES-256-GCM captchas (docs/ui.md)."""
    return render(request, "authenticator.html", message=None, done=None, email="")


async def authenticator_enroll(request: Request) -> Response:
    """Enrol the page's key; WebCrypto has no ChaCha20-Poly1305, so its captchas are sealed with AES-256-GCM."""
    return await _enroll(request, "authenticator.html", aead="aes256gcm")


async def _enroll(request: Request, template: str, *, aead: str) -> Response:
    form = await read_form(request)
    email = form.get("email", max_length=254).strip()
    try:
        done = await get_identity(request).enroll(
            email=email,
            code=form.get("code", max_length=64).strip(),
            public_key=form.get("public_key", max_length=64).strip(),
            now=time.time(),
            client_ip=request_client_ip(request),
            aead=aead,
        )
    except TokenwardError as exc:
        return retry_after(
            render(request, template, status=exc.status, message=exc.detail, done=None, email=email), exc
        )
    return render(request, template, message=None, done=done.email, email=done.email)


# -- my app tokens --------------------------------------------------------------------------------


def _caller(user: SourceIdentity) -> Caller:
    # A captcha sign-in is the user's strongest credential: it may manage the user's own tokens.
    return Caller(subject=user.subject, scopes=frozenset({*user.scopes, MANAGE_SCOPE}), method="session")


async def _tokens_page(request: Request, user: SourceIdentity, *, status: int = 200, **context: object) -> Response:
    service = get_app_tokens(request)
    tokens = await service.list(user.subject)
    context.setdefault("message", None)
    context.setdefault("created", None)
    context.setdefault("form", {"label": "", "expires_in": "", "scopes": ""})
    context.setdefault("submission", secrets.token_urlsafe(16))
    return render(
        request,
        "tokens.html",
        status=status,
        user=user,
        admin=admin_of(request, user),
        tokens=tokens,
        now=time.time(),
        **context,
    )


async def tokens(request: Request) -> Response:
    user = await signed_in(request)
    if user is None:
        return to_login(request)
    notice = "The token was deleted." if request.query_params.get("deleted") else None
    return await _tokens_page(request, user, notice=notice)


async def token_create(request: Request) -> Response:
    # The session first: the form's CSRF token is bound to it, and a form posted after the session
    # ran out goes back to sign-in rather than to a 403.
    user = await signed_in(request)
    if user is None:
        return to_login(request)
    form = await read_form(request)
    submission = form.get("submission", max_length=64)
    if submission and not get_state(request).submissions.first_use(f"{user.subject}|{submission}", now=time.time()):
        # The same form sent twice (double click, resend after a slow answer): create once.
        return await _tokens_page(
            request,
            user,
            status=409,
            message="This form was already sent: the token was created once and is in the list below.",
            notice=None,
        )
    fields = {
        "label": form.get("label", max_length=2000),
        "expires_in": form.get("expires_in", max_length=20).strip(),
        "scopes": form.get("scopes", max_length=1000),
    }
    try:
        service = get_app_tokens(request)
        scopes = tuple(fields["scopes"].split())
        check_scopes(_caller(user), scopes, is_admin=service.is_admin)
        record, token = await service.create(
            owner=user.subject,
            created_by=user.subject,
            expiry=parse_duration(fields["expires_in"]) if fields["expires_in"] else None,
            label=fields["label"],
            scopes=scopes,
        )
    except TokenwardError as exc:
        return await _tokens_page(request, user, status=exc.status, message=exc.detail, form=fields, notice=None)
    return await _tokens_page(request, user, status=201, created={"record": record, "token": token}, notice=None)


async def token_delete_confirm(request: Request) -> Response:
    user = await signed_in(request)
    if user is None:
        return to_login(request)
    try:
        service = get_app_tokens(request)
        record = await service.get(request.path_params["token_id"][:64], owner=user.subject)
    except TokenwardError as exc:
        return error_page(request, exc, user=user, admin=admin_of(request, user))
    return render(request, "token_delete.html", user=user, admin=admin_of(request, user), token=record)


async def token_delete(request: Request) -> Response:
    user = await signed_in(request)
    if user is None:
        return to_login(request)
    await read_form(request)
    try:
        service = get_app_tokens(request)
        await service.revoke(request.path_params["token_id"][:64], owner=user.subject, actor=user.subject)
    except NotFound:
        # A double-submitted delete: the first one won; say so instead of failing.
        return await _tokens_page(request, user, notice="That token was already deleted.")
    except BadRequest as exc:
        return error_page(request, exc, user=user, admin=admin_of(request, user))
    return redirect("/account/tokens?deleted=1")


routes = [
    Route("/", home, methods=["GET"]),
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login_start, methods=["POST"]),
    Route("/login/code", login_code, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/enroll", enroll_form, methods=["GET"]),
    Route("/enroll", enroll_submit, methods=["POST"]),
    Route("/authenticator", authenticator_page, methods=["GET"]),
    Route("/authenticator", authenticator_enroll, methods=["POST"]),
    Route("/account/tokens", tokens, methods=["GET"]),
    Route("/account/tokens", token_create, methods=["POST"]),
    Route("/account/tokens/{token_id}/delete", token_delete_confirm, methods=["GET"]),
    Route("/account/tokens/{token_id}/delete", token_delete, methods=["POST"]),
]
