"""Policy rows and the Casbin model that gives them meaning.

A model file (``model.conf``, ``captchamodel.conf``) is parsed by pycasbin, which stays the
authority on the Casbin syntax. We then recognise the one *shape* tokenward indexes
(docs/policies.md, "Two pattern dialects")::

    r = sub, dom, obj, act
    p = sub, dom, obj, act
    e = some(where (p.eft == allow))
    m = regexMatch(r.sub, p.sub) && (r.dom == p.dom || regexMatch(r.dom, p.dom)) && r.obj == p.obj && r.act == p.act

``sub`` and ``dom`` may each be compared by equality, by ``regexMatch`` or by either (in any
order, conjuncts in any order); ``obj`` and ``act`` by equality. Anything else — roles,
``eval()``, other functions, other effects — is an *unsupported shape*: it still works, through
pycasbin, on the slow path (see :mod:`tokenward.policy.engine`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError

__all__ = [
    "DEFAULT_MODEL",
    "FIELDS",
    "MatchMode",
    "ModelShape",
    "PolicyModel",
    "Rule",
    "parse_model",
]

FIELDS = ("sub", "dom", "obj", "act")

#: The model every tokenward sample ships and the one used when ``model.conf`` is absent.
DEFAULT_MODEL = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = regexMatch(r.sub, p.sub) && (r.dom == p.dom || regexMatch(r.dom, p.dom)) && r.obj == p.obj && r.act == p.act
"""

MatchMode = Literal["eq", "re"]


class Rule(NamedTuple):
    """One policy row: ``p, sub, dom, obj, act`` and where it was written.

    A named tuple rather than a dataclass: a million of them are built on every load.
    """

    sub: str
    dom: str
    obj: str
    act: str
    file: str = "<memory>"
    line: int = 0
    ptype: str = "p"
    #: Every field, for rows of an unsupported model whose arity is not four.
    extra: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """``file:line`` of the row, for messages."""
        return f"{self.file}:{self.line}"

    def values(self) -> tuple[str, ...]:
        """The row's fields after the ptype, as pycasbin sees them."""
        return self.extra or (self.sub, self.dom, self.obj, self.act)


@dataclass(frozen=True, slots=True)
class ModelShape:
    """How ``sub`` and ``dom`` are compared in a supported model (``obj``/``act`` are exact)."""

    sub: frozenset[MatchMode]
    dom: frozenset[MatchMode]


@dataclass(frozen=True, slots=True)
class PolicyModel:
    """A parsed model file. ``shape`` is ``None`` when only pycasbin can evaluate it."""

    text: str
    file: str
    shape: ModelShape | None
    policy_tokens: tuple[str, ...]
    reason: str = ""

    def casbin_model(self) -> Any:
        """A fresh pycasbin ``Model`` of this text (used by the slow path and by tests)."""
        from casbin.model import Model

        model = Model()
        model.load_model_from_text(self.text)
        return model


_PARSE_LINE = re.compile(r"line (\d+)")
# pycasbin rewrites ``r.sub`` to ``r_sub`` when it loads a matcher; accept both spellings.
_EQ = re.compile(r"^r[._]([a-z]+)==p[._]([a-z]+)$")
_RE = re.compile(r"^regexMatch\(r[._]([a-z]+),p[._]([a-z]+)\)$")
_SUPPORTED_EFFECT = "some(where(p.eft==allow))"


def _line_of(text: str, prefix: str) -> int:
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip().replace(" ", "").startswith(prefix):
            return number
    return 1


def _strip_parens(term: str) -> str:
    while term.startswith("(") and term.endswith(")") and _balanced(term[1:-1]):
        term = term[1:-1]
    return term


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _split_top(expr: str, op: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(expr):
        char = expr[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and expr.startswith(op, i):
            parts.append(expr[start:i])
            start = i + len(op)
            i += len(op)
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _shape_of_matcher(matcher: str) -> ModelShape | str:
    """The shape of a matcher, or a sentence saying why it is not the supported one."""
    expr = _strip_parens(re.sub(r"\s+", "", matcher))
    modes: dict[str, set[MatchMode]] = {}
    for conjunct in _split_top(expr, "&&"):
        field: str | None = None
        found: set[MatchMode] = set()
        for term in _split_top(_strip_parens(conjunct), "||"):
            term = _strip_parens(term)
            eq, rx = _EQ.match(term), _RE.match(term)
            hit = eq or rx
            if hit is None or hit.group(1) != hit.group(2) or hit.group(1) not in FIELDS:
                return f"matcher term {term!r} is not r.X == p.X or regexMatch(r.X, p.X)"
            if field is not None and hit.group(1) != field:
                return f"matcher mixes fields in {conjunct!r}"
            field = hit.group(1)
            found.add("eq" if eq else "re")
        if field is None or field in modes:
            return f"field {field!r} compared twice"
        modes[field] = found
    if set(modes) != set(FIELDS):
        return "matcher does not compare all of sub, dom, obj, act"
    if modes["obj"] != {"eq"} or modes["act"] != {"eq"}:
        return "obj and act must be compared with =="
    return ModelShape(sub=frozenset(modes["sub"]), dom=frozenset(modes["dom"]))


def parse_model(text: str, *, file: str = "model.conf") -> PolicyModel:
    """Parse a Casbin model; raise :class:`PolicyError` (``policy_model_invalid``) with file:line.

    The result says whether the fast engine can evaluate it (``shape``) or why not (``reason``).
    """
    from casbin.model import Model

    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # pycasbin raises bare RuntimeError/IndexError with a line number
        found = _PARSE_LINE.search(str(exc))
        line = int(found.group(1)) if found else 1
        raise PolicyError(f"{file}:{line}: model does not parse ({exc})", code=ErrorCode.POLICY_MODEL_INVALID) from None
    for sec, name in (
        ("r", "request_definition"),
        ("p", "policy_definition"),
        ("e", "policy_effect"),
        ("m", "matchers"),
    ):
        if sec not in model.keys() or sec not in model[sec]:
            raise PolicyError(f"{file}:1: model has no [{name}] {sec} = ...", code=ErrorCode.POLICY_MODEL_INVALID)
    matcher = str(model["m"]["m"].value)
    if not _balanced(re.sub(r"'[^']*'|\"[^\"]*\"", "", matcher)):
        line = _line_of(text, "m=")
        raise PolicyError(f"{file}:{line}: matcher has unbalanced parentheses", code=ErrorCode.POLICY_MODEL_INVALID)
    p_tokens = tuple(str(t).removeprefix("p_") for t in model["p"]["p"].tokens)
    r_tokens = tuple(str(t).removeprefix("r_") for t in model["r"]["r"].tokens)
    effect = re.sub(r"\s+", "", str(model["e"]["e"].value)).replace("p_eft", "p.eft")
    reason = ""
    shape: ModelShape | None = None
    if "g" in model.keys():
        reason = "the model defines roles (role_definition)"
    elif len(model["p"]) != 1 or len(model["r"]) != 1 or len(model["m"]) != 1:
        reason = "the model defines several request, policy or matcher types"
    elif p_tokens != FIELDS or r_tokens != FIELDS:
        reason = "request and policy are not (sub, dom, obj, act)"
    elif effect != _SUPPORTED_EFFECT:
        reason = f"policy effect {effect!r} is not some(where (p.eft == allow))"
    else:
        found_shape = _shape_of_matcher(matcher)
        if isinstance(found_shape, str):
            reason = found_shape
        else:
            shape = found_shape
    return PolicyModel(text=text, file=file, shape=shape, policy_tokens=p_tokens, reason=reason)
