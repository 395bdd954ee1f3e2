"""System login over HTTP: a host logs in with its resource key, asks captchas, checks codes (docs/system-login.md).

Through the ASGI app on a real runtime (SQLite, the data dir's policy files): the PAM conversation
(host-made captcha + captcha id), the password-prompt flow (user-made captcha, no id), wrong and
replayed codes, policy refusals, regulation, the audit trail and the bad inputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner

from tests.helpers import enrol, resource_login_body
from tests.identity.helpers import SERVER, Instance, captcha_login, prepare_data_dir
from tokenward.cli.main import app as cli
from tokenward.identity.captcha import ALPHABET, open_captcha
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.encoding import b64u_encode
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage.audit import SqlAuditLog
from tokenward.web.app import create_app

HOST = "host1.example.com"
OTHER_HOST = "host2.example.com"


@dataclass
class World:
    http: httpx.AsyncClient
    runtime: Runtime
    data: Path
    client_id: str
    host_token: str
    alice: X25519PrivateKey

    async def post(self, path: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(path, json=body, headers=headers)

    async def host_post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.post(path, body, self.host_token)


def _policies(data: Path, client_id: str) -> None:
    (data / "resourcepolicy.csv").write_text(
        f"p, {HOST}, {SERVER}, {client_id}, login\n"
        f"p, {OTHER_HOST}, {SERVER}, {client_id}, login\n"
        f"p, *@example.com, {HOST}, {SERVER}, systemlogin\n"
        f"p, carol@example.com, {HOST}, {SERVER}, deny\n"
    )


async def host_login(http: httpx.AsyncClient, data: Path, client_id: str, host: str) -> str:
    """Register ``host`` as a resource and log it in with its Ed25519 key: its source identifier."""
    signing = Ed25519PrivateKey.generate()
    (data.parent / f"{host}.pub").write_text(b64u_encode(signing.public_key().public_bytes_raw()))
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["-d", str(data), "resource", "register", host, "--public-key", str(data.parent / f"{host}.pub")],
    )
    assert result.exit_code == 0, result.output
    r = await http.post("/api/resource/challenge", json={"resource": host, "client_id": client_id})
    assert r.status_code == 200, r.text
    ch = r.json()
    session = b64u_of_public(X25519PrivateKey.generate())
    body = resource_login_body(ch, signing, client_id=client_id, session_key=session, server=SERVER)
    r = await http.post("/api/resource/login", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["source_identifier"])


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    _policies(data, client_id)
    settings = Settings.load(data_dir=data, captcha_max_failures=4)
    runtime = await open_runtime(settings)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, runtime=runtime)), base_url="http://t"
    )
    try:
        alice = await enrol(http, data, "alice@example.com")
        token = await host_login(http, data, client_id, HOST)
        yield World(http, runtime, data, client_id, token, alice)
    finally:
        await http.aclose()
        await runtime.close()


def _wrong(code: str) -> str:
    """A well-formed code that differs from ``code``."""
    return "".join(ALPHABET[(ALPHABET.index(c) + 1) % len(ALPHABET)] for c in code)


async def test_pam_conversation_flow_grants_once_and_is_audited(world: World) -> None:
    r = await world.host_post("/api/system-login/captcha", {"user": "Alice@Example.com", "remote": "192.0.2.7"})
    assert r.status_code == 200, r.text
    issued = r.json()
    plain = open_captcha(issued["captcha"], world.alice)
    # The authenticator shows which host asked: a captcha for another host is recognisable.
    assert (plain.subject, plain.origin, plain.client_name) == ("alice@example.com", HOST, f"system login on {HOST}")
    body = {
        "user": "alice@example.com",
        "code": plain.code.lower(),
        "captcha_id": issued["captcha_id"],
        "remote": "192.0.2.7",
    }
    r = await world.host_post("/api/system-login/verify", body)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "allowed", "user": "alice@example.com", "host": HOST}
    replay = await world.host_post("/api/system-login/verify", body)
    assert replay.status_code == 409 and replay.json()["error"] == "captcha_used"
    events = await SqlAuditLog(world.runtime.database).list(actor=HOST)
    actions = [(e.action, e.subject, e.detail.get("host")) for e in reversed(events)]
    assert ("systemlogin.captcha_issued", "alice@example.com", HOST) in actions
    assert ("systemlogin.granted", "alice@example.com", HOST) in actions
    granted = next(e for e in events if e.action == "systemlogin.granted")
    assert granted.detail["remote"] == "192.0.2.7"
    assert plain.code not in str([e.detail for e in events])


async def test_password_prompt_flow_user_made_captcha_without_id(world: World) -> None:
    r = await world.post("/api/system-login/user-captcha", {"email": "alice@example.com", "host": HOST})
    assert r.status_code == 200, r.text
    code = open_captcha(r.json()["captcha"], world.alice).code
    body = {"user": "alice@example.com", "code": f" {code[:2]}-{code[2:]} "}
    r = await world.host_post("/api/system-login/verify", body)
    assert r.status_code == 200, r.text
    replay = await world.host_post("/api/system-login/verify", body)
    assert replay.status_code == 401 and replay.json()["error"] == "system_login_no_captcha"


async def test_a_typed_code_is_tried_against_the_five_newest_outstanding_captchas(world: World) -> None:
    codes = []
    for _ in range(6):
        r = await world.post("/api/system-login/user-captcha", {"email": "alice@example.com", "host": HOST})
        assert r.status_code == 200, r.text
        codes.append(open_captcha(r.json()["captcha"], world.alice).code)
    alice = {"user": "alice@example.com"}
    # Six outstanding: the oldest is not among the five a code is tried against.
    r = await world.host_post("/api/system-login/verify", {**alice, "code": codes[0]})
    assert r.status_code == 401 and r.json()["error"] == "system_login_wrong_code"
    # Each code is accepted once, whichever of the five newest it belongs to.
    for code in (codes[3], codes[5]):
        r = await world.host_post("/api/system-login/verify", {**alice, "code": code})
        assert r.status_code == 200, r.text
    # Two consumed: the oldest is among the five newest outstanding again.
    r = await world.host_post("/api/system-login/verify", {**alice, "code": codes[0]})
    assert r.status_code == 200, r.text


async def test_wrong_code_is_refused_then_the_right_one_still_works(world: World) -> None:
    r = await world.post("/api/system-login/user-captcha", {"email": "alice@example.com", "host": HOST})
    code = open_captcha(r.json()["captcha"], world.alice).code
    wrong = await world.host_post("/api/system-login/verify", {"user": "alice@example.com", "code": _wrong(code)})
    assert wrong.status_code == 401 and wrong.json()["error"] == "system_login_wrong_code"
    assert code not in wrong.text
    empty = await world.host_post("/api/system-login/verify", {"user": "alice@example.com", "code": ""})
    assert empty.status_code == 401 and empty.json()["error"] == "system_login_wrong_code"
    ok = await world.host_post("/api/system-login/verify", {"user": "alice@example.com", "code": code})
    assert ok.status_code == 200, ok.text


async def test_a_code_made_for_another_host_is_refused(world: World) -> None:
    other = await host_login(world.http, world.data, world.client_id, OTHER_HOST)
    (world.data / "resourcepolicy.csv").write_text(
        (world.data / "resourcepolicy.csv").read_text() + f"p, alice@example.com, {OTHER_HOST}, {SERVER}, systemlogin\n"
    )
    world.runtime.policy.load()
    r = await world.post("/api/system-login/user-captcha", {"email": "alice@example.com", "host": OTHER_HOST})
    code = open_captcha(r.json()["captcha"], world.alice).code
    r = await world.host_post("/api/system-login/verify", {"user": "alice@example.com", "code": code})
    assert r.status_code == 401 and r.json()["error"] == "system_login_no_captcha"
    r = await world.post("/api/system-login/verify", {"user": "alice@example.com", "code": code}, other)
    assert r.status_code == 200, r.text


async def test_users_outside_the_policy_are_refused(world: World) -> None:
    await enrol(world.http, world.data, "carol@example.com")
    for user, expected in (
        ("carol@example.com", "denied by resourcepolicy.csv:4"),
        ("bob@other.org", "no systemlogin row"),
    ):
        r = await world.host_post("/api/system-login/captcha", {"user": user})
        assert r.status_code == 403 and r.json()["error"] == "system_login_denied", r.text
        assert expected in r.json()["detail"]
        r = await world.host_post("/api/system-login/verify", {"user": user, "code": "AAAAA"})
        assert r.status_code == 403 and r.json()["error"] == "system_login_denied"
    events = await SqlAuditLog(world.runtime.database).list(action="systemlogin.denied")
    assert {e.subject for e in events} == {"carol@example.com", "bob@other.org"}


async def test_wrong_codes_are_regulated_per_user(world: World) -> None:
    errors = []
    for _ in range(5):
        r = await world.host_post("/api/system-login/verify", {"user": "alice@example.com", "code": "AAAAA"})
        errors.append(r.json()["error"])
    assert errors[:4] == ["system_login_no_captcha"] * 4
    assert errors[4] == "too_many_attempts"
    # The ban covers new captchas too: else each fresh captcha would reset the guessing budget.
    r = await world.host_post("/api/system-login/captcha", {"user": "alice@example.com"})
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    assert "retry-after" in r.headers


async def test_wrong_codes_from_one_remote_do_not_lock_the_user_out_from_another(world: World) -> None:
    """docs/regulation.md: the remote address is banned, not the user."""
    for _ in range(5):
        body = {"user": "alice@example.com", "code": "AAAAA", "remote": "203.0.113.66"}
        r = await world.host_post("/api/system-login/verify", body)
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    r = await world.host_post("/api/system-login/captcha", {"user": "alice@example.com", "remote": "192.0.2.7"})
    assert r.status_code == 200, r.text


async def test_only_a_host_session_may_ask(world: World) -> None:
    r = await world.post("/api/system-login/captcha", {"user": "alice@example.com"})
    assert r.status_code == 401 and r.json()["error"] == "source_identifier_missing"
    r = await world.post("/api/system-login/verify", {"user": "alice@example.com", "code": "AAAAA"}, "tw1si.x.y")
    assert r.status_code == 401 and r.json()["error"] == "source_identifier_malformed"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/system-login/captcha", {"user": "not-an-address"}, 400, "email_invalid"),
        ("/api/system-login/captcha", {"user": "dave@example.com"}, 404, "not_enrolled"),
        ("/api/system-login/captcha", {"user": "alice@example.com", "extra": 1}, 422, "invalid_request"),
        ("/api/system-login/verify", {"user": "alice@example.com"}, 422, "invalid_request"),
        ("/api/system-login/verify", {"user": "alice@example.com", "code": "x" * 65}, 422, "invalid_request"),
        ("/api/system-login/verify", {"user": "alice@example.com", "code": "AAAAA", "captcha_id": "A" * 22}, 404,
         "captcha_unknown"),
    ],
)  # fmt: skip
async def test_bad_host_requests(world: World, path: str, body: dict[str, Any], status: int, code: str) -> None:
    r = await world.host_post(path, body)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert r.json()["detail"]


async def test_user_captcha_bad_inputs(world: World) -> None:
    r = await world.post("/api/system-login/user-captcha", {"email": "alice@example.com", "host": "nope.example.com"})
    assert r.status_code == 404 and r.json()["error"] == "resource_unknown"
    r = await world.post("/api/system-login/user-captcha", {"email": "alice@example.com"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    r = await world.post("/api/system-login/user-captcha", {"email": "x", "host": HOST})
    assert r.status_code == 400 and r.json()["error"] == "email_invalid"


async def test_a_user_session_is_not_a_host(world: World) -> None:
    user_token, _ = await captcha_login(
        Instance(world.http), Instance(world.http), world.client_id, "alice@example.com", world.alice
    )
    r = await world.post("/api/system-login/captcha", {"user": "alice@example.com"}, user_token)
    assert r.status_code == 403 and r.json()["error"] == "host_session_required"


async def test_another_users_captcha_id_is_unknown(world: World) -> None:
    r = await world.host_post("/api/system-login/captcha", {"user": "alice@example.com"})
    await enrol(world.http, world.data, "bob@example.com")
    body = {"user": "bob@example.com", "code": "AAAAA", "captcha_id": r.json()["captcha_id"]}
    r = await world.host_post("/api/system-login/verify", body)
    assert r.status_code == 404 and r.json()["error"] == "captcha_unknown"
