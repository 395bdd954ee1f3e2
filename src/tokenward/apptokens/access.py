"""Who may manage whose app tokens: pure decisions, no I/O.

- A caller manages their own tokens when authenticated with the management scope.
- Acting for another user (oCIS "impersonation", ``userID``/``userName``) needs
  ``TOKENWARD_APP_TOKENS_IMPERSONATION=true`` *and* the caller to be an admin — a policy
  decision (``p, alice@example.com, auth.example.com, TOKENWARD, admin`` in userpolicy.csv).
- A token can only mint tokens with scopes it holds itself, unless its owner is an admin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Forbidden, NotFound

__all__ = [
    "MANAGE_SCOPE",
    "AdminCheck",
    "Caller",
    "UserDirectory",
    "check_scopes",
    "no_admins",
    "resolve_target",
    "subject_directory",
    "validate_scopes",
    "validate_subject",
]

MANAGE_SCOPE = "tokenward:manage"
"""The scope an app token needs to call the app-token management API."""

AdminCheck = Callable[[str], bool]
"""``is_admin(subject) -> bool``: the runtime passes ``PolicyHolder.is_admin`` for its server name."""

UserDirectory = Callable[[str | None, str | None], str | None]
"""``lookup(user_id, user_name) -> subject | None``: maps oCIS ``userID``/``userName`` to a subject."""

_SUBJECT = re.compile(r"^[A-Za-z0-9._%+@-][A-Za-z0-9._%+@:-]{0,253}$")
_SCOPE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
MAX_SCOPES = 32


def no_admins(subject: str) -> bool:
    """The admin check until the policy engine is wired in: nobody is an admin."""
    return False


def validate_subject(value: str, *, field: str = "user") -> str:
    """A subject (an e-mail address or a machine name): 1-254 safe characters, no spaces or colons first."""
    if not _SUBJECT.match(value):
        raise BadRequest(
            f"{field} {value[:64]!r} is not a valid user name (e-mail address or name of letters, digits and ._%+@:-)",
            code=ErrorCode.USER_INVALID,
        )
    return value


def subject_directory(user_id: str | None, user_name: str | None) -> str | None:
    """Default directory: users are named by their subject (e-mail), which is both their ID and name."""
    value = user_id if user_id is not None else user_name
    if value is None or not _SUBJECT.match(value):
        return None
    return value


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for scope in scopes:
        if not _SCOPE.match(scope):
            raise BadRequest(
                f"scope {scope[:64]!r} is not valid (letters, digits and ._:/-)", code=ErrorCode.SCOPE_INVALID
            )
        if scope not in found:
            found.append(scope)
    if len(found) > MAX_SCOPES:
        raise BadRequest(f"at most {MAX_SCOPES} scopes per token", code=ErrorCode.SCOPE_INVALID)
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls the management API: a subject, the scopes it was authenticated with, and how."""

    subject: str
    scopes: frozenset[str]
    method: str = "apptoken"
    token_id: str | None = None


def resolve_target(
    caller: Caller,
    *,
    user_id: str | None,
    user_name: str | None,
    impersonation: bool,
    is_admin: AdminCheck,
    directory: UserDirectory,
) -> str:
    """The subject whose tokens the call is about; raise when the caller may not act for them.

    Codes: ``impersonation_disabled`` (403), ``impersonation_forbidden`` (403, not an admin),
    ``user_not_found`` (404), ``parameter_conflict`` (400, both userID and userName).
    """
    if user_id is None and user_name is None:
        return caller.subject
    if user_id is not None and user_name is not None:
        raise BadRequest("give userID or userName, not both", code=ErrorCode.PARAMETER_CONFLICT)
    if not impersonation:
        raise Forbidden(
            "acting for another user is disabled on this server (TOKENWARD_APP_TOKENS_IMPERSONATION)",
            code=ErrorCode.IMPERSONATION_DISABLED,
        )
    if not is_admin(caller.subject):
        raise Forbidden("only admins may act for another user", code=ErrorCode.IMPERSONATION_FORBIDDEN)
    target = directory(user_id, user_name)
    if target is None:
        which = "userID" if user_id is not None else "userName"
        raise NotFound(f"{which}: no such user", code=ErrorCode.USER_NOT_FOUND)
    return target


def check_scopes(caller: Caller, requested: tuple[str, ...], *, is_admin: AdminCheck) -> None:
    """A caller may only hand out scopes it holds itself (admins excepted)."""
    missing = set(requested) - caller.scopes
    if missing and not is_admin(caller.subject):
        raise Forbidden(
            f"cannot grant scope(s) the caller does not hold: {', '.join(sorted(missing))}",
            code=ErrorCode.SCOPE_ESCALATION,
        )
