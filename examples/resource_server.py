"""A FastAPI resource server that lets tokenward decide who may call it (docs/resource-servers.md).

    RS_TOKENWARD_URL=https://auth.example.com RS_CLIENT_ID=0123…4567 RS_NAME=api.example.com \
    RS_SIGNING_KEY=api-key.pem uvicorn examples.resource_server:create_app --factory --port 8000

At start it logs in as the resource RS_NAME with its Ed25519 key (registered with
`tokenward resource register RS_NAME --public-key api-key.pub.pem`) and keeps that session alive;
the middleware verifies every client token against tokenward's JWKS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastapi import Depends, FastAPI

from tokenward.client import AsyncTokenward, JWKSCache, SessionKeys, TokenwardMiddleware, Verifier
from tokenward.client.fastapi import VerifiedCaller, require_scopes


def create_app() -> FastAPI:
    url, resource = os.environ["RS_TOKENWARD_URL"], os.environ["RS_NAME"]
    key = load_pem_private_key(Path(os.environ["RS_SIGNING_KEY"]).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit("RS_SIGNING_KEY must be an Ed25519 private key (PEM)")
    issuer = httpx.get(f"{url}/api/resourceinfo", timeout=30).text.strip()  # tokenward's server name
    http = httpx.AsyncClient(base_url=url, timeout=30)
    keys = SessionKeys()
    tokenward = AsyncTokenward(url, client_id=os.environ["RS_CLIENT_ID"], http=http, session_keys=keys)

    async def keep_session() -> None:
        while True:  # log in again shortly before the session expires
            session = await tokenward.ensure_session()
            await asyncio.sleep(max(5.0, session.expires_at - time.time() - 60))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await tokenward.login_resource(resource, signing_key=key)
        task = asyncio.create_task(keep_session())
        yield
        task.cancel()
        await http.aclose()

    app = FastAPI(lifespan=lifespan)
    jwks = JWKSCache(f"{url}/.well-known/jwks.json", http=http, clock=time.time)
    verifier = Verifier(issuer=issuer, resource=resource, jwks=jwks, session_keys=keys)
    app.add_middleware(TokenwardMiddleware, verifier=verifier, exempt_paths={"/healthz"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/notes")
    async def add_note(note: dict[str, str], caller: VerifiedCaller) -> dict[str, object]:
        return {"saved": note, "by": caller.subject, "scopes": sorted(caller.scopes), "sealed": caller.sealed}

    @app.get("/admin", dependencies=[Depends(require_scopes("ADMIN"))])
    async def admin() -> dict[str, str]:
        return {"admin": "yes"}

    return app
