"""The ``oidc`` /verify plugin driven directly against the in-process OpenID Provider, on its clock.

What the nginx round trip (tests/e2e/test_oidc_plugin.py) cannot do without waiting: tokens that
expire and are refreshed, a refresh refused after the provider's session ended, a refresh shared
by concurrent requests, tampered cookies, a wrong nonce, a provider that is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.oidc.conftest import ALICE, RP, Provider, signed_in
from tests.ui.conftest import Enrol
from tokenward.forwardauth.plugins import Outcome, VerifyRequest
from tokenward.forwardauth.plugins.oidc import OidcAuth
from tokenward.forwardauth.request_info import reconstruct
from tokenward.forwardauth.schema import OidcPlugin, parse_document
from tokenward.forwardauth.sealed import open_value

PAGE = "https://rp.example.net/page?x=1"


def config(provider: Provider, **extra: object) -> OidcPlugin:
    plugin = {
        "type": "oidc",
        "issuer": provider.runtime.oidc.issuer if provider.runtime.oidc else "",
        "client_id": provider.confidential.client_id,
        "client_secret": provider.confidential.client_secret,
        "redirect_uri": RP,
        "scopes": ["openid", "email", "groups"],
        "logout_path": "/logout",
        **extra,
    }
    document = parse_document({"tokenward": {"plugins": [plugin]}})
    found = document.tokenward.plugins[0]
    assert isinstance(found, OidcPlugin)
    return found


@pytest.fixture
async def plugin(provider: Provider) -> AsyncIterator[OidcAuth]:
    async with httpx.AsyncClient(transport=provider.transport()) as http:
        yield OidcAuth(config(provider), http, lambda: provider.runtime.keyring, clock=provider.clock)


def request(url: str, cookies: dict[str, str] | None = None, accept: str = "text/html") -> VerifyRequest:
    headers = {"x-original-url": url, "x-original-method": "GET", "accept": accept}
    if cookies:
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return VerifyRequest(headers, reconstruct(headers), "127.0.0.1", None)


def cookie_of(outcome: Outcome, name: str) -> str:
    for key, value in outcome.headers:
        if key == "Set-Cookie" and value.startswith(name + "="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {outcome.headers}")


async def sign_in(plugin: OidcAuth, browser: httpx.AsyncClient, page: str = PAGE) -> str:
    """The whole dance: redirect, provider, callback; returns the session cookie."""
    start = await plugin.verify(request(page))
    assert not start.ok and start.location is not None
    login = cookie_of(start, "tokenward_oidc_login")
    r = await browser.get(start.location)
    assert r.status_code == 302 and r.headers["location"].startswith(RP + "?"), r.text
    back = await plugin.verify(request(r.headers["location"], {"tokenward_oidc_login": login}))
    assert back.final and back.location == page, (back.code, back.detail)
    return cookie_of(back, "tokenward_oidc")


async def test_session_cookie_lets_requests_through_and_refreshes_on_expiry(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol, plugin: OidcAuth
) -> None:
    await signed_in(browser, enrol)
    session = await sign_in(plugin, browser)
    ok = await plugin.verify(request(PAGE, {"tokenward_oidc": session}))
    assert ok.ok and ok.user is not None and ok.user.sub == ALICE and ok.user.groups == ("wiki-admins",)
    assert ok.headers == ()  # a warm request sets nothing and asks the provider nothing

    provider.clock.now += provider.runtime.settings.oidc_access_token_lifetime_seconds + 1
    # Two requests with the expiring cookie at once: one refresh, shared (a rotated refresh token
    # sent twice would make the provider revoke the whole sign-in).
    first, second = await asyncio.gather(
        plugin.verify(request(PAGE, {"tokenward_oidc": session})),
        plugin.verify(request(PAGE + "&y", {"tokenward_oidc": session})),
    )
    assert first.ok and second.ok, (first.code, first.detail, second.code)
    renewed = cookie_of(first, "tokenward_oidc")
    assert renewed != session
    again = await plugin.verify(request(PAGE, {"tokenward_oidc": renewed}))
    assert again.ok and again.headers == ()


async def test_tampered_foreign_or_missing_cookies_start_a_sign_in(provider: Provider, plugin: OidcAuth) -> None:
    for cookies in (
        None,
        {"tokenward_oidc": "TWC1.x.AAAA"},
        {"tokenward_oidc": "garbage"},
    ):
        outcome = await plugin.verify(request(PAGE, cookies))
        assert not outcome.ok and outcome.location is not None
        query = parse_qs(urlsplit(outcome.location).query)
        assert query["code_challenge_method"] == ["S256"] and query["redirect_uri"] == [RP]
        assert len(query["state"][0]) >= 40 and len(query["nonce"][0]) >= 40
    api = await plugin.verify(request(PAGE, accept="application/json"))
    assert not api.ok and api.location is None and api.status == 401 and api.challenge == 'Bearer realm="tokenward"'


async def test_cookie_sealed_for_another_client_is_not_accepted(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol, plugin: OidcAuth
) -> None:
    await signed_in(browser, enrol)
    session = await sign_in(plugin, browser)
    async with httpx.AsyncClient(transport=provider.transport()) as http:
        other = OidcAuth(
            config(provider, client_id=provider.public.client_id, client_secret=None),
            http,
            lambda: provider.runtime.keyring,
            clock=provider.clock,
        )
        outcome = await other.verify(request(PAGE, {"tokenward_oidc": session}))
    assert not outcome.ok and outcome.code == "credentials_missing"


async def test_wrong_nonce_and_replayed_code_are_refused(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol, plugin: OidcAuth
) -> None:
    await signed_in(browser, enrol)
    start = await plugin.verify(request(PAGE))
    assert start.location is not None
    login = cookie_of(start, "tokenward_oidc_login")
    pending = open_value(login, provider.runtime.keyring, aad=plugin.aad + "|p", now=provider.clock())
    assert pending is not None
    r = await browser.get(start.location)
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    with pytest.raises(Exception) as caught:
        await plugin.upstream.exchange_code(code, verifier=pending["cv"], nonce="not-the-nonce")
    assert getattr(caught.value, "code", "") == "oidc_id_token_invalid"
    # The code is used up: the real callback now fails, finally (no other plugin answers it).
    back = await plugin.verify(request(r.headers["location"], {"tokenward_oidc_login": login}))
    assert back.final and back.code == "oidc_code_refused" and back.location is None


async def test_expired_login_and_state_mismatch_are_final_refusals(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol, plugin: OidcAuth
) -> None:
    await signed_in(browser, enrol)
    start = await plugin.verify(request(PAGE))
    assert start.location is not None
    login = cookie_of(start, "tokenward_oidc_login")
    r = await browser.get(start.location)
    callback = r.headers["location"]
    wrong = callback.replace("state=", "state=x")
    refused = await plugin.verify(request(wrong, {"tokenward_oidc_login": login}))
    assert refused.final and refused.code == "oidc_state_mismatch"
    provider.clock.now += 601
    late = await plugin.verify(request(callback, {"tokenward_oidc_login": login}))
    assert late.final and late.code == "oidc_state_missing"


async def test_provider_down_is_a_503_not_a_hang(provider: Provider) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        plugin = OidcAuth(config(provider), http, lambda: provider.runtime.keyring, clock=provider.clock)
        outcome = await plugin.verify(request(PAGE))
    assert not outcome.ok and outcome.status == 503 and outcome.code == "oidc_provider_unavailable"


async def test_logout_clears_the_cookie_and_goes_to_the_end_session_endpoint(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol, plugin: OidcAuth
) -> None:
    await signed_in(browser, enrol)
    session = await sign_in(plugin, browser)
    out = await plugin.verify(request("https://rp.example.net/logout", {"tokenward_oidc": session}))
    assert out.final and out.location is not None
    assert out.location.startswith(provider.runtime.oidc.issuer + "/oidc/logout?") if provider.runtime.oidc else False
    assert "id_token_hint=" in out.location
    assert ("Set-Cookie", "tokenward_oidc=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure") in out.headers
    r = await browser.get(out.location)
    assert r.status_code == 302
    # The provider's session is over: once the tokens expire, the refresh is refused -> sign in again.
    provider.clock.now += provider.runtime.settings.oidc_access_token_lifetime_seconds + 1
    after = await plugin.verify(request(PAGE, {"tokenward_oidc": session}))
    assert not after.ok and after.code == "oidc_session_ended" and after.location is not None


async def test_the_return_url_stays_on_the_protected_site(provider: Provider, plugin: OidcAuth) -> None:
    """A page asked for under another host name (the proxy's Host) is not where the sign-in ends."""
    for asked, expected in (
        (PAGE, PAGE),
        ("https://evil.example.org/steal", "https://rp.example.net/"),
        ("https://rp.example.net/" + "x" * 3000, "https://rp.example.net/"),
    ):
        start = await plugin.verify(request(asked))
        login = cookie_of(start, "tokenward_oidc_login")
        pending = open_value(login, provider.runtime.keyring, aad=plugin.aad + "|p", now=provider.clock())
        assert pending is not None and pending["rd"] == expected


async def test_userinfo_claims_are_added_when_asked_for(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    """``userinfo: true``: the userinfo endpoint is read with the access token after the code and after each
    refresh; its claims fill what the ID token lacks (here a ``nickname`` the provider's userinfo adds)."""
    asgi = provider.transport()
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        response = await asgi.handle_async_request(request)
        if request.url.path != "/oidc/userinfo":
            return response
        await response.aread()
        seen.append(request.headers["authorization"].split()[0])
        return httpx.Response(200, json={**response.json(), "nickname": "Al"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        plugin = OidcAuth(
            config(provider, userinfo=True, name_claim="nickname"),
            http,
            lambda: provider.runtime.keyring,
            clock=provider.clock,
        )
        await signed_in(browser, enrol)
        session = await sign_in(plugin, browser)
        ok = await plugin.verify(request(PAGE, {"tokenward_oidc": session}))
        assert ok.ok and ok.user is not None and ok.user.name == "Al" and ok.user.groups == ("wiki-admins",)
        provider.clock.now += provider.runtime.settings.oidc_access_token_lifetime_seconds + 1
        refreshed = await plugin.verify(request(PAGE, {"tokenward_oidc": session}))
        assert refreshed.ok and refreshed.user is not None and refreshed.user.name == "Al"
    assert seen == ["Bearer", "Bearer"]
