"""Differential tests: the indexed engine agrees with a reference on every decision.

* compat vs pycasbin itself, with ``regexMatch`` registered as an unanchored ``re.search``
  (Casbin.NET semantics, docs/policies.md), over several matcher shapes;
* glob vs a straightforward reference (anchored regex translation, linear scan).
"""

from __future__ import annotations

import re
from typing import Any

import casbin
from casbin.persist.adapter import Adapter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenward.errors import PolicyError
from tokenward.policy import DEFAULT_MODEL, IndexedEngine, Rule, parse_model
from tokenward.policy.patterns import check_regex

MATCHERS = [
    "regexMatch(r.sub, p.sub) && (r.dom == p.dom || regexMatch(r.dom, p.dom)) && r.obj == p.obj && r.act == p.act",
    "(r.sub == p.sub || regexMatch(r.sub, p.sub)) && regexMatch(r.dom, p.dom) && r.obj == p.obj && r.act == p.act",
    "r.act == p.act && r.obj == p.obj && r.sub == p.sub && (regexMatch(r.dom, p.dom) || r.dom == p.dom)",
    "regexMatch(r.sub, p.sub) && r.dom == p.dom && r.obj == p.obj && r.act == p.act",
]
OBJS = ["C1", "C2"]
ACTS = ["login", "ask", "deny"]

# compat patterns: regex pieces the samples use (/*, unescaped dots) and a few more
REGEX_PIECES = ["a", "b", "c", "ab", "abc", "@", ".", "\\.", "/*", "x", "a+", "[ab]", "^", "$", "b?", "(ab)"]
regexes = st.lists(st.sampled_from(REGEX_PIECES), min_size=1, max_size=6).map("".join)
values = st.text(alphabet="abcx@./", max_size=9)


def _safe(pattern: str) -> bool:
    try:
        check_regex(pattern)
    except PolicyError:
        return False
    return True


safe_regexes = regexes.filter(_safe)


def _model(matcher: str) -> str:
    return DEFAULT_MODEL.replace(DEFAULT_MODEL.splitlines()[-1], f"m = {matcher}")


def _pycasbin(model_text: str, rules: list[Rule]) -> Any:
    class Rows(Adapter):  # type: ignore[misc]
        def load_policy(self, model: Any) -> None:
            model.add_policies("p", "p", [list(rule.values()) for rule in rules])

    enforcer = casbin.Enforcer(parse_model(model_text).casbin_model(), Rows())
    enforcer.add_function("regexMatch", lambda value, pattern: re.search(pattern, value) is not None)
    return enforcer


rule_tuples = st.tuples(safe_regexes, safe_regexes | values.filter(bool), st.sampled_from(OBJS), st.sampled_from(ACTS))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    matcher=st.sampled_from(MATCHERS),
    rows=st.lists(rule_tuples, min_size=1, max_size=8),
    requests=st.lists(st.tuples(values, values, st.sampled_from(OBJS), st.sampled_from(ACTS)), min_size=1, max_size=6),
    data=st.data(),
)
def test_compat_agrees_with_pycasbin(
    matcher: str,
    rows: list[tuple[str, str, str, str]],
    requests: list[tuple[str, str, str, str]],
    data: st.DataObject,
) -> None:
    model_text = _model(matcher)
    shape = parse_model(model_text).shape
    assert shape is not None
    rules = [Rule(*row, file="t.csv", line=i) for i, row in enumerate(rows, start=1)]
    engine = IndexedEngine(rules, shape=shape, dialect="compat")
    reference = _pycasbin(model_text, rules)
    # also ask for the rows' own patterns as values: equality alternatives must be found
    own = [data.draw(st.sampled_from(rows)) for _ in range(2)]
    for sub, dom, obj, act in [*requests, *own]:
        expected = bool(reference.enforce(sub, dom, obj, act))
        assert engine.enforce(sub, dom, obj, act) is expected, (sub, dom, obj, act)
        assert bool(engine.matches(sub, dom, obj, act)) is expected


def _glob_reference(pattern: str, value: str) -> bool:
    pieces = re.split(r"/?\*", pattern.casefold())
    return re.fullmatch(".*".join(re.escape(piece) for piece in pieces), value.casefold(), re.DOTALL) is not None


GLOB_PIECES = ["a", "B", "ab", "abc", "@", ".", "*", "/*", "x", "/", ".com", "@ab."]
globs = st.lists(st.sampled_from(GLOB_PIECES), min_size=1, max_size=6).map("".join)
glob_values = st.text(alphabet="aAbBcx@./", max_size=10)


@settings(max_examples=1500, deadline=None)
@given(
    rows=st.lists(st.tuples(globs, globs, st.sampled_from(OBJS), st.sampled_from(ACTS)), min_size=1, max_size=10),
    requests=st.lists(
        st.tuples(glob_values, glob_values, st.sampled_from(OBJS), st.sampled_from(ACTS)), min_size=1, max_size=8
    ),
)
def test_glob_agrees_with_reference(
    rows: list[tuple[str, str, str, str]], requests: list[tuple[str, str, str, str]]
) -> None:
    shape = parse_model(DEFAULT_MODEL).shape
    assert shape is not None
    rules = [Rule(*row, file="t.csv", line=i) for i, row in enumerate(rows, start=1)]
    engine = IndexedEngine(rules, shape=shape, dialect="glob")
    for sub, dom, obj, act in requests:
        expected = any(
            _glob_reference(r.sub, sub) and _glob_reference(r.dom, dom) and r.obj == obj and r.act == act for r in rules
        )
        assert engine.enforce(sub, dom, obj, act) is expected, (sub, dom, obj, act)
        found = engine.matches(sub, dom, obj, act)
        assert all(r.obj == obj and r.act == act for r in found)
        assert bool(found) is expected


@settings(max_examples=800, deadline=None)
@given(pattern=globs, value=glob_values)
def test_glob_match_agrees_with_reference(pattern: str, value: str) -> None:
    shape = parse_model(DEFAULT_MODEL).shape
    assert shape is not None
    engine = IndexedEngine([Rule(pattern, "d", "o", "a")], shape=shape, dialect="glob")
    assert engine.enforce(value, "d", "o", "a") is _glob_reference(pattern, value)
