"""Questions, deny-wins, admin, and split authorization."""

from __future__ import annotations

import pytest

from tokenward.errors import PolicyError
from tokenward.policy import (
    build_policy,
    can_ask,
    can_login,
    can_system_login,
    captcha_enabled,
    client_access,
    granted_scopes,
    is_admin,
    is_user,
    parse_segments,
)

USER = b"""
p, alice@example.com, auth.example.com, TOKENWARD, admin
p, *@example.com, auth.example.com, C1, login
p, mallory@example.com, auth.example.com, C1, deny
"""


def test_admin_and_deny() -> None:
    policy = build_policy({"userpolicy.csv": USER})
    assert is_admin(policy, "Alice@Example.com", "auth.example.com")
    assert not is_admin(policy, "bob@example.com", "auth.example.com")
    assert not is_admin(policy, "alice@example.com", "other.example.com")
    assert can_login(policy, "bob@example.com", "auth.example.com", "C1")
    assert not can_login(policy, "mallory@example.com", "auth.example.com", "C1")


@pytest.mark.parametrize(
    ("subject", "user"), [("a@b.c", True), ("a@b", True), ("host.example", False), ("@x", False), ("x@", False)]
)
def test_is_user(subject: str, user: bool) -> None:
    assert is_user(subject) is user


def test_unserved_segment_is_an_error_naming_it() -> None:
    policy = build_policy({"userpolicy.csv": USER}, segments=parse_segments("resource,system"))
    with pytest.raises(PolicyError) as caught:
        can_login(policy, "bob@example.com", "auth.example.com", "C1")
    assert caught.value.error_code == "policy_segment_not_served"
    assert "user policy segment" in caught.value.detail
    with pytest.raises(PolicyError, match="captcha"):
        captcha_enabled(policy, "bob@example.com", "auth.example.com")
    assert not can_login(policy, "svc.example", "auth.example.com", "C1")  # resource: served
    assert not can_system_login(policy, "bob@example.com", "host", "auth.example.com")
    assert client_access(policy, "HASH", "auth.example.com", "C1")  # shared files: served
    assert is_admin(policy, "alice@example.com", "auth.example.com")  # admin: every instance
    only_captcha = build_policy({}, segments=parse_segments("captcha"))
    with pytest.raises(PolicyError, match="user or resource"):
        granted_scopes(only_captcha, "a@b.c", "H", "C1")


@pytest.mark.parametrize("text", ["", "bogus", "user,bogus"])
def test_parse_segments_rejects_unknown(text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_segments(text)
    assert caught.value.error_code == "policy_segment_unknown"


def test_parse_segments() -> None:
    assert parse_segments("all") == parse_segments(["user", "resource", "captcha", "system"])
    assert parse_segments(" User , resource") == {"user", "resource"}


def test_hashes_are_case_insensitive_in_glob() -> None:
    apps = b"p, 5CB6AB6D, auth.example.com, C1, clientaccess\n"
    assert client_access(build_policy({"clientappspolicy.csv": apps}), "5cb6ab6d", "auth.example.com", "C1")
    assert not client_access(
        build_policy({"clientappspolicy.csv": apps}, dialect="compat"), "5cb6ab6d", "auth.example.com", "C1"
    )


def test_unsupported_model_uses_pycasbin_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    model = b"""[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = keyMatch(r.dom, p.dom) && regexMatch(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
    policy = build_policy({"model.conf": model, "userpolicy.csv": b"p, *@x.com, /api/*, C1, ask\n"})
    assert "slow path" in caplog.text
    engine = policy.engine("userpolicy.csv")
    assert not engine.fast
    assert can_ask(policy, "a@x.com", "/api/v1", "C1")
    assert not can_ask(policy, "a@y.com", "/api/v1", "C1")
    assert policy.summary()["slow_path"] == [
        "clientappspolicy.csv",
        "clientscopespolicy.csv",
        "resourcepolicy.csv",
        "userpolicy.csv",
    ]
