"""/verify believes X-Forwarded-For / X-Real-IP only from TOKENWARD_TRUSTED_PROXIES (issue 15, finding 2)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.helpers import basic_auth as basic
from tokenward.apptokens import MANAGE_SCOPE, cli_actor
from tokenward.clientaddr import TrustedProxies
from tokenward.forwardauth.config_token import encode_token
from tokenward.runtime import Runtime
from tokenward.settings import Settings
from tokenward.web.app import create_app

FWD = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/",
    "X-Forwarded-Method": "GET",
}


@pytest.fixture
async def attacker(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose TCP peer is 192.0.2.66 (the default test client's peer is 127.0.0.1)."""
    app = create_app(settings, runtime=runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("192.0.2.66", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def spoofed_failures(attacker: httpx.AsyncClient, config: str, spoof: dict[str, str]) -> None:
    for _ in range(3):  # distinct users: only the address key can reach the limit
        auth = basic(f"nobody-{secrets.token_hex(4)}@example.com", "twa_wrong")
        r = await attacker.get(
            "/verify", params={"config_token": config}, headers={**FWD, **spoof, "Authorization": auth}
        )
        assert r.status_code == 401, r.text


@pytest.mark.parametrize("spoof", [{"X-Forwarded-For": "127.0.0.1"}, {"X-Real-IP": "127.0.0.1"}])
async def test_a_spoofed_forwarding_header_from_an_untrusted_peer_bans_only_the_peer(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, runtime: Runtime, spoof: dict[str, str]
) -> None:
    _, secret = await runtime.app_tokens.create(
        owner="admin@example.com", created_by=cli_actor(), scopes=[MANAGE_SCOPE]
    )
    config = encode_token({"tokenward": {"plugins": [{"type": "app_token"}]}}, runtime.keyring)
    await spoofed_failures(attacker, config, spoof)
    # The admin at 127.0.0.1 is not banned, on /verify nor on the management API ...
    ok = {"Authorization": basic("admin@example.com", secret)}
    r = await client.get("/verify", params={"config_token": config}, headers={**FWD, **ok})
    assert r.status_code == 200, r.text
    r = await client.get("/api/app-tokens", headers=ok)
    assert r.status_code == 200, r.text
    # ... the attacker's real address is, and every 429 says when to come back (finding 6).
    r = await attacker.get("/verify", params={"config_token": config}, headers={**FWD, **ok})
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    assert 0 < int(r.headers["retry-after"]) <= runtime.settings.regulation_ban_time_seconds
    r = await attacker.get("/api/app-tokens", headers=ok)
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= runtime.settings.regulation_ban_time_seconds


async def test_forwarding_headers_from_a_trusted_proxy_name_the_client(
    client: httpx.AsyncClient, attacker: httpx.AsyncClient, runtime: Runtime
) -> None:
    runtime.trusted_proxies = TrustedProxies.parse(["192.0.2.0/24"])
    _, secret = await runtime.app_tokens.create(
        owner="admin@example.com", created_by=cli_actor(), scopes=[MANAGE_SCOPE]
    )
    config = encode_token({"tokenward": {"plugins": [{"type": "app_token"}]}}, runtime.keyring)
    await spoofed_failures(attacker, config, {"X-Forwarded-For": "203.0.113.9"})
    ok = {"Authorization": basic("admin@example.com", secret)}
    # The proxy itself (another client behind it) is not banned: the ban is on 203.0.113.9.
    r = await attacker.get(
        "/verify", params={"config_token": config}, headers={**FWD, **ok, "X-Forwarded-For": "203.0.113.10"}
    )
    assert r.status_code == 200, r.text
    r = await attacker.get(
        "/verify", params={"config_token": config}, headers={**FWD, **ok, "X-Forwarded-For": "203.0.113.9"}
    )
    assert r.status_code == 429
