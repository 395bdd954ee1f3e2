"""Storage: the SQL database, its migrations, and the repositories built on it.

Every repository follows one pattern: an abstract base with a few async methods and
``close()``, an in-memory implementation shipped here, and a SQL implementation taking a
:class:`Database`. Driver errors never leave this package: they arrive as
:class:`~tokenward.errors.StorageUnavailable`, :class:`~tokenward.errors.StorageError` or
:class:`~tokenward.errors.Conflict`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenward._facade import lazy_exports

if TYPE_CHECKING:
    from .apptokens import AppTokenRecord, AppTokenStore, InMemoryAppTokenStore, SqlAppTokenStore
    from .audit import AuditEvent, AuditLog, InMemoryAuditLog, SqlAuditLog
    from .config_tokens import (
        ConfigTokenRevocation,
        ConfigTokenRevocations,
        InMemoryConfigTokenRevocations,
        SqlConfigTokenRevocations,
    )
    from .database import DEFAULT_CONNECT_TIMEOUT, Database
    from .identity import Enrollment, IdentityStore, InMemoryIdentityStore, SessionRecord, SqlIdentityStore
    from .regulation import InMemoryRegulationStore, RegulationStore, SqlRegulationStore
    from .urls import default_sqlite_url, redact, to_async_url

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "AppTokenRecord",
    "AppTokenStore",
    "AuditEvent",
    "AuditLog",
    "ConfigTokenRevocation",
    "ConfigTokenRevocations",
    "Database",
    "Enrollment",
    "IdentityStore",
    "InMemoryAppTokenStore",
    "InMemoryAuditLog",
    "InMemoryConfigTokenRevocations",
    "InMemoryIdentityStore",
    "InMemoryRegulationStore",
    "RegulationStore",
    "SessionRecord",
    "SqlAppTokenStore",
    "SqlAuditLog",
    "SqlConfigTokenRevocations",
    "SqlIdentityStore",
    "SqlRegulationStore",
    "default_sqlite_url",
    "redact",
    "to_async_url",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".apptokens": ("AppTokenRecord", "AppTokenStore", "InMemoryAppTokenStore", "SqlAppTokenStore"),
        ".audit": ("AuditEvent", "AuditLog", "InMemoryAuditLog", "SqlAuditLog"),
        ".config_tokens": (
            "ConfigTokenRevocation",
            "ConfigTokenRevocations",
            "InMemoryConfigTokenRevocations",
            "SqlConfigTokenRevocations",
        ),
        ".database": ("DEFAULT_CONNECT_TIMEOUT", "Database"),
        ".identity": ("Enrollment", "IdentityStore", "InMemoryIdentityStore", "SessionRecord", "SqlIdentityStore"),
        ".regulation": ("InMemoryRegulationStore", "RegulationStore", "SqlRegulationStore"),
        ".urls": ("default_sqlite_url", "redact", "to_async_url"),
    },
)
