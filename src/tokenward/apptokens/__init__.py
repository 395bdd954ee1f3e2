"""App tokens: long-lived secrets for third-party tools, sent as HTTP Basic ``user:token``.

The facade: :class:`AppTokenService` (create/list/revoke/verify), the token format
(:mod:`.format`), lifetimes (:mod:`tokenward.durations`), who may act for whom (:mod:`.access`) and
brute-force regulation (:mod:`.regulation`). See docs/app-tokens.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenward._facade import lazy_exports

if TYPE_CHECKING:
    from tokenward.durations import format_duration, parse_duration

    from .access import MANAGE_SCOPE, AdminCheck, Caller, UserDirectory, no_admins, subject_directory
    from .format import PREFIX, ParsedToken
    from .regulation import RegulationPolicy, Regulator
    from .service import AppTokenConfig, AppTokenService, VerifiedToken, cli_actor

__all__ = [
    "MANAGE_SCOPE",
    "PREFIX",
    "AdminCheck",
    "AppTokenConfig",
    "AppTokenService",
    "Caller",
    "ParsedToken",
    "RegulationPolicy",
    "Regulator",
    "UserDirectory",
    "VerifiedToken",
    "cli_actor",
    "format_duration",
    "no_admins",
    "parse_duration",
    "subject_directory",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".access": ("MANAGE_SCOPE", "AdminCheck", "Caller", "UserDirectory", "no_admins", "subject_directory"),
        "tokenward.durations": ("format_duration", "parse_duration"),
        ".format": ("PREFIX", "ParsedToken"),
        ".regulation": ("RegulationPolicy", "Regulator"),
        ".service": ("AppTokenConfig", "AppTokenService", "VerifiedToken", "cli_actor"),
    },
)
