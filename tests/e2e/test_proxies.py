"""nginx ``auth_request`` and Caddy ``forward_auth`` in front of an upstream, asking a real `tokenward serve`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.e2e.processes import env_for, free_port, serving, tokenward
from tests.e2e.proxies import echo_upstream, run_caddy, run_nginx
from tests.helpers import basic_auth as basic
from tests.helpers import init_data_dir

DOC = {
    "jti": "e2e-site",
    "tokenward": {
        "plugins": [{"type": "app_token", "realm": "e2e", "scopes": ["wiki"]}],
        "custom_service_headers": {"X-Custom": {"source": "request", "value": "$.parsedUri.path"}},
    },
}


class Served:
    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port = port
        self.tokens = tokens


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("tw")
    data = tmp / "data"
    init_data_dir(data)
    store = tmp / "tokens.json"
    stores = json.dumps({"primary": {"adapter": "file", "options": {"path": str(store)}}})
    env = env_for(data, TOKENWARD_CONFIG_TOKEN_STORES=stores)

    def run(*args: str, stdin: str | None = None) -> str:
        result = tokenward(*args, env=env, stdin=stdin, timeout=120 if stdin is None else 30)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()[0]

    tokens = {
        "alice": run("app-token", "create", "-u", "alice@example.com", "-s", "wiki"),
        "bob": run("app-token", "create", "-u", "bob@example.com"),
    }
    store.write_text(json.dumps({"site": run("config-token", "create", "-", stdin=json.dumps(DOC))}))
    port = free_port()
    with serving(env, port=port):
        yield Served(port, tokens)


Runner = Callable[..., AbstractContextManager[int]]


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def proxy(request: pytest.FixtureRequest, served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    runner: Runner = run_nginx if request.param == "nginx" else run_caddy
    query = "config_token_store_id=primary&config_token_id=site"
    with (
        echo_upstream() as upstream,
        runner(tmp_path_factory.mktemp(request.param), tokenward=served.port, upstream=upstream, query=query) as port,
    ):
        yield f"http://127.0.0.1:{port}"


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=10)


def test_allowed_request_reaches_upstream_with_remote_headers(proxy: str, served: Served) -> None:
    r = get(proxy + "/wiki/page?x=1", Authorization=basic("alice@example.com", served.tokens["alice"]))
    assert r.status_code == 200, r.text
    seen: dict[str, Any] = r.json()["headers"]
    assert seen["remote-user"] == "alice@example.com"
    assert seen["remote-email"] == "alice@example.com"
    assert seen["x-custom"] == "/wiki/page"


def test_client_supplied_remote_user_is_replaced(proxy: str, served: Served) -> None:
    r = get(
        proxy + "/",
        Authorization=basic("alice@example.com", served.tokens["alice"]),
        **{"Remote-User": "mallory@example.com", "Remote-Groups": "admins"},
    )
    assert r.status_code == 200
    seen = r.json()["headers"]
    assert seen["remote-user"] == "alice@example.com"
    assert "admins" not in seen.get("remote-groups", "")


def test_missing_credentials_get_a_challenge(proxy: str) -> None:
    r = get(proxy + "/")
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Basic realm="e2e", charset="UTF-8"']  # exactly one


def test_wrong_token_is_401_and_missing_scope_is_403(proxy: str, served: Served) -> None:
    r = get(proxy + "/", Authorization=basic("alice@example.com", served.tokens["bob"]))
    assert r.status_code == 401
    r = get(proxy + "/", Authorization=basic("bob@example.com", served.tokens["bob"]))
    assert r.status_code == 403


def test_a_missing_proxy_binary_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.e2e.proxies import require_binary

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install nginx caddy"):
        require_binary("/nonexistent/tokenward-test-proxy")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install nginx caddy"):
        require_binary("/nonexistent/tokenward-test-proxy")
