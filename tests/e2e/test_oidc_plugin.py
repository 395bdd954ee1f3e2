"""The ``oidc`` /verify plugin against tokenward's own OpenID Provider: two processes behind nginx.

Process P is the provider (portal sign-in with a captcha, ``oidc client add``); process V answers
nginx's ``auth_request`` with a config token holding the ``oidc`` plugin. An HTTP client plays the
browser: it opens the protected page, follows the redirects to P's authorization endpoint and
sign-in, types the captcha code, comes back through ``/oauth2/callback`` and lands on the page,
which sees the ``Remote-*`` headers nginx set. The nginx configuration is docs/oidc.md's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.e2e.processes import env_for, free_port, serving, tokenward
from tests.e2e.proxies import NGINX, NGINX_HEAD, NGINX_VERIFY_TAIL, echo_upstream, require_binary, run_nginx
from tests.helpers import enrollment_code_in, init_data_dir
from tests.ui.conftest import csrf_of
from tests.ui.portal import SERVER, USER, code_of, prepare
from tokenward.datadir import DataDir
from tokenward.forwardauth.sealed import open_value, seal_value
from tokenward.identity.client_tokens import b64u_of_public

# docs/oidc.md, "The oidc plugin behind nginx".
NGINX_CONF = (
    NGINX_HEAD
    + """  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_tokenward_verify;
      auth_request_set $tw_user $upstream_http_remote_user;
      auth_request_set $tw_email $upstream_http_remote_email;
      auth_request_set $tw_groups $upstream_http_remote_groups;
      auth_request_set $tw_name $upstream_http_remote_name;
      auth_request_set $tw_login $upstream_http_location;
      auth_request_set $tw_cookie $upstream_http_set_cookie;
      proxy_set_header Remote-User $tw_user;
      proxy_set_header Remote-Email $tw_email;
      proxy_set_header Remote-Groups $tw_groups;
      proxy_set_header Remote-Name $tw_name;
      add_header Set-Cookie $tw_cookie always;
      error_page 401 = @tokenward_login;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location @tokenward_login {{
      add_header Set-Cookie $tw_cookie always;
      add_header Cache-Control no-store always;
      if ($tw_login = "") {{
        return 401;
      }}
      return 302 $tw_login;
    }}
