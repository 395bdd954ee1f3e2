"""TokenwardMiddleware's cost per request: the same Starlette app with and without it, in one run.

    .venv/bin/python bench/middleware.py            # 2,000 client tokens, 40,000 requests per round
    .venv/bin/python bench/middleware.py --quick    # 500 tokens, 10,000 requests

Requests go straight into the ASGI app (no sockets: the figure is the middleware's own work, not
the server's). Traffic rotates over many distinct client tokens from distinct source sessions,
each request with its own proof (fresh nonce); half of the requests carry an invalid credential
(random garbage, tampered signatures, tokens for another resource, replayed proofs). "Warm" means
the JWKS is fetched and each token has been seen once (what a client reusing its token costs);
first sight of a token (signature check, ECDH, HKDF) is measured separately. Baseline and
middleware are interleaved in chunks; the median round is reported, as CPU time of this process
(robust on a shared machine) and as wall time. Target (issue 14): ≤ 20 µs per warm
request over the baseline. Figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from tokenward.client import JWKSCache, SessionKeys, TokenwardMiddleware, Verifier
from tokenward.client.channel import make_proof
from tokenward.identity.client_tokens import ClientTokenClaims, b64u_of_public, channel_key, jwks, sign_client_token
from tokenward.identity.encoding import b64u_encode
from tokenward.keys import Keyring, TimeCode

ISSUER, RESOURCE = "auth.example.com", "api.example.com"
NOW = time.time()
CLIENT_ID = "0123456789ABCDEF0123456789ABCDEF01234567"
CHUNK = 1000

Headers = list[tuple[bytes, bytes]]


async def _hello(request: Request) -> Response:
    return PlainTextResponse("ok")


def app_under_test() -> Starlette:
    return Starlette(routes=[Route("/items", _hello)])


_ADDRESSES = random.Random(3)


def _scope(headers: Headers) -> dict[str, Any]:
    # Traffic from 10,000 client addresses: the per-address regulation of failed checks stays in play.
    k = _ADDRESSES.randrange(10_000)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (f"10.0.{k // 256}.{k % 256}", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Sink:
    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            self.statuses[status] = self.statuses.get(status, 0) + 1


class Tokens:
    """Client tokens from ``n`` distinct source sessions, and request headers made from them."""

    def __init__(self, n: int, keyring: Keyring, resource_key: X25519PrivateKey) -> None:
        self.valid: list[tuple[str, ClientTokenClaims, ChaCha20Poly1305]] = []
        dpk = b64u_of_public(resource_key)
        for i in range(n):
            source = X25519PrivateKey.generate()
            claims = ClientTokenClaims(
                issuer=ISSUER,
                source=f"user{i}@example.com",
                destination=RESOURCE,
                source_key=b64u_of_public(source),
                destination_key=dpk,
                client_id=CLIENT_ID,
                scopes=("DEFAULT",),
                token_id=secrets.token_urlsafe(16),
                issued_at=int(NOW),
                expires_at=int(NOW) + 900,
                app_hash="AB" * 64,
            )
            token = sign_client_token(claims, keyring)
            self.valid.append((token, claims, ChaCha20Poly1305(channel_key(source, claims))))
        # Lasting invalid credentials, each distinct: tampered signature, another destination.
        self.tampered = [t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB") for t, _, _ in self.valid[: n // 4]]
        self.elsewhere = [
            sign_client_token(_with(claims, destination="other.example.com"), keyring)
            for _, claims, _ in self.valid[: n // 4]
        ]

    def good(self, rng: random.Random) -> Headers:
        token, claims, aead = rng.choice(self.valid)
        proof = make_proof(
            aead, token_id=claims.token_id, ts=int(NOW), nonce=secrets.token_bytes(12), method="GET", target="/items"
        )
        return [(b"authorization", f"Bearer {token}".encode()), (b"tokenward-proof", proof.encode())]

    def bad(self, rng: random.Random, replays: list[Headers]) -> Headers:
        kind = rng.random()
        if kind < 0.4:  # random garbage shaped like a JWS, never seen before
            junk = ".".join(b64u_encode(secrets.token_bytes(k)) for k in (40, 200, 64))
            return [(b"authorization", f"Bearer {junk}".encode()), (b"tokenward-proof", b"1.AAAA.AAAA")]
        if kind < 0.6:
            token = rng.choice(self.tampered)
        elif kind < 0.8:
            token = rng.choice(self.elsewhere)
        else:  # a replay of a good request already sent
            return rng.choice(replays) if replays else self.good(rng)
        return [(b"authorization", f"Bearer {token}".encode()), (b"tokenward-proof", b"1.AAAA.AAAA")]


def _fields(claims: ClientTokenClaims) -> dict[str, Any]:
    return {name: getattr(claims, name) for name in ClientTokenClaims.__slots__}


def _with(claims: ClientTokenClaims, **changes: Any) -> ClientTokenClaims:
    return ClientTokenClaims(**{**_fields(claims), **changes})


async def run(app: ASGIApp, requests: list[Headers]) -> tuple[float, float, dict[int, int]]:
    """(wall µs, CPU µs) per request, and the statuses answered."""
    sink = _Sink()
    scopes = [_scope(h) for h in requests]
    start, cpu_start = time.perf_counter(), time.process_time()
    for scope in scopes:
        await app(scope, _receive, sink)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return elapsed / len(requests) * 1e6, cpu / len(requests) * 1e6, sink.statuses


async def main(n_tokens: int, n_requests: int, rounds: int) -> None:
    rng = random.Random(14)
    keyring = Keyring(TimeCode.generate(now=NOW, random_bytes=secrets.token_bytes(32)))
    resource_key = X25519PrivateKey.generate()
    t0 = time.perf_counter()
    tokens = Tokens(n_tokens, keyring, resource_key)
    print(f"{n_tokens:,} client tokens from distinct sessions made in {time.perf_counter() - t0:.1f} s")

    published = jwks(keyring, now=NOW)
    issuer = Starlette(routes=[Route("/.well-known/jwks.json", lambda r: JSONResponse(published))])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=issuer), base_url="http://issuer")
    clock: Callable[[], float] = lambda: NOW  # noqa: E731 - a fixed clock: proofs made up front stay in their window
    verifier = Verifier(
        issuer=ISSUER,
        resource=RESOURCE,
        jwks=JWKSCache("http://issuer/.well-known/jwks.json", http=http, clock=clock),
        session_keys=SessionKeys(resource_key),
        clock=clock,
    )
    bare = app_under_test()
    guarded = TokenwardMiddleware(app_under_test(), verifier=verifier)

    # First sight: every valid token once (signature, ECDH, HKDF), then warm-up of both apps.
    first: list[Headers] = []
    for token, claims, aead in tokens.valid:
        proof = make_proof(
            aead, token_id=claims.token_id, ts=int(NOW), nonce=secrets.token_bytes(12), method="GET", target="/items"
        )
        first.append([(b"authorization", f"Bearer {token}".encode()), (b"tokenward-proof", proof.encode())])
    cold, cold_cpu, statuses = await run(guarded, first)
    print(f"first sight of a valid token: {cold_cpu:8.1f} µs CPU, {cold:8.1f} µs wall per request  {statuses}")
    await run(bare, first)

    def workload(valid_only: bool) -> list[Headers]:
        out: list[Headers] = []
        sent: list[Headers] = []
        for _ in range(n_requests):
            if valid_only or rng.random() < 0.5:
                h = tokens.good(rng)
                sent.append(h)
                out.append(h)
            else:
                out.append(tokens.bad(rng, sent))
        return out

    names = ("bare", "valid", "bare_mixed", "mixed")
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, dict[int, int]] = {name: {} for name in names}
    for _ in range(rounds):
        valid = workload(valid_only=True)
        mixed = workload(valid_only=False)
        # Interleaved in chunks, so a burst of load from other processes hits both sides alike;
        # the collector runs between rounds, not inside a measured chunk.
        sums = {name: [0.0, 0.0] for name in names}
        gc.collect()
        gc.disable()
        for at in range(0, n_requests, CHUNK):
            for name, app, reqs in (
                ("bare", bare, valid),
                ("valid", guarded, valid),
                ("bare_mixed", bare, mixed),
                ("mixed", guarded, mixed),
            ):
                chunk = reqs[at : at + CHUNK]
                w, c, statuses = await run(app, chunk)
                sums[name][0] += w * len(chunk)
                sums[name][1] += c * len(chunk)
                for status, count in statuses.items():
                    last[name][status] = last[name].get(status, 0) + count
        gc.enable()
        for name in names:
            wall[name].append(sums[name][0] / n_requests)
            cpu[name].append(sums[name][1] / n_requests)
    await http.aclose()

    print(f"\n{n_requests:,} requests per round, {rounds} rounds; µs per request, median round (best round)")
    print("CPU time is this process's own; wall time also counts waiting for a core on a shared machine.")
    print(f"  {'':36} {'CPU':>16} {'wall':>16}   statuses")
    rows = (
        ("bare Starlette app", "bare"),
        ("+ middleware, valid tokens (warm)", "valid"),
        ("bare app, mixed traffic", "bare_mixed"),
        ("+ middleware, half invalid", "mixed"),
    )
    med_c = {n: statistics.median(v) for n, v in cpu.items()}
    med_w = {n: statistics.median(v) for n, v in wall.items()}
    best_c = {n: min(v) for n, v in cpu.items()}
    best_w = {n: min(v) for n, v in wall.items()}
    for label, n in rows:
        print(f"  {label:36} {med_c[n]:7.1f} ({best_c[n]:5.1f}) {med_w[n]:7.1f} ({best_w[n]:5.1f})   {last[n]}")
    for label, base, n in (("warm valid requests", "bare", "valid"), ("half invalid", "bare_mixed", "mixed")):
        print(
            f"middleware cost, {label:20}: CPU {med_c[n] - med_c[base]:5.1f} µs, wall {med_w[n] - med_w[base]:5.1f} µs"
            f"  (ratio CPU {med_c[n] / med_c[base]:.2f}x, wall {med_w[n] / med_w[base]:.2f}x; target ≤ 20 µs warm)"
        )
    print(f"first sight of a valid token: {cold_cpu:7.1f} µs CPU per request (signature, ECDH, HKDF; once per token)")
    summary = {
        "warm_cost_cpu_us": round(med_c["valid"] - med_c["bare"], 2),
        "warm_cost_wall_us": round(med_w["valid"] - med_w["bare"], 2),
        "mixed_cost_cpu_us": round(med_c["mixed"] - med_c["bare_mixed"], 2),
        "bare_cpu_us": round(med_c["bare"], 2),
        "first_sight_cpu_us": round(cold_cpu, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 tokens, 10,000 requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.quick:
        asyncio.run(main(500, 10_000, args.rounds))
    else:
        asyncio.run(main(2_000, 40_000, args.rounds))
