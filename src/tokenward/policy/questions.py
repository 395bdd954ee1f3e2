"""The questions tokenward asks its policy, one typed function each (docs/policies.md).

Every question is ``action ∧ ¬deny``: a row with action ``deny`` for the same
subject, destination and realm (client ID) wins over any number of allows. Subjects that look
like e-mail addresses are users (``userpolicy.csv``); anything else is a resource
(``resourcepolicy.csv``). Each function raises ``policy_segment_not_served`` when this instance
does not serve the segment the question belongs to (:mod:`.segments`).

=================  ====================================================  =======================
question           request ``(sub, dom, obj, act)``                      file
=================  ====================================================  =======================
login              subject, server, client ID, ``login``                 user- / resourcepolicy
ask, poke          source, destination, client ID, ``ask``/``poke``      user- / resourcepolicy
client access      app hash, server, client ID, ``clientaccess``         clientappspolicy
scopes             e-mail, app hash, client ID, scope                    clientscopespolicy
captcha            e-mail, server, ``CAPTCHA``, ``enable``               captchapolicy
system login       e-mail, host, server, ``systemlogin``                 resourcepolicy
admin              subject, server, ``TOKENWARD``, ``admin``             userpolicy
=================  ====================================================  =======================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NamedTuple

from tokenward.policy.bundle import Observer, Policy
from tokenward.policy.engine import Engine
from tokenward.policy.segments import Segment, require

__all__ = [
    "ADMIN_REALM",
    "DEFAULT_SCOPE",
    "Route",
    "ask",
    "can_ask",
    "can_login",
    "can_poke",
    "can_system_login",
    "captcha_enabled",
    "client_access",
    "granted_scopes",
    "is_admin",
    "is_user",
    "resolve_scopes",
    "route",
]

logger = logging.getLogger("tokenward.policy")

DEFAULT_SCOPE = "DEFAULT"
#: The ``obj`` of admin rows: ``p, alice@example.com, auth.example.com, TOKENWARD, admin``.
ADMIN_REALM = "TOKENWARD"
CAPTCHA_OBJECT = "CAPTCHA"
DENY = "deny"


def is_user(subject: str) -> bool:
    """Whether a subject is an e-mail user (``local@domain``) rather than a resource."""
    local, at, domain = subject.rpartition("@")
    return bool(at and local and domain)


def _allowed(engine: Engine, sub: str, dom: str, obj: str, act: str) -> bool:
    return engine.enforce(sub, dom, obj, act) and not engine.enforce(sub, dom, obj, DENY)


def ask(policy: Policy, file: str, sub: str, dom: str, obj: str, act: str) -> bool:
    """``act ∧ ¬deny`` in ``file``, told to the policy's observer (the decision log) when it has one.

    Every question below goes through here; so does ``/verify``'s policy check.
    """
    allowed = _allowed(policy.engine(file), sub, dom, obj, act)
    if policy.observer is not None:
        _tell(policy.observer, policy, file, sub, dom, obj, act, allowed)
    return allowed


def _tell(observer: Observer, policy: Policy, file: str, sub: str, dom: str, obj: str, act: str, allowed: bool) -> None:
    """Report a decision; an observer that fails is logged and never changes the answer."""
    try:
        observer(policy, file, sub, dom, obj, act, allowed)
    except Exception:
        logger.exception("the policy decision observer failed (the decision stands)")


def _subject_file(policy: Policy, subject: str) -> str:
    if is_user(subject):
        require(policy.segments, "user")
        return "userpolicy.csv"
    require(policy.segments, "resource")
    return "resourcepolicy.csv"


def can_login(policy: Policy, subject: str, server: str, client_id: str) -> bool:
    """May ``subject`` (user or resource) log in to ``client_id`` on this ``server``?"""
    return ask(policy, _subject_file(policy, subject), subject, server, client_id, "login")


def can_ask(policy: Policy, source: str, destination: str, client_id: str) -> bool:
    """May ``source`` obtain a client token to talk to ``destination`` under ``client_id``?"""
    return ask(policy, _subject_file(policy, source), source, destination, client_id, "ask")


def can_poke(policy: Policy, source: str, destination: str, client_id: str) -> bool:
    """May ``source`` fetch information about ``destination`` under ``client_id``?"""
    return ask(policy, _subject_file(policy, source), source, destination, client_id, "poke")


def client_access(policy: Policy, app_hash: str, server: str, client_id: str) -> bool:
    """May the client app with ``app_hash`` request keys for ``client_id``?

    Enforced only when ``clientappspolicy.csv`` has rows for ``client_id`` (docs/policies.md: "during
    app development it is best to not set this enforcement"); otherwise every app may.
    """
    require(policy.segments, "user", "resource")
    if not policy.engine("clientappspolicy.csv").has_object(client_id):
        return True
    return ask(policy, "clientappspolicy.csv", app_hash, server, client_id, "clientaccess")


def granted_scopes(policy: Policy, email: str, app_hash: str, client_id: str) -> frozenset[str]:
    """Every scope ``clientscopespolicy.csv`` grants ``email`` in ``app_hash`` under ``client_id``."""
    require(policy.segments, "user", "resource")
    engine = policy.engine("clientscopespolicy.csv")
    if engine.enforce(email, app_hash, client_id, DENY):
        return frozenset()
    granted = frozenset(engine.actions(email, app_hash, client_id) - {DENY})
    if policy.observer is not None:
        for scope in sorted(granted):
            _tell(policy.observer, policy, "clientscopespolicy.csv", email, app_hash, client_id, scope, True)
    return granted


def resolve_scopes(
    policy: Policy, email: str, app_hash: str, client_id: str, requested: Iterable[str] = ()
) -> frozenset[str]:
    """The requested scopes that are granted; ``DEFAULT`` is requested when none are."""
    wanted = frozenset(requested) or frozenset({DEFAULT_SCOPE})
    require(policy.segments, "user", "resource")
    return frozenset(
        scope
        for scope in sorted(wanted)
        if scope != DENY and ask(policy, "clientscopespolicy.csv", email, app_hash, client_id, scope)
    )


def captcha_enabled(policy: Policy, email: str, server: str) -> bool:
    """May ``email`` request a captcha (the first step of login) on ``server``?"""
    require(policy.segments, "captcha")
    return ask(policy, "captchapolicy.csv", email, server, CAPTCHA_OBJECT, "enable")


def can_system_login(policy: Policy, email: str, host: str, server: str) -> bool:
    """May ``email`` log in to the system ``host`` through this ``server`` (third column = server)?"""
    require(policy.segments, "system")
    return ask(policy, "resourcepolicy.csv", email, host, server, "systemlogin")


def is_admin(policy: Policy, subject: str, server: str) -> bool:
    """Does ``userpolicy.csv`` grant ``subject`` the ``admin`` action on this server's realm?

    Answered by every instance, whatever segments it serves: admin is tokenward's own question.
    """
    return ask(policy, "userpolicy.csv", subject, server, ADMIN_REALM, "admin")


class Route(NamedTuple):
    """Where a raw ``(sub, dom, obj, act)`` question is answered."""

    file: str
    segment: Segment | None


def route(sub: str, obj: str, act: str) -> Route:
    """The file (and segment) a raw check belongs to, as ``policy check`` and explain use it."""
    if act == "systemlogin":
        return Route("resourcepolicy.csv", "system")
    if act == "clientaccess":
        return Route("clientappspolicy.csv", None)
    if obj == CAPTCHA_OBJECT:
        return Route("captchapolicy.csv", "captcha")
    if act in ("login", "ask", "poke", "admin", DENY):
        user = is_user(sub)
        if act == "admin":
            return Route("userpolicy.csv", None)
        return Route("userpolicy.csv", "user") if user else Route("resourcepolicy.csv", "resource")
    return Route("clientscopespolicy.csv", None)
