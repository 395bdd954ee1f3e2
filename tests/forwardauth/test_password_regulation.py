"""Brute-force regulation of the ``htpasswd`` plugin (the ``ldap`` one shares it: test_ldap_plugin.py)."""

from __future__ import annotations

import base64
import hashlib

import httpx

from tests.forwardauth.test_verify import call, token
from tests.helpers import basic_auth as basic
from tokenward.apptokens.regulation import RegulationPolicy, Regulator
from tokenward.forwardauth.plugins import HtpasswdAuth, PluginDeps, VerifyRequest, build_plugin
from tokenward.forwardauth.request_info import reconstruct
from tokenward.forwardauth.schema import parse_document
from tokenward.runtime import Runtime
from tokenward.storage.regulation import InMemoryRegulationStore

SHA = "{SHA}" + base64.b64encode(hashlib.sha1(b"right-pw").digest()).decode()
DOC = {"tokenward": {"plugins": [{"type": "htpasswd", "htpasswd": f"alice:{SHA}\nbob:{SHA}"}]}}


def request(user: str, password: str, ip: str) -> VerifyRequest:
    headers = {
        "x-original-url": "https://wiki.example.com/page",
        "x-original-method": "GET",
        "authorization": basic(user, password),
    }
    return VerifyRequest(headers, reconstruct(headers), ip, None)


def plugin(clock: list[float], *, soft: int | None = None) -> HtpasswdAuth:
    regulator = Regulator(
        InMemoryRegulationStore(), RegulationPolicy(max_failures=3, find_time=60, ban_time=300, soft_max_failures=soft)
    )
    deps = PluginDeps(regulator=regulator, clock=lambda: clock[0], account_failure_delay=0.0)
    auth = build_plugin(parse_document(DOC).tokenward.plugins[0], deps)
    assert isinstance(auth, HtpasswdAuth)
    return auth


async def test_wrong_passwords_ban_the_address_with_retry_after() -> None:
    clock = [1_000_000.0]
    auth = plugin(clock)
    for _ in range(3):
        assert (await auth.verify(request("alice", "guess", "192.0.2.7"))).code == "credentials_invalid"
    banned = await auth.verify(request("alice", "right-pw", "192.0.2.7"))
    assert not banned.ok and banned.status == 429 and banned.code == "too_many_attempts"
    assert dict(banned.headers)["Retry-After"] == "300"
    # The address is banned for every user name, and before the hash is even checked.
    assert (await auth.verify(request("bob", "right-pw", "192.0.2.7"))).status == 429
    clock[0] += 301
    assert (await auth.verify(request("alice", "right-pw", "192.0.2.7"))).ok


async def test_guessing_from_many_addresses_does_not_lock_the_owner_out() -> None:
    clock = [1_000_000.0]
    auth = plugin(clock, soft=5)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    auth.regulation.sleep = sleep
    auth.regulation.account_delay = 2.5
    for n in range(8):
        outcome = await auth.verify(request("alice", f"guess{n}", f"198.51.100.{n}"))
        assert outcome.code == "credentials_invalid"
    assert delays == [2.5] * 4  # failures past the account's soft limit (5) answer late
    owner = await auth.verify(request("alice", "right-pw", "203.0.113.9"))
    assert owner.ok and owner.user is not None and owner.user.sub == "alice"
    assert delays == [2.5] * 4  # the right password is never delayed


async def test_verify_answers_429_for_htpasswd_guessing(client: httpx.AsyncClient, runtime: Runtime) -> None:
    t = token(runtime, [{"type": "htpasswd", "htpasswd": f"alice:{SHA}", "realm": "private"}])
    limit = runtime.settings.regulation_max_failures
    for _ in range(limit):
        r = await call(client, {"config_token": t}, Authorization=basic("alice", "guess"))
        assert r.status_code == 401 and r.json()["error"] == "credentials_invalid"
    r = await call(client, {"config_token": t}, Authorization=basic("alice", "right-pw"))
    assert r.status_code == 429 and r.json()["error"] == "too_many_attempts"
    assert int(r.headers["retry-after"]) > 0
