"""Split authorization: which questions an instance answers (docs/policies.md, "Split Authorization").

One server name can run several instances, each enforcing a *segment* of the policy:

========== ============================================ =========================
segment    questions                                    files
========== ============================================ =========================
user       login/ask/poke for e-mail subjects           userpolicy.csv
resource   login/ask/poke for resource subjects         resourcepolicy.csv
captcha    may this e-mail request a captcha            captchapolicy.csv
system     system login of an e-mail user on a host     resourcepolicy.csv
========== ============================================ =========================

Client access and scopes (``clientappspolicy.csv``, ``clientscopespolicy.csv``) are needed by
both user and resource instances, so every instance serving either must have the same copy of
those two files. ``is_admin`` reads ``userpolicy.csv`` on every instance.

Asking an instance a question of a segment it does not serve raises
:class:`~tokenward.errors.PolicyError` with code ``policy_segment_not_served`` naming the
segment — never a silent deny, which would look like a policy decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError

__all__ = ["ALL_SEGMENTS", "SHARED_FILES", "Segment", "parse_segments", "require"]

Segment = Literal["user", "resource", "captcha", "system"]
ALL_SEGMENTS: frozenset[Segment] = frozenset(get_args(Segment))
#: Files every user or resource instance of one server name must share, byte for byte.
SHARED_FILES = ("clientappspolicy.csv", "clientscopespolicy.csv")


def parse_segments(names: str | Iterable[str]) -> frozenset[Segment]:
    """Segments from ``"user,resource"`` or an iterable; unknown names raise ``policy_segment_unknown``."""
    items = names.split(",") if isinstance(names, str) else list(names)
    found: set[Segment] = set()
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            return ALL_SEGMENTS
        for segment in ALL_SEGMENTS:
            if segment == name:
                found.add(segment)
                break
        else:
            raise PolicyError(
                f"unknown policy segment {name!r}; known: {', '.join(sorted(ALL_SEGMENTS))}",
                code=ErrorCode.POLICY_SEGMENT_UNKNOWN,
            )
    if not found:
        raise PolicyError("at least one policy segment must be served", code=ErrorCode.POLICY_SEGMENT_UNKNOWN)
    return frozenset(found)


def require(served: frozenset[Segment], *needed: Segment) -> None:
    """Raise unless ``served`` includes at least one of ``needed``."""
    if any(segment in served for segment in needed):
        return
    names = " or ".join(needed)
    raise PolicyError(
        f"this instance does not serve the {names} policy segment (serves: {', '.join(sorted(served))})",
        code=ErrorCode.POLICY_SEGMENT_NOT_SERVED,
    )
