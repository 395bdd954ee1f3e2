"""The policy questions identity asks, as a small Protocol (docs/sessions.md).

:class:`PolicyQuestions` answers them from a loaded :mod:`tokenward.policy` bundle;
:class:`RulesPolicy` is a tiny in-memory implementation for tests and development. Each
answer is a :class:`Decision` so that a refusal can name the row that caused it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["DEFAULT_SCOPE", "Decision", "IdentityPolicy", "PolicyQuestions", "RulesPolicy", "resolve_scopes"]

DEFAULT_SCOPE = "DEFAULT"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    #: ``file:line`` or the row text that decided a refusal, when the policy can tell.
    rule: str | None = None


class IdentityPolicy(Protocol):
    """The questions of docs/policies.md (action ∧ ¬deny), with the server name already bound."""

    def captcha_enabled(self, email: str) -> Decision: ...
    def can_login(self, subject: str, client_id: str) -> Decision: ...
    def client_access(self, app_hash: str, client_id: str) -> Decision: ...
    def scopes(self, email: str, app_hash: str, client_id: str) -> frozenset[str]: ...
    def can_ask(self, source: str, destination: str, client_id: str) -> Decision: ...
    def can_poke(self, source: str, destination: str, client_id: str) -> Decision: ...
    def can_system_login(self, email: str, host: str) -> Decision: ...


def _d(value: bool) -> Decision:
    return Decision(value)


@dataclass
class PolicyQuestions:
    """Adapter over :mod:`tokenward.policy.questions`; ``current`` returns the policy in force."""

    current: Callable[[], Any]
    server: str

    def captcha_enabled(self, email: str) -> Decision:
        from tokenward.policy import questions as q

        return _d(q.captcha_enabled(self.current(), email, self.server))

    def can_login(self, subject: str, client_id: str) -> Decision:
        from tokenward.policy import questions as q

        return _d(q.can_login(self.current(), subject, self.server, client_id))

    def client_access(self, app_hash: str, client_id: str) -> Decision:
        from tokenward.policy import questions as q

        return _d(q.client_access(self.current(), app_hash, self.server, client_id))

    def scopes(self, email: str, app_hash: str, client_id: str) -> frozenset[str]:
        from tokenward.policy import questions as q

        return frozenset(q.granted_scopes(self.current(), email, app_hash, client_id))

    def can_ask(self, source: str, destination: str, client_id: str) -> Decision:
        from tokenward.policy import questions as q

        policy = self.current()
        if q.can_ask(policy, source, destination, client_id):
            return Decision(True)
        return _refusal(policy, source, destination, client_id, "ask")

    def can_poke(self, source: str, destination: str, client_id: str) -> Decision:
        from tokenward.policy import questions as q

        policy = self.current()
        if q.can_poke(policy, source, destination, client_id):
            return Decision(True)
        return _refusal(policy, source, destination, client_id, "poke")

    def can_system_login(self, email: str, host: str) -> Decision:
        from tokenward.policy import questions as q

        policy = self.current()
        if q.can_system_login(policy, email, host, self.server):
            return Decision(True)
        return _refusal(policy, email, host, self.server, "systemlogin")


def _refusal(policy: Any, sub: str, dom: str, obj: str, act: str) -> Decision:
    """Name the deny row behind a refusal (``file:line``); ``rule`` is None when no row allowed it.

    Only called once the fast check has refused, so allowed requests never pay for the explanation.
    """
    from tokenward.policy import explain

    explanation = explain(policy, sub, dom, obj, act)
    if explanation.denied_by:
        return Decision(False, explanation.denied_by[0].where)
    return Decision(False)


@dataclass
class RulesPolicy:
    """Exact-match rules ``(sub, dom, obj, act)``; ``"*"`` matches anything. Deny rows win.

    ``server`` fills the ``dom`` of login/captcha/clientaccess questions, as in the policy files.
    """

    server: str
    rules: list[tuple[str, str, str, str]] = field(default_factory=list)

    def _match(self, sub: str, dom: str, obj: str, act: str) -> int | None:
        for index, rule in enumerate(self.rules):
            if all(p == "*" or p.lower() == v.lower() for p, v in zip(rule, (sub, dom, obj, act), strict=True)):
                return index
        return None

    def _ask(self, sub: str, dom: str, obj: str, act: str) -> Decision:
        deny = self._match(sub, dom, obj, "deny")
        if deny is not None:
            return Decision(False, f"rules:{deny + 1} p, {', '.join(self.rules[deny])}")
        return Decision(self._match(sub, dom, obj, act) is not None)

    def captcha_enabled(self, email: str) -> Decision:
        return self._ask(email, self.server, "CAPTCHA", "enable")

    def can_login(self, subject: str, client_id: str) -> Decision:
        return self._ask(subject, self.server, client_id, "login")

    def client_access(self, app_hash: str, client_id: str) -> Decision:
        if not any(r[2] == client_id and r[3] == "clientaccess" for r in self.rules):
            return Decision(True)  # docs/policies.md: enforced only when the client ID has rows
        return self._ask(app_hash, self.server, client_id, "clientaccess")

    def scopes(self, email: str, app_hash: str, client_id: str) -> frozenset[str]:
        if self._match(email, app_hash, client_id, "deny") is not None:
            return frozenset()
        return frozenset(
            r[3] for r in self.rules if r[3].isupper() and self._match(email, app_hash, client_id, r[3]) is not None
        )

    def can_ask(self, source: str, destination: str, client_id: str) -> Decision:
        return self._ask(source, destination, client_id, "ask")

    def can_poke(self, source: str, destination: str, client_id: str) -> Decision:
        return self._ask(source, destination, client_id, "poke")

    def can_system_login(self, email: str, host: str) -> Decision:
        return self._ask(email, host, self.server, "systemlogin")


def resolve_scopes(granted: frozenset[str], requested: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """``(granted ∩ wanted, wanted - granted)``; ``DEFAULT`` is wanted when nothing is requested."""
    wanted = frozenset(requested) or frozenset({DEFAULT_SCOPE})
    return wanted & granted, wanted - granted
