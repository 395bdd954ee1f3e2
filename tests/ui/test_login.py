"""Sign-in through the portal, in-process: captcha, code, cookie, safe return, sign-out; and bad input."""

from __future__ import annotations

import httpx
import pytest

from tests.ui.conftest import Enrol, csrf_of
from tests.ui.portal import ADMIN, OUTSIDER, USER, code_of
from tokenward.web.ui.security import CSP, SESSION_COOKIE


async def start(client: httpx.AsyncClient, email: str, rd: str = "") -> httpx.Response:
    page = await client.get("/login", params={"rd": rd} if rd else None)
    return await client.post("/login", data={"csrf": csrf_of(page.text), "email": email, "rd": rd})


async def sign_in(client: httpx.AsyncClient, enrol: Enrol, email: str, rd: str = "", **extra: str) -> httpx.Response:
    key = await enrol(client, email)
    page = await start(client, email, rd)
    assert page.status_code == 200, page.text
    body = {"csrf": csrf_of(page.text), "code": code_of(page.text, key), **extra}
    return await client.post("/login/code", data=body)


async def test_login_page_has_strict_csp_and_no_inline_script(browser: httpx.AsyncClient) -> None:
    r = await browser.get("/login")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert "<script>" not in r.text and "<script src=" in r.text
    assert "onclick" not in r.text


async def test_sign_in_sets_session_cookie_and_returns_to_allowed_url(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    r = await sign_in(browser, enrol, USER, rd="https://app.example.com/x?y=1")
    assert r.status_code == 303
    assert r.headers["location"] == "https://app.example.com/x?y=1"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Domain=example.com", "Path=/"):
        assert attribute.lower() in cookie.lower()
    page = await browser.get("/account/tokens")
    assert page.status_code == 200 and USER in page.text


@pytest.mark.parametrize(
    "rd",
    [
        "javascript:alert(1)",
        "https://evil.example.org/",
        "//evil.example.org/",
        "https://app.example.com@evil.example.org/",
        "/\\evil.example.org",
        "data:text/html,hi",
        "https://example.com.evil.org/",
    ],
)
async def test_foreign_or_script_return_urls_are_refused(browser: httpx.AsyncClient, enrol: Enrol, rd: str) -> None:
    r = await sign_in(browser, enrol, USER, rd=rd)
    assert r.status_code == 303
    assert r.headers["location"] == "/account/tokens"


async def test_wrong_code_shows_attempts_left_and_keeps_the_captcha(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await enrol(browser, USER)
    page = await start(browser, USER)
    r = await browser.post("/login/code", data={"csrf": csrf_of(page.text), "code": "00000"})
    assert r.status_code == 401
    assert "attempt(s) left" in r.text and 'id="payload"' in r.text


async def test_not_enrolled_and_denied_have_clear_messages(browser: httpx.AsyncClient) -> None:
    r = await start(browser, "nobody@example.com")
    assert r.status_code == 404 and "no authenticator yet" in r.text
    r = await start(browser, OUTSIDER)
    assert r.status_code == 403 and "not allowed" in r.text


async def test_scope_picker_for_users_with_more_than_default(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    key = await enrol(browser, ADMIN)
    page = await start(browser, ADMIN)
    assert 'name="scope" value="reports"' in page.text
    body = {"csrf": csrf_of(page.text), "code": code_of(page.text, key), "scope": "reports"}
    r = await browser.post("/login/code", data=body)
    assert r.status_code == 303


async def test_forged_or_missing_csrf_is_refused_with_an_html_page(browser: httpx.AsyncClient) -> None:
    await browser.get("/login")
    r = await browser.post("/login", data={"csrf": "k.forged", "email": USER})
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert "csrf_invalid" in r.text and "Traceback" not in r.text
    r = await browser.post("/login", data={"email": USER})
    assert r.status_code == 403
    # A token minted for another browser's cookie does not fit this one.
    other = csrf_of((await browser.get("/login")).text)
    browser.cookies.clear()
    r = await browser.post("/login", data={"csrf": other, "email": USER})
    assert r.status_code == 403


async def test_code_without_login_state_asks_to_start_again(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/login")
    r = await browser.post("/login/code", data={"csrf": csrf_of(page.text), "code": "ABCDE"})
    assert r.status_code == 400 and "Start again" in r.text


async def test_sign_out_ends_the_session_everywhere(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, USER)
    token = browser.cookies.get(SESSION_COOKIE)
    assert token
    page = await browser.get("/account/tokens")
    r = await browser.post("/logout", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    api = await browser.delete("/api/session", headers={"authorization": f"Bearer {token}"})
    assert api.json()["error"] == "session_revoked"
    # Even if the browser kept the cookie, the portal does not accept it.
    browser.cookies.set(SESSION_COOKIE, token, domain="example.com")
    r = await browser.get("/account/tokens")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?rd=")


async def test_unknown_page_is_an_html_404_and_api_stays_json(browser: httpx.AsyncClient) -> None:
    r = await browser.get("/nope")
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    r = await browser.get("/api/nope")
    assert r.json()["error"] == "not_found"


async def test_sign_in_leaves_a_device_cookie_for_the_sign_in_pages(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    """The browser that signed in may go on signing in while strangers hold the account over its limit."""
    from tokenward.identity.device import DEVICE_COOKIE

    r = await sign_in(browser, enrol, USER)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(DEVICE_COOKIE + "="))
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/login", "Max-Age="):
        assert attribute.lower() in cookie.lower()


async def test_a_refused_sign_in_page_says_when_to_come_back(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    """Issue 15 #6 on the portal: its 429 pages carry Retry-After like the API's."""
    await enrol(browser, USER)
    page = await browser.get("/login")
    for _ in range(20):  # TOKENWARD_CAPTCHA_MAX_REQUESTS from this address
        r = await browser.post("/login", data={"csrf": csrf_of(page.text), "email": USER, "rd": ""})
        assert r.status_code == 200, r.text
    r = await browser.post("/login", data={"csrf": csrf_of(page.text), "email": USER, "rd": ""})
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 600
