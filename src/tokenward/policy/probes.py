"""The questions a policy diff asks: generated from the rows, read from a file, or recorded.

A :class:`Probe` is one raw question ``(sub, dom, obj, act)`` and the CSV file that answers it.
:func:`generate_probes` covers every row of the policies it is given: each row's ``sub`` and
``dom`` patterns are turned into concrete values (:func:`instances`) — the literal itself, each
wildcard filled with nothing (the boundary), one character and a dotted name, the value with a
character before or after it, with its first dot replaced (which separates the two dialects)
and, in compat, upper-cased. A ``deny`` row is asked with every other action its object is asked with.
:func:`parse_requests` reads the ``--requests`` file format (JSON lines or CSV rows), which is
also what the decision log exports. Everything here is pure.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from re import _constants as sre_c  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, NamedTuple

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.bundle import Policy
from tokenward.policy.files import CSV_FILES
from tokenward.policy.lint import KNOWN_ACTIONS
from tokenward.policy.model import Rule
from tokenward.policy.patterns import MAX_VALUE_LENGTH, Dialect, check_regex
from tokenward.policy.questions import DEFAULT_SCOPE, DENY, route

__all__ = ["MAX_REQUEST_LINES", "Probe", "generate_probes", "instances", "parse_requests"]

#: Most questions a ``--requests`` file may hold.
MAX_REQUEST_LINES = 5_000_000
_FIELDS = ("sub", "dom", "obj", "act")
_WILDCARD = re.compile(r"/?\*")
_PLAIN = re.compile(r"(?:[^\^$*+?{}\[\]\\|()]|\\[^A-Za-z0-9])*")
_FILLS = ("", "x", "x.y")


class Probe(NamedTuple):
    """One question: the file that answers it and its four fields."""

    file: str
    sub: str
    dom: str
    obj: str
    act: str

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "sub": self.sub, "dom": self.dom, "obj": self.obj, "act": self.act}

    def text(self) -> str:
        return f"{self.sub}, {self.dom}, {self.obj}, {self.act}"


# ------------------------------------------------------------------------------- instances


def _regex_example(parsed: Any, extra: int) -> str | None:
    """A string the parsed regex matches: repeats taken ``low + extra`` times (None if unsure)."""
    out: list[str] = []
    for op, av in parsed:
        if op is sre_c.LITERAL:
            out.append(chr(av))
        elif op is sre_c.NOT_LITERAL:
            out.append("y" if av == ord("x") else "x")
        elif op is sre_c.ANY:
            out.append("x")
        elif op is sre_c.IN:
            first = _class_example(av)
            if first is None:
                return None
            out.append(first)
        elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            low, high, body = av
            piece = _regex_example(body, extra)
            if piece is None:
                return None
            out.append(piece * min(low + extra, high, 4))
        elif op is sre_c.SUBPATTERN:
            piece = _regex_example(av[-1], extra)
            if piece is None:
                return None
            out.append(piece)
        elif op is sre_c.BRANCH:
            piece = _regex_example(av[1][0], extra)
            if piece is None:
                return None
            out.append(piece)
        elif op is sre_c.AT:
            continue
        else:
            return None
    return "".join(out)


def _class_example(items: Any) -> str | None:
    for op, av in items:
        if op is sre_c.NEGATE:
            return None
        if op is sre_c.LITERAL:
            return chr(av)
        if op is sre_c.RANGE:
            return chr(av[0])
        if op is sre_c.CATEGORY:
            return {sre_c.CATEGORY_DIGIT: "0", sre_c.CATEGORY_SPACE: " "}.get(av, "x")
    return None


def _bases(pattern: str, dialect: Dialect) -> list[str]:
    if dialect == "glob":
        pieces = _WILDCARD.split(pattern)
        if len(pieces) == 1:
            return [pattern]
        return [fill.join(pieces) for fill in ("x", *_FILLS)]
    if _PLAIN.fullmatch(pattern):
        return [re.sub(r"\\(.)", r"\1", pattern)]
    try:
        check_regex(pattern)
        parsed = sre_parse.parse(pattern)
    except (PolicyError, re.error):
        return [pattern]
    found = [example for extra in (1, 0) if (example := _regex_example(parsed, extra)) is not None]
    # The same pattern read as a glob: what its author probably meant (``/*@example\.com``).
    found.append("x".join(_WILDCARD.split(pattern.replace("\\", ""))))
    return found


def instances(pattern: str, dialect: Dialect) -> list[str]:
    """Concrete values around ``pattern``: matches, boundary matches and near misses.

    The first value is the pattern's main example; the list has no duplicates and no value
    longer than a question may carry.
    """
    bases = _bases(pattern, dialect)
    main = bases[0]
    dotted = main.replace(".", "X", 1)
    values = [*bases, "x" + main, main + "x", dotted, pattern]
    if dialect == "compat":  # glob case-folds: an upper-case copy would ask the same question again
        values.append(main.upper())
    seen: dict[str, None] = {}
    for value in values:
        if value and len(value) <= MAX_VALUE_LENGTH:
            seen.setdefault(value, None)
    return list(seen)


# ------------------------------------------------------------------------------- generation


def _other_actions(policies: Iterable[Policy], file: str) -> dict[str, frozenset[str]]:
    acts: dict[str, set[str]] = defaultdict(set)
    for policy in policies:
        for rule in policy.engine(file).rules:
            acts[rule.obj].add(rule.act)
    known = KNOWN_ACTIONS.get(file, frozenset({DEFAULT_SCOPE}))
    return {obj: frozenset((found | known) - {DENY}) for obj, found in acts.items()}


def _row_probes(rule: Rule, dialect: Dialect, acts: Collection[str], file: str) -> Iterator[Probe]:
    subs = instances(rule.sub, dialect)
    doms = instances(rule.dom, dialect)
    pairs = dict.fromkeys([*((sub, doms[0]) for sub in subs), *((subs[0], dom) for dom in doms)])
    for act in sorted(acts):
        for sub, dom in pairs:
            yield Probe(file, sub, dom, rule.obj, act)


def generate_probes(
    *policies: Policy,
    files: Collection[str] = CSV_FILES,
    objects: Collection[tuple[str, str]] | None = None,
) -> list[Probe]:
    """Questions that cover every row of every policy given (each in its own dialect), in row order.

    ``objects``, when given, limits generation to rows whose ``(file, obj)`` is in it: a diff
    passes the objects its changed rows touch, since no other question can flip.
    """
    probes: dict[Probe, None] = {}
    for file in files:
        other = _other_actions(policies, file)
        for policy in policies:
            for rule in policy.engine(file).rules:
                if objects is not None and (file, rule.obj) not in objects:
                    continue
                acts = other.get(rule.obj, frozenset()) if rule.act == DENY else (rule.act,)
                probes.update(dict.fromkeys(_row_probes(rule, policy.dialect, acts or (rule.act,), file)))
    return list(probes)


# ------------------------------------------------------------------------------- requests file


def _bad(source: str, number: int, message: str) -> PolicyError:
    return PolicyError(f"{source}:{number}: {message}", code=ErrorCode.POLICY_REQUESTS_INVALID)


def _probe(fields: list[str], file: str | None, source: str, number: int) -> Probe:
    for name, value in zip(_FIELDS, fields, strict=True):
        if not value:
            raise _bad(source, number, f"{name} is empty")
        if len(value) > MAX_VALUE_LENGTH:
            raise _bad(source, number, f"{name} is longer than {MAX_VALUE_LENGTH} characters")
    sub, dom, obj, act = fields
    if file is None:
        file = route(sub, obj, act).file
    elif file not in CSV_FILES:
        raise _bad(source, number, f"unknown policy file {file!r}; use one of {', '.join(CSV_FILES)}")
    return Probe(file, sub, dom, obj, act)


def _json_line(line: str, source: str, number: int) -> Probe:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _bad(source, number, f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise _bad(source, number, "a JSON line must be an object with sub, dom, obj, act")
    fields: list[str] = []
    for name in _FIELDS:
        value = record.get(name)
        if not isinstance(value, str):
            raise _bad(source, number, f"field {name!r} is missing or not a string")
        fields.append(value)
    file = record.get("file")
    if file is not None and not isinstance(file, str):
        raise _bad(source, number, "field 'file' is not a string")
    return _probe(fields, file, source, number)


def parse_requests(text: str, *, source: str = "requests") -> list[Probe]:
    """Questions from a ``--requests`` file; errors name ``source:line`` (``policy_requests_invalid``).

    Each non-blank line that does not start with ``#`` is either a JSON object
    ``{"sub", "dom", "obj", "act", "file"?}`` (the decision log's export) or a CSV row
    ``sub, dom, obj, act`` optionally preceded by the CSV file name. Without a file the question
    is routed as ``tokenward policy check`` routes it.
    """
    probes: list[Probe] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(probes) >= MAX_REQUEST_LINES:
            raise _bad(source, number, f"more than {MAX_REQUEST_LINES} questions")
        if line.startswith("{"):
            probes.append(_json_line(line, source, number))
            continue
        fields = [field.strip(" \t") for field in line.split(",")]
        if len(fields) == 5:
            probes.append(_probe(fields[1:], fields[0], source, number))
        elif len(fields) == 4:
            probes.append(_probe(fields, None, source, number))
        else:
            found = f"found {len(fields)} fields"
            raise _bad(source, number, f"expected 'sub, dom, obj, act' (optionally after a file name), {found}")
    return probes
