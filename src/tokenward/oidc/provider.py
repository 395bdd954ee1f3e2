"""The OpenID Provider, built on Authlib's server components (RFC 6749, RFC 7636, OpenID Connect Core,
RP-Initiated Logout 1.0).

Authlib parses and validates the protocol; tokenward supplies the storage, the signing keys, the
policy and the sign-in. Authlib's server is synchronous, tokenward's storage is async: each
endpoint runs Authlib in a worker thread (:func:`anyio.to_thread.run_sync`) and Authlib's
callbacks reach the async store back on the event loop (:func:`anyio.from_thread.run`). The
request is read completely before it enters the thread.

Single use across instances: a code is redeemed, and a refresh token rotated, by one
conditional UPDATE that also stores the new refresh token; the loser of a race gets
``invalid_grant`` and its freshly made tokens are never sent. A code or rotated refresh token
that comes back revokes every refresh token issued from that sign-in (RFC 6749 §4.1.2,
RFC 9700 §4.14.2).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote

import anyio
import anyio.from_thread
import anyio.to_thread
from authlib.oauth2 import rfc6749, rfc7636
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidGrantError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest

from tokenward.apptokens.regulation import Regulator, client_key, ip_key
from tokenward.errorcodes import ErrorCode
from tokenward.errors import TooManyRequests, Unauthorized
from tokenward.identity.apps import app_hash_of_origin
from tokenward.identity.client_tokens import jwks
from tokenward.identity.policy import IdentityPolicy
from tokenward.identity.sessions import SessionService
from tokenward.keys import Keyring
from tokenward.oidc.claims import SCOPES, user_claims
from tokenward.oidc.clients import CODE_PREFIX, REFRESH_PREFIX, OidcClient, hash_secret, new_secret
from tokenward.oidc.tokens import (
    ACCESS_TOKEN_TYPE,
    half_hash,
    sign_jwt,
    signing_algorithm,
    verify_access_token,
    verify_id_token_hint,
)
from tokenward.storage.audit import AuditEvent, AuditLog
from tokenward.storage.oidc import AuthorizationCode, RefreshToken, SqlOidcStore

__all__ = ["EndUser", "Incoming", "OidcLifetimes", "OidcProvider", "Outgoing"]

T = TypeVar("T")
MAX_PARAM_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class OidcLifetimes:
    code: int = 60
    access_token: int = 600
    id_token: int = 600
    refresh_token: int = 30 * 86400


@dataclass(frozen=True, slots=True)
class Incoming:
    """One HTTP request, fully read: what Authlib sees of it."""

    method: str
    uri: str
    headers: Mapping[str, str]
    query: Mapping[str, list[str]]
    form: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What to answer: ``body`` is a dict (JSON) or text; ``redirect`` is set for a 302."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


@dataclass(frozen=True, slots=True)
class EndUser:
    """The signed-in portal user a code is issued to."""

    subject: str
    session_id: str
    auth_time: float


class _Request(rfc6749.OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.uri, headers=dict(incoming.headers))
        self._args = {k: v[0] for k, v in incoming.query.items() if v}
        self._form = {k: v[0] for k, v in incoming.form.items() if v}
        merged = {**self._args, **self._form}
        datalist: dict[str, list[str]] = {}
        for source in (incoming.query, incoming.form):
            for key, values in source.items():
                datalist.setdefault(key, []).extend(values)
        payload = BasicOAuth2Payload(merged)
        payload._datalist = datalist
        self.payload = payload

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def _bridge(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run an async store call from Authlib's worker thread on the event loop."""
    return anyio.from_thread.run(fn, *args)


