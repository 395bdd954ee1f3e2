"""``jwt``: a JWT verified by a shared secret (HS*), a PEM public key or a JWKS URL (cached).

Only the algorithms the token's config lists are accepted (no ``none``, no HS/RS confusion: a
secret verifies only HS*, a public key never does). ``exp`` is required (``require_exp``, default
true); ``exp``/``nbf`` are checked with a leeway;
``iss`` and ``aud`` when configured. Claim assertions run over ``userinfo`` like any plugin's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey, import_key
from joserfc.jwt import JWTClaimsRegistry

from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.plugins.base import Outcome, Plugin, UserInfo, VerifyRequest
from tokenward.forwardauth.plugins.basic import bearer_token
from tokenward.forwardauth.schema import JwtPlugin

__all__ = ["JwtAuth"]

MAX_JWT_LENGTH = 16384
MAX_JWKS_BYTES = 256 * 1024


class JwtAuth(Plugin[JwtPlugin]):
    def __init__(self, config: JwtPlugin, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(config)
        self.http = http
        self.challenge = f'Bearer realm="{config.realm}"'
        self._key: Any = None
        if config.secret is not None:
            self._key = OctKey.import_key(config.secret.encode("utf-8"))
        elif config.public_key is not None:
            self._key = import_key(config.public_key, config.public_key_type)
        self._jwks_until = 0.0
        self._jwks_lock = asyncio.Lock()
        claims: dict[str, Any] = {"exp": {"essential": False}}  # require_exp is checked first, with its own code
        if config.issuer is not None:
            claims["iss"] = {"essential": True, "value": config.issuer}
        if config.audience is not None:
            claims["aud"] = {"essential": True, "value": config.audience}
        self._registry = JWTClaimsRegistry(leeway=config.leeway_seconds, **claims)

    def _token(self, request: VerifyRequest) -> str | None:
        cfg = self.config
        if cfg.query_param is not None:
            values = request.info.query_params.get(cfg.query_param)
            if values:
                return values[0]
        if cfg.cookie is not None:
            from http.cookies import CookieError, SimpleCookie

            cookie = SimpleCookie()
            try:
                cookie.load(request.headers.get("cookie", "")[:16384])
            except CookieError:
                return None
            if cfg.cookie in cookie:
                return cookie[cfg.cookie].value
        return bearer_token(request.headers, header=cfg.header.lower(), scheme=cfg.scheme)

    async def _keys(self) -> Any:
        if self.config.jwks_url is None:
            return self._key
        if self._key is not None and time.monotonic() < self._jwks_until:
            return self._key
        async with self._jwks_lock:
            if self._key is not None and time.monotonic() < self._jwks_until:
                return self._key
            if self.http is None:
                raise JoseError("no HTTP client for the JWKS URL")
            response = await self.http.get(self.config.jwks_url, timeout=5.0)
            response.raise_for_status()
            if len(response.content) > MAX_JWKS_BYTES:
                raise JoseError("the JWKS document is too large")
            self._key = KeySet.import_key_set(response.json())
            self._jwks_until = time.monotonic() + self.config.jwks_cache_seconds
            return self._key

    async def verify(self, request: VerifyRequest) -> Outcome:
        token = self._token(request)
        if token is None:
            return Outcome.failure(ErrorCode.CREDENTIALS_MISSING, "no JWT given", challenge=self.challenge)
        if len(token) > MAX_JWT_LENGTH:
            return Outcome.failure(ErrorCode.JWT_INVALID, "the JWT is too long", challenge=self.challenge)
        try:
            key = await self._keys()
        except (httpx.HTTPError, JoseError, ValueError):
            return Outcome.failure(ErrorCode.JWKS_UNAVAILABLE, "the JWKS URL could not be read", status=503)
        error = f'Bearer realm="{self.config.realm}", error="invalid_token"'
        try:
            decoded = jwt.decode(token, key, algorithms=list(self.config.algorithms))
            if self.config.require_exp and "exp" not in decoded.claims:
                detail = "the JWT has no exp claim, so it would never expire (set require_exp: false to accept it)"
                return Outcome.failure(ErrorCode.JWT_EXP_MISSING, detail, challenge=error)
            self._registry.validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            return Outcome.failure(
                ErrorCode.JWT_INVALID, f"the JWT was refused ({type(exc).__name__})", challenge=error
            )
        claims = decoded.claims
        groups = claims.get(self.config.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        user = UserInfo(
            sub=str(claims.get(self.config.user_claim) or ""),
            email=str(claims.get(self.config.email_claim) or ""),
            groups=tuple(str(g) for g in groups if isinstance(g, str | int)),
            name=str(claims.get(self.config.name_claim) or ""),
            claims=claims,
        )
        return Outcome.success(user)
