"""An external OpenID Provider as the ``oidc`` plugin sees it: discovery, JWKS, token requests, ID tokens.

Authlib builds the requests (``prepare_grant_uri``, ``prepare_token_request``, ``ClientAuth``) and
checks the ID token's claims (``CodeIDToken``/``IDToken``: ``iss``, ``aud``, ``azp``, ``exp``,
``iat``, ``nonce``); joserfc checks its signature against the provider's JWKS with a closed list of
asymmetric algorithms (never ``none``, never HS* — a client secret is not a signing key here).
Discovery and the JWKS are cached; an ID token naming a ``kid`` the cached JWKS lacks makes one
re-read (at most every :data:`JWKS_MIN_REFRESH` seconds), so a provider's key rotation is followed.

Every failure is an :class:`UpstreamError` with a machine-readable code; a provider that cannot be
reached is ``oidc_provider_unavailable`` (the plugin answers 503).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken, IDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.schema import OidcPlugin
from tokenward.keys.signing import REGISTRY as TOKENWARD_JWS_REGISTRY

__all__ = ["IdToken", "LoginRequest", "TokenAnswer", "UpstreamError", "UpstreamProvider"]

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_ID_TOKEN_LENGTH = 16384
JWKS_MIN_REFRESH = 60.0
#: What an ID token may be signed with: asymmetric only.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519")


_REFUSED = {"code": ErrorCode.OIDC_CODE_REFUSED, "refresh": ErrorCode.OIDC_REFRESH_REFUSED}


class UpstreamError(Exception):
    """A refusal from (or about) the provider; ``status`` is what ``/verify`` answers."""

    def __init__(self, code: ErrorCode, detail: str, *, status: int = 401) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


class _Registry(JWSRegistry):
    # ``EdDSA`` restricted to Ed25519 (keys.signing): the polymorphic name warns in joserfc otherwise.
    algorithms: ClassVar[dict[str, Any]] = {  # type: ignore[misc]
        **{name: JWSRegistry.algorithms[name] for name in ASYMMETRIC if name != "EdDSA"},
        "EdDSA": TOKENWARD_JWS_REGISTRY.algorithms["EdDSA"],
    }
    recommended: ClassVar[list[str]] = []  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """Where to send the browser, and what to remember until the callback."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """A token endpoint answer: the verified ID token's claims (None when a refresh sent none)."""

    claims: dict[str, Any] | None
    id_token: str | None
    refresh_token: str | None
    expires_in: int | None
    access_token: str = ""


@dataclass(frozen=True, slots=True)
class IdToken:
    claims: dict[str, Any]
    raw: str


@dataclass(slots=True)
class _Metadata:
    document: dict[str, Any]
    until: float


