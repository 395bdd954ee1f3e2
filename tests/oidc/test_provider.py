"""The OpenID Provider end to end, driven by Authlib's OAuth 2.0 client as a relying party.

The browser is signed in on the portal with a real captcha; the relying party talks to the
token and userinfo endpoints; the ID token is checked with Authlib's claims classes against the
published JWKS. Bad paths: wrong redirect URI, reused code, PKCE mismatch, expired code, wrong
client secret, refresh token replayed after rotation, a user the policy does not allow.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oidc.conftest import ALICE, BOB, ISSUER, RP, RP_LOGOUT, RP_OTHER, SPA, Provider, Registered, signed_in
from tests.ui.conftest import Enrol
from tests.ui.portal import SERVER
from tokenward.identity.apps import app_hash_of_origin
from tokenward.web.ui.security import SESSION_COOKIE

# A relying party on joserfc meets the polymorphic name "EdDSA", which joserfc marks deprecated (RFC 9864)
# and warns about; the token verifies all the same.
pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")

AUTHORIZE = f"{ISSUER}/oidc/authorize"
TOKEN = f"{ISSUER}/oidc/token"
USERINFO = f"{ISSUER}/oidc/userinfo"


def relying_party(
    provider: Provider, reg: Registered, *, auth: str = "client_secret_basic", redirect_uri: str = RP
) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=reg.client_id,
        client_secret=reg.client_secret,
        token_endpoint_auth_method=auth,
        redirect_uri=redirect_uri,
        scope="openid email profile groups",
        code_challenge_method="S256",
        transport=provider.transport(),
    )


async def authorize(browser: httpx.AsyncClient, rp: AsyncOAuth2Client, **extra: Any) -> tuple[str, str, str]:
    """Send the browser to the authorization endpoint; returns (callback URL, code verifier, nonce)."""
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    uri, _state = rp.create_authorization_url(AUTHORIZE, code_verifier=verifier, nonce=nonce, **extra)
    r = await browser.get(uri)
    assert r.status_code == 302, r.text
    return r.headers["location"], verifier, nonce


async def check_id_token(browser: httpx.AsyncClient, token: dict[str, Any], client_id: str, nonce: str) -> CodeIDToken:
    meta = (await browser.get("/.well-known/openid-configuration")).json()
    keys = KeySet.import_key_set((await browser.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=meta["id_token_signing_alg_values_supported"])
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        options={"iss": {"essential": True, "value": ISSUER}, "aud": {"essential": True, "value": client_id}},
        params={"nonce": nonce, "access_token": token["access_token"]},
    )
    claims.validate()
    return claims


async def test_discovery_names_the_endpoints_and_the_jwks_algorithm(browser: httpx.AsyncClient) -> None:
    meta = (await browser.get("/.well-known/openid-configuration")).json()
    assert meta["issuer"] == ISSUER
    assert meta["authorization_endpoint"] == AUTHORIZE and meta["token_endpoint"] == TOKEN
    assert meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    jwks = (await browser.get("/.well-known/jwks.json")).json()
    assert meta["id_token_signing_alg_values_supported"] == [jwks["keys"][0]["alg"]]
    assert set(meta["scopes_supported"]) == {"openid", "email", "profile", "groups"}


async def test_code_flow_with_secret_basic_gives_id_token_userinfo_and_groups(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, nonce = await authorize(browser, rp)
        assert callback.startswith(RP + "?")
        token = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        assert token["token_type"].lower() == "bearer" and token["refresh_token"].startswith("twor_")
        claims = await check_id_token(browser, token, provider.confidential.client_id, nonce)
        assert claims["sub"] == ALICE and claims["email"] == ALICE
        assert claims["groups"] == ["wiki-admins"]
        info = (await rp.get(USERINFO)).json()
        assert info["sub"] == ALICE and info["email"] == ALICE and info["groups"] == ["wiki-admins"]


async def test_client_secret_post_and_public_client_with_pkce(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential, auth="client_secret_post") as rp:
        callback, verifier, nonce = await authorize(browser, rp)
        token = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        await check_id_token(browser, token, provider.confidential.client_id, nonce)
    async with relying_party(provider, provider.public, auth="none", redirect_uri=SPA) as spa:
        callback, verifier, nonce = await authorize(browser, spa)
        token = await spa.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        claims = await check_id_token(browser, token, provider.public.client_id, nonce)
        assert "groups" not in claims or claims["groups"] == []


async def test_public_client_without_pkce_is_refused_at_the_client(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.public, auth="none", redirect_uri=SPA) as spa:
        uri, state = spa.create_authorization_url(AUTHORIZE)  # no code_verifier: no challenge
        r = await browser.get(uri)
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert r.headers["location"].startswith(SPA) and query["error"] == ["invalid_request"]
    assert query["state"] == [state] and "code" not in query


@pytest.mark.parametrize(
    "redirect_uri", ["https://evil.example.org/callback", RP + "/", RP + "?x=1", "https://rp.example.net/callbackx"]
)
async def test_unregistered_redirect_uri_gets_400_and_no_redirect(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol, redirect_uri: str
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential, redirect_uri=redirect_uri) as rp:
        uri, _ = rp.create_authorization_url(AUTHORIZE, code_verifier=secrets.token_urlsafe(48))
        r = await browser.get(uri)
    assert r.status_code == 400 and "location" not in r.headers
    assert r.json()["error"] == "invalid_request"


async def test_redirect_uri_at_the_token_endpoint_must_match(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, _ = await authorize(browser, rp)
        rp.redirect_uri = RP_OTHER  # registered too, but not the one the code was issued for
        with pytest.raises(OAuthError) as caught:
            await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
    assert caught.value.error == "invalid_grant"


async def test_reused_code_is_refused_and_revokes_what_it_gave(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, _ = await authorize(browser, rp)
        first = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        with pytest.raises(OAuthError) as caught:
            await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        assert caught.value.error == "invalid_grant"
        with pytest.raises(OAuthError) as caught:
            await rp.refresh_token(TOKEN, refresh_token=first["refresh_token"])
        assert caught.value.error == "invalid_grant"


async def test_pkce_mismatch_is_refused(provider: Provider, browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, _verifier, _ = await authorize(browser, rp)
        with pytest.raises(OAuthError) as caught:
            await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=secrets.token_urlsafe(48))
    assert caught.value.error == "invalid_grant"


async def test_expired_code_is_refused(provider: Provider, browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, _ = await authorize(browser, rp)
        provider.clock.now += provider.runtime.settings.oidc_code_lifetime_seconds + 1
        with pytest.raises(OAuthError) as caught:
            await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
    assert caught.value.error == "invalid_grant"


async def test_wrong_client_secret_is_refused(provider: Provider, browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await signed_in(browser, enrol)
    wrong = Registered(provider.confidential.client_id, "twocs_" + secrets.token_urlsafe(32))
    for auth in ("client_secret_basic", "client_secret_post"):
        async with relying_party(provider, wrong, auth=auth) as rp:
            callback, verifier, _ = await authorize(browser, rp)
            with pytest.raises(OAuthError) as caught:
                await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        assert caught.value.error == "invalid_client"


async def test_repeated_wrong_client_secrets_are_regulated(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    """After the configured failures the client ID is banned: even its right secret gets 429 for a while."""
    await signed_in(browser, enrol)
    wrong = Registered(provider.confidential.client_id, "twocs_" + secrets.token_urlsafe(32))
    failures = provider.runtime.settings.regulation_max_failures
    for _ in range(failures):
        r = await browser.post(
            TOKEN,
            data={"grant_type": "authorization_code", "code": "twoc_x"},
            auth=(wrong.client_id, str(wrong.client_secret)),
        )
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, _ = await authorize(browser, rp)
        with pytest.raises(OAuthError) as caught:
            await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        assert caught.value.error == "too_many_attempts"
        # The ban ends on the provider's clock.
        provider.clock.now += provider.runtime.settings.regulation_ban_time_seconds + 1
        callback, verifier, _ = await authorize(browser, rp)
        token = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        assert token["id_token"]


async def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_family(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, _ = await authorize(browser, rp)
        first = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        second = await rp.refresh_token(TOKEN, refresh_token=first["refresh_token"])
        assert second["refresh_token"] != first["refresh_token"] and second["id_token"]
        with pytest.raises(OAuthError) as caught:
            await rp.refresh_token(TOKEN, refresh_token=first["refresh_token"])
        assert caught.value.error == "invalid_grant"
        # The replay revoked the whole family: the legitimate newest token is gone too (RFC 9700 §4.14.2).
        with pytest.raises(OAuthError) as caught:
            await rp.refresh_token(TOKEN, refresh_token=second["refresh_token"])
        assert caught.value.error == "invalid_grant"


async def test_user_the_policy_does_not_allow_gets_access_denied(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol, BOB)
    async with relying_party(provider, provider.confidential) as rp:
        callback, _, _ = await authorize(browser, rp, state="s1")
    query = parse_qs(urlsplit(callback).query)
    assert callback.startswith(RP) and query["error"] == ["access_denied"] and query["state"] == ["s1"]
    assert "code" not in query


async def test_without_a_session_the_browser_goes_to_the_portal_sign_in(
    provider: Provider, browser: httpx.AsyncClient
) -> None:
    async with relying_party(provider, provider.confidential) as rp:
        uri, _ = rp.create_authorization_url(AUTHORIZE, code_verifier=secrets.token_urlsafe(48), prompt="login")
        r = await browser.get(uri)
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith("/login?rd=")
    rd = parse_qs(urlsplit(location).query)["rd"][0]
    assert rd.startswith("/oidc/authorize?") and "prompt" not in parse_qs(urlsplit(rd).query)


async def test_rp_initiated_logout_ends_the_session_and_its_tokens(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, _ = await authorize(browser, rp)
        token = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        r = await browser.get(
            "/oidc/logout",
            params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": RP_LOGOUT, "state": "bye"},
        )
        assert r.status_code == 302 and r.headers["location"] == RP_LOGOUT + "?state=bye"
        assert any(h.startswith(SESSION_COOKIE + '=""') for h in r.headers.get_list("set-cookie"))
        assert (await rp.get(USERINFO)).status_code == 401
        with pytest.raises(OAuthError) as caught:
            await rp.refresh_token(TOKEN, refresh_token=token["refresh_token"])
        assert caught.value.error == "invalid_grant"
    # An unregistered post-logout URI is never followed.
    r = await browser.get("/oidc/logout", params={"post_logout_redirect_uri": "https://evil.example.org/"})
    assert r.status_code == 302 and r.headers["location"] == "/login"


async def test_bad_requests_get_oauth_errors_never_500(provider: Provider, browser: httpx.AsyncClient) -> None:
    r = await browser.post(TOKEN, data={"grant_type": "authorization_code", "code": "x" * 5000})
    assert r.status_code in (400, 401) and "error" in r.json()
    r = await browser.post(TOKEN, data={"grant_type": "password", "username": "a", "password": "b"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = await browser.post(TOKEN, content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await browser.get(AUTHORIZE, params={"client_id": "nope", "response_type": "code"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"
    r = await browser.get(USERINFO, headers={"authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert "invalid_token" in r.headers["www-authenticate"]
    r = await browser.get("/oidc/logout", params={"id_token_hint": "garbage"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_clientappspolicy_limits_the_client_to_its_apps(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    """With clientaccess rows for the client, only the listed app hashes (redirect URI hosts) get a code."""
    client_id = provider.confidential.client_id
    policy_file = provider.data / "clientappspolicy.csv"
    other = app_hash_of_origin("https://other.example.net/callback")
    policy_file.write_text(f"p, {other}, {SERVER}, {client_id}, clientaccess\n")
    policy_file.chmod(0o600)
    assert provider.runtime.policy.reload().changed
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, _, _ = await authorize(browser, rp, state="s2")
        query = parse_qs(urlsplit(callback).query)
        assert query["error"] == ["access_denied"] and query["state"] == ["s2"] and "code" not in query
        with policy_file.open("a") as f:
            f.write(f"p, {app_hash_of_origin(RP)}, {SERVER}, {client_id}, clientaccess\n")
        assert provider.runtime.policy.reload().changed
        callback, verifier, _ = await authorize(browser, rp)
        assert "code" in parse_qs(urlsplit(callback).query)
        token = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        assert token["id_token"]


async def test_groups_follow_clientscopespolicy_rows_for_the_redirect_host(
    provider: Provider, browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    """Roles bound to the client's app hash (not only ``*``) become groups; a deny row empties them."""
    client_id = provider.confidential.client_id
    scopes_file = provider.data / "clientscopespolicy.csv"
    with scopes_file.open("a") as f:
        f.write(f"p, {ALICE}, {app_hash_of_origin(RP)}, {client_id}, editors\n")
        f.write(f"p, {ALICE}, {app_hash_of_origin('https://elsewhere.example.net/')}, {client_id}, elsewhere\n")
    assert provider.runtime.policy.reload().changed
    await signed_in(browser, enrol)
    async with relying_party(provider, provider.confidential) as rp:
        callback, verifier, nonce = await authorize(browser, rp)
        token = await rp.fetch_token(TOKEN, authorization_response=callback, code_verifier=verifier)
        claims = await check_id_token(browser, token, client_id, nonce)
        assert claims["groups"] == ["editors", "wiki-admins"]
        with scopes_file.open("a") as f:
            f.write(f"p, {ALICE}, *, {client_id}, deny\n")
        assert provider.runtime.policy.reload().changed
        refreshed = await rp.refresh_token(TOKEN, refresh_token=token["refresh_token"])
        info = (await rp.get(USERINFO, headers={"authorization": f"Bearer {refreshed['access_token']}"})).json()
        assert info["groups"] == []
