"""What changes if this policy ships: the decisions that flip between two policies.

:func:`diff_policies` asks every :class:`~tokenward.policy.probes.Probe` of both policies the
way the server asks it (``act ∧ ¬deny``; client access only where the client ID has rows) and
reports the questions whose answer differs, grouped by the row responsible:

* allow → deny: a ``deny`` row that now matches, else the allowing row that no longer does;
* deny → allow: the ``deny`` row that no longer matches, else the allowing row that now does;
* client access switched on or off for a client ID (its first row appears or its last goes).

A row "matches" by its values, so moving a row to another line changes nothing. When both sides
share the model and the dialect, a question can only flip if a row present on one side only
matches it (for its action or for ``deny``); those rows form a small *delta* engine, and only the
questions it matches are answered by both policies. A dialect or model change answers all.
Pure: the caller reads the files and builds the two :class:`~tokenward.policy.bundle.Policy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.bundle import Policy, with_files
from tokenward.policy.engine import Engine, IndexedEngine
from tokenward.policy.files import CSV_FILES, MODEL_OF
from tokenward.policy.model import Rule
from tokenward.policy.patterns import Dialect
from tokenward.policy.probes import Probe, generate_probes
from tokenward.policy.questions import DENY

__all__ = ["Flip", "FlipGroup", "PolicyDiff", "RowChanges", "decide", "diff_policies", "flip_scope", "what_if"]

Decision = Literal["allow", "deny"]
Change = Literal["added", "removed", "kept", "enforcement"]
_CLIENT_APPS = "clientappspolicy.csv"


def decide(engine: Engine, probe: Probe) -> bool:
    """The server's answer to one question in one file's engine (see :mod:`.questions`)."""
    sub, dom, obj, act = probe.sub, probe.dom, probe.obj, probe.act
    if act == "clientaccess" and probe.file == _CLIENT_APPS and not engine.has_object(obj):
        return True
    if not engine.enforce(sub, dom, obj, act):
        return False
    return act == DENY or not engine.enforce(sub, dom, obj, DENY)


@dataclass(frozen=True, slots=True)
class Flip:
    """One question whose answer differs."""

    probe: Probe
    old: Decision
    new: Decision

    def to_json(self) -> dict[str, object]:
        return {"request": self.probe.to_json(), "old": self.old, "new": self.new}


@dataclass(slots=True)
class FlipGroup:
    """The flips one row (or one client-access switch) is responsible for."""

    file: str
    change: Change
    #: The responsible row and the side it was read from (``None`` for an enforcement switch).
    rule: Rule | None
    side: Literal["old", "new"] | None
    reason: str
    allow_to_deny: int = 0
    deny_to_allow: int = 0
    examples: list[Flip] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.allow_to_deny + self.deny_to_allow

    @property
    def row(self) -> str:
        return ", ".join((self.rule.ptype, *self.rule.values())) if self.rule is not None else ""

    def to_json(self) -> dict[str, object]:
        where = f"{self.side}:{self.rule.where}" if self.rule is not None and self.side else None
        return {
            "file": self.file,
            "change": self.change,
            "where": where,
            "row": self.row or None,
            "reason": self.reason,
            "count": self.count,
            "allow_to_deny": self.allow_to_deny,
            "deny_to_allow": self.deny_to_allow,
            "examples": [flip.to_json() for flip in self.examples],
        }


@dataclass(frozen=True, slots=True)
class RowChanges:
    """Rows present on one side only, per file (compared by value, not by line)."""

    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """The result of :func:`diff_policies`."""

    old_version: str
    new_version: str
    old_dialect: str
    new_dialect: str
    questions: int
    evaluated: int
    groups: tuple[FlipGroup, ...]
    rows: dict[str, RowChanges]

    @property
    def flips(self) -> int:
        return sum(group.count for group in self.groups)

    def to_json(self) -> dict[str, object]:
        return {
            "old": {"version": self.old_version, "dialect": self.old_dialect},
            "new": {"version": self.new_version, "dialect": self.new_dialect},
            "questions": self.questions,
            "evaluated": self.evaluated,
            "flips": self.flips,
            "rows": {name: {"added": c.added, "removed": c.removed} for name, c in self.rows.items()},
            "groups": [group.to_json() for group in self.groups],
        }


def _values(rule: Rule) -> tuple[str, ...]:
    return (rule.ptype, *rule.values())


def _row_sets(old: Engine, new: Engine) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    return {_values(r) for r in old.rules}, {_values(r) for r in new.rules}


class _Attributor:
    """Finds the row responsible for a flip and files the flip in its group."""

    def __init__(self, file: str, old: Engine, new: Engine, examples: int) -> None:
        self.file, self.old, self.new, self.examples = file, old, new, examples
        self.old_rows, self.new_rows = _row_sets(old, new)
        self.groups: dict[tuple[object, ...], FlipGroup] = {}

    def _group(self, rule: Rule | None, side: Literal["old", "new"] | None, reason: str) -> FlipGroup:
        if rule is None or side is None:
            key: tuple[object, ...] = ("enforcement", reason)
            change: Change = "enforcement"
        else:
            key = (side, rule.line, _values(rule))
            other = self.new_rows if side == "old" else self.old_rows
            if _values(rule) in other:
                change = "kept"
            else:
                change = "removed" if side == "old" else "added"
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = FlipGroup(self.file, change, rule, side, reason)
        return group

    def _matching(self, engine: Engine, probe: Probe, act: str) -> list[Rule]:
        return engine.matches(probe.sub, probe.dom, probe.obj, act)

    def add(self, probe: Probe, old_allowed: bool) -> None:
        group = self._responsible(probe, old_allowed)
        if old_allowed:
            group.allow_to_deny += 1
            flip = Flip(probe, "allow", "deny")
        else:
            group.deny_to_allow += 1
            flip = Flip(probe, "deny", "allow")
        if len(group.examples) < self.examples:
            group.examples.append(flip)

    def _responsible(self, probe: Probe, old_allowed: bool) -> FlipGroup:
        act = probe.act
        if act == "clientaccess" and self.file == _CLIENT_APPS:
            old_on, new_on = self.old.has_object(probe.obj), self.new.has_object(probe.obj)
            if old_on != new_on:
                state = "switched on" if new_on else "switched off"
                return self._group(None, None, f"client access for {probe.obj} is {state}")
        old_allow, new_allow = self._matching(self.old, probe, act), self._matching(self.new, probe, act)
        old_deny = self._matching(self.old, probe, DENY) if act != DENY else []
        new_deny = self._matching(self.new, probe, DENY) if act != DENY else []
        olds_a, news_a = {_values(r) for r in old_allow}, {_values(r) for r in new_allow}
        olds_d, news_d = {_values(r) for r in old_deny}, {_values(r) for r in new_deny}
        if old_allowed:
            started = [r for r in new_deny if _values(r) not in olds_d]
            if started:
                return self._group(started[0], "new", "a deny row now matches")
            stopped = [r for r in old_allow if _values(r) not in news_a]
            if stopped:
                return self._group(stopped[0], "old", "the allowing row no longer matches")
        else:
            lifted = [r for r in old_deny if _values(r) not in news_d]
            if lifted:
                return self._group(lifted[0], "old", "the deny row no longer matches")
            granted = [r for r in new_allow if _values(r) not in olds_a]
            if granted:
                return self._group(granted[0], "new", "a row now allows")
        # Only the slow path (pycasbin reports one matching row) can get here.
        return self._group(None, None, "the decision differs (the model is on the slow path)")


def _delta(file: str, old: Policy, new: Policy) -> tuple[IndexedEngine | None, frozenset[str]] | None:
    """The engine of rows present on one side only, and client IDs whose enforcement switches.

    ``None`` when the shortcut does not apply (dialect or model differ, or the slow path).
    """
    old_engine, new_engine = old.engine(file), new.engine(file)
    model = MODEL_OF[file]
    if (
        old.dialect != new.dialect
        or not isinstance(old_engine, IndexedEngine)
        or not isinstance(new_engine, IndexedEngine)
        or old.models[model].text != new.models[model].text
    ):
        return None
    old_rows, new_rows = _row_sets(old_engine, new_engine)
    changed = old_rows ^ new_rows
    rules = [r for r in (*old_engine.rules, *new_engine.rules) if _values(r) in changed]
    toggled: frozenset[str] = frozenset()
    if file == _CLIENT_APPS:
        toggled = frozenset(
            obj for obj in {r.obj for r in rules} if old_engine.has_object(obj) != new_engine.has_object(obj)
        )
    if not rules:
        return None, toggled
    return IndexedEngine(rules, shape=old_engine.shape, dialect=old.dialect), toggled


def diff_policies(
    old: Policy, new: Policy, probes: Iterable[Probe], *, examples: int = 3, full: bool = False
) -> PolicyDiff:
    """Ask every question of both policies; group the answers that differ by responsible row.

    Duplicate questions are asked once; examples come in the order the questions were given.
    Raises :class:`~tokenward.errors.PolicyError` for a question the engines refuse (a value
    longer than :data:`~.patterns.MAX_VALUE_LENGTH`). ``full`` answers every question through
    both policies, without the delta index (the same result, slower; for tests and benchmarks).
    """
    by_file: dict[str, dict[Probe, None]] = {name: {} for name in CSV_FILES}
    for probe in probes:
        asked = by_file.get(probe.file)
        if asked is None:
            raise PolicyError(f"unknown policy file {probe.file!r} in a question", code=ErrorCode.POLICY_FILE_UNKNOWN)
        asked[probe] = None
    groups: list[FlipGroup] = []
    rows: dict[str, RowChanges] = {}
    evaluated = 0
    for file in CSV_FILES:
        old_engine, new_engine = old.engine(file), new.engine(file)
        old_rows, new_rows = _row_sets(old_engine, new_engine)
        rows[file] = RowChanges(added=len(new_rows - old_rows), removed=len(old_rows - new_rows))
        asked = by_file[file]
        if not asked:
            continue
        delta = None if full else _delta(file, old, new)
        if delta is not None and delta[0] is None and not delta[1]:
            continue  # same rows, same model, same dialect: nothing in this file can flip
        attributor = _Attributor(file, old_engine, new_engine, examples)
        evaluated += _ask(asked, old_engine, new_engine, delta, attributor)
        groups.extend(attributor.groups.values())
    groups.sort(key=lambda g: (-g.count, g.file, g.rule.line if g.rule else 0, g.reason))
    return PolicyDiff(
        old_version=old.version,
        new_version=new.version,
        old_dialect=old.dialect,
        new_dialect=new.dialect,
        questions=sum(len(asked) for asked in by_file.values()),
        evaluated=evaluated,
        groups=tuple(groups),
        rows=rows,
    )


def _ask(
    asked: Iterable[Probe],
    old: Engine,
    new: Engine,
    delta: tuple[IndexedEngine | None, frozenset[str]] | None,
    attributor: _Attributor,
) -> int:
    """Answer the questions (through the delta filter when there is one); return how many."""
    evaluated = 0
    if delta is None:
        touched: Iterable[Probe] = asked
    else:
        engine, toggled = delta
        probe_delta = engine.enforce if engine is not None else None
        touched = [
            p
            for p in asked
            if (p.obj in toggled and p.act == "clientaccess")
            or (
                probe_delta is not None
                and (probe_delta(p.sub, p.dom, p.obj, p.act) or probe_delta(p.sub, p.dom, p.obj, DENY))
            )
        ]
    for probe in touched:
        evaluated += 1
        before = decide(old, probe)
        if before != decide(new, probe):
            attributor.add(probe, before)
    return evaluated


def flip_scope(old: Policy, new: Policy) -> set[tuple[str, str]]:
    """The ``(file, obj)`` pairs where a question can flip: objects of rows on one side only, or
    every object of a file whose dialect or model differs. Generation needs no other rows."""
    scope: set[tuple[str, str]] = set()
    for file in CSV_FILES:
        old_engine, new_engine = old.engine(file), new.engine(file)
        if old_engine is new_engine:
            continue
        delta = _delta(file, old, new)
        if delta is None:
            scope.update((file, rule.obj) for rule in (*old_engine.rules, *new_engine.rules))
        elif delta[0] is not None:
            scope.update((file, rule.obj) for rule in delta[0].rules)
    return scope


def what_if(
    policy: Policy,
    changes: Mapping[str, bytes],
    *,
    dialect: Dialect | None = None,
    recorded: Iterable[Probe] = (),
    examples: int = 3,
) -> PolicyDiff:
    """What replacing some files of ``policy`` (or its dialect) would flip: recorded questions
    first, then questions generated from the rows that can flip. Raises ``PolicyError``."""
    changed = with_files(policy, changes, dialect=dialect)
    probes = [*recorded, *generate_probes(policy, changed, objects=flip_scope(policy, changed))]
    return diff_policies(policy, changed, probes, examples=examples)
