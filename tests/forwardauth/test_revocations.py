from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenward.errors import Conflict
from tokenward.storage import Database
from tokenward.storage.config_tokens import (
    ConfigTokenRevocation,
    ConfigTokenRevocations,
    InMemoryConfigTokenRevocations,
    SqlConfigTokenRevocations,
)


def make(db: Database | None) -> ConfigTokenRevocations:
    return InMemoryConfigTokenRevocations() if db is None else SqlConfigTokenRevocations(db)


async def test_revoke_and_list(store_database: Database | None) -> None:
    store = make(store_database)
    assert await store.revoked_ids() == frozenset()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    await store.revoke(ConfigTokenRevocation(jti="a1", revoked_at=at, revoked_by="cli:root"))
    await store.revoke(ConfigTokenRevocation(jti="b2", revoked_at=at, revoked_by="cli:root"))
    assert await store.revoked_ids() == {"a1", "b2"}
    with pytest.raises(Conflict) as info:
        await store.revoke(ConfigTokenRevocation(jti="a1", revoked_at=at, revoked_by="x"))
    assert info.value.error_code == "config_token_already_revoked"
    listed = await store.list()
    assert [r.jti for r in listed] == ["a1", "b2"] and listed[0].revoked_at == at
    await store.close()


def test_jti_length() -> None:
    with pytest.raises(ValueError):
        ConfigTokenRevocation(jti="x" * 129, revoked_at=datetime.now(UTC), revoked_by="x")
