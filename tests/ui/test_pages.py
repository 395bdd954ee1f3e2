"""My app tokens and the admin pages, in-process: create/list/delete, bad input, 403 for non-admins."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import HTML, Enrol, csrf_of
from tests.ui.portal import ADMIN, USER
from tests.ui.test_login import sign_in
from tokenward.web.ui.security import CSRF_COOKIE


async def test_tokens_need_a_session(browser: httpx.AsyncClient) -> None:
    r = await browser.get("/account/tokens")
    assert r.status_code == 303 and r.headers["location"] == "/login?rd=%2Faccount%2Ftokens"


async def test_create_list_delete_token(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, USER)
    page = await browser.get("/account/tokens")
    r = await browser.post(
        "/account/tokens",
        data={"csrf": csrf_of(page.text), "label": "backup <script>", "expires_in": "7d", "scopes": "tokenward:manage"},
    )
    assert r.status_code == 201
    token = re.search(r'id="new-token" readonly value="(twa_[^"]+)"', r.text)
    assert token is not None
    assert "backup &lt;script&gt;" in r.text and "<script>" not in r.text.replace('<script src="/static/ui.js"', "")
    # The token works as Basic credentials on the API; the listing never shows it again.
    api = await browser.get("/api/app-tokens", auth=(USER, token.group(1)))
    assert api.status_code == 200 and len(api.json()) == 1
    listed = await browser.get("/account/tokens")
    assert token.group(1) not in listed.text and "backup &lt;script&gt;" in listed.text
    token_id = api.json()[0]["id"]
    confirm = await browser.get(f"/account/tokens/{token_id}/delete")
    assert confirm.status_code == 200 and "Delete token" in confirm.text
    body = {"csrf": csrf_of(confirm.text)}
    r = await browser.post(f"/account/tokens/{token_id}/delete", data=body)
    assert r.status_code == 303
    again = await browser.post(f"/account/tokens/{token_id}/delete", data=body)  # double submit
    assert again.status_code == 200 and "already deleted" in again.text
    assert (await browser.get("/api/app-tokens", auth=(USER, token.group(1)))).status_code == 401


@pytest.mark.parametrize(
    ("field", "value", "status", "text"),
    [
        ("label", "x" * 500, 400, "at most"),
        ("expires_in", "forever", 400, ""),
        ("scopes", "tokenward:root", 403, "cannot grant"),
    ],
)
async def test_bad_token_input_is_shown_on_the_form(
    browser: httpx.AsyncClient, enrol: Enrol, field: str, value: str, status: int, text: str
) -> None:
    await sign_in(browser, enrol, USER)
    page = await browser.get("/account/tokens")
    r = await browser.post("/account/tokens", data={"csrf": csrf_of(page.text), field: value})
    assert r.status_code == status, r.text
    assert 'role="alert"' in r.text and text in r.text


async def test_session_expired_mid_form_goes_back_to_sign_in(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, USER)
    page = await browser.get("/account/tokens")
    for cookie in list(browser.cookies.jar):
        if cookie.name == "tokenward_session":  # the session ran out while the form was open
            browser.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    r = await browser.post("/account/tokens", data={"csrf": csrf_of(page.text), "label": "late"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login?rd=")


@pytest.mark.parametrize("path", ["/admin", "/admin/policy", "/admin/lint", "/admin/clients", "/admin/audit"])
async def test_admin_pages_refuse_non_admins_with_a_403_page(
    browser: httpx.AsyncClient, enrol: Enrol, path: str
) -> None:
    await sign_in(browser, enrol, USER)
    r = await browser.get(path)
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    assert "not an admin" in r.text and "Traceback" not in r.text


async def test_admin_pages_for_admins(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, ADMIN)
    status = await browser.get("/admin")
    assert status.status_code == 200 and "Policy version" in status.text
    page = await browser.get("/admin/policy")
    form = {"csrf": csrf_of(page.text), "sub": ADMIN, "dom": "auth.example.com", "obj": "TOKENWARD", "act": "admin"}
    r = await browser.post("/admin/policy", data=form)
    assert r.status_code == 200 and "ALLOW" in r.text and "userpolicy.csv:" in r.text
    r = await browser.post("/admin/policy", data={**form, "sub": USER})
    assert "DENY" in r.text
    r = await browser.post("/admin/policy", data={**form, "sub": ""})
    assert r.status_code == 400
    assert (await browser.get("/admin/lint")).status_code == 200
    clients = await browser.get("/admin/clients")
    assert "<td>tokenward</td>" in clients.text
    audit = await browser.get("/admin/audit", params={"action": "session.issued"})
    assert audit.status_code == 200 and "session.issued" in audit.text and "captcha.issued" not in audit.text
    bad = await browser.get("/admin/audit", params={"since": "yesterday"})
    assert bad.status_code == 400 and "is not a date" in bad.text


async def test_double_submitted_create_form_creates_one_token(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, USER)
    page = await browser.get("/account/tokens")
    submission = re.search(r'name="submission" value="([^"]+)"', page.text)
    assert submission is not None
    body = {"csrf": csrf_of(page.text), "submission": submission.group(1), "label": "once", "expires_in": "1d"}
    first = await browser.post("/account/tokens", data=body)
    again = await browser.post("/account/tokens", data=body)
    assert first.status_code == 201
    assert again.status_code == 409 and "already sent" in again.text
    assert again.text.count("once") >= 1 and 'id="new-token"' not in again.text
    fresh = re.search(r'name="submission" value="([^"]+)"', again.text)
    assert fresh is not None and fresh.group(1) != submission.group(1)


def test_recent_submissions_is_bounded_and_expires() -> None:
    from tokenward.web.state import RecentSubmissions

    seen = RecentSubmissions(ttl=10, maxsize=3)
    assert seen.first_use("a", now=0) and not seen.first_use("a", now=5)
    assert seen.first_use("a", now=11)  # expired: a new submission
    for key in "bcd":
        assert seen.first_use(key, now=12)
    assert len(seen._seen) <= 3


async def test_an_attackers_csrf_pair_fails_beside_the_victims_session(
    browser: httpx.AsyncClient, enrol: Enrol
) -> None:
    """Issue 15 #7: the CSRF token is bound to the session, so a planted cookie/token pair is refused."""
    await sign_in(browser, enrol, USER)
    # The attacker gets a pair of his own (anonymous, from the login page) and plants the cookie in the victim's
    # browser (a sibling subdomain can set a cookie for the parent domain).
    async with httpx.AsyncClient(transport=browser._transport, base_url=browser.base_url, headers=HTML) as attacker:
        page = await attacker.get("/login")
        nonce, token = attacker.cookies[CSRF_COOKIE], csrf_of(page.text)
    browser.cookies.set(CSRF_COOKIE, nonce, domain="auth.example.com")
    r = await browser.post("/account/tokens", data={"csrf": token, "label": "planted", "expires_in": "7d"})
    assert r.status_code == 403 and "security token" in r.text
    listed = await browser.get("/account/tokens")
    assert "planted" not in listed.text
    # The victim's own page still works with the planted nonce: its token is bound to that nonce and her session.
    r = await browser.post("/account/tokens", data={"csrf": csrf_of(listed.text), "label": "mine", "expires_in": "7d"})
    assert r.status_code == 201


async def test_lint_page_groups_dialect_notes(browser: httpx.AsyncClient, enrol: Enrol, data: Path) -> None:
    await sign_in(browser, enrol, ADMIN)
    with (data / "userpolicy.csv").open("a", encoding="utf-8") as policy:
        policy.write(
            "p, /*@/*./*, mytoken.server, C1, login\n" * 3 + "p, bob@example.com, auth.example.com, C1, logon\n"
        )
    r = await browser.get("/admin/lint")
    assert r.status_code == 200
    assert r.text.count('class="finding"') == 3  # two duplicate rows and the unknown action, one row each
    counted = re.search(r"dialect-differs</code>: (\d+) patterns in (\d+) rows", r.text)
    assert counted is not None and int(counted.group(1)) >= 6 and int(counted.group(2)) >= 3
    assert r.text.count("compat searches") == 1
