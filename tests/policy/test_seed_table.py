"""Every sample row of the policy samples, uncommented, and the known pattern traps, in both dialects."""

from __future__ import annotations

import pytest

from tokenward.policy import (
    Policy,
    can_ask,
    can_login,
    can_poke,
    can_system_login,
    captcha_enabled,
    client_access,
    granted_scopes,
    resolve_scopes,
)
from tokenward.policy.patterns import Dialect

from .helpers import seed_policy

S = "mytoken.server"
A, B = "CLIENTID-A", "CLIENTID-B"
WEB = "website.host.sha512hash"

# (question, args, glob decision, compat decision) — compat is the original server, bit for bit.
TABLE: list[tuple[str, tuple[str, ...], bool, bool]] = [
    # userpolicy.csv, user -> token server
    ("login", ("alice@example.com", S, A), True, True),
    ("ask", ("alice@example.com", S, A), True, True),
    ("poke", ("alice@example.com", S, A), True, True),
    ("login", ("alice@example.com", S, B), True, True),
    ("login", ("alice@example.com", S, "CLIENTID-C"), False, False),
    # user -> user, user -> resource
    ("ask", ("alice@example.com", "bob@example.org", A), True, True),
    ("poke", ("alice@example.com", "bob@example.org", B), True, True),
    ("ask", ("alice@example.com", "myresource.server", A), True, True),
    ("poke", ("alice@example.com", "myresource.server", B), True, True),
    # explicit denies win
    ("login", ("hack@jack.email", S, A), False, False),
    ("login", ("hack@jack.email", S, B), True, True),
    ("login", ("anyone@tempr.email", S, A), False, False),
    ("ask", ("someone@gmail.com", "personal@yahoo.com", B), False, False),
    ("ask", ("someone@gmail.com", "personal@yahoo.com", A), True, True),
    ("ask", ("someone@gmail.com", "confidential.resource.com", B), False, False),
    # pattern traps (docs/policies.md)
    ("login", ("alice@example.com", "notmytokenXserver.org", A), False, True),  # unescaped dots, unanchored
    ("login", ("a@b", S, A), False, True),  # /*@/*./* is "contains @ and one more char"
    ("login", ("xhack@jackXemail.org", S, A), True, False),  # the deny row is a regex too
    ("login", ("ALICE@EXAMPLE.COM", S, A), True, True),
    ("login", ("Hack@Jack.Email", S, A), False, True),  # glob folds case, compat does not
    ("login", ("not-an-email", S, A), False, False),  # resources are asked in resourcepolicy.csv
    # resourcepolicy.csv
    ("login", ("myresource.server", S, A), True, True),
    ("ask", ("myresource.server", S, B), True, True),
    ("poke", ("myresource.server", S, A), True, True),
    ("ask", ("myresource.server", "alice@example.com", A), True, True),
    ("poke", ("myresource.server", "alice@example.com", B), True, True),
    ("login", ("otherresource.server", S, A), False, False),
    ("login", ("xmyresource.server.evil", S, A), False, True),
    ("system", ("alice@example.com", "myunix.server", S), True, True),
    ("system", ("alice@example.com", "myraspbpi.server", S), True, True),
    ("system", ("alice@example.com", "otherhost.server", S), False, False),
    # captchapolicy.csv
    ("captcha", ("alice@example.com", S), True, True),
    ("captcha", ("bob@tempr.email", S), False, False),
    ("captcha", ("bob@temprXemail.org", S), True, False),  # compat: the deny regex matches too
    # clientappspolicy.csv (enforced only for client IDs it names)
    ("clientaccess", (WEB, S, "CLIENTID"), True, True),
    ("clientaccess", ("WEBSITE.HOST.SHA512HASH", S, "CLIENTID"), True, False),
    ("clientaccess", ("unknown.hash", S, "CLIENTID"), False, False),
    ("clientaccess", ("unknown.hash", S, A), True, True),
]


def ask(policy: Policy, question: str, args: tuple[str, ...]) -> bool:
    if question == "login":
        return can_login(policy, *args)
    if question == "ask":
        return can_ask(policy, *args)
    if question == "poke":
        return can_poke(policy, *args)
    if question == "system":
        return can_system_login(policy, *args)
    if question == "captcha":
        return captcha_enabled(policy, *args)
    return client_access(policy, *args)


@pytest.fixture(scope="module", params=["glob", "compat"])
def policy(request: pytest.FixtureRequest) -> Policy:
    dialect: Dialect = request.param
    return seed_policy(dialect)


@pytest.mark.parametrize(("question", "args", "in_glob", "in_compat"), TABLE)
def test_seed_decisions(policy: Policy, question: str, args: tuple[str, ...], in_glob: bool, in_compat: bool) -> None:
    expected = in_glob if policy.dialect == "glob" else in_compat
    assert ask(policy, question, args) is expected


def test_every_sample_row_is_loaded(policy: Policy) -> None:
    counts = {name: len(engine.rules) for name, engine in policy.engines.items()}
    assert counts == {
        "userpolicy.csv": 19,  # 18 seed rows + the commented admin example
        "resourcepolicy.csv": 12,
        "clientappspolicy.csv": 4,
        "clientscopespolicy.csv": 9,
        "captchapolicy.csv": 2,
    }
    assert all(engine.fast for engine in policy.engines.values())


@pytest.mark.parametrize("dialect", ["glob", "compat"])
def test_scopes(dialect: Dialect) -> None:
    policy = seed_policy(dialect)
    granted = granted_scopes(policy, "alice@example.com", WEB, "CLIENTID")
    assert granted == {"DEFAULT", "WEBUSER", "ADMIN"}
    assert resolve_scopes(policy, "alice@example.com", WEB, "CLIENTID") == {"DEFAULT"}
    assert resolve_scopes(policy, "alice@example.com", WEB, "CLIENTID", ["WEBUSER", "ROOT"]) == {"WEBUSER"}
    # the seed writes mobileapp.sha512hash for DEFAULT but mobileapp.host.sha512hash for the rest
    mobile = granted_scopes(policy, "alice@example.com", "mobileapp.host.sha512hash", "CLIENTID")
    assert mobile == {"MOBILEUSER", "ADMIN"}
    assert granted_scopes(policy, "alice@example.com", WEB, "OTHER") == frozenset()
