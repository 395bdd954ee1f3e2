"""Admins issue enrolment codes over HTTP (``POST /api/enroll/codes``); a user enrols with one."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.identity.helpers import SERVER, Instance, prepare_data_dir
from tests.identity.test_management import _session
from tokenward.apptokens import MANAGE_SCOPE
from tokenward.identity.client_tokens import b64u_of_public
from tokenward.identity.service import ENROLLMENT_CODE_TTL
from tokenward.runtime import Runtime, open_runtime
from tokenward.settings import Settings
from tokenward.storage.audit import SqlAuditLog
from tokenward.storage.identity import SqlIdentityStore
from tokenward.web.app import create_app

ADMIN, BOB = "root@example.com", "bob@example.com"
PATH = "/api/enroll/codes"


@dataclass
class Node:
    http: httpx.AsyncClient
    runtime: Runtime
    client_id: str
    data: Path

    async def basic(self, owner: str, scopes: list[str]) -> dict[str, str]:
        """Basic credentials for a fresh app token of ``owner``."""
        _, token = await self.runtime.app_tokens.create(owner=owner, created_by=owner, scopes=scopes)
        return {"authorization": "Basic " + base64.b64encode(f"{owner}:{token}".encode()).decode()}


@pytest.fixture
async def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    data = tmp_path / "data"
    client_id = prepare_data_dir(data, monkeypatch)
    with (data / "clientscopespolicy.csv").open("a") as f:
        f.write(f"p, alice@example.com, *, {client_id}, TOKENWARD_MANAGE\n")
    with (data / "userpolicy.csv").open("a") as f:
        f.write(f"p, {ADMIN}, {SERVER}, TOKENWARD, admin\n")
    settings = Settings.load(data_dir=data)
    runtime = await open_runtime(settings)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, runtime=runtime)), base_url="http://a"
    )
    try:
        yield Node(http, runtime, client_id, data)
    finally:
        await http.aclose()
        await runtime.close()


async def test_admin_issues_a_code_and_the_user_enrols_with_it(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    headers = await node.basic(ADMIN, [MANAGE_SCOPE])
    before = time.time()
    r = await node.http.post(PATH, json={"email": " Dave@Example.com "}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"email", "code", "expires_at"} and body["email"] == "dave@example.com"
    code = body["code"]
    assert len(code) == 35 and code.count("-") == 3
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.tzinfo is not None and expires.utcoffset() == UTC.utcoffset(None)
    assert before + ENROLLMENT_CODE_TTL - 1 <= expires.timestamp() <= time.time() + ENROLLMENT_CODE_TTL

    key = X25519PrivateKey.generate()
    enrol = {"email": "dave@example.com", "code": code, "public_key": b64u_of_public(key)}
    r = await node.http.post("/api/enroll", json=enrol)
    assert r.status_code == 200 and r.json()["status"] == "enrolled", r.text
    r = await node.http.post("/api/enroll", json=enrol)
    assert r.status_code == 401 and r.json()["error"] == "enrollment_code_invalid"  # single use

    enrollment = await SqlIdentityStore(node.runtime.database).get_enrollment("dave@example.com")
    assert enrollment is not None and enrollment.method == "admin-code"
    audit = SqlAuditLog(node.runtime.database)
    [issued] = await audit.list(action="enrollment.code_issued")
    assert (issued.actor, issued.subject, issued.detail) == (ADMIN, "dave@example.com", {"method": "admin-code"})
    assert code not in str(issued)

    # The access log saw the request, but no record (message or arguments) holds the code.
    assert any(PATH in record.getMessage() for record in caplog.records)
    assert code not in caplog.text
    assert all(code not in repr(record.__dict__) for record in caplog.records)


async def test_an_admin_session_may_issue_codes(node: Node) -> None:
    instance = Instance(node.http)
    root = await _session(instance, node.data, node.client_id, ADMIN, [])  # an admin by policy
    r = await node.http.post(PATH, json={"email": "erin@example.com"}, headers={"authorization": f"Bearer {root}"})
    assert r.status_code == 201, r.text
    [issued] = await SqlAuditLog(node.runtime.database).list(action="enrollment.code_issued", actor=ADMIN)
    assert issued.subject == "erin@example.com"


async def test_non_admins_are_refused(node: Node) -> None:
    # Management scope, but no admin row in the policy.
    r = await node.http.post(PATH, json={"email": "erin@example.com"}, headers=await node.basic(BOB, [MANAGE_SCOPE]))
    assert r.status_code == 403 and r.json()["error"] == "not_admin"
    # An admin's token without the management scope.
    r = await node.http.post(PATH, json={"email": "erin@example.com"}, headers=await node.basic(ADMIN, []))
    assert r.status_code == 403 and r.json()["error"] == "scope_missing"
    # A session holding TOKENWARD_MANAGE is a manager, not an admin.
    alice = await _session(Instance(node.http), node.data, node.client_id, "alice@example.com", ["TOKENWARD_MANAGE"])
    r = await node.http.post(PATH, json={"email": "erin@example.com"}, headers={"authorization": f"Bearer {alice}"})
    assert r.status_code == 403 and r.json()["error"] == "not_admin"
    assert await SqlAuditLog(node.runtime.database).list(action="enrollment.code_issued", actor=BOB) == []
    [own] = await SqlAuditLog(node.runtime.database).list(action="enrollment.code_issued")
    assert own.subject == "alice@example.com" and own.actor == "cli"  # only _session's own CLI enrolment


async def test_no_credential_is_challenged(node: Node) -> None:
    r = await node.http.post(PATH, json={"email": "erin@example.com"})
    assert r.status_code == 401 and r.json()["error"] == "authentication_required"
    assert r.headers["www-authenticate"].startswith("Basic ")
    r = await node.http.post(PATH, json={"email": "erin@example.com"}, headers={"authorization": "Basic !!"})
    assert r.status_code == 401 and r.json()["error"] == "authorization_malformed" and "www-authenticate" in r.headers


@pytest.mark.parametrize(
    ("body", "params", "status", "code", "field"),
    [
        ({"email": "not an address"}, {}, 400, "email_invalid", None),
        ({"email": "nobody-at-all"}, {}, 400, "email_invalid", None),
        ({"email": "erin@example.com", "ttl": 60}, {}, 422, "invalid_request", "ttl"),
        ({}, {}, 422, "invalid_request", "email"),
        ({"email": "x" * 300 + "@example.com"}, {}, 422, "invalid_request", "email"),
        ({"email": "erin@example.com"}, {"email": "erin@example.com"}, 400, "unknown_parameter", None),
    ],
)
async def test_bad_input(
    node: Node, body: dict[str, object], params: dict[str, str], status: int, code: str, field: str | None
) -> None:
    headers = await node.basic(ADMIN, [MANAGE_SCOPE])
    r = await node.http.post(PATH, json=body, params=params, headers=headers)
    assert r.status_code == status and r.json()["error"] == code, r.text
    if field is not None:
        assert [f["field"] for f in r.json()["fields"]] == [field]
    assert await SqlAuditLog(node.runtime.database).list(action="enrollment.code_issued") == []


async def test_openapi_describes_the_route(node: Node) -> None:
    spec = (await node.http.get("/openapi.json")).json()
    operation = spec["paths"][PATH]["post"]
    assert operation["summary"].startswith("Admin: issue a one-time enrolment code")
    assert "201" in operation["responses"]


async def test_the_enrolment_flow_builds_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `tokenward user enroll` builds: the enrolment flow, none of the other identity flows."""
    data = tmp_path / "data"
    prepare_data_dir(data, monkeypatch)
    runtime = await open_runtime(Settings.load(data_dir=data), listen=False, eager=False)
    try:
        code = await runtime.enrolment.issue_enrollment_code("Bob@Example.com", now=time.time(), actor="cli")
        assert len(code) == 35
        built = set(vars(runtime))
        assert "enrolment" in built
        assert not built & {"identity", "captcha_login", "resource_login", "sessions", "forward_auth", "oidc"}
        # Serving builds one facade over the same flows: one pair of captcha regulators for both.
        identity = runtime.identity
        assert identity.enrolment is runtime.enrolment and identity.captcha is runtime.captcha_login
        assert runtime.enrolment.failure_regulator is runtime.captcha_login.failure_regulator
        assert identity.resource.sessions is identity.sessions is runtime.sessions
    finally:
        await runtime.close()
