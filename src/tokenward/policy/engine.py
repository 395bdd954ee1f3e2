"""Decide ``(sub, dom, obj, act)`` against one policy file without scanning its rows.

:class:`IndexedEngine` serves the supported model shape (:mod:`.model`):

* rows whose ``sub`` and ``dom`` are both literal live in one hash table keyed by the
  whole request — a decision is one dict lookup;
* every other row is filed under its ``(obj, act)`` bucket and, inside it, under the most
  selective key one of its columns offers: the literal value, a literal e-mail/host suffix or
  prefix cut at ``@``/``.`` (glob), or the rarest trigram of a literal the regex requires
  (compat). A request probes only the keys its own values produce, then verifies the few
  candidates with the row's compiled matcher. Rows with no key at all (``/*@/*./*``) are
  scanned; realistic policies have a handful.

:class:`CasbinEngine` is the slow path for other models: pycasbin evaluates every row.
Both answer :meth:`enforce`, :meth:`matches` (all matching rows, for explain) and
:meth:`actions` (every ``act`` granted, for scopes).
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, Protocol

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.model import ModelShape, PolicyModel, Rule
from tokenward.policy.patterns import (
    BOUNDARY,
    MAX_VALUE_LENGTH,
    Dialect,
    compile_compat,
    glob_match,
    glob_segments,
    required_literals,
)

__all__ = ["CasbinEngine", "Engine", "IndexedEngine", "MatcherCache", "build_engine"]

logger = logging.getLogger("tokenward.policy")

_Match = Callable[[str], bool]
_GRAM = 3
#: Compiled row-side matchers by (dialect, pattern, modes). Matchers are pure, so one compiled
#: pattern serves every row that repeats it; a cache shared between two builds (``policy diff``'s
#: OLD and NEW) compiles each pattern once for both.
MatcherCache = MutableMapping[tuple[str, str, frozenset[str]], tuple[_Match, str | None]]


class Engine(Protocol):
    """What the questions need from one policy file's engine."""

    rules: Sequence[Rule]
    fast: bool

    def enforce(self, sub: str, dom: str, obj: str, act: str) -> bool: ...

    def matches(self, sub: str, dom: str, obj: str, act: str) -> list[Rule]: ...

    def actions(self, sub: str, dom: str, obj: str) -> set[str]: ...

    def has_object(self, obj: str) -> bool: ...


