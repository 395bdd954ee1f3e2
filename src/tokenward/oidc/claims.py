"""What the ID token and userinfo say about a user, by scope (OpenID Connect Core §5.4).

tokenward knows a user by e-mail address, so ``sub`` is the (lower-case) address. ``groups``
are the roles clientscopespolicy.csv grants the user for this client (its ``SCOPE`` column,
``DEFAULT`` left out), asked at the time the claims are made, so a policy change shows at the
next refresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenward.records.oidc import SCOPES

__all__ = ["SCOPES", "user_claims"]


def user_claims(subject: str, scope: str, groups: Iterable[str]) -> dict[str, Any]:
    """The claims for ``subject`` under the granted ``scope`` (space-separated)."""
    scopes = set(scope.split())
    claims: dict[str, Any] = {"sub": subject}
    if "email" in scopes:
        claims["email"] = subject
        # Enrolment proves control of the authenticator the admin (or the mailed code) tied to the
        # address, not of the mailbox itself; say nothing stronger than the deployment can vouch for.
        claims["email_verified"] = False
    if "profile" in scopes:
        claims["preferred_username"] = subject
        claims["name"] = subject.partition("@")[0]
    if "groups" in scopes:
        claims["groups"] = sorted(g for g in set(groups) if g != "DEFAULT")
    return claims
