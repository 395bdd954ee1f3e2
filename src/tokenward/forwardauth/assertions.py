"""Assertion rules (``eq``, ``in``, ``contains``, ``contains-any``, ``contains-all``, ``regex``, ``empty``).

A rule tests the values a query selected. ``eq`` on strings compares in constant time, so a
``request_header`` plugin can hold a shared secret. ``negate`` inverts the result;
``case_insensitive`` folds strings on both sides.
"""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Any

from tokenward.forwardauth.queries import compile_query
from tokenward.forwardauth.schema import Assertion, Rule

__all__ = ["any_holds", "check_assertion", "check_rule"]


def _fold(value: Any, fold: bool) -> Any:
    if fold and isinstance(value, str):
        return value.casefold()
    if fold and isinstance(value, list):
        return [_fold(v, fold) for v in value]
    return value


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
    return bool(a == b) and type(a) is type(b)


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str, fold: bool) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE if fold else 0)


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    return [] if value is None else [value]


def check_rule(rule: Rule, selected: Sequence[Any]) -> bool:
    """Whether the values a query selected satisfy ``rule`` (before and after ``negate``)."""
    fold = rule.case_insensitive
    # One selected value is tested as itself; several as a list (JSONPath wildcards).
    value = _fold(selected[0] if len(selected) == 1 else list(selected), fold)
    expected = _fold(rule.value, fold)
    method = rule.method
    if method == "eq":
        result = bool(selected) and _eq(value, expected)
    elif method == "in":
        result = bool(selected) and any(_eq(value, e) for e in expected)
    elif method == "contains":
        result = (isinstance(value, str) and isinstance(expected, str) and expected in value) or any(
            _eq(v, expected) for v in _items(value) if not isinstance(value, str)
        )
    elif method == "contains-any":
        have = _items(value)
        result = any(any(_eq(h, e) for h in have) for e in expected)
    elif method == "contains-all":
        have = _items(value)
        result = all(any(_eq(h, e) for h in have) for e in expected)
    elif method == "regex":
        pattern = _regex(str(rule.value), fold)
        result = bool(selected) and all(isinstance(v, str) and pattern.search(v) for v in _items(value))
    else:  # empty
        result = not selected or all(v in (None, "", [], {}) for v in selected)
    return result != rule.negate


def check_assertion(assertion: Assertion, data: Any) -> bool:
    return check_rule(assertion.rule, compile_query(assertion.query_engine, assertion.query).values(data))


def any_holds(assertions: Iterable[Assertion], data: Any) -> bool:
    return any(check_assertion(a, data) for a in assertions)
