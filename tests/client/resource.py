"""A resource server (FastAPI + TokenwardMiddleware) and an issuer serving a JWKS, for the middleware tests."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.client.conftest import make_claims
from tokenward.client import JWKSCache, SessionKeys, TokenwardMiddleware, Verifier
from tokenward.client.channel import make_proof
from tokenward.client.fastapi import VerifiedCaller, require_scopes
from tokenward.identity.client_tokens import ClientTokenClaims, b64u_of_public, channel_key, jwks, sign_client_token
from tokenward.keys import Keyring

ISSUER = "auth.example.com"
RESOURCE = "api.example.com"
ORIGIN = "https://app.example.com"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Issuer:
    """The token server's JWKS endpoint; ``down`` makes it answer 503, ``keyrings`` are what it publishes."""

    def __init__(self, *keyrings: Keyring, clock: Clock) -> None:
        self.keyrings = list(keyrings)
        self.down = False
        self.fetches = 0
        self.clock = clock
        self.app = Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)])

    async def _jwks(self, request: StarletteRequest) -> Response:
        self.fetches += 1
        if self.down:
            return JSONResponse({"error": "storage_unavailable"}, status_code=503)
        keys = [key for ring in self.keyrings for key in jwks(ring, now=self.clock.now)["keys"]]
        return JSONResponse({"keys": keys})


def resource_app(verifier: Verifier, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.api_route("/whoami", methods=["GET", "POST"])
    async def whoami(caller: VerifiedCaller, request: Request) -> dict[str, Any]:
        body = await request.body()
        return {
            "subject": caller.subject,
            "client_id": caller.client_id,
            "scopes": sorted(caller.scopes),
            "app_hash": caller.app_hash,
            "sealed": caller.sealed,
            "body": body.decode(),
            "content_type": request.headers.get("content-type", ""),
        }

    @app.get("/admin", dependencies=[Depends(require_scopes("ADMIN"))])
    async def admin() -> dict[str, str]:
        return {"ok": "admin"}

    @app.delete("/whoami", status_code=204)
    async def forget(caller: VerifiedCaller) -> None:
        return None

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(TokenwardMiddleware, verifier=verifier, exempt_paths={"/health"}, **options)
    return app


@dataclasses.dataclass
class Peer:
    """A source session: its key, and tokens minted for it by the test's issuer keyring."""

    keyring: Keyring
    clock: Clock
    resource_key: X25519PrivateKey
    key: X25519PrivateKey = dataclasses.field(default_factory=X25519PrivateKey.generate)

    def claims(self, **overrides: Any) -> ClientTokenClaims:
        options: dict[str, Any] = {
            "now": self.clock.now,
            "destination": RESOURCE,
            "source_key": b64u_of_public(self.key),
            "destination_key": b64u_of_public(self.resource_key),
            "issuer": ISSUER,
        }
        options.update(overrides)
        return make_claims(**options)

    def token(self, claims: ClientTokenClaims | None = None, keyring: Keyring | None = None) -> str:
        return sign_client_token(claims or self.claims(), keyring or self.keyring)

    def headers(
        self, token: str, claims: ClientTokenClaims, method: str, target: str, *, aead: ChaCha20Poly1305 | None = None
    ) -> dict[str, str]:
        aead = aead or ChaCha20Poly1305(channel_key(self.key, claims))
        proof = make_proof(
            aead,
            token_id=claims.token_id,
            ts=int(self.clock.now),
            nonce=secrets.token_bytes(12),
            method=method,
            target=target,
        )
        return {"authorization": f"Bearer {token}", "tokenward-proof": proof}


def make_verifier(
    issuer: Issuer, keys: SessionKeys, clock: Clock, **options: Any
) -> tuple[Verifier, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=issuer.app), base_url="http://issuer")
    cache = JWKSCache("http://issuer/.well-known/jwks.json", http=http, clock=clock)
    return Verifier(issuer=ISSUER, resource=RESOURCE, jwks=cache, session_keys=keys, clock=clock, **options), http


Factory = Callable[..., httpx.AsyncClient]
