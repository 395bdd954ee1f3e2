"""Compat patterns: the no-parse path for plain names agrees with the regex parser."""

from __future__ import annotations

import re
import warnings
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tokenward.policy.patterns import _plain, check_regex, required_literals

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import sre_constants
    import sre_parse

PIECES = ["a", "Z", "9", "@", "-", "_", " ", "é", ".", "\\.", "\\@", "\\-", "\\ ", "/", "#", "%"]
plain_patterns = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def _parsed_runs(pattern: str) -> list[str]:
    runs, current = [], []
    items: list[tuple[object, Any]] = list(sre_parse.parse(pattern).data)
    for op, av in items:
        if op is sre_constants.LITERAL:
            current.append(chr(av))
            continue
        if current:
            runs.append("".join(current))
            current = []
    if current:
        runs.append("".join(current))
    return runs


@given(plain_patterns)
def test_plain_names_are_indexed_as_the_parser_reads_them(pattern: str) -> None:
    assert _plain(pattern)
    re.compile(pattern)  # always a valid regular expression
    check_regex(pattern)  # and a safe one
    assert required_literals(pattern) == _parsed_runs(pattern)


def test_anything_with_regex_syntax_takes_the_parser() -> None:
    for pattern in ["^alice$", "a+", "[ab]", "(ab)", "a|b", "a{2}", "/*@x", "\\d", "\\w+", "a\\"]:
        assert not _plain(pattern), pattern
    assert required_literals("user1@dom1\\.example") == ["user1@dom1.example"]
    assert required_literals("^user1@dom1\\.example$") == ["user1@dom1.example"]
    assert required_literals("a.b\\.c") == ["a", "b.c"]
