"""The forward-auth redirect round trip in Chromium behind real nginx (issue 8, item 7).

nginx on 127.0.0.1:N asks `tokenward serve` (127.0.0.1:T) ``/verify`` with ``auth_request``; the
config token's ``source_identifier`` plugin reads the ``tokenward_session`` cookie and, without a
valid session, answers a browser (``Accept: text/html…``) 401 + ``Location:
http://127.0.0.1:T/login?rd=<original URL>`` (``redirect_http_code=401``), which nginx turns into a
302; other clients get the plain 401 with ``WWW-Authenticate``. After sign-in the portal returns the
browser to the protected URL (127.0.0.1 is in ``TOKENWARD_REDIRECT_DOMAINS``), and the upstream
sees ``Remote-User`` set by nginx. Cookies are per host, not per port, so the host-only session
cookie of 127.0.0.1:T is sent to 127.0.0.1:N too. Signing out sends the browser to sign-in again.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.processes import env_for, free_port, serving, tokenward
from tests.e2e.proxies import NGINX, NGINX_HEAD, NGINX_VERIFY_TAIL, http_upstream, require_binary, run_nginx
from tests.helpers import enrollment_code_in
from tests.ui.portal import USER, prepare
from tests.ui.test_browser import ARGS, CHROMIUM
from tokenward.identity.captcha import open_captcha
from tokenward.identity.client_tokens import b64u_of_public

# The nginx snippet of docs/ui.md ("Forward auth with a login redirect").
NGINX_CONF = (
    NGINX_HEAD
    + """  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_tokenward_verify;
      auth_request_set $tw_user $upstream_http_remote_user;
      auth_request_set $tw_email $upstream_http_remote_email;
      auth_request_set $tw_login $upstream_http_location;
      proxy_set_header Remote-User $tw_user;
      proxy_set_header Remote-Email $tw_email;
      error_page 401 = @tokenward_login;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location @tokenward_login {{
      if ($tw_login = "") {{
        return 401;
      }}
      return 302 $tw_login;
    }}