"""
    + NGINX_VERIFY_TAIL
)

HTML = {"Accept": "text/html"}


@dataclass
class Site:
    provider: str
    app: str
    key: X25519PrivateKey
    verify_data: Path
    aad: str


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = tokenward(*args, env=env, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_binary(NGINX)
    tmp = tmp_path_factory.mktemp("oidc-plugin")
    provider_port, app_port = free_port(), free_port()
    provider, app = f"http://127.0.0.1:{provider_port}", f"http://127.0.0.1:{app_port}"

    pdata = tmp / "provider"
    prepare(pdata)
    penv = env_for(
        pdata,
        TOKENWARD_COOKIE_SECURE="false",
        TOKENWARD_REDIRECT_DOMAINS="127.0.0.1",
        TOKENWARD_OIDC_ISSUER=provider,
    )
    added = json.loads(
        _cli(
            penv,
            "oidc",
            "client",
            "add",
            "App",
            "--json",
            "--redirect-uri",
            app + "/oauth2/callback",
            "--post-logout-redirect-uri",
            app + "/bye",
        )
    )
    client_id = added["client_id"]
    with (pdata / "userpolicy.csv").open("a") as f:
        f.write(f"p, {USER}, {SERVER}, {client_id}, login\n")
    with (pdata / "clientscopespolicy.csv").open("a") as f:
        f.write(f"p, {USER}, *, {client_id}, app-admins\np, {USER}, *, {client_id}, ops\n")

    vdata = tmp / "verify"
    init_data_dir(vdata, "verify.example.com")
    store = tmp / "tokens.json"
    venv = env_for(
        vdata,
        TOKENWARD_CONFIG_TOKEN_STORES=json.dumps({"primary": {"adapter": "file", "options": {"path": str(store)}}}),
    )
    plugin = {
        "type": "oidc",
        "realm": "app",
        "issuer": provider,
        "client_id": client_id,
        "client_secret": added["client_secret"],
        "redirect_uri": app + "/oauth2/callback",
        "scopes": ["openid", "email", "profile", "groups"],
        "cookie_secure": False,
        "logout_path": "/oauth2/sign_out",
        "post_logout_redirect_uri": app + "/bye",
    }
    token = _cli(venv, "config-token", "create", "-", stdin=json.dumps({"tokenward": {"plugins": [plugin]}}))
    store.write_text(json.dumps({"app": token.splitlines()[0]}))

    with serving(penv, port=provider_port), serving(venv) as (verify_url, _), echo_upstream() as upstream:
        enrolled = tokenward("user", "enroll", USER, env=penv)
        assert enrolled.returncode == 0, enrolled.stderr
        key = X25519PrivateKey.generate()
        body = {"email": USER, "code": enrollment_code_in(enrolled.stdout)}
        r = httpx.post(provider + "/api/enroll", json={**body, "public_key": b64u_of_public(key)})
        assert r.status_code == 200, r.text
        query = "config_token_store_id=primary&config_token_id=app&redirect_http_code=401"
        verify_port = int(verify_url.rsplit(":", 1)[1])
        with run_nginx(
            tmp / "nginx", tokenward=verify_port, upstream=upstream, query=query, template=NGINX_CONF, port=app_port
        ):
            aad = f"oidc|tokenward_oidc|{provider}|{client_id}"
            yield Site(provider, app, key, vdata, aad)


def sign_in(site: Site, browser: httpx.Client, page: str) -> httpx.Response:
    """Open ``page``, sign in at the provider with the captcha, and follow the redirects back."""
    r = browser.get(page, headers=HTML)
    assert r.status_code == 200 and str(r.url).startswith(site.provider + "/login?"), (r.status_code, r.url)
    rd = parse_qs(urlsplit(str(r.url)).query)["rd"][0]
    assert rd.startswith("/oidc/authorize?")
    r = browser.post(site.provider + "/login", data={"csrf": csrf_of(r.text), "email": USER, "rd": rd}, headers=HTML)
    assert r.status_code == 200, r.text
    return browser.post(
        site.provider + "/login/code",
        data={"csrf": csrf_of(r.text), "code": code_of(r.text, site.key)},
        headers=HTML,
    )


def test_sign_in_at_the_provider_reaches_the_app_with_remote_headers(site: Site) -> None:
    with httpx.Client(follow_redirects=True, timeout=60) as browser:
        page = site.app + "/wiki/page?x=1"
        r = sign_in(site, browser, page)
        assert r.status_code == 200 and str(r.url) == page, (r.status_code, r.url, r.text[:300])
        seen = r.json()["headers"]
        assert seen["remote-user"] == USER and seen["remote-email"] == USER
        assert seen["remote-groups"] == "app-admins,ops"
        hops = [str(h.url) for h in r.history]
        assert any(h.startswith(site.app + "/oauth2/callback?") for h in hops)
        assert any(h.startswith(site.provider + "/oidc/authorize?") for h in hops)
        # The session cookie is encrypted, HttpOnly, SameSite=Lax; the next page needs no provider.
        cookie = browser.cookies.get("tokenward_oidc")
        assert cookie is not None and cookie.startswith("TWC1.") and USER not in cookie
        r = browser.get(site.app + "/other", headers=HTML)
        assert r.status_code == 200 and not r.history and r.json()["headers"]["remote-user"] == USER

        # The callback URL again (Back button): the same session, no second redemption of the code.
        callback = next(h for h in hops if h.startswith(site.app + "/oauth2/callback?"))
        r = browser.get(callback, headers=HTML)
        assert r.status_code == 200 and str(r.url) == page

        # Logout: the cookie goes, the provider ends its session, the browser lands on the app's /bye.
        r = browser.get(site.app + "/oauth2/sign_out", headers=HTML)
        hops = [str(h.url) for h in r.history]
        assert any(h.startswith(site.provider + "/oidc/logout?") for h in hops), hops
        assert str(r.url) == site.app + "/bye?" or str(r.url).startswith(site.provider + "/login"), r.url
        assert browser.cookies.get("tokenward_oidc") in (None, "")
        r = browser.get(page, headers=HTML)
        assert str(r.url).startswith(site.provider + "/login?"), "signed out at the provider too"


def test_api_clients_get_401_with_the_challenge_and_no_redirect(site: Site) -> None:
    for accept in ("application/json", "*/*"):
        r = httpx.get(site.app + "/wiki", headers={"Accept": accept})
        assert r.status_code == 401 and "location" not in r.headers
        assert r.headers["www-authenticate"] == 'Bearer realm="app"'


def test_forged_or_stale_callbacks_are_refused(site: Site) -> None:
    with httpx.Client(timeout=60) as browser:
        # No sign-in under way in this browser.
        r = browser.get(site.app + "/oauth2/callback?code=twoc_x&state=abc", headers=HTML)
        assert r.status_code == 401 and "location" not in r.headers
        # A sign-in under way, but another state (login CSRF), and a forged cookie.
        r = browser.get(site.app + "/wiki", headers=HTML)
        assert r.status_code == 302 and r.headers["location"].startswith(site.provider + "/oidc/authorize?")
        assert "tokenward_oidc_login=TWC1." in r.headers["set-cookie"]
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Lax" in r.headers["set-cookie"]
        r = browser.get(site.app + "/oauth2/callback?code=twoc_x&state=other", headers=HTML)
        assert r.status_code == 401 and "location" not in r.headers
        r = browser.get(site.app + "/wiki", headers={**HTML, "Cookie": "tokenward_oidc=TWC1.forged.AAAA"})
        assert r.status_code == 302 and r.headers["location"].startswith(site.provider + "/oidc/authorize?")


def test_a_provider_refusal_comes_back_as_403(site: Site) -> None:
    with httpx.Client(timeout=60) as browser:
        r = browser.get(site.app + "/oauth2/callback?error=access_denied&state=x", headers=HTML)
    assert r.status_code == 403


def test_expired_tokens_are_refreshed_and_nginx_sets_the_new_cookie_on_the_200(site: Site) -> None:
    """The session's tokens are over (re-sealed with an ``exp`` in the past, as the verify instance's
    key allows): the plugin refreshes at the provider and answers 200 with ``Set-Cookie``, which the
    documented ``add_header Set-Cookie $tw_cookie always`` hands to the browser."""
    keyring = DataDir(site.verify_data).read_timecodes().keyring()
    with httpx.Client(follow_redirects=True, timeout=60) as browser:
        r = sign_in(site, browser, site.app + "/start")
        assert r.status_code == 200 and r.json()["headers"]["remote-user"] == USER
        cookie = browser.cookies["tokenward_oidc"]
        session = open_value(cookie, keyring, aad=site.aad + "|s", now=time.time())
        assert session is not None and session["rt"].startswith("twor_")
        session["exp"] = int(time.time()) - 1
        stale = seal_value(session, keyring, aad=site.aad + "|s")
        browser.cookies.set("tokenward_oidc", stale, domain="127.0.0.1")
        r = browser.get(site.app + "/later", headers=HTML)
        assert r.status_code == 200 and not r.history and r.json()["headers"]["remote-user"] == USER
        renewed = r.headers["set-cookie"]
        assert renewed.startswith("tokenward_oidc=TWC1.") and "HttpOnly" in renewed
        fresh = open_value(browser.cookies["tokenward_oidc"], keyring, aad=site.aad + "|s", now=time.time())
        assert fresh is not None and fresh["exp"] > time.time() and fresh["rt"] != session["rt"]
        # The rotated-out refresh token is spent: the stale cookie again is served the shared refresh
        # for a moment, and never makes the provider see the old refresh token twice.
        browser.cookies.set("tokenward_oidc", stale, domain="127.0.0.1")
        r = browser.get(site.app + "/again", headers=HTML)
        assert r.status_code == 200 and r.json()["headers"]["remote-user"] == USER
