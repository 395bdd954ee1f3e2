"""``oidc``: sign in at an external OpenID Provider; an encrypted cookie carries the session.

Everything happens in ``/verify``, so the proxy needs no extra route:

- a browser page load without a session is redirected to the provider's authorization endpoint
  (code flow, PKCE S256, ``state`` and ``nonce``); the three are sealed into a short-lived login
  cookie (``<cookie>_login``, 10 minutes);
- the provider sends the browser back to ``redirect_uri`` — a path of the protected site, so the
  proxy asks ``/verify`` about it like any page — where the plugin checks ``state``, redeems the
  code, verifies the ID token (:mod:`.oidc_upstream`) and answers a redirect to the page first
  asked for, setting the session cookie;
- later requests carry the session cookie: AES-GCM under the time code's
  ``forward-auth-cookie`` key (:mod:`tokenward.forwardauth.sealed`), so a warm request costs one
  decryption and no network. When the tokens' lifetime is over and the provider gave a refresh
  token, the plugin refreshes (the provider may refuse: a user signed out there, or removed from
  its policy), and sends the new cookie;
- ``logout_path`` clears the cookie and sends the browser to the provider's
  ``end_session_endpoint`` with ``id_token_hint`` (RP-Initiated Logout 1.0).

Each answer sets at most one cookie: nginx's ``$upstream_http_set_cookie`` carries only one.
Concurrent requests holding the same expiring session share one refresh (a rotated refresh token
must never be sent twice: the provider would revoke the whole sign-in).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.oidc_upstream import TokenAnswer, UpstreamError, UpstreamProvider
from tokenward.forwardauth.schema import OidcPlugin
from tokenward.forwardauth.sealed import MAX_SEALED_LENGTH, Sealer
from tokenward.keys import Keyring

__all__ = ["OidcAuth"]

LOGIN_SECONDS = 600
SHARED_REFRESH_SECONDS = 30.0
MAX_RETURN_URL = 2048
#: Opened session cookies kept in memory (bounded; re-opened after a minute, so a time code rotated
#: out, or a session's ``until``, is noticed within that time even for a cookie seen before).
OPENED_CACHE_SIZE = 10_000
OPENED_CACHE_SECONDS = 60.0
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class OidcAuth(Plugin[OidcPlugin]):
    def __init__(
        self,
        config: OidcPlugin,
        http: httpx.AsyncClient,
        keyring: Callable[[], Keyring],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        self.upstream = UpstreamProvider(config, http, clock=clock, monotonic=monotonic)
        self.keyring = keyring
        self.sealer = Sealer(keyring)
        self.clock = clock
        self.monotonic = monotonic
        parts = urlsplit(config.redirect_uri)
        self.callback = ((parts.hostname or "").lower(), parts.path or "/")
        self.login_cookie = config.cookie + "_login"
        self.aad = f"oidc|{config.cookie}|{self.upstream.issuer}|{config.client_id}"
        self.challenge = f'Bearer realm="{config.realm}"'
        self._refreshes: dict[str, tuple[float, asyncio.Task[dict[str, Any]]]] = {}
        # cookie value -> (monotonic deadline, session, outcome): a warm browser costs a dict lookup.
        self._opened: dict[str, tuple[float, dict[str, Any], Outcome]] = {}

    # -- cookies ----------------------------------------------------------------------------------

    def _cookies(self, request: VerifyRequest) -> dict[str, str]:
        """The request's cookies (RFC 6265 §5.4 ``name=value; …``); a value sent twice: the first."""
        jar: dict[str, str] = {}
        for part in request.headers.get("cookie", "")[:16384].split(";"):
            name, sep, value = part.partition("=")
            if sep:
                jar.setdefault(name.strip(), value.strip())
        return jar

    def _open(self, jar: dict[str, str], name: str, kind: str) -> dict[str, Any] | None:
        value = jar.get(name)
        if value is None:
            return None
        data = self.sealer.open(value, aad=f"{self.aad}|{kind}", now=self.clock())
        if data is None or data.get("k") != kind or not isinstance(data.get("exp"), int | float):
            return None
        return data

    def _set_cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        cfg = self.config
        parts = [f"{name}={value}", "Path=/", f"Max-Age={max(0, max_age)}", "HttpOnly", "SameSite=Lax"]
        if cfg.cookie_secure:
            parts.append("Secure")
        if cfg.cookie_domain:
            parts.append(f"Domain={cfg.cookie_domain}")
        return ("Set-Cookie", "; ".join(parts))

    def _seal(self, data: dict[str, Any], kind: str) -> str:
        return self.sealer.seal(data, aad=f"{self.aad}|{kind}")

    # -- the plugin -------------------------------------------------------------------------------

    async def verify(self, request: VerifyRequest) -> Outcome:
        info = request.info
        jar = self._cookies(request)
        if (info.host.lower(), info.path) == self.callback:
            return await self._callback(request, jar)
        if self.config.logout_path is not None and info.path == self.config.logout_path:
            return await self._logout(jar)
        value = jar.get(self.config.cookie)
        now = self.clock()
        hit = self._opened.get(value) if value is not None else None
        if hit is not None and hit[0] > self.monotonic() and now < float(hit[1]["exp"]):
            return hit[2]  # a cookie opened in the last minute, still fresh: no decryption
        session = self._open(jar, self.config.cookie, "s")
        if session is not None and now < float(session.get("until", 0)):
            if now < float(session["exp"]):
                outcome = Outcome.success(self._user(session))
                if value is not None:
                    if len(self._opened) >= OPENED_CACHE_SIZE:
                        self._opened.clear()
                    self._opened[value] = (self.monotonic() + OPENED_CACHE_SECONDS, session, outcome)
                return outcome
            if self.config.refresh and isinstance(session.get("rt"), str):
                try:
                    fresh = await self._shared_refresh(session)
                except UpstreamError as exc:
                    if exc.status >= 500:
                        return Outcome.failure(exc.code, exc.detail, status=exc.status)
                    return await self._login(request, ErrorCode.OIDC_SESSION_ENDED, f"sign in again: {exc.detail}")
                cookie = self._session_cookie(fresh, now)
                if isinstance(cookie, Outcome):
                    return cookie
                return Outcome(ok=True, user=self._user(fresh), headers=(cookie, _NO_STORE))
        detail = "no session" if session is None else "the session is over"
        return await self._login(
            request, ErrorCode.CREDENTIALS_MISSING if session is None else ErrorCode.OIDC_SESSION_ENDED, detail
        )

    async def _login(self, request: VerifyRequest, code: ErrorCode, detail: str) -> Outcome:
        browser = "text/html" in request.headers.get("accept", "")
        if not browser and self.config.login_redirect != "always":
            return Outcome.failure(code, detail, challenge=self.challenge)
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        try:
            login = await self.upstream.login_request(state=state, nonce=nonce, verifier=verifier)
        except UpstreamError as exc:
            return Outcome.failure(exc.code, exc.detail, status=exc.status)
        now = self.clock()
        back = self._return_url(request.info.uri)
        pending = {"k": "p", "st": state, "n": nonce, "cv": verifier, "rd": back, "exp": int(now) + LOGIN_SECONDS}
        cookie = self._set_cookie(self.login_cookie, self._seal(pending, "p"), LOGIN_SECONDS)
        return Outcome(
            ok=False,
            code=code,
            detail=detail,
            challenge=self.challenge,
            location=login.url,
            headers=(cookie, _NO_STORE),
        )

    def _return_url(self, uri: str) -> str:
        """Where the browser goes after the callback: the page it asked for, when that page is on the
        callback's host (or under ``cookie_domain``) and not too long; else the callback host's ``/``.

        The URL comes from the proxy's ``Host``; a request that reached the proxy under another name
        must not turn the sign-in into a redirect to that name.
        """
        parts = urlsplit(uri)
        host = (parts.hostname or "").lower()
        domain = (self.config.cookie_domain or "").lower().lstrip(".")
        ours = host == self.callback[0] or (domain and (host == domain or host.endswith("." + domain)))
        if ours and len(uri) <= MAX_RETURN_URL and parts.scheme in ("https", "http"):
            return uri
        home = urlsplit(self.config.redirect_uri)
        return f"{home.scheme}://{home.netloc}/"

    async def _callback(self, request: VerifyRequest, jar: dict[str, str]) -> Outcome:
        params = request.info.query_params
        now = self.clock()
        state = _one(params, "state")
        session = self._open(jar, self.config.cookie, "s")
        if session is not None and state and hmac.compare_digest(str(session.get("ls", "")), _digest(state)):
            # This callback already signed the browser in (Back button, a reload): never redeem a code twice.
            return _final_redirect(str(session.get("rd") or "/"), ErrorCode.OIDC_SIGNED_IN, "signed in", self.challenge)
        error = _one(params, "error")
        if error is not None:
            shown = error if _ERROR_CODE.match(error) else "error"
            return _final(
                ErrorCode.OIDC_ACCESS_DENIED if shown == "access_denied" else ErrorCode.OIDC_PROVIDER_REFUSED,
                (f"the provider answered {shown}"),
                403,
            )
        pending = self._open(jar, self.login_cookie, "p")
        if pending is None or now >= float(pending["exp"]):
            return _final(
                ErrorCode.OIDC_STATE_MISSING,
                "no sign-in is under way in this browser (it took over 10 minutes, or began elsewhere); "
                "open the page again",
                401,
            )
        if state is None or not hmac.compare_digest(state, str(pending.get("st", ""))):
            return _final(ErrorCode.OIDC_STATE_MISMATCH, "the callback's state is not the one this sign-in sent", 401)
        code = _one(params, "code")
        if not code or len(code) > 2048:
            return _final(ErrorCode.OIDC_CODE_MISSING, "the callback carries no authorization code", 401)
        try:
            answer = await self._with_userinfo(
                await self.upstream.exchange_code(code, verifier=str(pending["cv"]), nonce=str(pending["n"]))
            )
        except UpstreamError as exc:
            return _final(exc.code, exc.detail, exc.status)
        back = str(pending.get("rd") or "/")
        session = self._new_session(answer, now, auth_time=now)
        session["ls"], session["rd"] = _digest(state), back
        cookie = self._session_cookie(session, now)
        if isinstance(cookie, Outcome):
            return cookie
        return _final_redirect(back, ErrorCode.OIDC_SIGNED_IN, "signed in", self.challenge, (cookie, _NO_STORE))

    async def _logout(self, jar: dict[str, str]) -> Outcome:
        session = self._open(jar, self.config.cookie, "s")
        clear = self._set_cookie(self.config.cookie, "", 0)
        target = self.config.post_logout_redirect_uri
        end = await self.upstream.end_session_url()
        if end is not None and session is not None and isinstance(session.get("it"), str):
            query: dict[str, str] = {"id_token_hint": session["it"], "client_id": self.config.client_id}
            if target is not None:
                query["post_logout_redirect_uri"] = target
            location = end + ("&" if "?" in end else "?") + urlencode(query)
        else:
            parts = urlsplit(self.config.redirect_uri)
            location = target or f"{parts.scheme}://{parts.netloc}/"
        return _final_redirect(location, ErrorCode.OIDC_SIGNED_OUT, "signed out", self.challenge, (clear, _NO_STORE))

    # -- sessions ---------------------------------------------------------------------------------

    def _new_session(self, answer: TokenAnswer, now: float, *, auth_time: float) -> dict[str, Any]:
        claims = answer.claims or {}
        cfg = self.config
        groups = claims.get(cfg.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        session: dict[str, Any] = {
            "k": "s",
            "sub": str(claims.get("sub", "")),
            "u": str(claims.get(cfg.user_claim) or ""),
            "em": str(claims.get(cfg.email_claim) or ""),
            "gr": [str(g) for g in groups if isinstance(g, str | int)][:256],
            "nm": str(claims.get(cfg.name_claim) or ""),
            "at": int(auth_time),
            "until": int(auth_time) + cfg.session_seconds,
        }
        self._update_tokens(session, answer, now)
        return session

    def _update_tokens(self, session: dict[str, Any], answer: TokenAnswer, now: float) -> None:
        until = float(session["until"])
        if not self.config.refresh:
            session["exp"] = until
        else:
            ends = [now + answer.expires_in] if answer.expires_in else []
            if answer.claims is not None and isinstance(answer.claims.get("exp"), int):
                ends.append(float(answer.claims["exp"]))
            session["exp"] = int(min([*ends, until]) if ends else min(now + 300, until))
        if answer.refresh_token is not None:
            session["rt"] = answer.refresh_token
        if answer.id_token is not None:
            session["it"] = answer.id_token

    def _session_cookie(self, session: dict[str, Any], now: float) -> tuple[str, str] | Outcome:
        max_age = int(float(session["until"]) - now)
        sealed = self._seal(session, "s")
        if len(sealed) > MAX_SEALED_LENGTH:
            session.pop("it", None)  # logout then ends only this cookie, not the provider's session
            sealed = self._seal(session, "s")
        if len(sealed) > MAX_SEALED_LENGTH:
            return _final(
                ErrorCode.OIDC_SESSION_TOO_LARGE, "the user's claims do not fit in a cookie (too many groups?)", 401
            )
        return self._set_cookie(self.config.cookie, sealed, max_age)

    async def _shared_refresh(self, session: dict[str, Any]) -> dict[str, Any]:
        key = _digest(str(session["rt"]))
        mono = self.monotonic()
        held = self._refreshes.get(key)
        if held is None or held[0] <= mono:
            if len(self._refreshes) > 1000:
                self._refreshes = {k: v for k, v in self._refreshes.items() if v[0] > mono}
            held = (mono + SHARED_REFRESH_SECONDS, asyncio.ensure_future(self._refresh(dict(session))))
            self._refreshes[key] = held
        return dict(await asyncio.shield(held[1]))

    async def _refresh(self, session: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        answer = await self.upstream.refresh(str(session["rt"]), subject=str(session.get("sub", "")))
        if self.config.userinfo:
            base = answer.claims if answer.claims is not None else {"sub": str(session.get("sub", ""))}
            answer = await self._with_userinfo(dataclasses.replace(answer, claims=base))
        if answer.claims is not None:
            fresh = self._new_session(answer, now, auth_time=float(session.get("at", now)))
            fresh["ls"], fresh["rd"] = session.get("ls"), session.get("rd")
            if answer.refresh_token is None and "rt" in session:
                fresh["rt"] = session["rt"]
            return fresh
        self._update_tokens(session, answer, now)
        return session

    async def _with_userinfo(self, answer: TokenAnswer) -> TokenAnswer:
        """``answer`` with the userinfo endpoint's claims added when ``userinfo`` is on (the ID token's win)."""
        if not self.config.userinfo or answer.claims is None:
            return answer
        extra = await self.upstream.userinfo(answer.access_token, subject=str(answer.claims.get("sub", "")))
        return dataclasses.replace(answer, claims={**extra, **answer.claims})

    def _user(self, session: dict[str, Any]) -> UserInfo:
        return UserInfo(
            sub=str(session.get("u") or session.get("sub") or ""),
            email=str(session.get("em") or ""),
            groups=tuple(str(g) for g in session.get("gr") or ()),
            name=str(session.get("nm") or ""),
        )

    async def aclose(self) -> None:
        for _, task in self._refreshes.values():
            task.cancel()


_NO_STORE = ("Cache-Control", "no-store")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:32]


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values and len(values) == 1 else None


def _final(code: ErrorCode, detail: str, status: int) -> Outcome:
    return Outcome(ok=False, code=code, detail=detail, status=status, final=True)


def _final_redirect(
    location: str, code: ErrorCode, detail: str, challenge: str, headers: tuple[tuple[str, str], ...] = ()
) -> Outcome:
    return Outcome(
        ok=False, code=code, detail=detail, challenge=challenge, location=location, headers=headers, final=True
    )
