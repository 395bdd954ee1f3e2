"""The ``oidc`` plugin's warm path: ``/verify`` decisions for 10,000 distinct browser sessions.

    taskset -c 0 .venv/bin/python bench/oidc_sessions.py            # 5 batches of 20,000 decisions
    taskset -c 0 .venv/bin/python bench/oidc_sessions.py --requests 5000

In-process (``ForwardAuthService.verify``, no socket): what a signed-in browser costs once the
provider is out of the loop — parse the cookie, open the AES-GCM seal, build the ``Remote-*``
headers. Cases, each against the ``noop`` plugin through the same service in the same run (the
ratio is the figure to compare, bench/README.md):

- **noop**: the floor (request rebuilt from headers, token cache hit, headers built);
- **oidc-valid**: a rotation over 10,000 distinct valid session cookies;
- **oidc-mixed**: half of the requests carry a random forged cookie (API clients: 401, no redirect,
  so no provider call), the other half rotate over the 10,000 sessions.

Nothing talks to a provider: sessions are sealed directly with the plugin's key, as the callback
would have done. The first batch opens every cookie (AES-GCM); later batches find most of them in
the plugin's bounded cache of opened cookies (re-opened after a minute), as a browser's next
requests would.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from typing import Any

import httpx

from tokenward.forwardauth.config_token import encode_token
from tokenward.forwardauth.plugins import PluginDeps
from tokenward.forwardauth.plugins.oidc import OidcAuth
from tokenward.forwardauth.service import ForwardAuthService, VerifyParams
from tokenward.keys import Keyring, TimeCode

SESSIONS = 10_000


async def run(requests: int, batches: int) -> None:
    keyring = Keyring(TimeCode.generate(now=time.time(), random_bytes=secrets.token_bytes(32)))
    http = httpx.AsyncClient()
    service = ForwardAuthService(keyring=lambda: keyring, deps=PluginDeps(http=http, keyring=lambda: keyring))
    oidc_doc = {
        "tokenward": {
            "plugins": [
                {
                    "type": "oidc",
                    "issuer": "https://auth.example.com",
                    "client_id": "4F1C" * 10,
                    "client_secret": "twocs_" + secrets.token_urlsafe(32),
                    "redirect_uri": "https://wiki.example.com/oauth2/callback",
                }
            ]
        }
    }
    noop = VerifyParams.parse({"config_token": encode_token({"tokenward": {"plugins": [{"type": "noop"}]}}, keyring)})
    oidc = VerifyParams.parse({"config_token": encode_token(oidc_doc, keyring)})
    compiled = await service.resolve(token=str(oidc.token), store_id=None, token_id=None)
    plugin = compiled.plugins[0]
    assert isinstance(plugin, OidcAuth)
    now = int(time.time())
    cookies = []
    for n in range(SESSIONS):
        session: dict[str, Any] = {
            "k": "s",
            "sub": f"user{n}@example.com",
            "u": f"user{n}@example.com",
            "em": f"user{n}@example.com",
            "gr": ["wiki-users", "ops"],
            "nm": f"user{n}",
            "at": now,
            "until": now + 3600,
            "exp": now + 3600,
            "rt": "twor_" + secrets.token_urlsafe(32),
        }
        cookies.append("tokenward_oidc=" + plugin._seal(session, "s"))
    forged = [f"tokenward_oidc=TWC1.{secrets.token_hex(8)}.{secrets.token_urlsafe(300)}" for _ in range(SESSIONS)]
    base = {"x-original-url": "https://wiki.example.com/page", "x-original-method": "GET", "accept": "*/*"}

    def headers_for(case: str, i: int) -> dict[str, str]:
        if case == "noop":
            return base
        if case == "oidc-mixed" and i % 2:
            return {**base, "cookie": forged[i % SESSIONS]}
        return {**base, "cookie": cookies[i % SESSIONS]}

    results: dict[str, float] = {}
    for case, params in (("noop", noop), ("oidc-valid", oidc), ("oidc-mixed", oidc)):
        prepared = [headers_for(case, i) for i in range(requests)]
        timings = []
        for _ in range(batches):
            start = time.perf_counter()
            for headers in prepared:
                decision = await service.verify(params, headers, "127.0.0.1")
                if case != "oidc-mixed" and decision.status != 200:
                    raise SystemExit(f"{case}: unexpected {decision.status} {decision.error}")
            timings.append((time.perf_counter() - start) / requests * 1e6)
        results[case] = min(timings)
        print(
            f"{case:11s} {min(timings):7.1f} µs/decision best (median {statistics.median(timings):.1f}; "
            f"first batch, every cookie opened for the first time: {timings[0]:.1f})"
        )
    floor = results["noop"]
    for case in ("oidc-valid", "oidc-mixed"):
        print(f"{case}: {results[case] / floor:.2f} x noop, ~{1e6 / results[case]:,.0f} decisions/s on one core")
    await service.close()
    await http.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.batches))


if __name__ == "__main__":
    main()
