"""/admin/policy-diff: paste a changed policy file, see the flips; bad files and non-admins refused."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.ui.conftest import Enrol, csrf_of
from tests.ui.portal import ADMIN, SERVER, USER
from tests.ui.test_login import sign_in


async def test_a_changed_file_shows_its_flips_by_row(browser: httpx.AsyncClient, enrol: Enrol, data: Path) -> None:
    await sign_in(browser, enrol, ADMIN)
    page = await browser.get("/admin/policy-diff")
    assert page.status_code == 200 and 'name="content"' in page.text and 'data-load-into="content"' in page.text
    current = (data / "userpolicy.csv").read_text()
    changed = (
        current + f"p, {USER}, {SERVER}, TOKENWARD, admin\r\np, <b>x</b>@example.com, {SERVER}, TOKENWARD, deny\r\n"
    )
    r = await browser.post(
        "/admin/policy-diff", data={"csrf": csrf_of(page.text), "file": "userpolicy.csv", "content": changed}
    )
    assert r.status_code == 200, r.text
    assert 'id="flips"' in r.text and "0 decision(s) flip" not in r.text
    assert f"<code>p, {USER}, {SERVER}, TOKENWARD, admin</code>" in r.text
    assert "deny → allow" in r.text and "added" in r.text
    assert "<b>x</b>" not in r.text and "&lt;b&gt;x&lt;/b&gt;" in r.text  # pasted text is escaped
    assert (data / "userpolicy.csv").read_text() == current  # nothing saved


async def test_unchanged_file_flips_nothing(browser: httpx.AsyncClient, enrol: Enrol, data: Path) -> None:
    await sign_in(browser, enrol, ADMIN)
    page = await browser.get("/admin/policy-diff")
    r = await browser.post(
        "/admin/policy-diff",
        data={"csrf": csrf_of(page.text), "file": "userpolicy.csv", "content": (data / "userpolicy.csv").read_text()},
    )
    assert r.status_code == 200 and "<strong>0 decision(s) flip</strong>" in r.text


async def test_bad_input_is_shown_on_the_form(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, ADMIN)
    page = await browser.get("/admin/policy-diff")
    csrf = csrf_of(page.text)
    cases = [
        ({"file": "userpolicy.csv", "content": "p, only, three\n"}, "userpolicy.csv:1: expected 4 fields"),
        ({"file": "../../etc/passwd", "content": "x"}, "unknown policy file"),
        ({"file": "userpolicy.csv", "content": "p, (x, d, o, login\n", "dialect": "compat"}, "invalid regular"),
        ({"file": "userpolicy.csv", "content": "", "dialect": "regex"}, "glob or compat"),
    ]
    for form, message in cases:
        r = await browser.post("/admin/policy-diff", data={"csrf": csrf, **form})
        assert r.status_code == 400, (form, r.text)
        assert 'role="alert"' in r.text and message in r.text and "Traceback" not in r.text
    r = await browser.post("/admin/policy-diff", data={"file": "userpolicy.csv", "content": ""})  # no CSRF token
    assert r.status_code == 403


async def test_non_admins_get_the_403_page(browser: httpx.AsyncClient, enrol: Enrol) -> None:
    await sign_in(browser, enrol, USER)
    r = await browser.get("/admin/policy-diff")
    assert r.status_code == 403 and "not an admin" in r.text
