"""Policy diff: what flips between two policies, checked against explain() as the oracle."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.policy.helpers import seed_policy
from tokenward.policy import Policy, build_policy, explain
from tokenward.policy.diff import diff_policies
from tokenward.policy.model import Rule
from tokenward.policy.patterns import Dialect, compile_compat, glob_match, glob_segments
from tokenward.policy.probes import Probe, generate_probes, instances

SUBS: dict[str, list[str]] = {
    "glob": ["alice@example.com", "bob@example.com", "*@example.com", "*@*.example.com", "svc.resource", "*"],
    "compat": ["alice@example\\.com", "bob@example.com", "/*@example\\.com", ".*@mail\\.example\\.com", "svc"],
}
DOMS: dict[str, list[str]] = {
    "glob": ["auth.example.com", "*.example.com", "dest@example.com"],
    "compat": ["auth\\.example\\.com", "auth.example.com", "/*\\.example\\.com"],
}
#: Patterns valid in both dialects (for the dialect-change test).
SUBS["both"] = ["alice@example.com", "/*@example.com", "/*@/*.example.com", "svc.resource"]
DOMS["both"] = ["auth.example.com", "/*.example.com"]
OBJS = ["C1", "C2"]
ACTS = ["login", "ask", "deny"]


def rows(dialect: str) -> st.SearchStrategy[list[tuple[str, str, str, str]]]:
    row = st.tuples(
        st.sampled_from(SUBS[dialect]), st.sampled_from(DOMS[dialect]), *(st.sampled_from(v) for v in (OBJS, ACTS))
    )
    return st.lists(row, max_size=12)


def policy_of(user_rows: list[tuple[str, str, str, str]], dialect: Dialect, apps: str = "") -> Policy:
    text = "".join(f"p, {', '.join(row)}\n" for row in user_rows)
    return build_policy({"userpolicy.csv": text.encode(), "clientappspolicy.csv": apps.encode()}, dialect=dialect)


def allowed(policy: Policy, probe: Probe) -> bool:
    return explain(policy, probe.sub, probe.dom, probe.obj, probe.act, file=probe.file).allowed


def flipped(old: Policy, new: Policy, probes: list[Probe]) -> set[Probe]:
    return {p for p in probes if allowed(old, p) != allowed(new, p)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dialect=st.sampled_from(["glob", "compat"]))
def test_diff_of_a_policy_with_itself_is_empty(data: st.DataObject, dialect: Dialect) -> None:
    user_rows = data.draw(rows(dialect))
    policy = policy_of(user_rows, dialect)
    twin = policy_of(list(reversed(user_rows)), dialect)  # other lines, same rows
    result = diff_policies(policy, twin, generate_probes(policy, twin))
    assert result.flips == 0 and result.groups == ()
    assert result.questions > 0 or not user_rows


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dialect=st.sampled_from(["glob", "compat"]), remove=st.booleans())
def test_a_single_row_edit_flips_exactly_the_questions_that_row_decides(
    data: st.DataObject, dialect: Dialect, remove: bool
) -> None:
    base = data.draw(rows(dialect))
    edit = data.draw(rows(dialect).filter(bool))[0]
    if edit in base:
        return
    small, large = policy_of(base, dialect), policy_of([*base, edit], dialect)
    old, new = (large, small) if remove else (small, large)
    probes = generate_probes(old, new)
    result = diff_policies(old, new, probes, examples=10_000)

    def decides(policy: Policy, probe: Probe) -> bool:
        """Whether ``edit`` is among the rows that decide ``probe`` in ``policy``."""
        why = explain(policy, probe.sub, probe.dom, probe.obj, probe.act, file=probe.file)
        on_row = [rule.values() for rule in (*why.allowed_by, *why.denied_by)]
        return edit in on_row

    expected = flipped(old, new, probes)
    assert {flip.probe for group in result.groups for flip in group.examples} == expected
    assert result.flips == len(expected)
    edited = large
    assert expected == {p for p in expected if decides(edited, p)}
    for group in result.groups:
        assert group.rule is not None and group.rule.values() == edit
        assert group.change == ("removed" if remove else "added")
        assert group.side == ("old" if remove else "new")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_rows=rows("both").filter(bool))
def test_dialect_change_is_the_full_evaluation(user_rows: list[tuple[str, str, str, str]]) -> None:
    compat, glob = policy_of(user_rows, "compat"), policy_of(user_rows, "glob")
    probes = generate_probes(compat, glob)
    result = diff_policies(compat, glob, probes, examples=10_000)
    assert {flip.probe for group in result.groups for flip in group.examples} == flipped(compat, glob, probes)
    assert all(group.change == "kept" for group in result.groups)


def _matches(pattern: str, value: str, dialect: Dialect) -> bool:
    if dialect == "glob":
        return glob_match(glob_segments(pattern), value.casefold())
    return compile_compat(pattern).search(value) is not None


def test_instances_hold_a_match_and_boundary_values_for_each_wildcard() -> None:
    for dialect in ("glob", "compat"):
        for pattern in SUBS[dialect] + DOMS[dialect]:
            values = instances(pattern, dialect)
            assert _matches(pattern, values[0], dialect), (dialect, pattern, values)
            assert any(not _matches(pattern, v, dialect) for v in values) or pattern in ("*", "svc")
    assert "@example.com" in instances("*@example.com", "glob")  # the wildcard filled with nothing
    assert "x.y@example.com" in instances("*@example.com", "glob")
    assert "x@example.comx" in instances("*@example.com", "glob")


def test_every_row_is_asked_a_question_it_matches() -> None:
    for dialect in ("glob", "compat"):
        policy = seed_policy(dialect)
        probes = generate_probes(policy)
        for name, engine in policy.engines.items():
            for rule in engine.rules:
                assert any(p.file == name and rule in _deciding(policy, p) for p in probes if p.obj == rule.obj), rule


def _deciding(policy: Policy, probe: Probe) -> list[Rule]:
    engine = policy.engine(probe.file)
    return [
        *engine.matches(probe.sub, probe.dom, probe.obj, probe.act),
        *engine.matches(probe.sub, probe.dom, probe.obj, "deny"),
    ]


def test_client_access_switched_on_is_one_group() -> None:
    old = policy_of([], "glob")
    new = policy_of([], "glob", apps="p, APPHASH1, auth.example.com, C1, clientaccess\n")
    asked = [
        Probe("clientappspolicy.csv", "APPHASH1", "auth.example.com", "C1", "clientaccess"),
        Probe("clientappspolicy.csv", "OTHERHASH", "auth.example.com", "C1", "clientaccess"),
        Probe("clientappspolicy.csv", "OTHERHASH", "auth.example.com", "C2", "clientaccess"),
    ]
    result = diff_policies(old, new, asked)
    assert result.flips == 1
    (group,) = result.groups
    assert group.change == "enforcement" and group.rule is None and "C1 is switched on" in group.reason
    assert group.examples[0].probe.sub == "OTHERHASH" and group.allow_to_deny == 1


def test_seed_policy_compat_to_glob_reports_the_dotted_rows() -> None:
    compat, glob = seed_policy("compat"), seed_policy("glob")
    result = diff_policies(compat, glob, generate_probes(compat, glob))
    assert result.flips > 0
    rows = {group.row for group in result.groups}
    assert "p, /*@/*./*, mytoken.server, CLIENTID-A, login" in rows
    document = result.to_json()
    assert document["flips"] == result.flips and document["old"] == {"version": compat.version, "dialect": "compat"}


def test_a_shared_matcher_cache_changes_no_decision_and_no_error() -> None:
    from tokenward.errors import PolicyError
    from tokenward.policy.engine import MatcherCache

    cache: MatcherCache = {}
    rows_old = [("/*@example\\.com", "auth\\.example\\.com", "C1", "login"), ("bob@example\\.com", "d", "C1", "deny")]
    rows_new = [*rows_old, ("/*@mail\\.example\\.com", "auth\\.example\\.com", "C1", "ask")]
    text = {
        name: "".join(f"p, {', '.join(r)}\n" for r in rows).encode()
        for name, rows in (("old", rows_old), ("new", rows_new))
    }
    old_s, new_s = (build_policy({"userpolicy.csv": text[n]}, dialect="compat", matchers=cache) for n in ("old", "new"))
    old_a, new_a = (build_policy({"userpolicy.csv": text[n]}, dialect="compat") for n in ("old", "new"))
    assert len(cache) == 5  # three sub patterns and two dom patterns, each compiled once for both builds
    probes = generate_probes(old_a, new_a)
    groups = diff_policies(old_s, new_s, probes).to_json()["groups"]
    assert groups and groups == diff_policies(old_a, new_a, probes).to_json()["groups"]
    # the key holds the dialect: a glob-compiled '*@x' is no regex for compat, and still fails naming its line
    build_policy({"userpolicy.csv": b"p, *@x.org, d, C1, login\n"}, dialect="glob", matchers=cache)
    with pytest.raises(PolicyError, match=r"userpolicy.csv:2: invalid regular expression"):
        build_policy(
            {"userpolicy.csv": b"p, a@x, d, C1, login\np, *@x.org, d, C1, login\n"}, dialect="compat", matchers=cache
        )
