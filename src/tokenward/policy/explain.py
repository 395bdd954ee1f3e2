"""Why a check was allowed or denied: the deciding rows with file:line, and near misses.

:func:`explain` is pure and returns an :class:`Explanation`; its :meth:`~Explanation.to_json`
is what the admin API endpoint returns and ``tokenward policy check`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.bundle import Policy
from tokenward.policy.engine import IndexedEngine
from tokenward.policy.files import CSV_FILES
from tokenward.policy.model import Rule
from tokenward.policy.questions import DENY, route
from tokenward.policy.segments import require

__all__ = ["Explanation", "NearMiss", "explain"]

_NEAR_MISS_LIMIT = 5
_NEAR_MISS_SCAN = 50_000


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A row that differs from the request in exactly one field."""

    rule: Rule
    field: str

    def to_json(self) -> dict[str, object]:
        return {"row": _row(self.rule), "mismatch": self.field}


@dataclass(frozen=True, slots=True)
class Explanation:
    """The decision on one ``(sub, dom, obj, act)`` request and the rows behind it."""

    request: tuple[str, str, str, str]
    file: str
    decision: Literal["allow", "deny"]
    reason: str
    allowed_by: tuple[Rule, ...] = ()
    denied_by: tuple[Rule, ...] = ()
    near_misses: tuple[NearMiss, ...] = field(default=())
    version: str = ""
    dialect: str = ""

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_json(self) -> dict[str, object]:
        """A JSON-serialisable dict (the admin explain endpoint's body)."""
        sub, dom, obj, act = self.request
        return {
            "decision": self.decision,
            "request": {"sub": sub, "dom": dom, "obj": obj, "act": act},
            "file": self.file,
            "reason": self.reason,
            "allowed_by": [_row(rule) for rule in self.allowed_by],
            "denied_by": [_row(rule) for rule in self.denied_by],
            "near_misses": [miss.to_json() for miss in self.near_misses],
            "policy_version": self.version,
            "dialect": self.dialect,
        }


def _row(rule: Rule) -> dict[str, object]:
    return {"where": rule.where, "row": ", ".join((rule.ptype, *rule.values()))}


def _near_misses(engine: IndexedEngine, sub: str, dom: str, obj: str, act: str) -> tuple[NearMiss, ...]:
    found: list[NearMiss] = []
    scanned = 0
    for rule in engine.rules:
        if rule.act != act:
            continue
        scanned += 1
        if scanned > _NEAR_MISS_SCAN or len(found) >= _NEAR_MISS_LIMIT:
            break
        sub_ok, dom_ok = engine.field_matches(rule, sub, dom)
        failing = [name for name, ok in (("sub", sub_ok), ("dom", dom_ok), ("obj", rule.obj == obj)) if not ok]
        if len(failing) == 1:
            found.append(NearMiss(rule, failing[0]))
    return tuple(found)


def explain(policy: Policy, sub: str, dom: str, obj: str, act: str, *, file: str | None = None) -> Explanation:
    """Decide ``act`` ∧ ¬``deny`` for the request in ``file`` (default: routed by action/subject)."""
    if file is None:
        file, segment = route(sub, obj, act)
        if segment is not None:
            require(policy.segments, segment)
    elif file not in CSV_FILES:
        raise PolicyError(f"unknown policy file {file!r}", code=ErrorCode.POLICY_FILE_UNKNOWN)
    engine = policy.engine(file)
    common = {"request": (sub, dom, obj, act), "file": file, "version": policy.version, "dialect": policy.dialect}
    if act == "clientaccess" and file == "clientappspolicy.csv" and not engine.has_object(obj):
        reason = f"client access is not enforced: {file} has no rows for {obj}"
        return Explanation(decision="allow", reason=reason, **common)  # type: ignore[arg-type]
    allowed_by = tuple(engine.matches(sub, dom, obj, act))
    denied_by = tuple(engine.matches(sub, dom, obj, DENY)) if act != DENY else ()
    if denied_by:
        reason = f"a deny row matches, and deny wins over {len(allowed_by)} allowing row(s)"
        decision: Literal["allow", "deny"] = "deny"
    elif allowed_by:
        reason = f"{len(allowed_by)} row(s) allow and no deny row matches"
        decision = "allow"
    else:
        decision = "deny"
        if not engine.rules:
            reason = f"{file} has no rows" + ("" if file in policy.present else " (file absent)")
        else:
            reason = f"no row in {file} matches all of sub, dom, obj={obj!r}, act={act!r}"
    misses = (
        _near_misses(engine, sub, dom, obj, act) if decision == "deny" and isinstance(engine, IndexedEngine) else ()
    )
    return Explanation(
        decision=decision,
        reason=reason,
        allowed_by=allowed_by,
        denied_by=denied_by,
        near_misses=misses,
        **common,  # type: ignore[arg-type]
    )