def _check_value(value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH:
        raise PolicyError(f"value longer than {MAX_VALUE_LENGTH} characters", code=ErrorCode.POLICY_VALUE_TOO_LONG)


class _Entry:
    __slots__ = ("dom_ok", "rule", "sub_ok")

    def __init__(self, rule: Rule, sub_ok: _Match, dom_ok: _Match) -> None:
        self.rule, self.sub_ok, self.dom_ok = rule, sub_ok, dom_ok


class _Postings:
    """Entries keyed on one column: by literal value, suffix, prefix or trigram."""

    __slots__ = ("eq", "gram", "pre", "suf")

    def __init__(self) -> None:
        self.eq: dict[str, list[_Entry]] = {}
        self.pre: dict[str, list[_Entry]] = {}
        self.suf: dict[str, list[_Entry]] = {}
        self.gram: dict[str, list[_Entry]] = {}

    def candidates(self, value: str) -> Iterable[list[_Entry]]:
        if self.eq:
            hit = self.eq.get(value)
            if hit:
                yield hit
        if self.suf:
            suf = self.suf
            for mark in "@.":
                cut = value.find(mark)
                while cut >= 0:
                    if hit := suf.get(value[cut:]):
                        yield hit
                    cut = value.find(mark, cut + 1)
        if self.pre:
            pre = self.pre
            for mark in "@.":
                cut = value.find(mark)
                while cut >= 0:
                    if hit := pre.get(value[: cut + 1]):
                        yield hit
                    cut = value.find(mark, cut + 1)
        if self.gram:
            grams = {value[i : i + _GRAM] for i in range(len(value) - _GRAM + 1)}
            gram = self.gram
            for key in gram.keys() & grams:
                yield gram[key]


class _Bucket:
    __slots__ = ("on_dom", "on_sub", "scan")

    def __init__(self) -> None:
        self.on_sub = _Postings()
        self.on_dom = _Postings()
        self.scan: list[_Entry] = []


def _glob_key(pattern: str) -> tuple[str, str] | None:
    """The best index key of a glob pattern with wildcards: ("suf"|"pre", key) or None."""
    segments = glob_segments(pattern)
    first, last = segments[0], segments[-1]
    suffix = next((last[i:] for i, c in enumerate(last) if c in BOUNDARY), "")
    cut = max((i for i, c in enumerate(first) if c in BOUNDARY), default=-1)
    prefix = first[: cut + 1]
    if not suffix and not prefix:
        return None
    return ("suf", suffix) if len(suffix) >= len(prefix) else ("pre", prefix)


class IndexedEngine:
    """The fast engine for one policy file of the supported model shape."""

    fast = True

    def __init__(
        self, rules: Sequence[Rule], *, shape: ModelShape, dialect: Dialect, matchers: MatcherCache | None = None
    ) -> None:
        self.rules = rules
        self.dialect: Dialect = dialect
        self.shape = shape
        self._fold = dialect == "glob"
        self._pairs: dict[tuple[str, str, str, str], Rule | list[Rule]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._acts: dict[str, set[str]] = defaultdict(set)
        self._build(rules, {} if matchers is None else matchers)

    # ------------------------------------------------------------------ build

    def _matcher(self, pattern: str, modes: frozenset[str], where: str) -> tuple[_Match, str | None]:
        """The row-side matcher for one column and its literal key (None if it has none)."""
        if self._fold:
            folded = pattern.casefold()
            if "re" not in modes:
                return folded.__eq__, folded
            segments = glob_segments(pattern)
            if len(segments) == 1:
                return folded.__eq__, folded
            return (lambda value: glob_match(segments, value)), None
        if "re" not in modes:
            return pattern.__eq__, pattern
        search = compile_compat(pattern, where=where).search
        if "eq" in modes:
            return (lambda value: value == pattern or search(value) is not None), None
        return (lambda value: search(value) is not None), None

    def _cached(
        self, cache: MatcherCache, pattern: str, modes: frozenset[str], rule: Rule
    ) -> tuple[_Match, str | None]:
        key = (self.dialect, pattern, modes)
        found = cache.get(key)
        if found is None:
            found = cache[key] = self._matcher(pattern, modes, rule.where)
        return found

    def _build(self, rules: Sequence[Rule], cache: MatcherCache) -> None:
        shape = self.shape
        pending: list[tuple[_Entry, str | None, str | None]] = []
        for rule in rules:
            sub_ok, sub_lit = self._cached(cache, rule.sub, shape.sub, rule)
            dom_ok, dom_lit = self._cached(cache, rule.dom, shape.dom, rule)
            self._acts[rule.obj].add(rule.act)
            if sub_lit is not None and dom_lit is not None:
                key = (rule.obj, rule.act, sub_lit, dom_lit)
                known = self._pairs.get(key)
                if known is None:
                    self._pairs[key] = rule
                elif isinstance(known, list):
                    known.append(rule)
                else:
                    self._pairs[key] = [known, rule]
                continue
            pending.append((_Entry(rule, sub_ok, dom_ok), sub_lit, dom_lit))
        grams = self._gram_choices(pending) if not self._fold else {}
        for entry, sub_lit, dom_lit in pending:
            rule = entry.rule
            bucket = self._buckets.get((rule.obj, rule.act))
            if bucket is None:
                bucket = self._buckets[(rule.obj, rule.act)] = _Bucket()
            if not self._file(entry, bucket.on_sub, rule.sub, sub_lit, shape.sub, grams.get((id(entry), "sub"))):
                if not self._file(entry, bucket.on_dom, rule.dom, dom_lit, shape.dom, grams.get((id(entry), "dom"))):
                    bucket.scan.append(entry)

    def _file(
        self,
        entry: _Entry,
        postings: _Postings,
        pattern: str,
        literal: str | None,
        modes: frozenset[str],
        gram: str | None,
    ) -> bool:
        """Post ``entry`` under every key needed to find it through this column; False if impossible."""
        if literal is not None:
            postings.eq.setdefault(literal, []).append(entry)
            return True
        if self._fold:
            key = _glob_key(pattern)
            if key is None:
                return False
            table = postings.suf if key[0] == "suf" else postings.pre
            table.setdefault(key[1], []).append(entry)
            return True
        if gram is None:
            return False
        postings.gram.setdefault(gram, []).append(entry)
        if "eq" in modes:  # r.X == p.X also matches when the regex does not
            postings.eq.setdefault(pattern, []).append(entry)
        return True

    @staticmethod
    def _gram_choices(pending: list[tuple[_Entry, str | None, str | None]]) -> dict[tuple[int, str], str]:
        """For compat rows: the rarest trigram of a literal each column's regex requires."""
        options: dict[tuple[int, str], set[str]] = {}
        counts: Counter[str] = Counter()
        for entry, _, _ in pending:
            for column, pattern in (("sub", entry.rule.sub), ("dom", entry.rule.dom)):
                found = {run[i : i + _GRAM] for run in required_literals(pattern) for i in range(len(run) - _GRAM + 1)}
                if found:
                    options[(id(entry), column)] = found
                    counts.update(found)
        return {key: min(found, key=lambda g: (counts[g], g)) for key, found in options.items()}

    # ---------------------------------------------------------------- decide

    def _normal(self, sub: str, dom: str) -> tuple[str, str]:
        if len(sub) > MAX_VALUE_LENGTH or len(dom) > MAX_VALUE_LENGTH:
            _check_value(sub)
            _check_value(dom)
        if self._fold:
            return sub.casefold(), dom.casefold()
        return sub, dom

    def _entries(self, bucket: _Bucket, sub: str, dom: str) -> Iterable[list[_Entry]]:
        yield from bucket.on_sub.candidates(sub)
        yield from bucket.on_dom.candidates(dom)
        if bucket.scan:
            yield bucket.scan

    def enforce(self, sub: str, dom: str, obj: str, act: str) -> bool:
        """Whether any row allows the request."""
        sub, dom = self._normal(sub, dom)
        if (obj, act, sub, dom) in self._pairs:
            return True
        bucket = self._buckets.get((obj, act))
        if bucket is None:
            return False
        for entries in self._entries(bucket, sub, dom):
            for entry in entries:
                if entry.sub_ok(sub) and entry.dom_ok(dom):
                    return True
        return False

    def matches(self, sub: str, dom: str, obj: str, act: str) -> list[Rule]:
        """Every row that allows the request, in file order."""
        sub, dom = self._normal(sub, dom)
        found: dict[int, Rule] = {}
        pair = self._pairs.get((obj, act, sub, dom))
        for rule in [pair] if isinstance(pair, Rule) else pair or []:
            found[id(rule)] = rule
        bucket = self._buckets.get((obj, act))
        if bucket is not None:
            for entries in self._entries(bucket, sub, dom):
                for entry in entries:
                    if entry.sub_ok(sub) and entry.dom_ok(dom):
                        found[id(entry.rule)] = entry.rule
        return sorted(found.values(), key=lambda rule: (rule.file, rule.line))

    def actions(self, sub: str, dom: str, obj: str) -> set[str]:
        """Every ``act`` some row grants to ``(sub, dom, obj)``."""
        return {act for act in self._acts.get(obj, ()) if self.enforce(sub, dom, obj, act)}

    def has_object(self, obj: str) -> bool:
        return obj in self._acts

    def field_matches(self, rule: Rule, sub: str, dom: str) -> tuple[bool, bool]:
        """Whether ``rule``'s sub and dom columns match the request (for explain's near misses)."""
        sub, dom = self._normal(sub, dom)
        sub_ok, _ = self._matcher(rule.sub, self.shape.sub, rule.where)
        dom_ok, _ = self._matcher(rule.dom, self.shape.dom, rule.where)
        return sub_ok(sub), dom_ok(dom)


class CasbinEngine:
    """The slow path: pycasbin evaluates the model for every row (any model pycasbin accepts)."""

    fast = False

    def __init__(self, rules: Sequence[Rule], *, model: PolicyModel, dialect: Dialect) -> None:
        import casbin
        from casbin.persist.adapter import Adapter

        rows_by_type: dict[str, list[list[str]]] = defaultdict(list)
        for rule in rules:
            rows_by_type[rule.ptype].append(list(rule.values()))

        class _Rows(Adapter):  # type: ignore[misc]
            def load_policy(self, casbin_model: Any) -> None:
                for ptype, rows in rows_by_type.items():
                    casbin_model.add_policies(ptype[0], ptype, rows)

        self.rules = rules
        self.dialect: Dialect = dialect
        self._by_values = {(rule.ptype, *rule.values()): rule for rule in rules}
        self._acts: dict[str, set[str]] = defaultdict(set)
        for rule in rules:
            self._acts[rule.obj].add(rule.act)
        try:  # pycasbin raises bare RuntimeErrors (e.g. "unsupported effect") while building, too
            enforcer = casbin.Enforcer(model.casbin_model(), _Rows())
            enforcer.add_function("regexMatch", _casbin_regex(dialect))
            enforcer.enforce("", "", "", "")
        except Exception as exc:
            raise PolicyError(
                f"{model.file}:0: model cannot be evaluated ({exc})", code=ErrorCode.POLICY_MODEL_INVALID
            ) from None
        self._enforcer = enforcer

    def enforce(self, sub: str, dom: str, obj: str, act: str) -> bool:
        _check_value(sub)
        _check_value(dom)
        return bool(self._enforcer.enforce(sub, dom, obj, act))

    def matches(self, sub: str, dom: str, obj: str, act: str) -> list[Rule]:
        allowed, explain = self._enforcer.enforce_ex(sub, dom, obj, act)
        rule = self._by_values.get(("p", *explain)) if allowed and explain else None
        return [rule] if rule is not None else []

    def actions(self, sub: str, dom: str, obj: str) -> set[str]:
        return {act for act in self._acts.get(obj, ()) if self.enforce(sub, dom, obj, act)}

    def has_object(self, obj: str) -> bool:
        return obj in self._acts


def _casbin_regex(dialect: Dialect) -> Callable[[str, str], bool]:
    """``regexMatch`` as the dialect means it (compat: unanchored search, as Casbin.NET)."""
    if dialect == "compat":
        return lambda value, pattern: re.search(pattern, value) is not None
    return lambda value, pattern: glob_match(glob_segments(pattern), value.casefold())


def build_engine(
    model: PolicyModel, rules: Sequence[Rule], *, dialect: Dialect, file: str, matchers: MatcherCache | None = None
) -> Engine:
    """The fast engine when the model has the supported shape, otherwise pycasbin with a warning."""
    if model.shape is not None:
        return IndexedEngine(rules, shape=model.shape, dialect=dialect, matchers=matchers)
    logger.warning("%s: %s uses pycasbin, the slow path (%s); decisions scan every row", file, model.file, model.reason)
    return CasbinEngine(rules, model=model, dialect=dialect)
