"""The two pattern dialects for the ``sub`` and ``dom`` columns.

``glob`` (default)
    Anchored. ``*`` and ``/*`` match any run of characters (``/*`` because the original's
    samples write ``/*@/*./*``); every other character is literal, dots included. Values and
    patterns are case-folded, so e-mail addresses and SHA-512 hashes compare case-insensitively.
    Matching is a left-to-right ``str.find`` walk: linear, no backtracking.

``compat``
    Bit-for-bit the original server (docs/policies.md): a pattern is a regular expression matched
    as an *unanchored search* (Casbin.NET ``Regex.IsMatch``), case-sensitive. ``/*@/*./*``
    therefore means "contains ``@`` followed by one more character". Because Python's ``re``
    backtracks, patterns are checked when loaded (:func:`check_regex`) and values are capped at
    :data:`MAX_VALUE_LENGTH` characters, which together bound the work of one match.
"""

from __future__ import annotations

import re
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Literal

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError

__all__ = [
    "BOUNDARY",
    "MAX_PATTERN_LENGTH",
    "MAX_VALUE_LENGTH",
    "Dialect",
    "check_regex",
    "compat_match",
    "compile_compat",
    "glob_match",
    "glob_segments",
    "is_glob_literal",
    "required_literals",
]

Dialect = Literal["glob", "compat"]

#: Longest ``sub``/``dom`` value a question may carry (e-mail ≤ 254, host ≤ 253, SHA-512 = 128).
MAX_VALUE_LENGTH = 320
#: Longest pattern accepted in a policy row.
MAX_PATTERN_LENGTH = 256
#: Characters at which the glob index cuts literal prefixes and suffixes.
BOUNDARY = frozenset("@.")

_WILDCARD = re.compile(r"/?\*")
_LONG_REPEAT = 16  # a repeat allowing more than this many copies counts as unbounded
_MAX_CHAIN = 2  # most overlapping unbounded repeats allowed in one pattern (n^2 work per start)


# --------------------------------------------------------------------------------------- glob


def glob_segments(pattern: str) -> tuple[str, ...]:
    """The literal pieces between wildcards, case-folded. One piece means "no wildcard"."""
    return tuple(_WILDCARD.split(pattern.casefold()))


def is_glob_literal(pattern: str) -> bool:
    return _WILDCARD.search(pattern) is None


