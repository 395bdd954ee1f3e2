"""The portal in Debian's Chromium (Playwright) against a real `tokenward serve` on 127.0.0.1.

Sign-in with the captcha, token create/list/delete, an admin policy check and a non-admin's
403 page, with no Content-Security-Policy violation anywhere. With ``TOKENWARD_SCREENSHOTS=dir``
each page is also saved as a PNG (``make screenshots`` writes docs/screenshots/).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Browser, FilePayload, Page, sync_playwright

from tests.e2e.processes import env_for, serving, tokenward
from tests.helpers import enrollment_code_in
from tests.ui.portal import ADMIN, USER, prepare
from tokenward.identity.captcha import open_captcha
from tokenward.identity.client_tokens import b64u_of_public

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        raise AssertionError(f"{CHROMIUM} is missing; CI needs it for the browser tests (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium", allow_module_level=True)


class Server:
    def __init__(self, url: str, data: Path, env: dict[str, str]) -> None:
        self.url, self.data, self.env = url, data, env
        self.keys: dict[str, X25519PrivateKey] = {}

    def enrol(self, email: str) -> None:
        result = tokenward("user", "enroll", email, env=self.env)
        assert result.returncode == 0, result.stderr
        code = enrollment_code_in(result.stdout)
        key = X25519PrivateKey.generate()
        body = {"email": email, "code": code, "public_key": b64u_of_public(key)}
        assert httpx.post(self.url + "/api/enroll", json=body).status_code == 200
        self.keys[email] = key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("portal") / "data"
    prepare(data)
    env = env_for(data, TOKENWARD_COOKIE_SECURE="false", TOKENWARD_REDIRECT_DOMAINS="127.0.0.1")
    with serving(env) as (url, _):
        srv = Server(url, data, env)
        srv.enrol(USER)
        srv.enrol(ADMIN)
        yield srv


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


class Shots:
    def __init__(self) -> None:
        target = os.environ.get("TOKENWARD_SCREENSHOTS")
        self.dir = Path(target) if target else None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Page, name: str) -> None:
        if self.dir is not None:
            page.screenshot(path=str(self.dir / f"{name}.png"), full_page=True)


@pytest.fixture
def page(chromium: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = chromium.new_context(viewport={"width": 1100, "height": 760})
    tab = context.new_page()
    problems: list[str] = []
    # CSP violations and script errors; a 403/404 status (the 403 page, favicon.ico) is not a problem.
    tab.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    tab.on("pageerror", lambda e: problems.append(str(e)))
    yield tab, problems
    context.close()


def sign_in(tab: Page, server: Server, email: str, shots: Shots | None = None) -> None:
    tab.goto(server.url + "/login")
    if shots:
        shots(tab, "login")
    tab.get_by_label("E-mail address").fill(email)
    tab.get_by_role("button", name="Send me a captcha").click()
    payload = tab.locator("#payload").input_value()
    code = open_captcha(payload, server.keys[email]).code
    if shots:
        shots(tab, "captcha")
    tab.get_by_label("Code from your authenticator").fill(code)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url("**/account/tokens")


def test_sign_in_and_manage_tokens(server: Server, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    shots = Shots()
    tab.goto(server.url + "/enroll")
    shots(tab, "enroll")
    sign_in(tab, server, USER, shots)
    assert USER in tab.locator("header").inner_text()
    tab.get_by_label("Label").fill("nightly backup")
    tab.get_by_label("Expires in").fill("7d")
    tab.get_by_role("button", name="Create token").click()
    token = tab.locator("#new-token").input_value()
    assert token.startswith("twa_")
    tab.get_by_role("button", name="Copy token").click()
    # Screenshots are committed: show a placeholder, never a real token (secret scanners would flag it).
    tab.locator("#new-token").evaluate("el => { el.value = 'twa_EXAMPLE-ONLY-the-token-appears-here-once'; }")
    shots(tab, "token-created")
    row = tab.locator("tbody tr", has_text="nightly backup")
    assert row.count() == 1 and token not in row.inner_text()
    tab.get_by_role("link", name="Delete token nightly backup").click()
    shots(tab, "token-delete")
    tab.get_by_role("button", name="Delete token").click()
    tab.wait_for_url("**/account/tokens?deleted=1")
    assert "The token was deleted." in tab.content()
    assert tab.locator("tbody tr", has_text="nightly backup").count() == 0
    shots(tab, "tokens")
    tab.goto(server.url + "/admin")
    assert tab.locator("h1").inner_text() == "Not allowed"
    shots(tab, "error-403")
    tab.get_by_role("button", name="Sign out").click()
    tab.wait_for_url("**/login?signed_out=1")
    assert problems == []


def test_admin_policy_check(server: Server, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    shots = Shots()
    sign_in(tab, server, ADMIN)
    tab.get_by_role("link", name="Policy tester").click()
    tab.get_by_label("Subject (sub)").fill(USER)
    tab.get_by_label("Object (obj)").fill("TOKENWARD")
    tab.get_by_label("Action (act)").fill("admin")
    tab.get_by_role("button", name="Check").click()
    assert tab.locator("#decision").inner_text().startswith("DENY")
    tab.get_by_label("Subject (sub)").fill(ADMIN)
    tab.get_by_role("button", name="Check").click()
    assert tab.locator("#decision").inner_text().startswith("ALLOW")
    shots(tab, "admin-policy")
    for path, name in [("/admin", "admin-status"), ("/admin/lint", "admin-lint"), ("/admin/clients", "admin-clients")]:
        tab.goto(server.url + path)
        shots(tab, name)
    tab.goto(server.url + "/admin/audit")
    tab.get_by_label("Action").fill("session.issued")
    tab.get_by_role("button", name="Filter").click()
    assert tab.locator("tbody tr", has_text="captcha.issued").count() == 0
    assert tab.locator("tbody tr", has_text="session.issued").count() >= 1
    shots(tab, "admin-audit")
    assert problems == []


def test_admin_audit_fits_the_page(server: Server, page: tuple[Page, list[str]]) -> None:
    # Issue 19: with 100 events the Detail column wrapped a few characters a line, Target sat
    # empty and wide, the table ran past the content width, and the page was 14,806 px tall.
    from tests.ui.test_audit_page import seed_events

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        pool.submit(asyncio.run, seed_events(server.data)).result()
    tab, problems = page
    sign_in(tab, server, ADMIN)
    tab.goto(server.url + "/admin/audit?limit=100")
    assert tab.locator("tbody tr.event").count() == 100
    fits = tab.evaluate(
        """() => {
          const main = document.querySelector("main"), table = document.querySelector("table.audit");
          const style = getComputedStyle(main);
          const content = main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          const detail = document.querySelector("tbody tr.event td.detail");
          const target = document.querySelector("tbody tr.event td:nth-child(5)");
          const rows = document.querySelectorAll("tbody tr.event");
          const line = parseFloat(getComputedStyle(detail).lineHeight);
          return {content, table: table.scrollWidth, detail: detail.clientWidth, target: target.clientWidth,
                  lines: document.querySelector("tbody").offsetHeight / rows.length / line,
                  height: document.documentElement.scrollHeight};
        }"""
    )
    assert fits["table"] <= fits["content"] + 1, fits  # no sideways scrolling at a laptop width
    assert fits["detail"] >= 2 * fits["target"], fits  # the widest column holds the longest values
    assert fits["lines"] < 4, fits  # a row is a few lines (here: ~100 characters of detail), not fragments
    assert tab.get_by_role("link", name="Older events »").count() == 1  # 100 of 120+: paged
    assert problems == []


def test_admin_policy_what_if_upload(server: Server, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    sign_in(tab, server, ADMIN)
    tab.get_by_role("link", name="What if").click()
    tab.get_by_label("Policy file").select_option("captchapolicy.csv")
    changed = (server.data / "userpolicy.csv").read_text() + f"p, {USER}, auth.example.com, TOKENWARD, admin\n"
    upload: FilePayload = {"name": "userpolicy.csv", "mimeType": "text/csv", "buffer": changed.encode()}
    tab.get_by_label("Upload").set_input_files(upload)  # ui.js reads it into the textarea, picks its name
    tab.wait_for_function("() => document.getElementById('content').value.includes('TOKENWARD, admin')")
    assert tab.get_by_label("Policy file").input_value() == "userpolicy.csv"
    tab.get_by_role("button", name="Show the flips").click()
    assert tab.locator("#flips").inner_text().startswith("1 decision(s) flip")
    group = tab.locator("article.flip-group")
    assert group.count() == 1 and f"p, {USER}, auth.example.com, TOKENWARD, admin" in group.inner_text()
    Shots()(tab, "admin-policy-diff")
    assert problems == []
