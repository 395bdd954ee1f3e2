"""/verify through the ASGI app: request reconstruction, token sources, plugins, policy, headers."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from passlib.hash import apr_md5_crypt  # type: ignore[import-untyped]

import tokenward.forwardauth.service as service_module
from tests.helpers import basic_auth as basic
from tokenward.apptokens import cli_actor
from tokenward.errorcodes import ErrorCode
from tokenward.forwardauth.config_token import encode_token
from tokenward.runtime import Runtime

FWD = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/docs/a?x=1&y=2",
    "X-Forwarded-Method": "GET",
}


def token(runtime: Runtime, plugins: list[dict[str, Any]], **extra: Any) -> str:
    block = {"plugins": plugins, **extra.pop("block", {})}
    return encode_token({"tokenward": block, **extra}, runtime.keyring)


async def call(client: httpx.AsyncClient, params: dict[str, str], **headers: str) -> httpx.Response:
    return await client.get("/verify", params=params, headers={**FWD, **headers})


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_x_forwarded_proto"),
        ({"X-Forwarded-Proto": "https"}, "missing_x_forwarded_host"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a"}, "missing_x_forwarded_uri"),
        ({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a", "X-Forwarded-Uri": "/"}, "missing_x_forwarded_method"),
        ({"X-Original-URL": "https://a/b"}, "missing_x_original_method"),
        ({"X-Original-URL": "ftp://a/b", "X-Original-Method": "GET"}, "forwarded_header_invalid"),
        ({"X-Original-URL": "https://a/" + "b" * 9000, "X-Original-Method": "GET"}, "uri_too_long"),
    ],
)
async def test_missing_or_bad_forwarding_headers_are_a_400_naming_them(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str], code: str
) -> None:
    r = await client.get("/verify", params={"config_token": token(runtime, [{"type": "noop"}])}, headers=headers)
    assert r.status_code == 400 and r.json()["error"] == code


async def test_noop_allows_with_empty_remote_headers(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await call(client, {"config_token": token(runtime, [{"type": "noop"}])}, **{"Remote-User": "mallory"})
    assert r.status_code == 200
    assert r.headers["remote-user"] == "" and r.headers["remote-groups"] == ""
    r = await client.get(
        "/verify",
        params={"config_token": token(runtime, [{"type": "noop"}])},
        headers={"X-Original-URL": "http://h:8080/p?q=1", "X-Original-Method": "post"},
    )
    assert r.status_code == 200


async def test_token_problems(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await call(client, {})
    assert r.status_code == 400 and r.json()["error"] == "config_token_missing"
    r = await call(client, {"config_token": "garbage"})
    assert r.json()["error"] == "config_token_invalid"
    expired = token(runtime, [{"type": "noop"}], exp=int(time.time()) - 5)
    r = await call(client, {"config_token": expired})
    assert r.json()["error"] == "config_token_expired"
    r = await call(client, {"config_token": token(runtime, [{"type": "noop"}]), "q": "x" * 17000})
    assert r.status_code == 400 and r.json()["error"] == "query_too_large"
    r = await call(client, {"config_token_store_id": "nope", "config_token_id": "1"})
    assert r.json()["error"] == "config_token_store_unknown"
    r = await call(client, {"config_token_store_id": "primary", "config_token_id": "missing"})
    assert r.status_code == 404 and r.json()["error"] == "config_token_not_found"
    r = await call(client, {"config_token_store_id": "plainenv", "config_token_id": "ptr"})
    assert r.json()["error"] == "config_token_pointer_loop"


async def test_app_token_via_pointer_in_file_store_warm_path_decrypts_nothing(
    client: httpx.AsyncClient, runtime: Runtime, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, secret = await runtime.app_tokens.create(owner="alice@example.com", created_by=cli_actor())
    real = token(runtime, [{"type": "app_token"}], jti="real-1")
    token_file.write_text(json.dumps({"site": real}))
    pointer = encode_token(
        {"tokenward": {"config_token_store_id": "primary", "config_token_id": "site"}}, runtime.keyring
    )
    calls = []
    original = service_module.decode_token  # type: ignore[attr-defined]

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(service_module, "decode_token", spy)
    for _ in range(3):
        r = await call(client, {"config_token": pointer}, Authorization=basic("alice@example.com", secret))
        assert r.status_code == 200, r.text
        assert r.headers["remote-user"] == "alice@example.com"
        assert r.headers["remote-email"] == "alice@example.com"
    assert len(calls) == 2  # pointer + stored token, once each
    r = await call(client, {"config_token": pointer}, Authorization=basic("alice@example.com", "twa_wrong"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic realm=")
    r = await call(client, {"config_token": pointer})
    assert r.status_code == 401 and "www-authenticate" in r.headers


async def test_repeated_refusals_each_get_their_own_headers(runtime: Runtime) -> None:
    # A plain refusal is rendered once per (status, challenge, code, detail): each answer still gets a list of
    # headers of its own (the route appends to it), and another realm gets its own challenge.
    service = runtime.forward_auth
    headers = {k.lower(): v for k, v in FWD.items()}
    one = {"config_token": token(runtime, [{"type": "app_token", "realm": "one"}])}
    two = {"config_token": token(runtime, [{"type": "app_token", "realm": "two"}])}
    first = await service.verify(one, headers)
    first.headers.append((b"content-type", b"application/json"))
    again, other = await service.verify(one, headers), await service.verify(two, headers)
    assert again.status == other.status == 401
    json_type = (b"content-type", b"application/json")
    assert again.headers == [(b"www-authenticate", b'Basic realm="one", charset="UTF-8"'), json_type]
    assert other.headers == [(b"www-authenticate", b'Basic realm="two", charset="UTF-8"'), json_type]
    assert again.error == {"error": "credentials_missing", "detail": "no app token given"}
    assert again.body is not None and json.loads(again.body) == again.error


async def test_refusal_headers_kept_encoded_stay_few_and_short(runtime: Runtime) -> None:
    # A forward plugin passes on its upstream's challenge, which may differ every time: memory stays bounded.
    from tokenward.forwardauth.plugins import Outcome
    from tokenward.forwardauth.request_info import reconstruct

    service, info = runtime.forward_auth, reconstruct({k.lower(): v for k, v in FWD.items()})
    for i in range(1000):
        challenge = f'Bearer realm="up", nonce="{i}"' + ("x" * 300 if i % 2 else "")
        decision = service._refuse({}, Outcome.failure(ErrorCode.UNAUTHORIZED, "no", challenge=challenge), info, 302)
        assert decision.headers[0] == (b"www-authenticate", challenge.encode())
        assert json.loads(decision.body or b'{"error": "unauthorized", "detail": "no"}') == decision.error
    assert 0 < len(service._plain_refusals) <= 256
    assert all(len(challenge or "") <= 256 for _, challenge, _, _ in service._plain_refusals)


async def test_revoked_token_is_refused(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from datetime import UTC, datetime

    from tokenward.storage.config_tokens import ConfigTokenRevocation, SqlConfigTokenRevocations

    t = token(runtime, [{"type": "noop"}], jti="gone")
    assert (await call(client, {"config_token": t})).status_code == 200
    await SqlConfigTokenRevocations(runtime.database).revoke(
        ConfigTokenRevocation(jti="gone", revoked_at=datetime.now(UTC), revoked_by="test")
    )
    # Written elsewhere (as `config-token revoke` does): honoured once the change feed reads it.
    await runtime.changes.poll()
    r = await call(client, {"config_token": t})
    assert r.status_code == 403 and r.json()["error"] == "config_token_revoked"


async def test_query_variants_pick_the_stored_token(
    client: httpx.AsyncClient, runtime: Runtime, token_file: Path
) -> None:
    token_file.write_text(json.dumps({"app.example.com": token(runtime, [{"type": "noop"}])}))
    params = {"config_token_store_id": "primary", "config_token_id_query": "$.parsedUri.host"}
    assert (await call(client, params)).status_code == 200
    params = {
        "config_token_store_id_query_engine": "template",
        "config_token_store_id_query": "{{ 'prim' ~ 'ary' }}",
        "config_token_id_query_engine": "template",
        "config_token_id_query": "{{ headers['x-forwarded-host'] }}",
    }
    assert (await call(client, params)).status_code == 200
    r = await call(client, {"config_token_store_id": "primary", "config_token_id_query": "$.parsedQuery.*"})
    assert r.json()["error"] == "query_ambiguous"
    r = await call(client, {"config_token_store_id": "primary", "config_token_id_query": "$.nothing"})
    assert r.json()["error"] == "query_no_value"
    r = await call(
        client,
        {
            "config_token_store_id": "primary",
            "config_token_id_query_engine": "js",
            "config_token_id_query": "process.exit()",
        },
    )
    assert r.json()["error"] == "query_engine_unknown"
    r = await call(
        client,
        {
            "config_token_store_id": "primary",
            "config_token_id_query_engine": "template",
            "config_token_id_query": "{{ ''.__class__.__mro__ }}",
        },
    )
    assert r.status_code == 400


async def test_plain_store_document(client: httpx.AsyncClient) -> None:
    r = await call(client, {"config_token_store_id": "plainenv", "config_token_id": "anon"})
    assert r.status_code == 200


async def test_plain_document_refused_without_allow_plain(client: httpx.AsyncClient, token_file: Path) -> None:
    token_file.write_text(json.dumps({"p": {"tokenward": {"plugins": [{"type": "noop"}]}}}))
    r = await call(client, {"config_token_store_id": "primary", "config_token_id": "p"})
    assert r.json()["error"] == "config_token_plain_refused"


async def test_htpasswd_hashes_and_cache(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from argon2 import PasswordHasher

    lines = "\n".join(
        [
            "bob:" + bcrypt.hashpw(b"pw-b", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$"),
            "apr:" + apr_md5_crypt.hash("pw-a"),
            "sha:{SHA}" + base64.b64encode(__import__("hashlib").sha1(b"pw-s").digest()).decode(),
            "arg:" + PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash("pw-g"),
        ]
    )
    t = token(runtime, [{"type": "htpasswd", "htpasswd": lines, "realm": "private"}])
    for user, pw in (("bob", "pw-b"), ("apr", "pw-a"), ("sha", "pw-s"), ("arg", "pw-g"), ("bob", "pw-b")):
        r = await call(client, {"config_token": t}, Authorization=basic(user, pw))
        assert r.status_code == 200, (user, r.text)
        assert r.headers["remote-user"] == user
    r = await call(client, {"config_token": t}, Authorization=basic("bob", "nope"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="private", charset="UTF-8"'
    r = await call(client, {"config_token": t}, Authorization="Basic %%%")
    assert r.status_code == 401 and r.json()["error"] == "authorization_malformed"


async def test_header_param_pcb_and_fallback(client: httpx.AsyncClient, runtime: Runtime) -> None:
    secret_rule = {"method": "eq", "value": "let-me-in-please"}
    t = token(
        runtime,
        [
            {"type": "request_header", "header": "X-Api-Key", "rule": secret_rule, "realm": "first"},
            {"type": "request_param", "param": "x", "rule": {"method": "in", "value": ["7", "8"]}},
            {
                "type": "noop",
                "pcb": {"skip": [{"query": "$.parsedUri.path", "rule": {"method": "regex", "value": "^/docs"}}]},
            },
        ],
    )
    assert (await call(client, {"config_token": t}, **{"X-Api-Key": "let-me-in-please"})).status_code == 200
    r = await call(client, {"config_token": t}, **{"X-Forwarded-Uri": "/docs?x=8"})
    assert r.status_code == 200
    r = await call(client, {"config_token": t})  # noop skipped on /docs: the last failure answers
    assert r.status_code == 401 and r.json()["error"] == "request_param_rejected"
    r = await call(client, {"config_token": t, "fallback_plugin": "0"})
    assert r.json()["error"] == "request_header_rejected"
    assert (await call(client, {"config_token": t}, **{"X-Forwarded-Uri": "/public"})).status_code == 200
    stop = token(
        runtime,
        [
            {
                "type": "request_param",
                "param": "x",
                "rule": {"method": "eq", "value": "9"},
                "pcb": {"stop": [{"query": "$.method", "rule": {"method": "eq", "value": "GET"}}]},
            },
            {"type": "noop"},
        ],
    )
    assert (await call(client, {"config_token": stop})).status_code == 401


async def test_custom_headers_and_crlf(client: httpx.AsyncClient, runtime: Runtime) -> None:
    t = token(
        runtime,
        [{"type": "request_param", "param": "x", "rule": {"method": "eq", "value": "1"}}],
        block={
            "custom_service_headers": {
                "X-Static": {"value": "hello"},
                "X-Host": {"source": "request", "value": "$.parsedUri.host", "encoding": "base64"},
                "X-Path": {"source": "request", "value": "$.parsedUri.path", "encoding": "url"},
                "X-Agent": {"source": "request", "value": "$.headers['x-agent']"},
            },
            "custom_error_headers": {"X-Why": {"value": "denied"}},
        },
    )
    r = await call(client, {"config_token": t}, **{"X-Agent": "ok"})
    assert r.status_code == 200
    assert r.headers["x-static"] == "hello" and base64.b64decode(r.headers["x-host"]) == b"app.example.com"
    assert r.headers["x-path"] == "%2Fdocs%2Fa"
    r = await call(client, {"config_token": t}, **{"X-Forwarded-Uri": "/"})
    assert r.status_code == 401 and r.headers["x-why"] == "denied"


async def test_jwt_plugin(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    key = "k" * 32
    t = token(
        runtime,
        [
            {
                "type": "jwt",
                "algorithms": ["HS256"],
                "secret": key,
                "issuer": "me",
                "assertions": [{"query": "$.userinfo.groups", "rule": {"method": "contains", "value": "ops"}}],
            }
        ],
        block={"custom_service_headers": {"X-Name": {"source": "userinfo", "value": "$.name"}}},
    )
    now = int(time.time())

    def make(**claims: Any) -> str:
        body = {"sub": "u1", "iss": "me", "exp": now + 60, "groups": ["ops", "dev"], "name": "Zoë", **claims}
        return jwt.encode({"alg": "HS256"}, body, OctKey.import_key(key.encode()))

    r = await call(client, {"config_token": t}, Authorization="Bearer " + make())
    assert r.status_code == 200 and r.headers["remote-user"] == "u1" and r.headers["remote-groups"] == "ops,dev"
    assert dict(r.headers.raw)[b"x-name"] == "Zoë".encode()  # UTF-8 on the wire, not a 500
    r = await call(client, {"config_token": t}, Authorization="Bearer " + make(exp=now - 100))
    assert r.status_code == 401 and "invalid_token" in r.headers["www-authenticate"]
    r = await call(client, {"config_token": t}, Authorization="Bearer " + make(iss="other"))
    assert r.status_code == 401
    r = await call(client, {"config_token": t}, Authorization="Bearer " + make(groups=["dev"]))
    assert r.status_code == 403 and r.json()["error"] == "assertion_failed"
    r = await call(client, {"config_token": t}, Authorization="Bearer " + make(name="a\nb"))
    assert r.status_code == 400 and r.json()["error"] == "header_value_invalid"


async def test_jwt_plugin_requires_exp_unless_told_not_to(client: httpx.AsyncClient, runtime: Runtime) -> None:
    """A JWT without ``exp`` never expires: refused by default (issue 15 #9), accepted with ``require_exp: false``."""
    from joserfc import jwt
    from joserfc.jwk import OctKey

    key = "k" * 32
    forever = jwt.encode({"alg": "HS256"}, {"sub": "u1"}, OctKey.import_key(key.encode()))
    strict = token(runtime, [{"type": "jwt", "algorithms": ["HS256"], "secret": key}])
    r = await call(client, {"config_token": strict}, Authorization="Bearer " + forever)
    assert r.status_code == 401 and r.json()["error"] == "jwt_exp_missing", r.text
    assert "invalid_token" in r.headers["www-authenticate"] and "require_exp" in r.json()["detail"]
    lax = token(runtime, [{"type": "jwt", "algorithms": ["HS256"], "secret": key, "require_exp": False}])
    r = await call(client, {"config_token": lax}, Authorization="Bearer " + forever)
    assert r.status_code == 200 and r.headers["remote-user"] == "u1"


async def test_forward_plugin_and_redirect_code(client: httpx.AsyncClient, runtime: Runtime) -> None:

    def upstream(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") == "ok":
            return httpx.Response(204, headers={"Remote-User": "fwd", "Remote-Groups": "a, b"})
        if request.headers.get("x-forwarded-uri") == "/login":
            return httpx.Response(302, headers={"Location": "https://login.example.com/"})
        return httpx.Response(403)

    runtime.forward_auth.deps.http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    t = token(runtime, [{"type": "forward", "url": "http://auth.internal/check"}])
    r = await call(client, {"config_token": t}, Authorization="ok")
    assert r.status_code == 200 and r.headers["remote-user"] == "fwd" and r.headers["remote-groups"] == "a,b"
    r = await call(client, {"config_token": t, "redirect_http_code": "401"}, **{"X-Forwarded-Uri": "/login"})
    assert r.status_code == 401 and r.headers["location"] == "https://login.example.com/"
    r = await call(client, {"config_token": t})
    assert r.status_code == 403
    r = await call(client, {"config_token": t, "redirect_http_code": "200"})
    assert r.json()["error"] == "param_invalid"
    await runtime.forward_auth.deps.http.aclose()


async def test_policy_block(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from tokenward.policy.files import read_sources

    sources = dict(read_sources(runtime.settings.data_dir))
    sources["userpolicy.csv"] = (
        sources.get("userpolicy.csv", b"") + b"\np, alice@example.com, app.example.com, wiki, GET\n"
    )
    assert runtime.policy.apply(sources).error is None
    _, alice = await runtime.app_tokens.create(owner="alice@example.com", created_by="t")
    _, bob = await runtime.app_tokens.create(owner="bob@example.com", created_by="t")
    t = token(runtime, [{"type": "app_token"}], block={"policy": {"object": "wiki"}})
    r = await call(client, {"config_token": t}, Authorization=basic("alice@example.com", alice))
    assert r.status_code == 200, r.text
    r = await call(client, {"config_token": t}, Authorization=basic("bob@example.com", bob))
    assert r.status_code == 403 and r.json()["error"] == "policy_denied"
    r = await call(
        client, {"config_token": t}, Authorization=basic("alice@example.com", alice), **{"X-Forwarded-Method": "DELETE"}
    )
    assert r.status_code == 403


async def test_policy_block_decisions_reach_the_decision_log(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from tokenward.policy.decisionlog import DecisionLog
    from tokenward.policy.files import read_sources

    sources = dict(read_sources(runtime.settings.data_dir))
    sources["userpolicy.csv"] = (
        sources.get("userpolicy.csv", b"") + b"\np, alice@example.com, app.example.com, wiki, GET\n"
    )
    assert runtime.policy.apply(sources).error is None
    log = DecisionLog(hash_mode="off")
    runtime.policy.set_observer(log.observe)
    _, alice = await runtime.app_tokens.create(owner="alice@example.com", created_by="t")
    t = token(runtime, [{"type": "app_token"}], block={"policy": {"object": "wiki"}})
    assert (await call(client, {"config_token": t}, Authorization=basic("alice@example.com", alice))).status_code == 200
    headers = {"Authorization": basic("alice@example.com", alice), "X-Forwarded-Method": "DELETE"}
    assert (await call(client, {"config_token": t}, **headers)).status_code == 403
    seen = [(r.file, r.sub, r.dom, r.obj, r.act, r.decision) for r in log.records()]
    assert seen == [
        ("userpolicy.csv", "alice@example.com", "app.example.com", "wiki", "GET", "allow"),
        ("userpolicy.csv", "alice@example.com", "app.example.com", "wiki", "DELETE", "deny"),
    ]
    assert log.records()[0].row.endswith("p, alice@example.com, app.example.com, wiki, GET")


async def test_path_bound_form_ignores_the_query_string(
    client: httpx.AsyncClient, runtime: Runtime, token_file: Path
) -> None:
    token_file.write_text(
        json.dumps(
            {"site": token(runtime, [{"type": "request_param", "param": "k", "rule": {"method": "eq", "value": "v"}}])}
        )
    )
    noop = token(runtime, [{"type": "noop"}])
    r = await client.get(
        f"/verify/s/primary/site/some/path?config_token={noop}", headers={**FWD, "X-Forwarded-Uri": "/"}
    )
    assert r.status_code == 401  # the client's config_token is not used
    r = await client.get("/verify/s/primary/site", headers={**FWD, "X-Forwarded-Uri": "/?k=v"})
    assert r.status_code == 200


async def test_source_identifier_plugin(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from tokenward.errors import Unauthorized

    async def sessions(value: str) -> tuple[str, tuple[str, ...]]:
        if value != "good-session":
            raise Unauthorized("this session was ended; log in again", code=ErrorCode.SESSION_REVOKED)
        return "carol@example.com", ("read",)

    runtime.forward_auth.deps.sessions = sessions
    t = token(runtime, [{"type": "source_identifier", "realm": "s"}])
    r = await call(client, {"config_token": t}, Authorization="Bearer good-session")
    assert r.status_code == 200 and r.headers["remote-user"] == "carol@example.com"
    r = await call(client, {"config_token": t}, Authorization="Bearer ended")
    assert r.status_code == 401 and r.json()["error"] == "session_revoked"
    assert r.headers["www-authenticate"] == 'Bearer realm="s"'


# What Chromium sends on a navigation (Firefox and Safari send text/html first too).
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)
LOGIN_PLUGIN = {
    "type": "source_identifier",
    "realm": "s",
    "cookie": "tokenward_session",
    "login_url": "https://auth.example.com/login",
}
LOGIN_RD = "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fdocs%2Fa%3Fx%3D1%26y%3D2"


def with_sessions(runtime: Runtime) -> None:
    """Sessions where only ``good-session`` is valid (``session_revoked`` otherwise)."""
    from tokenward.errors import Unauthorized

    async def sessions(value: str) -> tuple[str, tuple[str, ...]]:
        if value != "good-session":
            raise Unauthorized("this session was ended; log in again", code=ErrorCode.SESSION_REVOKED)
        return "carol@example.com", ()

    runtime.forward_auth.deps.sessions = sessions


async def call_without_accept(client: httpx.AsyncClient, params: dict[str, str], **headers: str) -> httpx.Response:
    request = client.build_request("GET", "/verify", params=params, headers={**FWD, **headers})
    del request.headers["accept"]  # httpx adds */* by default
    return await client.send(request)


async def test_source_identifier_login_url_redirects_a_browser_with_the_original_url(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    from tokenward.errors import BadRequest

    with_sessions(runtime)
    t = token(runtime, [LOGIN_PLUGIN])
    for headers in ({}, {"Cookie": "tokenward_session=ended"}):
        r = await call(client, {"config_token": t}, Accept=BROWSER_ACCEPT, **headers)
        assert r.status_code == 302 and r.headers["location"] == LOGIN_RD
        r = await call(client, {"config_token": t, "redirect_http_code": "401"}, Accept=BROWSER_ACCEPT, **headers)
        assert r.status_code == 401 and r.headers["location"] == LOGIN_RD
        assert r.headers["www-authenticate"] == 'Bearer realm="s"'
    r = await call(client, {"config_token": t}, Accept="text/html", Cookie="tokenward_session=good-session")
    assert r.status_code == 200 and "location" not in r.headers
    t = token(runtime, [{**LOGIN_PLUGIN, "login_url": "https://auth.example.com/login?lang=en"}])
    r = await call(client, {"config_token": t}, Accept=BROWSER_ACCEPT)
    assert r.headers["location"] == LOGIN_RD.replace("login?", "login?lang=en&")
    with pytest.raises(BadRequest, match="login_url"):
        token(runtime, [{**LOGIN_PLUGIN, "login_url": "javascript:alert(1)"}])


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/json, text/plain, */*", None])
async def test_source_identifier_login_url_answers_other_clients_401(
    client: httpx.AsyncClient, runtime: Runtime, accept: str | None
) -> None:
    """JSON, ``*/*`` (curl, fetch) and no Accept at all (Go, urllib): a 401 the program can act on."""
    with_sessions(runtime)
    t = token(runtime, [LOGIN_PLUGIN])
    for params in ({"config_token": t}, {"config_token": t, "redirect_http_code": "302"}):
        for headers, code in (({}, "credentials_missing"), ({"Cookie": "tokenward_session=ended"}, "session_revoked")):
            if accept is None:
                r = await call_without_accept(client, params, **headers)
            else:
                r = await call(client, params, Accept=accept, **headers)
            assert r.status_code == 401 and "location" not in r.headers
            assert r.headers["www-authenticate"] == 'Bearer realm="s"'
            assert r.headers["content-type"] == "application/json"
            assert r.json()["error"] == code
    r = await call(client, {"config_token": t}, Accept="application/json", Cookie="tokenward_session=good-session")
    assert r.status_code == 200


async def test_source_identifier_login_redirect_always_redirects_every_client(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    with_sessions(runtime)
    t = token(runtime, [{**LOGIN_PLUGIN, "login_redirect": "always"}])
    for accept in ("application/json", "*/*", BROWSER_ACCEPT):
        r = await call(client, {"config_token": t}, Accept=accept)
        assert r.status_code == 302 and r.headers["location"] == LOGIN_RD
    r = await call_without_accept(client, {"config_token": t}, Cookie="tokenward_session=ended")
    assert r.status_code == 302 and r.headers["location"] == LOGIN_RD
    r = await call(client, {"config_token": t}, Accept="application/json", Cookie="tokenward_session=good-session")
    assert r.status_code == 200 and "location" not in r.headers
    t = token(runtime, [{**LOGIN_PLUGIN, "login_redirect": "browsers"}])
    r = await call(client, {"config_token": t}, Accept="application/json")
    assert r.status_code == 401 and r.json()["error"] == "credentials_missing"


def test_login_redirect_is_refused_without_login_url_or_with_an_unknown_value(runtime: Runtime) -> None:
    from tokenward.errors import BadRequest

    with pytest.raises(
        BadRequest, match=r"field tokenward\.plugins\.0\.source_identifier: login_redirect needs login_url"
    ):
        token(runtime, [{"type": "source_identifier", "login_redirect": "browsers"}])
    with pytest.raises(
        BadRequest, match=r"field tokenward\.plugins\.0\.source_identifier\.login_redirect: Input should"
    ):
        token(runtime, [{**LOGIN_PLUGIN, "login_redirect": "Always"}])


async def test_jwt_public_key_and_jwks(client: httpx.AsyncClient, runtime: Runtime) -> None:
    from joserfc import jwt
    from joserfc.jwk import ECKey, KeySet

    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    pem = key.as_pem(private=False).decode()
    claims = {"sub": "svc", "exp": int(time.time()) + 60}
    signed = jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)
    by_pem = token(runtime, [{"type": "jwt", "algorithms": ["ES256"], "public_key": pem}])
    r = await call(client, {"config_token": by_pem}, Authorization="Bearer " + signed)
    assert r.status_code == 200 and r.headers["remote-user"] == "svc"
    fetched = []

    def jwks(request: httpx.Request) -> httpx.Response:
        fetched.append(1)
        return httpx.Response(200, json=KeySet([key]).as_dict(private=False))

    runtime.forward_auth.deps.http = httpx.AsyncClient(transport=httpx.MockTransport(jwks))
    by_url = token(runtime, [{"type": "jwt", "algorithms": ["ES256"], "jwks_url": "https://idp.example.com/jwks"}])
    for _ in range(3):
        r = await call(client, {"config_token": by_url}, Authorization="Bearer " + signed)
        assert r.status_code == 200
    assert len(fetched) == 1  # cached
    from joserfc.jwk import OctKey

    hs = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(b"x" * 32))
    r = await call(client, {"config_token": by_pem}, Authorization="Bearer " + hs)
    assert r.status_code == 401  # only the listed algorithms
    await runtime.forward_auth.deps.http.aclose()


# -- the hot path (web.middleware.HotPath): what RequestContext gives every other route ------------


async def test_hot_path_keeps_request_id_and_metrics(client: httpx.AsyncClient, runtime: Runtime) -> None:
    noop = token(runtime, [{"type": "noop"}])
    r = await call(client, {"config_token": noop}, **{"X-Request-ID": "proxy-7"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "proxy-7"
    r = await call(client, {"config_token": noop})
    assert r.status_code == 200 and "x-request-id" not in r.headers  # a 200 only echoes the proxy's id
    r = await call(client, {"config_token": "garbage"})
    assert r.status_code == 400 and len(r.headers["x-request-id"]) == 24
    r = await client.get("/verify/s/nowhere/x", headers=FWD)  # the path-bound form goes the same way
    assert r.status_code == 400 and r.json()["error"] == "config_token_store_unknown" and "x-request-id" in r.headers
    text = (await client.get("/metrics")).text
    assert 'tokenward_http_requests_total{method="GET",route="/verify",status="200"} 2.0' in text
    assert 'tokenward_http_requests_total{method="GET",route="/verify",status="400"} 1.0' in text
    assert 'route="/verify/s/{store_id}/{token_id}",status="400"} 1.0' in text


async def test_hot_path_unexpected_error_is_a_json_500_naming_the_request(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret-ish internals")

    monkeypatch.setattr(runtime.forward_auth, "verify", broken)
    r = await call(client, {"config_token": token(runtime, [{"type": "noop"}])}, **{"X-Request-ID": "req-500"})
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error" and "req-500" in r.json()["detail"]
    assert "secret-ish" not in r.text and r.headers["x-request-id"] == "req-500"
    assert any("unhandled error on GET /verify" in m for m in caplog.messages)


async def test_hot_path_leaves_other_methods_and_paths_to_the_router(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    r = await client.request("TRACE", "/verify", headers=FWD)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    r = await client.get("/verifyx", headers=FWD)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_repeated_headers_are_joined(client: httpx.AsyncClient, runtime: Runtime) -> None:
    spec = {"X-Seen": {"source": "request", "value": "$.headers.x-custom"}}
    tok = token(runtime, [{"type": "noop"}], block={"custom_service_headers": spec})
    headers = [*FWD.items(), ("X-Custom", "a"), ("X-Custom", "b")]
    r = await client.get("/verify", params={"config_token": tok}, headers=headers)
    assert r.status_code == 200 and r.headers["x-seen"] == "a, b"
    r = await client.get("/verify", params={"config_token": tok}, headers=[*FWD.items(), ("X-Custom", "x" * 70_000)])
    assert r.status_code == 400 and r.json()["error"] == "headers_too_large"


async def test_revocations_are_read_at_start_not_by_the_first_request(
    client: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # open_runtime read the revocation list; later refreshes run in the background, so even a
    # database that hangs from now on does not hold up /verify.
    release = asyncio.Event()

    async def hanging(self: object) -> frozenset[str]:
        await release.wait()
        return frozenset()

    from tokenward.storage.config_tokens import SqlConfigTokenRevocations

    monkeypatch.setattr(SqlConfigTokenRevocations, "revoked_ids", hanging)
    try:
        r = await asyncio.wait_for(call(client, {"config_token": token(runtime, [{"type": "noop"}])}), timeout=5)
        assert r.status_code == 200
    finally:
        release.set()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("tokenward_session=abc", "abc"),
        ("a=1; tokenward_session=abc; b=2", "abc"),
        ("a=1;tokenward_session=abc;b=2", "abc"),
        ('tokenward_session="abc"', "abc"),
        ("tokenward_session=first; tokenward_session=second", "first"),  # the most specific path comes first
        ("xtokenward_session=no; tokenward_session_old=no", None),  # names match exactly, not as substrings
        ('odd="unterminated; tokenward_session=abc', "abc"),  # another site's odd cookie does not hide ours
        ("tokenward_session", None),
        ("tokenward_session=", ""),
        ("", None),
    ],
)
def test_cookie_value(header: str, expected: str | None) -> None:
    from tokenward.forwardauth.plugins.source_identifier import cookie_value

    assert cookie_value(header, "tokenward_session") == expected


async def test_a_stale_change_feed_refuses_sessions_and_config_tokens_with_503(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Fail closed: memory may miss a logout or a config-token revocation made on another instance.
    import secrets

    from tokenward.identity.encoding import b64u_encode

    issued = await runtime.sessions.issue(
        kind="user",
        subject="carol@example.com",
        client_id="A" * 40,
        app_hash="",
        scopes=(),
        session_key=b64u_encode(secrets.token_bytes(32)),
        now=time.time(),
    )
    cookie = f"tokenward_session={issued.source_identifier}"
    with_cookie = token(runtime, [{"type": "source_identifier", "cookie": "tokenward_session"}])
    assert (await call(client, {"config_token": with_cookie}, Cookie=cookie)).status_code == 200
    noop = token(runtime, [{"type": "noop"}], jti="kept")
    assert (await call(client, {"config_token": noop})).status_code == 200

    await runtime.changes.stop()  # no read from now on
    later = runtime.changes.monotonic() + runtime.settings.changes_max_lag_seconds + 1
    runtime.changes.monotonic = lambda: later
    for params, headers in (({"config_token": noop}, {}), ({"config_token": with_cookie}, {"Cookie": cookie})):
        r = await call(client, params, **headers)
        assert r.status_code == 503 and r.json()["error"] == "changes_stale", r.text
    # The API too: the same session, held in memory since the /verify above.
    r = await client.get(
        "/api/poke",
        params={"subject": "carol@example.com"},
        headers={"Authorization": f"Bearer {issued.source_identifier}"},
    )
    assert r.status_code == 503 and r.json()["error"] == "changes_stale", r.text


def test_refusal_bodies_are_rendered_once_and_stay_bounded() -> None:
    """A flood of refusals reuses the few rendered bodies; distinct sentences cannot grow that memory, and a
    body with extra fields is rendered as it is, not from a cached one."""
    from tokenward.forwardauth.service import Decision
    from tokenward.web.routes import verify as route

    first = route._render(Decision(401, [], {"error": "apptoken_invalid", "detail": "invalid"}))
    again = route._render(Decision(401, [], {"error": "apptoken_invalid", "detail": "invalid"}))
    assert first[2] is again[2] and json.loads(first[2]) == {"error": "apptoken_invalid", "detail": "invalid"}
    assert (b"content-type", b"application/json") in again[1]
    extra = route._render(Decision(400, [], {"error": "x", "detail": "y", "fields": ["a"]}))  # type: ignore[dict-item]
    assert json.loads(extra[2]) == {"error": "x", "detail": "y", "fields": ["a"]}
    for i in range(route._BODIES_MAX * 2):
        body = route._render(Decision(401, [], {"error": "e", "detail": f"sentence {i}"}))[2]
        assert json.loads(body)["detail"] == f"sentence {i}"
        assert len(route._BODIES) <= route._BODIES_MAX
