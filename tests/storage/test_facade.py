from __future__ import annotations

import tokenward.storage as storage

CORE = {
    "AuditEvent",
    "AuditLog",
    "DEFAULT_CONNECT_TIMEOUT",
    "Database",
    "InMemoryAuditLog",
    "SqlAuditLog",
    "default_sqlite_url",
    "redact",
    "to_async_url",
}


def test_all_names_resolve_and_include_the_core() -> None:
    assert CORE <= set(storage.__all__)
    assert len(storage.__all__) == len(set(storage.__all__))
    for name in storage.__all__:
        assert getattr(storage, name) is not None, name


def test_every_repository_has_an_abstract_base_and_two_implementations() -> None:
    """The storage pattern: <Name> ABC, InMemory<Name>, Sql<Name>."""
    for name in storage.__all__:
        if name.startswith("Sql"):
            base = getattr(storage, name[3:])
            assert issubclass(getattr(storage, name), base)
            assert issubclass(getattr(storage, "InMemory" + name[3:]), base)
