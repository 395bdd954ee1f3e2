"""Bad input: every error names file:line and leaves the policy in force unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenward.errors import PolicyError
from tokenward.policy import DEFAULT_MODEL, PolicyHolder, build_policy, read_sources
from tokenward.policy.files import MAX_LINE_LENGTH, parse_rows
from tokenward.policy.patterns import Dialect

GOOD = b"p, /*@example\\.com, auth.example.com, C1, login\n"

BAD_ROWS = [
    (b"# ok\np, a@b.c, auth, C1\n", "userpolicy.csv:2", "policy_row_invalid", "expected 4 fields"),
    (b"p, a@b.c, auth, C1, login, extra\n", "userpolicy.csv:1", "policy_row_invalid", "found 5"),
    (b"\n\np, a@b.c, , C1, login\n", "userpolicy.csv:3", "policy_row_invalid", "field 2 is empty"),
    (b'p, a"b@c.d, auth, C1, login\n', "userpolicy.csv:1", "policy_row_invalid", "stray quote"),
    (b'p, "a@b.c, auth, C1, login\n', "userpolicy.csv:1", "policy_row_invalid", "unterminated"),
    (b'p, "a@b.c" x, auth, C1, login\n', "userpolicy.csv:1", "policy_row_invalid", "after a closing quote"),
    (b"g, alice, admin\n", "userpolicy.csv:1", "policy_row_invalid", "row type 'g'"),
    (b"p, ok@x.y, a, C1, login\np, \xff\xfe@x.y, a, C1, login\n", "userpolicy.csv:2", "policy_encoding", "UTF-8"),
    (b"p, " + b"a" * (MAX_LINE_LENGTH + 1) + b", a, C1, login\n", "userpolicy.csv:1", "policy_row_invalid", "longer"),
]


@pytest.mark.parametrize(("content", "where", "code", "words"), BAD_ROWS)
@pytest.mark.parametrize("dialect", ["glob", "compat"])
def test_bad_rows_name_file_and_line(content: bytes, where: str, code: str, words: str, dialect: Dialect) -> None:
    with pytest.raises(PolicyError) as caught:
        build_policy({"userpolicy.csv": content}, dialect=dialect)
    assert caught.value.error_code == code
    assert caught.value.detail.startswith(where + ":")
    assert words in caught.value.detail


def test_quoted_field_may_hold_a_comma() -> None:
    rows = parse_rows('p, "a{1,3}@x\\.y", "say ""hi""", C1, login\n', file="userpolicy.csv")
    assert rows[0].sub == "a{1,3}@x\\.y"
    assert rows[0].dom == 'say "hi"'


def test_comments_tabs_and_bom() -> None:
    policy = build_policy({"userpolicy.csv": "\ufeff# c\n\n  p,\tA@B.C ,\tauth , C1, login  \n".encode()})
    assert policy.engine("userpolicy.csv").rules[0].values() == ("A@B.C", "auth", "C1", "login")


@pytest.mark.parametrize(
    ("pattern", "code"),
    [
        ("a(b", "policy_regex_invalid"),
        ("[a-", "policy_regex_invalid"),
        ("(a+)+@x", "policy_regex_unsafe"),
        ("(a|ab)*@x", "policy_regex_unsafe"),
        ("/*./*./*x", "policy_regex_unsafe"),
        (".*.*.*@", "policy_regex_unsafe"),
        ("(\\w)\\1", "policy_regex_unsafe"),
        ("a" * 300, "policy_pattern_too_long"),
    ],
)
def test_compat_rejects_invalid_and_catastrophic_regexes(pattern: str, code: str) -> None:
    content = f"p, ok@x.y, a, C1, login\np, {pattern}, auth, C1, login\n".encode()
    with pytest.raises(PolicyError) as caught:
        build_policy({"userpolicy.csv": content}, dialect="compat")
    assert caught.value.error_code == code
    assert caught.value.detail.startswith("userpolicy.csv:2:")
    build_policy({"userpolicy.csv": content}, dialect="glob")  # literal text in glob: fine


def test_accepted_patterns_are_bounded() -> None:
    # the sample patterns and two overlapping repeats are accepted; matching stays fast
    policy = build_policy({"userpolicy.csv": b"p, /*@/*./*, a, C1, login\np, .*.*x, a, C1, ask\n"}, dialect="compat")
    engine = policy.engine("userpolicy.csv")
    assert not engine.enforce("/" * 320, "a", "C1", "login")
    assert not engine.enforce("a" * 320, "a", "C1", "ask")
    with pytest.raises(PolicyError) as caught:
        engine.enforce("a" * 321, "a", "C1", "ask")
    assert caught.value.error_code == "policy_value_too_long"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[request_definition]\nr = sub, dom, obj, act\nnot a key value line\n", 3),
        ("[request_definition]\nr = sub, dom, obj, act\n", 1),
        (DEFAULT_MODEL.replace("regexMatch(r.sub, p.sub) &&", "(regexMatch(r.sub, p.sub) &&"), 11),
    ],
)
def test_model_that_does_not_parse(text: str, line: int) -> None:
    with pytest.raises(PolicyError) as caught:
        build_policy({"model.conf": text.encode()})
    assert caught.value.error_code == "policy_model_invalid"
    assert caught.value.detail.startswith(f"model.conf:{line}:")


def _write(directory: Path, name: str, content: bytes) -> None:
    (directory / name).write_bytes(content)


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("userpolicy.csv", b"p, a@b.c, auth, C1\n", "policy_row_invalid"),
    ("userpolicy.csv", b"p, \xc3\x28, auth, C1, login\n", "policy_encoding"),
    ("model.conf", b"[matchers]\nm = (\n", "policy_model_invalid"),
    ("userpolicy.csv", b"p, a(b, auth, C1, login\n", "policy_regex_invalid"),
]


@pytest.mark.parametrize(("name", "content", "code"), BAD_FILES)
def test_bad_file_keeps_policy_in_force(tmp_path: Path, name: str, content: bytes, code: str) -> None:
    _write(tmp_path, "userpolicy.csv", GOOD)
    holder = PolicyHolder(tmp_path, dialect="compat")
    before = holder.load()
    _write(tmp_path, name, content)
    result = holder.reload()
    assert result.error is not None
    assert result.error.error_code == code
    assert result.error.detail.startswith(f"{name}:")
    assert holder.policy is before
    assert holder.last_error is result.error


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    _write(tmp_path, "userpolicy.csv", GOOD * 100)
    with pytest.raises(PolicyError) as caught:
        read_sources(tmp_path, max_bytes=len(GOOD) * 10)
    assert caught.value.error_code == "policy_file_too_large"
    assert caught.value.detail.startswith("userpolicy.csv:0:")
