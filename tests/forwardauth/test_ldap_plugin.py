"""The ``ldap`` plugin against a real slapd the test builds (tests/forwardauth/slapd.py).

Good password, wrong password, unknown user, a filter-injection user name, an empty password,
group denial, StartTLS and LDAPS with the test CA (and refused without it), a server that is
down, and pooled connections the server dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.forwardauth.slapd import ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd, populate, run_slapd
from tests.helpers import basic_auth
from tokenward.apptokens.regulation import RegulationPolicy, Regulator
from tokenward.errors import BadRequest
from tokenward.forwardauth.plugins import PluginDeps, VerifyRequest, build_plugin
from tokenward.forwardauth.plugins.ldap import LdapAuth
from tokenward.forwardauth.request_info import reconstruct
from tokenward.forwardauth.schema import LdapPlugin, parse_document
from tokenward.storage.regulation import InMemoryRegulationStore

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ALICE_PW = "alice-correct-horse"
BOB_PW = "bob-battery-staple"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with run_slapd(tmp_path_factory.mktemp("slapd")) as server:
        populate(
            server,
            [
                (SUFFIX, ["dcObject", "organization"], {"dc": "example", "o": "Example"}),
                (PEOPLE, ["organizationalUnit"], {"ou": "people"}),
                (GROUPS, ["organizationalUnit"], {"ou": "groups"}),
                (
                    f"uid=alice,{PEOPLE}",
                    ["inetOrgPerson"],
                    {
                        "uid": "alice",
                        "cn": "Alice Liddell",
                        "sn": "Liddell",
                        "mail": "alice@example.com",
                        "userPassword": ALICE_PW,
                    },
                ),
                (
                    f"uid=bob,{PEOPLE}",
                    ["inetOrgPerson"],
                    {"uid": "bob", "cn": "Bob", "sn": "B", "mail": "bob@example.com", "userPassword": BOB_PW},
                ),
                (f"cn=wiki-users,{GROUPS}", ["groupOfNames"], {"cn": "wiki-users", "member": [f"uid=alice,{PEOPLE}"]}),
                (f"cn=ops,{GROUPS}", ["groupOfNames"], {"cn": "ops", "member": [f"uid=alice,{PEOPLE}"]}),
                (f"cn=others,{GROUPS}", ["groupOfNames"], {"cn": "others", "member": [f"uid=bob,{PEOPLE}"]}),
            ],
        )
        yield server


def config(url: str, **extra: Any) -> LdapPlugin:
    plugin = {
        "type": "ldap",
        "realm": "wiki",
        "url": url,
        "bind_dn": ADMIN_DN,
        "bind_password": ADMIN_PASSWORD,
        "user_base_dn": PEOPLE,
        "group_base_dn": GROUPS,
        "required_groups": ["wiki-users"],
        **extra,
    }
    found = parse_document({"tokenward": {"plugins": [plugin]}}).tokenward.plugins[0]
    assert isinstance(found, LdapPlugin)
    return found


def basic(user: str, password: str, ip: str = "127.0.0.1") -> VerifyRequest:
    headers = {
        "x-original-url": "https://wiki.example.com/page",
        "x-original-method": "GET",
        "authorization": basic_auth(user, password),
    }
    return VerifyRequest(headers, reconstruct(headers), ip, None)


async def test_good_password_gives_the_user_and_groups(slapd: Slapd) -> None:
    plugin = LdapAuth(config(slapd.url))
    try:
        outcome = await plugin.verify(basic("alice", ALICE_PW))
        assert outcome.ok and outcome.user is not None, (outcome.code, outcome.detail)
        assert outcome.user.sub == "alice" and outcome.user.email == "alice@example.com"
        assert outcome.user.groups == ("ops", "wiki-users") and outcome.user.name == "Alice Liddell"
    finally:
        await plugin.aclose()


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "x"),
        ("*", ALICE_PW),
        ("alice)(uid=*", ALICE_PW),
        ("al*", ALICE_PW),
    ],
)
async def test_wrong_password_unknown_user_and_injection_are_401(slapd: Slapd, user: str, password: str) -> None:
    plugin = LdapAuth(config(slapd.url))
    try:
        outcome = await plugin.verify(basic(user, password))
    finally:
        await plugin.aclose()
    # An empty password never reaches the directory (an LDAP unauthenticated bind would "succeed").
    expected = "credentials_invalid" if password else "authorization_malformed"
    assert not outcome.ok and outcome.status == 401 and outcome.code == expected
    assert outcome.challenge == 'Basic realm="wiki", charset="UTF-8"'


async def test_user_outside_the_required_groups_is_403(slapd: Slapd) -> None:
    plugin = LdapAuth(config(slapd.url))
    try:
        outcome = await plugin.verify(basic("bob", BOB_PW))
        assert not outcome.ok and outcome.status == 403 and outcome.code == "ldap_group_denied"
        open_plugin = LdapAuth(config(slapd.url, required_groups=[]))
        allowed = await open_plugin.verify(basic("bob", BOB_PW))
        await open_plugin.aclose()
        assert allowed.ok and allowed.user is not None and allowed.user.groups == ("others",)
    finally:
        await plugin.aclose()


async def test_starttls_and_ldaps_verify_the_server_with_the_ca_file(slapd: Slapd) -> None:
    for cfg in (
        config(slapd.url, start_tls=True, ca_file=str(slapd.ca_file)),
        config(slapd.ldaps_url, ca_file=str(slapd.ca_file)),
    ):
        plugin = LdapAuth(cfg)
        outcome = await plugin.verify(basic("alice", ALICE_PW))
        await plugin.aclose()
        assert outcome.ok, (cfg.url, outcome.code, outcome.detail)
    # Without the test CA the server's certificate is not trusted: a clear 503, no fallback to plain text.
    for cfg in (config(slapd.url, start_tls=True), config(slapd.ldaps_url)):
        plugin = LdapAuth(cfg)
        outcome = await plugin.verify(basic("alice", ALICE_PW))
        await plugin.aclose()
        assert not outcome.ok and outcome.status == 503 and outcome.code == "ldap_unavailable", cfg.url


async def test_server_down_is_a_clear_503(tmp_path: Path) -> None:
    from tests.e2e.processes import free_port

    plugin = LdapAuth(config(f"ldap://127.0.0.1:{free_port()}", timeout_seconds=2))
    try:
        outcome = await plugin.verify(basic("alice", ALICE_PW))
    finally:
        await plugin.aclose()
    assert not outcome.ok and outcome.status == 503 and outcome.code == "ldap_unavailable"
    assert "LDAP directory" in outcome.detail and ALICE_PW not in outcome.detail


async def test_built_plugin_statuses_and_the_pool_is_reused(slapd: Slapd) -> None:
    plugin = build_plugin(config(slapd.url), PluginDeps())
    assert isinstance(plugin, LdapAuth)
    for user, password, status in (("alice", ALICE_PW, 200), ("alice", "nope", 401), ("bob", BOB_PW, 403)):
        outcome = await plugin.verify(basic(user, password))
        assert (200 if outcome.ok else outcome.status) == status
    idle = list(plugin.directory._idle)
    assert 1 <= len(idle) <= 4
    # The server drops the pooled connections (a restart, an idle timeout): the next check opens new ones.
    for conn in idle:
        conn.socket.close()
    again = await plugin.verify(basic("alice", ALICE_PW + "-not-cached"))
    assert not again.ok and again.status == 401 and again.code == "credentials_invalid"
    fresh = await plugin.verify(basic("bob", BOB_PW))
    assert fresh.status == 403
    await plugin.aclose()


def test_bad_configs_are_refused_at_create() -> None:
    base = {"type": "ldap", "url": "ldap://127.0.0.1:1", "user_base_dn": PEOPLE}
    for bad in (
        {"url": "http://x"},
        {"bind_dn": ADMIN_DN},
        {"url": "ldaps://x", "start_tls": True},
        {"required_groups": ["a"]},
        {"user_filter": "uid=x"},
    ):
        with pytest.raises(BadRequest) as caught:
            parse_document({"tokenward": {"plugins": [{**base, **bad}]}})
        assert caught.value.error_code == "config_token_schema"


async def test_repeated_wrong_passwords_are_regulated(slapd: Slapd) -> None:
    """Failed binds count per client address and (user, address); once banned even the right password gets 429
    from there until the ban ends, while the same user from another address gets in."""
    clock = [1_000_000.0]
    regulator = Regulator(InMemoryRegulationStore(), RegulationPolicy(max_failures=3, find_time=60, ban_time=300))
    plugin = LdapAuth(config(slapd.url, cache_seconds=0), regulator=regulator, clock=lambda: clock[0])
    try:
        for _ in range(3):
            assert (await plugin.verify(basic("alice", "guess"))).code == "credentials_invalid"
        banned = await plugin.verify(basic("alice", ALICE_PW))
        assert not banned.ok and banned.status == 429 and banned.code == "too_many_attempts"
        assert dict(banned.headers)["Retry-After"] == "300"
        # The ban is on the guessing address (and the name from there), not on the account.
        assert (await plugin.verify(basic("alice", ALICE_PW, "192.0.2.50"))).ok
        clock[0] += 301
        assert (await plugin.verify(basic("alice", ALICE_PW))).ok
    finally:
        await plugin.aclose()
