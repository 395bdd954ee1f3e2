"""Explain (check / admin JSON) and lint findings with file:line."""

from __future__ import annotations

import json

import pytest

from tokenward.errors import PolicyError
from tokenward.policy import build_policy, explain, lint

USER = b"""# users
p, *@example.com, auth.example.com, C1, login
p, mallory@example.com, auth.example.com, C1, deny
p, bob@example.org, auth.example.com, C2, login
"""


def test_allow_names_rows() -> None:
    result = explain(build_policy({"userpolicy.csv": USER}), "bob@example.com", "auth.example.com", "C1", "login")
    body = result.to_json()
    assert body["decision"] == "allow"
    assert body["allowed_by"] == [{"where": "userpolicy.csv:2", "row": "p, *@example.com, auth.example.com, C1, login"}]
    assert json.loads(json.dumps(body)) == body


def test_deny_row_wins() -> None:
    result = explain(build_policy({"userpolicy.csv": USER}), "mallory@example.com", "auth.example.com", "C1", "login")
    assert result.decision == "deny"
    assert [r.where for r in result.allowed_by] == ["userpolicy.csv:2"]
    assert [r.where for r in result.denied_by] == ["userpolicy.csv:3"]
    assert "deny wins" in result.reason


def test_deny_without_allow_shows_near_misses() -> None:
    result = explain(build_policy({"userpolicy.csv": USER}), "bob@example.org", "auth.example.com", "C1", "login")
    assert result.decision == "deny"
    assert "no row" in result.reason
    assert [(m.rule.where, m.field) for m in result.near_misses] == [
        ("userpolicy.csv:2", "sub"),
        ("userpolicy.csv:4", "obj"),
    ]


def test_routes_by_action_and_checks_segment() -> None:
    policy = build_policy({}, segments=frozenset({"user"}))
    assert explain(policy, "a@b.c", "H", "C1", "clientaccess").reason.startswith("client access is not enforced")
    assert explain(policy, "a@b.c", "H", "C1", "WEBUSER").file == "clientscopespolicy.csv"
    with pytest.raises(PolicyError, match="captcha"):
        explain(policy, "a@b.c", "s", "CAPTCHA", "enable")
    with pytest.raises(PolicyError) as caught:
        explain(policy, "a@b.c", "s", "C", "login", file="nope.csv")
    assert caught.value.error_code == "policy_file_unknown"


def _codes(sources: dict[str, bytes], dialect: str) -> set[tuple[str, str]]:
    return {(f"{f.file}:{f.line}", f.code) for f in lint(sources, dialect=dialect)}  # type: ignore[arg-type]


def test_lint_findings() -> None:
    user = b"""p, /*@/*./*, mytoken.server, C1, login
p, /*@/mydomain.com, mytoken.server, C1, login
p, /*@/*./*, mytoken.server, C1, login
p, alice@example.com, mytoken.server, C1, logon
"""
    apps = b"p, " + b"ab" * 64 + b", mytoken.server, C1, clientaccess\n"
    glob = _codes({"userpolicy.csv": user, "clientappspolicy.csv": apps}, "glob")
    assert ("userpolicy.csv:1", "dialect-differs") in glob
    assert ("userpolicy.csv:2", "never-matches") in glob
    assert ("userpolicy.csv:3", "duplicate-row") in glob
    assert ("userpolicy.csv:4", "unknown-action") in glob
    assert ("userpolicy.csv:1", "unescaped-dot") not in glob
    compat = _codes({"userpolicy.csv": user, "clientappspolicy.csv": apps}, "compat")
    assert ("userpolicy.csv:1", "unescaped-dot") in compat
    assert ("userpolicy.csv:2", "never-matches") in compat
    assert ("clientappspolicy.csv:1", "lowercase-hash") in compat


def test_lint_reports_load_errors_with_location() -> None:
    findings = lint({"userpolicy.csv": b"p, ok@x.y, a, C1, login\np, a(b, a, C1, login\n"}, dialect="compat")
    assert [(f.file, f.line, f.code) for f in findings] == [("userpolicy.csv", 2, "load-error")]


def test_clean_glob_row_has_no_findings() -> None:
    assert lint({"userpolicy.csv": b"p, ^x$, s, C1, login\n"}, dialect="compat") != []
    assert not [
        f for f in lint({"captchapolicy.csv": b"p, *@x.com, s, CAPTCHA, enable\n"}) if f.code != "dialect-differs"
    ]