"""
    + NGINX_VERIFY_TAIL
)


class _App(BaseHTTPRequestHandler):
    """The protected app: a page naming the user nginx passed in ``Remote-User``."""

    def do_GET(self) -> None:
        user = html.escape(self.headers.get("Remote-User", ""))
        body = f'<!doctype html><title>App</title><h1>Protected app</h1><p id="user">{user}</p>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Site:
    def __init__(self, portal: str, app: str, key: X25519PrivateKey) -> None:
        self.portal, self.app, self.key = portal, app, key


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            raise AssertionError(f"{CHROMIUM} is missing; CI needs it for the browser tests (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    require_binary(NGINX)  # skip (or, under CI, fail) before any set-up
    tmp = tmp_path_factory.mktemp("roundtrip")
    data = tmp / "data"
    prepare(data)
    port = free_port()
    portal = f"http://127.0.0.1:{port}"
    store = tmp / "tokens.json"
    env = env_for(
        data,
        TOKENWARD_COOKIE_SECURE="false",
        TOKENWARD_REDIRECT_DOMAINS="127.0.0.1",
        TOKENWARD_CONFIG_TOKEN_STORES=json.dumps({"primary": {"adapter": "file", "options": {"path": str(store)}}}),
    )
    doc = {
        "jti": "roundtrip",
        "tokenward": {
            "plugins": [
                {
                    "type": "source_identifier",
                    "realm": "app",
                    "cookie": "tokenward_session",
                    "login_url": portal + "/login",
                }
            ]
        },
    }
    made = tokenward("config-token", "create", "-", env=env, stdin=json.dumps(doc), timeout=30)
    assert made.returncode == 0, made.stderr
    store.write_text(json.dumps({"app": made.stdout.splitlines()[0]}))
    with serving(env, port=port), http_upstream(_App) as upstream:
        enrolled = tokenward("user", "enroll", USER, env=env)
        assert enrolled.returncode == 0, enrolled.stderr
        key = X25519PrivateKey.generate()
        body = {"email": USER, "code": enrollment_code_in(enrolled.stdout)}
        assert httpx.post(portal + "/api/enroll", json={**body, "public_key": b64u_of_public(key)}).status_code == 200
        query = "config_token_store_id=primary&config_token_id=app&redirect_http_code=401"
        with run_nginx(tmp, tokenward=port, upstream=upstream, query=query, template=NGINX_CONF) as nginx_port:
            yield Site(portal, f"http://127.0.0.1:{nginx_port}", key)


@pytest.fixture
def tab() -> Iterator[tuple[Page, list[str]]]:
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        # A client's own Remote-User never reaches the app: nginx replaces it.
        context = browser.new_context(extra_http_headers={"Remote-User": "mallory@example.com"})
        context.set_default_timeout(10_000)
        page = context.new_page()
        problems: list[str] = []
        page.on(
            "console",
            lambda m: (
                problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        yield page, problems
        context.close()
        browser.close()


def test_protected_app_sends_the_browser_to_sign_in_and_back(site: Site, tab: tuple[Page, list[str]]) -> None:
    page, problems = tab
    protected = site.app + "/wiki/page?x=1&y=two"
    page.goto(protected)
    page.wait_for_url(site.portal + "/login?**")
    assert parse_qs(urlsplit(page.url).query)["rd"] == [protected]
    page.get_by_label("E-mail address").fill(USER)
    page.get_by_role("button", name="Send me a captcha").click()
    code = open_captcha(page.locator("#payload").input_value(), site.key).code
    page.get_by_label("Code from your authenticator").fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(protected)
    assert page.locator("h1").inner_text() == "Protected app"
    assert page.locator("#user").inner_text() == USER
    # Another page of the app: the cookie goes along, no new sign-in.
    page.goto(site.app + "/other")
    assert page.locator("#user").inner_text() == USER

    page.goto(site.portal + "/account/tokens")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login?signed_out=1")
    page.goto(protected)
    page.wait_for_url(site.portal + "/login?**")
    assert parse_qs(urlsplit(page.url).query)["rd"] == [protected]
    assert problems == []


def test_nginx_turns_the_401_into_a_redirect_to_sign_in(site: Site) -> None:
    """Without a browser: the 401 + Location of /verify becomes nginx's 302; a stale cookie too.

    nginx passes the client's ``Accept`` to ``/verify``: a page load (``text/html``) is redirected.
    ``rd`` is what the client asked for (nginx builds it from ``Host``); the portal returns there only
    for hosts in TOKENWARD_REDIRECT_DOMAINS (tests/ui/test_login.py covers the refusals).
    """
    for headers in ({}, {"Cookie": "tokenward_session=TWS1.forged"}):
        r = httpx.get(site.app + "/a/b?c=d", headers={"Accept": "text/html", **headers}, follow_redirects=False)
        assert r.status_code == 302, r.text
        assert r.headers["location"] == site.portal + "/login?rd=" + quote(site.app + "/a/b?c=d", safe="")


@pytest.mark.parametrize("accept", ["application/json", "*/*", None])
def test_nginx_answers_api_clients_401_with_the_challenge(site: Site, accept: str | None) -> None:
    """JSON, curl's ``*/*`` and no Accept at all: the 401 and ``WWW-Authenticate``, no redirect."""
    for headers in ({}, {"Cookie": "tokenward_session=TWS1.forged"}):
        with httpx.Client() as client:
            request = client.build_request("GET", site.app + "/a/b?c=d", headers=headers)
            if accept is None:
                del request.headers["accept"]
            else:
                request.headers["accept"] = accept
            r = client.send(request, follow_redirects=False)
        assert r.status_code == 401, r.text
        assert "location" not in r.headers
        assert r.headers["www-authenticate"] == 'Bearer realm="app"'
