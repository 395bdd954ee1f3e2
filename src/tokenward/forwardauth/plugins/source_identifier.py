"""``source_identifier``: a tokenward session (``Authorization: Bearer <source identifier>`` or a cookie).

Verification is :meth:`tokenward.identity.service.IdentityService.authenticate` (it opens the
identifier and checks that the session was not ended), passed in as a callable.

With ``login_url``, a request without a valid session is redirected to the login page only when it
looks like a browser page load: its ``Accept`` header (the client's, which nginx, Caddy and Traefik
pass to ``/verify``) contains ``text/html``. Everything else — ``*/*`` (curl, ``fetch()``), JSON, no
``Accept`` at all — gets the 401 and its ``WWW-Authenticate`` challenge, which a program can act on.
``login_redirect: always`` redirects every request, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from tokenward.errorcodes import ErrorCode
from tokenward.errors import TokenwardError
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.basic import bearer_token
from tokenward.forwardauth.schema import SourceIdentifierPlugin

__all__ = ["SessionCheck", "SourceIdentifierAuth", "cookie_value"]

SessionCheck = Callable[[str], Awaitable[tuple[str, tuple[str, ...]]]]
"""``token -> (subject, scopes)``; raises a TokenwardError (401) for a bad or ended session."""


def cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header (``a=1; b=2``, RFC 6265 §4.2.1), the first if it
    is sent twice, without surrounding double quotes; None when absent.

    A plain split, ~10x cheaper than :class:`http.cookies.SimpleCookie` (which also stops at the first
    cookie it cannot parse, hiding the session cookie behind another site's odd one).
    """
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


class SourceIdentifierAuth(Plugin[SourceIdentifierPlugin]):
    def __init__(self, config: SourceIdentifierPlugin, check: Callable[[], SessionCheck | None]) -> None:
        super().__init__(config)
        self.check = check  # read per call: the web layer wires sessions in after start-up
        self.challenge = f'Bearer realm="{config.realm}"'
        self.redirect_all = config.login_redirect == "always"

    def _token(self, request: VerifyRequest) -> str | None:
        if self.config.cookie is not None:
            value = cookie_value(request.headers.get("cookie", "")[:16384], self.config.cookie)
            if value is not None:
                return value
        return bearer_token(request.headers)

    def _unauthenticated(self, request: VerifyRequest, code: ErrorCode, detail: str) -> Outcome:
        url = self.config.login_url
        # Browsers send ``text/html`` (lower case) in Accept on every navigation; a missing Accept is a
        # program (Go, urllib), never a browser page load, so it gets the 401 too.
        if url is None or not (self.redirect_all or "text/html" in request.headers.get("accept", "")):
            return Outcome.failure(code, detail, challenge=self.challenge)
        location = url + ("&" if "?" in url else "?") + "rd=" + quote(request.info.uri, safe="")
        return Outcome(ok=False, code=code, detail=detail, challenge=self.challenge, location=location)

    async def verify(self, request: VerifyRequest) -> Outcome:
        token = self._token(request)
        if token is None or token.startswith("twa_"):
            return self._unauthenticated(request, ErrorCode.CREDENTIALS_MISSING, "no session given")
        check = self.check()
        if check is None:
            return Outcome.failure(ErrorCode.SESSIONS_UNAVAILABLE, "sessions are not available", status=503)
        try:
            subject, scopes = await check(token)
        except TokenwardError as exc:
            if exc.status in (400, 401):
                return self._unauthenticated(request, exc.error_code, exc.detail)
            return Outcome.refused(exc)
        email = subject if "@" in subject else ""
        return Outcome.success(UserInfo(sub=subject, email=email, claims={"scopes": list(scopes)}))