def glob_match(segments: tuple[str, ...], value: str) -> bool:
    """Whether a case-folded ``value`` matches a pattern split by :func:`glob_segments`."""
    if len(segments) == 1:
        return value == segments[0]
    first, last = segments[0], segments[-1]
    end = len(value) - len(last)
    if end < len(first) or not value.startswith(first) or not value.endswith(last):
        return False
    pos = len(first)
    for piece in segments[1:-1]:
        found = value.find(piece, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


# ------------------------------------------------------------------------------------- compat


def compat_match(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.search(value) is not None


def compile_compat(pattern: str, *, where: str = "<memory>") -> re.Pattern[str]:
    """Compile a compat pattern after :func:`check_regex`; errors carry ``where`` (file:line)."""
    check_regex(pattern, where=where)
    return re.compile(pattern)


def _parse(pattern: str, where: str) -> Any:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PolicyError(
            f"{where}: pattern longer than {MAX_PATTERN_LENGTH} characters", code=ErrorCode.POLICY_PATTERN_TOO_LONG
        )
    try:
        return sre_parse.parse(pattern)
    except re.error as exc:
        raise PolicyError(
            f"{where}: invalid regular expression {pattern!r}: {exc}", code=ErrorCode.POLICY_REGEX_INVALID
        ) from None


_WIDE = None  # marker: an item that may match any character


def _charset(op: Any, av: Any) -> frozenset[int] | None:
    """Characters one item can consume, or ``None`` for "too many to list" (overlaps everything)."""
    if op is sre_c.LITERAL:
        return frozenset((av,))
    if op is sre_c.IN:
        chars: set[int] = set()
        for sub_op, sub_av in av:
            if sub_op is sre_c.LITERAL:
                chars.add(sub_av)
            elif sub_op is sre_c.RANGE and sub_av[1] - sub_av[0] < 256:
                chars.update(range(sub_av[0], sub_av[1] + 1))
            else:
                return _WIDE
        return frozenset(chars)
    return _WIDE


def _overlap(a: frozenset[int] | None, b: frozenset[int] | None) -> bool:
    return a is None or b is None or bool(a & b)


class _Item:
    __slots__ = ("chars", "nullable", "unbounded")

    def __init__(self, chars: frozenset[int] | None, *, nullable: bool, unbounded: bool) -> None:
        self.chars, self.nullable, self.unbounded = chars, nullable, unbounded


def _flatten(parsed: Any, where: str, pattern: str, *, in_repeat: bool) -> list[_Item]:
    items: list[_Item] = []
    for op, av in parsed:
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", None)):
            low, high, body = av
            if in_repeat:
                _reject(where, pattern, "a repeat inside a repeat")
            inner = _flatten(body, where, pattern, in_repeat=True)
            chars: frozenset[int] | None = frozenset()
            for item in inner:
                chars = None if chars is None or item.chars is None else chars | item.chars
            unbounded = high > _LONG_REPEAT
            items.append(_Item(chars, nullable=low == 0 or all(i.nullable for i in inner), unbounded=unbounded))
        elif op is sre_c.SUBPATTERN:
            items.extend(_flatten(av[-1], where, pattern, in_repeat=in_repeat))
        elif op is sre_c.BRANCH:
            if in_repeat:
                _reject(where, pattern, "an alternation inside a repeat")
            branches = [_flatten(b, where, pattern, in_repeat=False) for b in av[1]]
            for branch in branches:  # each alternative is judged on its own
                _check_chain(branch, where, pattern)
            items.append(_Item(_WIDE, nullable=any(all(i.nullable for i in b) for b in branches), unbounded=False))
        elif op in (sre_c.GROUPREF, sre_c.GROUPREF_EXISTS):
            _reject(where, pattern, "a back-reference")
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            _flatten(av[1], where, pattern, in_repeat=True)  # no repeats inside look-arounds
            items.append(_Item(frozenset(), nullable=True, unbounded=False))
        elif op is sre_c.AT:
            items.append(_Item(frozenset(), nullable=True, unbounded=False))
        else:
            items.append(_Item(_charset(op, av), nullable=False, unbounded=False))
    return items


def _reject(where: str, pattern: str, what: str) -> None:
    raise PolicyError(
        f"{where}: pattern {pattern!r} contains {what}, which can make matching take exponential time",
        code=ErrorCode.POLICY_REGEX_UNSAFE,
    )


def _check_chain(items: list[_Item], where: str, pattern: str) -> None:
    """Reject chains of unbounded repeats that compete for the same characters.

    ``/*./*./*x`` against a long run of slashes makes a backtracking matcher try every way of
    splitting the run between the repeats: n^k work for a chain of k. A repeat stops a chain at
    a *fence* (a required item that cannot match the repeat's characters, like ``@`` after
    ``/*``); repeats in a tail that may match nothing never backtrack and do not count.
    """
    tail_start = len(items)
    while tail_start > 0 and items[tail_start - 1].nullable:
        tail_start -= 1
    for i, item in enumerate(items):
        if not item.unbounded:
            continue
        chain = 1
        for later in items[i + 1 : tail_start]:
            if not later.nullable and not _overlap(item.chars, later.chars):
                break  # fence
            if later.unbounded and _overlap(item.chars, later.chars):
                chain += 1
        if chain > _MAX_CHAIN:
            _reject(where, pattern, f"{chain} repeats competing for the same characters")


# Most compat rows are plain names (``alice@example\.com``): literal characters, escaped
# punctuation (``\.``) and ``.`` (any character), nothing else a regular expression gives meaning
# to. Those need no parse to be judged safe or indexed (a parse costs ~50 µs; 1M rows, 50 s).
_PLAIN = re.compile(r"(?:[^\^$*+?{}\[\]\\|()]|\\[^A-Za-z0-9])*")


def _plain(pattern: str) -> bool:
    return len(pattern) <= MAX_PATTERN_LENGTH and _PLAIN.fullmatch(pattern) is not None


def _plain_runs(pattern: str) -> list[str]:
    """The literal runs of a :func:`_plain` pattern: split at unescaped ``.``, escapes resolved."""
    runs: list[str] = []
    current: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            current.append(next(chars))
        elif char == ".":
            if current:
                runs.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        runs.append("".join(current))
    return runs


def check_regex(pattern: str, *, where: str = "<memory>") -> None:
    """Raise :class:`PolicyError` if ``pattern`` is invalid or could backtrack catastrophically.

    Codes: ``policy_regex_invalid``, ``policy_regex_unsafe``, ``policy_pattern_too_long``.
    """
    if _plain(pattern):  # literals, escaped punctuation and ".": always valid, nothing to backtrack on
        return
    parsed = _parse(pattern, where)
    _check_chain(_flatten(parsed, where, pattern, in_repeat=False), where, pattern)


def required_literals(pattern: str) -> list[str]:
    """Literal runs every match of a (valid) compat pattern must contain, used as index keys."""
    if _plain(pattern):  # what the parser would give, without parsing
        return _plain_runs(pattern)
    runs: list[str] = []
    current: list[str] = []
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & re.IGNORECASE:
        return []
    for op, av in parsed:
        if op is sre_c.LITERAL:
            current.append(chr(av))
            continue
        if current:
            runs.append("".join(current))
            current = []
        if (
            op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT)
            and av[0] >= 1
            and len(av[2]) == 1
            and av[2][0][0] is sre_c.LITERAL
        ):
            runs.append(chr(av[2][0][1]))
    if current:
        runs.append("".join(current))
    return runs