class UpstreamProvider:
    """One provider for one client (``issuer`` + ``client_id`` of an ``oidc`` plugin config)."""

    def __init__(
        self, config: OidcPlugin, http: httpx.AsyncClient, *, clock: Callable[[], float], monotonic: Callable[[], float]
    ) -> None:
        self.config = config
        self.http = http
        self.clock = clock
        self.monotonic = monotonic
        self.issuer = config.issuer.rstrip("/")
        secret = config.client_secret
        self.auth = ClientAuth(config.client_id, secret, config.token_endpoint_auth_method)
        self._meta: _Metadata | None = None
        self._keys: KeySet | None = None
        self._keys_at = float("-inf")
        self._lock = asyncio.Lock()

    # -- fetching ---------------------------------------------------------------------------------

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, timeout=self.config.timeout_seconds, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE,
                f"the provider's {what} could not be read ({type(exc).__name__})",
                status=503,
            ) from None
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE,
                f"the provider's {what} answered {response.status_code}",
                status=503,
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE, f"the provider's {what} is not a JSON object", status=503
            )
        return data

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (OpenID Connect Discovery 1.0 §4), cached ``discovery_cache_seconds``."""
        meta = self._meta
        if meta is not None and self.monotonic() < meta.until:
            return meta.document
        async with self._lock:
            meta = self._meta
            if meta is not None and self.monotonic() < meta.until:
                return meta.document
            doc = await self._get_json(self.issuer + "/.well-known/openid-configuration", "discovery document")
            # Discovery §4.3: the issuer in the document must be the one asked for, exactly.
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise UpstreamError(
                    ErrorCode.OIDC_PROVIDER_INVALID,
                    "the discovery document names another issuer than configured",
                    status=503,
                )
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not str(doc.get(name, "")).startswith(("https://", "http://")):
                    raise UpstreamError(
                        ErrorCode.OIDC_PROVIDER_INVALID, f"the discovery document has no usable {name}", status=503
                    )
            self._meta = _Metadata(doc, self.monotonic() + self.config.discovery_cache_seconds)
            return doc

    async def _key_set(self, *, refresh: bool) -> KeySet:
        keys = self._keys
        stale = self.monotonic() - self._keys_at >= self.config.discovery_cache_seconds
        if keys is not None and not stale and not (refresh and self.monotonic() - self._keys_at >= JWKS_MIN_REFRESH):
            return keys
        doc = await self._get_json(str((await self.metadata())["jwks_uri"]), "JWKS")
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_INVALID, "the provider's JWKS could not be read", status=503
            ) from None
        self._keys, self._keys_at = keys, self.monotonic()
        return keys

    # -- the protocol ---------------------------------------------------------------------------

    async def login_request(self, *, state: str, nonce: str, verifier: str) -> LoginRequest:
        """The authorization request URL (RFC 6749 §4.1.1, PKCE S256 RFC 7636 §4.3, nonce Core §3.1.2.1)."""
        meta = await self.metadata()
        url = prepare_grant_uri(
            str(meta["authorization_endpoint"]),
            self.config.client_id,
            "code",
            redirect_uri=self.config.redirect_uri,
            scope=" ".join(self.config.scopes),
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return LoginRequest(url, state, nonce, verifier)

    async def _token_request(self, body: str, what: str) -> dict[str, Any]:
        meta = await self.metadata()
        uri, headers, body = self.auth.prepare(
            "POST",
            str(meta["token_endpoint"]),
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body,
        )
        try:
            response = await self.http.post(
                uri, content=body, headers=headers, timeout=self.config.timeout_seconds, follow_redirects=False
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE,
                f"the token endpoint could not be reached ({type(exc).__name__})",
                status=503,
            ) from None
        try:
            data = response.json() if len(response.content) <= MAX_DOCUMENT_BYTES else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE, f"the token endpoint answered {response.status_code}", status=503
            )
        if response.status_code != 200 or "error" in data:
            error = str(data.get("error", "error"))[:64]
            if response.status_code >= 500:
                raise UpstreamError(
                    ErrorCode.OIDC_PROVIDER_UNAVAILABLE, f"the token endpoint failed ({error})", status=503
                )
            raise UpstreamError(_REFUSED[what], f"the provider refused the {what.replace('_', ' ')} ({error})")
        if str(data.get("token_type", "")).lower() != "bearer" or not isinstance(data.get("access_token"), str):
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_INVALID, "the token endpoint's answer is not a Bearer token", status=502
            )
        return data

    async def exchange_code(self, code: str, *, verifier: str, nonce: str) -> TokenAnswer:
        """Redeem the authorization code (RFC 6749 §4.1.3) and verify the ID token with the expected nonce."""
        body = prepare_token_request(
            "authorization_code", code=code, redirect_uri=self.config.redirect_uri, code_verifier=verifier
        )
        data = await self._token_request(body, "code")
        raw = data.get("id_token")
        if not isinstance(raw, str):
            raise UpstreamError(
                ErrorCode.OIDC_ID_TOKEN_INVALID, "the provider sent no ID token (is `openid` in scopes?)"
            )
        token = await self.verify_id_token(raw, nonce=nonce)
        return TokenAnswer(
            token.claims, raw, _str(data.get("refresh_token")), _int(data.get("expires_in")), data["access_token"]
        )

    async def refresh(self, refresh_token: str, *, subject: str) -> TokenAnswer:
        """The refresh grant (RFC 6749 §6); a new ID token must name the same subject (Core §12.2)."""
        data = await self._token_request(prepare_token_request("refresh_token", refresh_token=refresh_token), "refresh")
        raw = data.get("id_token")
        claims = None
        if isinstance(raw, str):
            claims = (await self.verify_id_token(raw, nonce=None)).claims
            if not hmac.compare_digest(str(claims.get("sub", "")), subject):
                raise UpstreamError(ErrorCode.OIDC_ID_TOKEN_INVALID, "the refreshed ID token names another subject")
        return TokenAnswer(
            claims,
            raw if isinstance(raw, str) else None,
            _str(data.get("refresh_token")),
            _int(data.get("expires_in")),
            data["access_token"],
        )

    async def userinfo(self, access_token: str, *, subject: str) -> dict[str, Any]:
        """The userinfo endpoint's claims (Core §5.3); its ``sub`` must be the ID token's (§5.3.2)."""
        meta = await self.metadata()
        url = meta.get("userinfo_endpoint")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise UpstreamError(ErrorCode.OIDC_PROVIDER_INVALID, "the provider has no userinfo_endpoint", status=503)
        try:
            response = await self.http.get(
                url,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.config.timeout_seconds,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE, f"the userinfo endpoint failed ({type(exc).__name__})", status=503
            ) from None
        try:
            data = response.json() if len(response.content) <= MAX_DOCUMENT_BYTES else None
        except ValueError:
            data = None
        if response.status_code != 200 or not isinstance(data, dict):
            status = 503 if response.status_code >= 500 or not isinstance(data, dict) else 401
            raise UpstreamError(
                ErrorCode.OIDC_USERINFO_REFUSED, f"the userinfo endpoint answered {response.status_code}", status=status
            )
        if not hmac.compare_digest(str(data.get("sub", "")), subject):
            raise UpstreamError(ErrorCode.OIDC_USERINFO_REFUSED, "the userinfo names another subject than the ID token")
        return data

    async def verify_id_token(self, raw: str, *, nonce: str | None) -> IdToken:
        """Signature (JWKS, closed algorithm list), then ``iss``/``aud``/``azp``/``exp``/``iat``/``nonce``."""
        if len(raw) > MAX_ID_TOKEN_LENGTH:
            raise UpstreamError(ErrorCode.OIDC_ID_TOKEN_INVALID, "the ID token is too long")
        meta = await self.metadata()
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in ASYMMETRIC if isinstance(offered, list) and a in offered]
        if not algorithms:
            raise UpstreamError(
                ErrorCode.OIDC_PROVIDER_INVALID, "the provider signs ID tokens with no asymmetric algorithm"
            )
        registry = _Registry(algorithms=algorithms)
        decoded = None
        for refresh in (False, True):
            keys = await self._key_set(refresh=refresh)
            try:
                decoded = jwt.decode(raw, keys, algorithms=algorithms, registry=registry)
                break
            except JoseError as exc:
                if refresh or type(exc).__name__ not in ("InvalidKeyIdError", "BadSignatureError"):
                    raise UpstreamError(
                        ErrorCode.OIDC_ID_TOKEN_INVALID, f"the ID token's signature was refused ({type(exc).__name__})"
                    ) from None
            except ValueError:
                raise UpstreamError(ErrorCode.OIDC_ID_TOKEN_INVALID, "the ID token is not a JWT") from None
        if decoded is None:  # pragma: no cover - the loop raises or breaks
            raise UpstreamError(ErrorCode.OIDC_ID_TOKEN_INVALID, "the ID token could not be verified")
        options = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.config.client_id},
        }
        params = {"client_id": self.config.client_id, "nonce": nonce}
        claims_class = CodeIDToken if nonce is not None else IDToken
        claims = claims_class(decoded.claims, decoded.header, options=options, params=params)
        try:
            claims.validate(now=int(self.clock()), leeway=self.config.leeway_seconds)
        except JoseError as exc:
            raise UpstreamError(ErrorCode.OIDC_ID_TOKEN_INVALID, f"the ID token was refused ({exc.error})") from None
        if nonce is not None and not hmac.compare_digest(str(decoded.claims.get("nonce", "")), nonce):
            raise UpstreamError(
                ErrorCode.OIDC_ID_TOKEN_INVALID, "the ID token's nonce is not the one this sign-in sent"
            )
        return IdToken(dict(decoded.claims), raw)

    async def end_session_url(self) -> str | None:
        """RP-Initiated Logout's ``end_session_endpoint``, when the provider has one and can be reached."""
        try:
            meta = await self.metadata()
        except UpstreamError:
            return None
        url = meta.get("end_session_endpoint")
        return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
