"""The client library: log in, keep the source identifier, get client tokens per destination.

:class:`Tokenward` (sync, :class:`httpx.Client`) and :class:`AsyncTokenward` (async,
:class:`httpx.AsyncClient`) share :class:`_Core`, which holds the state and makes the flows
(:mod:`tokenward.client.flows`); each class only drives them over its transport.

Client tokens are cached per destination until ``refresh_margin_seconds`` before they expire
(by the injected ``clock``). A resource login is repeated by itself when its session is about to
expire; a user session that expired raises ``session_expired`` (log in again).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tokenward.client.auth import TokenwardAuth
from tokenward.client.flows import (
    Ask,
    Authenticator,
    Call,
    ClientToken,
    Reply,
    Session,
    captcha_login,
    client_token,
    error_from_reply,
    resource_login,
)
from tokenward.client.verifier import SessionKeys
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ServiceUnavailable, TokenwardError, Unauthorized

__all__ = ["AsyncTokenward", "Tokenward"]

Flow = Generator[Call | Ask, Any, Any]


class _Core:
    def __init__(
        self,
        *,
        client_id: str,
        clock: Callable[[], float],
        refresh_margin_seconds: float,
        session_keys: SessionKeys | None,
    ) -> None:
        self.client_id = client_id
        self.clock = clock
        self.margin = refresh_margin_seconds
        #: Where a resource login puts its session keys (the resource server's middleware reads them).
        self.session_keys = session_keys
        self._session: Session | None = None
        self._resource: tuple[str, Ed25519PrivateKey] | None = None
        self._tokens: dict[str, ClientToken] = {}
        self._devices: dict[str, str] = {}

    @property
    def session(self) -> Session | None:
        """The current session (its source identifier is the user's or resource's credential)."""
        return self._session

    def _set_session(self, session: Session) -> Session:
        self._session = session
        self._tokens.clear()  # tokens name the old session key
        if self.session_keys is not None:
            self.session_keys.add(session.session_key)
        return session

    def _captcha_flow(self, email: str, origin: str | None, app_hash: str | None, scopes: tuple[str, ...]) -> Flow:
        if (origin is None) == (app_hash is None):
            raise BadRequest(
                "give the client app's origin or its app hash (one of them)", code=ErrorCode.ORIGIN_MISSING
            )
        known = email.strip().lower()
        session = yield from captcha_login(
            email=email,
            client_id=self.client_id,
            origin=origin,
            app_hash=app_hash,
            scopes=scopes,
            device=self._devices.get(known),
        )
        if session.device is not None:  # kept for the next login as this address (docs/regulation.md)
            self._devices[known] = session.device
        return self._set_session(session)

    def _resource_flow(self, resource: str, signing_key: Ed25519PrivateKey) -> Flow:
        self._resource = (resource, signing_key)
        session = yield from resource_login(resource=resource, client_id=self.client_id, signing_key=signing_key)
        return self._set_session(session)

    def _session_due(self) -> bool:
        return self._session is None or self.clock() >= self._session.expires_at - self.margin

    def _ensure_session_flow(self) -> Flow:
        if self._session_due():
            if self._resource is None:
                if self._session is None:
                    raise Unauthorized("log in first (login_captcha or login_resource)", code=ErrorCode.NOT_LOGGED_IN)
                raise Unauthorized("the session has expired: log in again", code=ErrorCode.SESSION_EXPIRED)
            yield from self._resource_flow(*self._resource)
        if self._session is None:  # the login above sets it
            raise Unauthorized("log in first (login_captcha or login_resource)", code=ErrorCode.NOT_LOGGED_IN)
        return self._session

    def _token_flow(self, destination: str) -> Flow:
        cached = self._tokens.get(destination)
        if cached is not None and self.clock() < cached.claims.expires_at - self.margin and not self._session_due():
            return cached
        session = yield from self._ensure_session_flow()
        token = yield from client_token(session, destination)
        self._tokens[destination] = token
        return token

    def forget_token(self, destination: str) -> None:
        """Drop the cached token (the resource server refused it, e.g. after it logged in again)."""
        self._tokens.pop(destination, None)

    def _logout_flow(self) -> Flow:
        session, self._session, self._resource = self._session, None, None
        self._tokens.clear()
        if session is not None:
            reply = yield Call("DELETE", "/api/session", None, session.source_identifier)
            if reply.status not in (204, 401):
                raise error_from_reply(reply)
        return None


def _unreachable(exc: httpx.HTTPError) -> TokenwardError:
    return ServiceUnavailable(
        f"tokenward cannot be reached ({type(exc).__name__}); check its URL and that it is running",
        code=ErrorCode.ISSUER_UNREACHABLE,
    )


class Tokenward(_Core):
    """Synchronous client: ``Tokenward("https://auth.example.com", client_id=...)``."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin_seconds: float = 60.0,
        session_keys: SessionKeys | None = None,
    ) -> None:
        super().__init__(
            client_id=client_id, clock=clock, refresh_margin_seconds=refresh_margin_seconds, session_keys=session_keys
        )
        self._own_http = http is None
        self.http = http or httpx.Client(base_url=base_url, timeout=30.0)

    def _run(self, flow: Flow, authenticator: Authenticator | None = None) -> Any:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Ask):
                    if authenticator is None:
                        raise BadRequest(
                            "a captcha login needs an authenticator callback", code=ErrorCode.INVALID_REQUEST
                        )
                    answer = authenticator(step.challenge)
                    if inspect.isawaitable(answer):
                        raise BadRequest("the sync client needs a sync authenticator", code=ErrorCode.INVALID_REQUEST)
                    step = flow.send(answer)
                    continue
                try:
                    headers = {"authorization": f"Bearer {step.bearer}"} if step.bearer else {}
                    r = self.http.request(step.method, step.path, json=step.json, headers=headers)
                except httpx.HTTPError as exc:
                    raise _unreachable(exc) from None
                step = flow.send(Reply(r.status_code, r.content))
        except StopIteration as done:
            return done.value

    def login_captcha(
        self,
        email: str,
        *,
        authenticator: Authenticator,
        origin: str | None = None,
        app_hash: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> Session:
        """Log a user in with the captcha 2FA; ``authenticator`` reads the captcha and returns the code."""
        session: Session = self._run(self._captcha_flow(email, origin, app_hash, scopes), authenticator)
        return session

    def login_resource(self, resource: str, *, signing_key: Ed25519PrivateKey) -> Session:
        """Log in as a registered resource with its Ed25519 key (repeated by itself before expiry)."""
        session: Session = self._run(self._resource_flow(resource, signing_key))
        return session

    def ensure_session(self) -> Session:
        """The session, logging the resource in again when it is about to expire."""
        session: Session = self._run(self._ensure_session_flow())
        return session

    def client_token(self, destination: str) -> ClientToken:
        """A client token for ``destination``, from the cache until shortly before it expires."""
        token: ClientToken = self._run(self._token_flow(destination))
        return token

    def auth(self, destination: str, *, seal: bool = True) -> TokenwardAuth:
        """An :class:`httpx.Auth` for requests to ``destination`` (see :class:`TokenwardAuth`)."""
        return TokenwardAuth(self, destination, seal=seal)

    def logout(self) -> None:
        """End the session on every tokenward instance."""
        self._run(self._logout_flow())

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> Tokenward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTokenward(_Core):
    """Asynchronous client: ``AsyncTokenward("https://auth.example.com", client_id=...)``."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin_seconds: float = 60.0,
        session_keys: SessionKeys | None = None,
    ) -> None:
        super().__init__(
            client_id=client_id, clock=clock, refresh_margin_seconds=refresh_margin_seconds, session_keys=session_keys
        )
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=30.0)

    async def _run(self, flow: Flow, authenticator: Authenticator | None = None) -> Any:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Ask):
                    if authenticator is None:
                        raise BadRequest(
                            "a captcha login needs an authenticator callback", code=ErrorCode.INVALID_REQUEST
                        )
                    answer = authenticator(step.challenge)
                    step = flow.send(await answer if inspect.isawaitable(answer) else answer)
                    continue
                try:
                    headers = {"authorization": f"Bearer {step.bearer}"} if step.bearer else {}
                    r = await self.http.request(step.method, step.path, json=step.json, headers=headers)
                except httpx.HTTPError as exc:
                    raise _unreachable(exc) from None
                step = flow.send(Reply(r.status_code, r.content))
        except StopIteration as done:
            return done.value

    async def login_captcha(
        self,
        email: str,
        *,
        authenticator: Authenticator,
        origin: str | None = None,
        app_hash: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> Session:
        """Log a user in with the captcha 2FA; ``authenticator`` (sync or async) returns the code."""
        session: Session = await self._run(self._captcha_flow(email, origin, app_hash, scopes), authenticator)
        return session

    async def login_resource(self, resource: str, *, signing_key: Ed25519PrivateKey) -> Session:
        """Log in as a registered resource with its Ed25519 key (repeated by itself before expiry)."""
        session: Session = await self._run(self._resource_flow(resource, signing_key))
        return session

    async def ensure_session(self) -> Session:
        """The session, logging the resource in again when it is about to expire."""
        session: Session = await self._run(self._ensure_session_flow())
        return session

    async def client_token(self, destination: str) -> ClientToken:
        """A client token for ``destination``, from the cache until shortly before it expires."""
        token: ClientToken = await self._run(self._token_flow(destination))
        return token

    def auth(self, destination: str, *, seal: bool = True) -> TokenwardAuth:
        """An :class:`httpx.Auth` for requests to ``destination`` (see :class:`TokenwardAuth`)."""
        return TokenwardAuth(self, destination, seal=seal)

    async def logout(self) -> None:
        """End the session on every tokenward instance."""
        await self._run(self._logout_flow())

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncTokenward:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