class _Server(rfc6749.AuthorizationServer):  # type: ignore[misc]
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.provider = provider

    def query_client(self, client_id: str | None) -> OidcClient | None:
        if not client_id or len(client_id) > 64:
            return None
        return _bridge(self.provider.store.get_client, client_id)

    def save_token(self, token: dict[str, Any], request: rfc6749.OAuth2Request) -> None:
        # Stored by the grant in the same transaction that uses up the code or old refresh token.
        return None

    def create_oauth2_request(self, request: Any) -> rfc6749.OAuth2Request:
        if isinstance(request, rfc6749.OAuth2Request):
            return request
        return _Request(request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Outgoing:
        return Outgoing(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class _CodeChallenge(rfc7636.CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, required for public clients (RFC 9700 §2.1.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if grant.request.client.public and not data.get("code_challenge"):
            raise InvalidRequestError(
                "a public client must send code_challenge with code_challenge_method=S256", redirect_uri=redirect_uri
            )
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDToken(OpenIDCode):  # type: ignore[misc]
    """Adds the ID token to the token response (code and refresh grants), signed like client tokens."""

    def __init__(self, provider: OidcProvider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # the relying party checks its own nonce; codes are single use

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        user: EndUser = request.user
        code: AuthorizationCode | None = request.authorization_code
        return self.provider.id_token(
            client=request.client,
            user=user,
            scope=token["scope"],
            access_token=token.get("access_token"),
            nonce=code.nonce if code is not None else None,
        )


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

    @property
    def provider(self) -> OidcProvider:
        provider: OidcProvider = self.server.provider
        return provider

    def generate_authorization_code(self) -> str:
        return new_secret(CODE_PREFIX)

    def save_authorization_code(self, code: str, request: Any) -> None:
        provider = self.provider
        user: EndUser = request.user
        data = request.payload.data
        now = provider.clock()
        record = AuthorizationCode(
            code_hash=hash_secret(code),
            client_id=request.client.client_id,
            subject=user.subject,
            session_id=user.session_id,
            redirect_uri=request.payload.redirect_uri or request.client.get_default_redirect_uri() or "",
            scope=request.scope or "openid",
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=user.auth_time,
            expires_at=now + provider.lifetimes.code,
            family_id=secrets.token_urlsafe(32),
        )
        _bridge(provider.store.add_code, record)
        _bridge(provider.audit_event, user.subject, "oidc.code_issued", request.client.client_id)

    def query_authorization_code(self, code: str, client: OidcClient) -> AuthorizationCode | None:
        if not isinstance(code, str) or not code.startswith(CODE_PREFIX) or len(code) > 100:
            return None
        provider = self.provider
        record = _bridge(provider.store.get_code, hash_secret(code))
        if record is None or record.client_id != client.client_id:
            return None
        if record.used_at is not None:
            # RFC 6749 §4.1.2: a reused code SHOULD revoke what it was exchanged for.
            _bridge(provider.replayed, record.family_id, record.subject, "oidc.code_replayed", client.client_id)
            return None
        if provider.clock() >= record.expires_at:
            return None
        return record

    def authenticate_user(self, code: AuthorizationCode) -> EndUser:
        return EndUser(code.subject, code.session_id, code.auth_time)

    def delete_authorization_code(self, code: AuthorizationCode) -> None:
        provider = self.provider
        token = getattr(self, "_tw_token", None) or {}
        first = provider.refresh_record(token, code, client_id=code.client_id)
        if not _bridge(provider.redeem, code, first):
            raise InvalidGrantError("the authorization code was already used")

    def save_token(self, token: dict[str, Any]) -> None:
        self._tw_token = token


class _RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotate on every use

    @property
    def provider(self) -> OidcProvider:
        provider: OidcProvider = self.server.provider
        return provider

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        if not isinstance(refresh_token, str) or not refresh_token.startswith(REFRESH_PREFIX):
            return None
        if len(refresh_token) > 100:
            return None
        provider = self.provider
        record = _bridge(provider.store.get_refresh_token, hash_secret(refresh_token))
        if record is None:
            return None
        if record.revoked_at is not None:
            return None
        if record.rotated_at is not None:
            _bridge(provider.replayed, record.family_id, record.subject, "oidc.refresh_replayed", record.client_id)
            return None
        if provider.clock() >= record.expires_at:
            return None
        if not _bridge(provider.session_alive, record.session_id):
            return None
        return record

    def authenticate_user(self, refresh_token: RefreshToken) -> EndUser:
        provider = self.provider
        if not provider.allowed(refresh_token.subject, refresh_token.client_id):
            raise InvalidGrantError("the policy no longer lets this user sign in to this client")
        return EndUser(refresh_token.subject, refresh_token.session_id, refresh_token.auth_time)

    def save_token(self, token: dict[str, Any]) -> None:
        self._tw_token = token

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        provider = self.provider
        token = getattr(self, "_tw_token", None) or {}
        new = provider.refresh_record(token, refresh_token, client_id=refresh_token.client_id)
        if not _bridge(provider.rotate, refresh_token, new):
            raise InvalidGrantError("the refresh token was already used")


class _EndSession(EndSessionEndpoint):  # type: ignore[misc]
    def __init__(self, provider: OidcProvider) -> None:
        super().__init__()
        self.provider = provider

    def get_server_jwks(self) -> dict[str, Any]:
        return jwks(self.provider.keyring(), now=self.provider.clock())

    def _validate_id_token_hint(self, id_token_hint: str) -> dict[str, Any]:
        # Our own closed algorithm list and registry (keys.signing), not joserfc's global one.
        provider = self.provider
        try:
            return verify_id_token_hint(id_token_hint, provider.keyring(), issuer=provider.issuer, now=provider.clock())
        except Unauthorized as exc:
            raise InvalidRequestError(exc.detail) from None

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        return None  # done by OidcProvider.end_session once Authlib has validated the request


class OidcProvider:
    """The OpenID Provider of one tokenward server name (docs/oidc.md)."""

    def __init__(
        self,
        *,
        issuer: str,
        store: SqlOidcStore,
        sessions: SessionService,
        keyring: Callable[[], Keyring],
        policy: Callable[[], IdentityPolicy | None],
        audit: AuditLog | None = None,
        lifetimes: OidcLifetimes | None = None,
        regulator: Regulator | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.store = store
        self.sessions = sessions
        self.keyring = keyring
        self.policy = policy
        self.audit = audit
        self.lifetimes = lifetimes or OidcLifetimes()
        self.regulator = regulator
        self.clock = clock
        server = _Server(self)
        server.register_token_generator("default", self._generate_token)
        server.register_grant(_AuthorizationCodeGrant, [_CodeChallenge(required=True), _OpenIDToken(self)])
        server.register_grant(_RefreshTokenGrant, [_OpenIDToken(self)])
        server.register_endpoint(_EndSession(self))
        self.server = server

    # -- metadata -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.issuer + path

    def discovery(self) -> dict[str, Any]:
        """OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3, RFC 8414)."""
        alg = signing_algorithm(self.keyring())
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("/oidc/authorize"),
            "token_endpoint": self.url("/oidc/token"),
            "userinfo_endpoint": self.url("/oidc/userinfo"),
            "end_session_endpoint": self.url("/oidc/logout"),
            "jwks_uri": self.url("/.well-known/jwks.json"),
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "sid",
                "email",
                "email_verified",
                "name",
                "preferred_username",
                "groups",
            ],
            "prompt_values_supported": ["none", "login"],
        }

    # -- policy and claims ----------------------------------------------------------------------

    def allowed(self, subject: str, client_id: str, redirect_uri: str | None = None) -> bool:
        """``login`` on this client (userpolicy.csv) and, when it has rows, ``clientaccess`` (clientappspolicy.csv)."""
        policy = self.policy()
        if policy is None or not policy.can_login(subject, client_id).allowed:
            return False
        if redirect_uri is not None:
            return policy.client_access(app_hash_of_origin(redirect_uri), client_id).allowed
        return True

    def groups(self, subject: str, client: OidcClient) -> frozenset[str]:
        """The roles clientscopespolicy.csv grants ``subject`` for ``client`` (app hash of its first redirect URI)."""
        policy = self.policy()
        if policy is None:
            return frozenset()
        return policy.scopes(subject, client.app_hash, client.client_id)

    def claims(self, subject: str, client: OidcClient, scope: str) -> dict[str, Any]:
        groups = self.groups(subject, client) if "groups" in scope.split() else frozenset()
        return user_claims(subject, scope, groups)

    def id_token(
        self, *, client: OidcClient, user: EndUser, scope: str, access_token: str | None, nonce: str | None
    ) -> str:
        now = int(self.clock())
        client_id = client.client_id
        claims: dict[str, Any] = {
            **self.claims(user.subject, client, scope),
            "iss": self.issuer,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.lifetimes.id_token,
            "auth_time": int(user.auth_time),
            "sid": user.session_id,
            "amr": ["otp"],
        }
        if nonce:
            claims["nonce"] = nonce
        keyring = self.keyring()
        if access_token and signing_algorithm(keyring) == "EdDSA":
            # OPTIONAL in the code flow (Core §3.1.3.6); its hash is only defined for the EdDSA name.
            claims["at_hash"] = half_hash(access_token)
        return sign_jwt(claims, keyring)

    def _generate_token(
        self,
        grant_type: str,
        client: OidcClient,
        user: EndUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if user is None:
            raise InvalidGrantError("no user for this grant")
        now = int(self.clock())
        lifetime = self.lifetimes.access_token
        access = sign_jwt(
            {
                "iss": self.issuer,
                "sub": user.subject,
                "aud": client.client_id,
                "client_id": client.client_id,
                "scope": scope or "openid",
                "sid": user.session_id,
                "auth_time": int(user.auth_time),
                "iat": now,
                "exp": now + lifetime,
                "jti": secrets.token_urlsafe(16),
            },
            self.keyring(),
            typ=ACCESS_TOKEN_TYPE,
        )
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": lifetime,
            "scope": scope or "openid",
        }
        if include_refresh_token:
            token["refresh_token"] = new_secret(REFRESH_PREFIX)
        return token

    def refresh_record(
        self, token: Mapping[str, Any], origin: AuthorizationCode | RefreshToken, *, client_id: str
    ) -> RefreshToken | None:
        value = token.get("refresh_token")
        if not value:
            return None
        now = self.clock()
        return RefreshToken(
            token_hash=hash_secret(str(value)),
            family_id=origin.family_id,
            client_id=client_id,
            subject=origin.subject,
            session_id=origin.session_id,
            scope=origin.scope,
            auth_time=origin.auth_time,
            issued_at=now,
            expires_at=now + self.lifetimes.refresh_token,
        )

    # -- store operations Authlib's callbacks reach through the bridge --------------------------

    async def redeem(self, code: AuthorizationCode, first: RefreshToken | None) -> bool:
        done = await self.store.redeem_code(code, first, now=self.clock())
        if done:
            await self.audit_event(code.subject, "oidc.token_issued", code.client_id)
        return done

    async def rotate(self, old: RefreshToken, new: RefreshToken | None) -> bool:
        done = await self.store.rotate_refresh_token(old, new, now=self.clock())
        if not done:
            await self.replayed(old.family_id, old.subject, "oidc.refresh_replayed", old.client_id)
        return done

    async def replayed(self, family_id: str, subject: str, action: str, client_id: str) -> None:
        revoked = await self.store.revoke_family(family_id, now=self.clock())
        await self.audit_event(subject, action, client_id, revoked=revoked)

    async def session_alive(self, session_id: str) -> bool:
        return await self.sessions.alive(session_id)

    async def audit_event(self, subject: str, action: str, client_id: str, **detail: object) -> None:
        if self.audit is not None:
            await self.audit.append(
                AuditEvent(
                    at=datetime.fromtimestamp(self.clock(), UTC),
                    actor=subject,
                    action=action,
                    subject=subject,
                    target=client_id,
                    detail=detail,
                )
            )

    # -- endpoints ------------------------------------------------------------------------------

    async def authorize(self, incoming: Incoming, user: EndUser | None) -> Outgoing | str:
        """The authorization endpoint: an answer, or ``"login"`` when the user must sign in first.

        Errors that cannot be sent back to the client (unknown client, unregistered redirect URI)
        are answered here with 400; every other error goes back to the client's redirect URI.
        """

        def consent() -> Any:
            try:
                return self.server.get_consent_grant(incoming, end_user=user)
            except OAuth2Error as error:
                return self.server.handle_error_response(None, error)

        grant = await anyio.to_thread.run_sync(consent)
        if isinstance(grant, Outgoing):
            return grant
        if user is None or getattr(grant, "prompt", None) == "login" or self._too_old(grant, user):
            return "login"
        redirect_uri = grant.request.payload.redirect_uri or grant.request.client.get_default_redirect_uri()
        granted: EndUser | None = user
        if not self.allowed(user.subject, grant.request.client.client_id, redirect_uri):
            granted = None
            await self.audit_event(user.subject, "oidc.access_denied", grant.request.client.client_id)

        def respond() -> Outgoing:
            try:
                if granted is None:
                    raise AccessDeniedError(
                        "the policy does not let this user sign in to this client", redirect_uri=redirect_uri
                    )
                result: Outgoing = self.server.create_authorization_response(
                    request=grant.request, grant_user=granted, grant=grant
                )
                return result
            except OAuth2Error as error:
                error.state = grant.request.payload.state
                out: Outgoing = self.server.handle_error_response(grant.request, error)
                return out

        return await anyio.to_thread.run_sync(respond)

    def _too_old(self, grant: Any, user: EndUser) -> bool:
        max_age = grant.request.payload.data.get("max_age")
        if max_age is None:
            return False
        try:
            seconds = int(max_age)
        except ValueError:
            return False
        return self.clock() - user.auth_time > seconds

    async def token(self, incoming: Incoming, *, client_ip: str | None = None) -> Outgoing:
        """The token endpoint. Client authentication is regulated like every credential check: failed
        ``invalid_client`` answers count against the client ID and the caller's IP, and a banned one
        gets 429 ``too_many_attempts`` with ``Retry-After`` before its secret is even looked at."""
        regulator = self.regulator
        keys = _regulation_keys(incoming, client_ip)
        if regulator is not None:
            now = self.clock()
            try:
                await regulator.enforce(keys, now)
            except TooManyRequests as exc:
                return Outgoing(
                    429,
                    {"error": exc.error_code, "error_description": exc.detail},
                    [("Retry-After", str(exc.retry_after or 1))],
                )
        result: Outgoing = await anyio.to_thread.run_sync(self.server.create_token_response, incoming)
        if regulator is not None and result.status == 401 and isinstance(result.body, dict):
            if result.body.get("error") == "invalid_client":
                regulator.failure(keys, self.clock())
        return result

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        """The claims of the token's scope; 401 ``invalid_token`` for a bad, expired or signed-out token."""
        claims = verify_access_token(access_token, self.keyring(), issuer=self.issuer, now=self.clock())
        if "openid" not in str(claims.get("scope", "")).split():
            raise Unauthorized(
                "the access token was not issued for the openid scope", code=ErrorCode.INSUFFICIENT_SCOPE
            )
        if not await self.session_alive(str(claims.get("sid", ""))):
            raise Unauthorized("the user signed out; sign in again", code=ErrorCode.INVALID_TOKEN)
        client = await self.store.get_client(str(claims.get("client_id", "")))
        if client is None:
            raise Unauthorized("the client of this access token was removed", code=ErrorCode.INVALID_TOKEN)
        return self.claims(str(claims["sub"]), client, str(claims["scope"]))

    async def end_session(self, incoming: Incoming) -> tuple[Outgoing | None, str | None]:
        """RP-initiated logout. Returns (answer, session id to end).

        With a valid ``id_token_hint`` the session it names ends and the browser goes to the
        registered ``post_logout_redirect_uri`` (with ``state``); without one nothing is ended
        (RP-Initiated Logout §6: a logout request needs the user's confirmation) and the caller
        shows the portal, whose Sign out button ends the session.
        """

        def validate() -> Any:
            try:
                return self.server.validate_endpoint_request("end_session", incoming)
            except OAuth2Error as error:
                return self.server.handle_error_response(None, error)

        req = await anyio.to_thread.run_sync(validate)
        if isinstance(req, Outgoing):
            return req, None
        if req.needs_confirmation:
            return None, None
        claims = req.id_token_claims or {}
        session_id = str(claims.get("sid", ""))
        await self.sessions.revoke(session_id, now=self.clock())  # every instance, through the change feed
        revoked = await self.store.revoke_session(session_id, now=self.clock())
        await self.audit_event(str(claims.get("sub", "")), "oidc.logout", str(claims.get("aud", "")), revoked=revoked)
        if req.redirect_uri:
            return Outgoing(302, "", [("Location", req.redirect_uri)]), session_id
        return None, session_id


def _regulation_keys(incoming: Incoming, client_ip: str | None) -> tuple[str, ...]:
    """Regulation keys of a token request: its client ID (Basic user or ``client_id``) and the caller's IP."""
    client_id = ""
    scheme, _, value = incoming.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            client_id = unquote(base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0])
        except (ValueError, UnicodeDecodeError):
            client_id = ""
    if not client_id:
        client_id = (incoming.form.get("client_id") or [""])[0]
    keys = [client_key(client_id[:64])] if client_id else []
    if client_ip:
        keys.append(ip_key(client_ip))
    return tuple(keys)
