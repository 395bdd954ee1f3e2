"""The ``app_token`` plugin driven directly over a service on in-memory stores: its outcome follows the record
(a revocation or a replaced record answers at once, no outcome is kept), scopes, and the failure forms."""

from __future__ import annotations

from tests.apptokens.helpers import make_service, stores
from tests.helpers import basic_auth
from tokenward.apptokens import AppTokenService
from tokenward.forwardauth.plugins import VerifyRequest
from tokenward.forwardauth.plugins.app_token import AppTokenAuth
from tokenward.forwardauth.request_info import reconstruct
from tokenward.forwardauth.schema import AppTokenPlugin

ALICE = "alice@example.com"


def request(authorization: str | None) -> VerifyRequest:
    headers = {"x-original-url": "https://wiki.example.com/page", "x-original-method": "GET"}
    if authorization is not None:
        headers["authorization"] = authorization
    return VerifyRequest(headers, reconstruct(headers), None, None)


def plugin(service: AppTokenService | None, scopes: list[str] | None = None) -> AppTokenAuth:
    return AppTokenAuth(AppTokenPlugin(type="app_token", scopes=scopes or []), service)


async def test_a_good_token_gives_its_owner_and_id_and_a_revocation_answers_at_once() -> None:
    service = make_service()
    record, token = await service.create(owner=ALICE, created_by=ALICE)
    auth = plugin(service)
    first, warm = await auth.verify(request(basic_auth(ALICE, token))), await auth.verify(request(f"Bearer {token}"))
    for outcome in (first, warm):
        assert outcome.ok and outcome.user is not None
        assert (outcome.user.sub, outcome.user.email, dict(outcome.user.claims)) == (
            ALICE,
            ALICE,
            {"token_id": record.id},
        )
    assert first is not warm and first.user is not warm.user  # built per request: nothing kept to go stale
    await service.revoke(record.id, owner=ALICE, actor=ALICE)
    refused = await auth.verify(request(basic_auth(ALICE, token)))
    assert not refused.ok and refused.code == "apptoken_revoked" and refused.challenge is not None


async def test_a_revocation_from_another_instance_ends_the_outcome_when_the_feed_brings_it() -> None:
    shared = stores(None)
    a, b = make_service(shared=shared), make_service(shared=shared)
    await b.feed.start()
    record, token = await a.create(owner=ALICE, created_by=ALICE)
    auth = plugin(b)
    for _ in range(2):  # cold, then warm from b's memory
        assert (await auth.verify(request(basic_auth(ALICE, token)))).ok
    await a.revoke(record.id, owner=ALICE, actor=ALICE)
    await b.feed.poll()
    refused = await auth.verify(request(basic_auth(ALICE, token)))
    assert not refused.ok and refused.code == "apptoken_revoked"


async def test_an_owner_that_is_not_an_address_has_no_email() -> None:
    service = make_service()
    _, token = await service.create(owner="svc-backup", created_by=ALICE)
    outcome = await plugin(service).verify(request(f"Bearer {token}"))
    assert outcome.ok and outcome.user is not None and (outcome.user.sub, outcome.user.email) == ("svc-backup", "")


async def test_scopes_the_token_lacks_are_refused_with_403() -> None:
    service = make_service()
    _, token = await service.create(owner=ALICE, created_by=ALICE, scopes=["tokenward:manage"])
    ok = await plugin(service, ["tokenward:manage"]).verify(request(basic_auth(ALICE, token)))
    assert ok.ok
    lacking = await plugin(service, ["tokenward:manage", "wiki:write"]).verify(request(basic_auth(ALICE, token)))
    assert not lacking.ok and lacking.status == 403 and lacking.code == "scope_missing"
    assert "wiki:write" in lacking.detail


async def test_missing_or_foreign_credentials_and_no_service() -> None:
    service = make_service()
    _, token = await service.create(owner=ALICE, created_by=ALICE)
    for authorization in (None, "Bearer not-an-app-token"):
        missing = await plugin(service).verify(request(authorization))
        assert not missing.ok and missing.code == "credentials_missing" and missing.challenge is not None
    wrong = await plugin(service).verify(request(basic_auth("bob@example.com", token)))
    assert not wrong.ok and wrong.code == "apptoken_invalid" and wrong.status == 401
    away = await plugin(None).verify(request(basic_auth(ALICE, token)))
    assert not away.ok and away.status == 503 and away.code == "app_tokens_unavailable"
