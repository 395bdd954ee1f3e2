from __future__ import annotations

import pytest

from tokenward.apptokens.access import (
    MANAGE_SCOPE,
    Caller,
    check_scopes,
    no_admins,
    resolve_target,
    subject_directory,
)
from tokenward.errors import BadRequest, Forbidden, NotFound, TokenwardError
from tokenward.policy import PolicyHolder, build_policy

SERVER = "auth.example.com"
ALICE = Caller("alice@example.com", frozenset({MANAGE_SCOPE}))


def admin(subject: str) -> bool:
    return subject == "alice@example.com"


def test_own_tokens_need_no_impersonation() -> None:
    assert (
        resolve_target(
            ALICE, user_id=None, user_name=None, impersonation=False, is_admin=no_admins, directory=subject_directory
        )
        == "alice@example.com"
    )


@pytest.mark.parametrize(
    ("impersonation", "is_admin", "user_id", "user_name", "error", "code"),
    [
        (False, admin, None, "bob@example.com", Forbidden, "impersonation_disabled"),
        (True, no_admins, None, "bob@example.com", Forbidden, "impersonation_forbidden"),
        (True, admin, "not a user", None, NotFound, "user_not_found"),
        (True, admin, "bob@example.com", "bob@example.com", BadRequest, "parameter_conflict"),
    ],
)
def test_impersonation_refusals(
    impersonation: bool,
    is_admin: object,
    user_id: str | None,
    user_name: str | None,
    error: type[TokenwardError],
    code: str,
) -> None:
    with pytest.raises(error) as info:
        resolve_target(
            ALICE,
            user_id=user_id,
            user_name=user_name,
            impersonation=impersonation,
            is_admin=is_admin,  # type: ignore[arg-type]
            directory=subject_directory,
        )
    assert info.value.error_code == code


def test_admin_may_impersonate() -> None:
    target = resolve_target(
        ALICE,
        user_id="bob@example.com",
        user_name=None,
        impersonation=True,
        is_admin=admin,
        directory=subject_directory,
    )
    assert target == "bob@example.com"


def test_scope_escalation() -> None:
    check_scopes(ALICE, (MANAGE_SCOPE,), is_admin=no_admins)
    with pytest.raises(Forbidden) as info:
        check_scopes(ALICE, ("files:write",), is_admin=no_admins)
    assert info.value.error_code == "scope_escalation"
    check_scopes(ALICE, ("files:write",), is_admin=admin)


def test_admin_is_a_policy_decision() -> None:
    rows = f"p, alice@example.com, {SERVER}, TOKENWARD, admin\n".encode()
    holder = PolicyHolder(policy=build_policy({"userpolicy.csv": rows}))
    assert holder.is_admin("alice@example.com", SERVER)
    assert not holder.is_admin("bob@example.com", SERVER)
    assert not holder.is_admin("alice@example.com", "other.example.com")
    assert not PolicyHolder().is_admin("alice@example.com", SERVER)  # no policy loaded yet: fail closed
