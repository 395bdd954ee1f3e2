from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.forwardauth.helpers import NOOP, keyring
from tokenward.errors import BadRequest, ConfigError, NotFound, StorageUnavailable
from tokenward.forwardauth.config_token import encode_token
from tokenward.forwardauth.service import ForwardAuthService
from tokenward.forwardauth.stores import (
    EnvOptions,
    EnvStore,
    FileOptions,
    FileStore,
    SqlOptions,
    SqlStore,
    TokenStore,
    build_stores,
    parse_store_specs,
)
from tokenward.storage.urls import to_async_url


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_file_store_rereads_on_change_and_keeps_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("a: tok-a\n")
    clock = Clock()
    store = FileStore(FileOptions(path=path), clock=clock)
    assert await store.get("a") == "tok-a"
    path.write_text("a: tok-a2\nb: tok-b\n")
    store.refresh()
    assert await store.get("a") == "tok-a"  # not checked again within a second
    clock.now = 2
    store.refresh()
    assert await store.get("b") == "tok-b" and store.version == 2
    path.write_text("{broken: [")
    clock.now = 4
    with caplog.at_level(logging.WARNING):
        store.refresh()
    assert await store.get("b") == "tok-b"
    assert "keeping the last good content" in caplog.text
    path.unlink()
    clock.now = 6
    store.refresh()
    assert await store.get("b") == "tok-b"
    with pytest.raises(BadRequest) as info:
        await store.get("bad id with spaces")
    assert info.value.error_code == "config_token_id_invalid"


def test_env_store_and_specs() -> None:
    store = EnvStore(EnvOptions(var="X"), environ={"X": '{"a": "t"}'})
    assert store._content == {"a": "t"}
    with pytest.raises(ConfigError):
        EnvStore(EnvOptions(var="MISSING"), environ={})
    with pytest.raises(ConfigError):
        EnvStore(EnvOptions(var="X"), environ={"X": "[1, 2"})
    assert parse_store_specs(None) == {}
    specs = parse_store_specs('{"e": {"adapter": "env", "options": {"var": "X", "cache_ttl": 5}}}')
    assert build_stores(specs, environ={"X": "{}"})["e"].cache_ttl == 5
    for bad, where in (
        ("e: {adapter: nope}", "adapter"),
        ("e: {adapter: file, options: {}}", "path"),
        ("e: {adapter: sql, options: {url: 'sqlite://', query: 'select 1'}}", "query"),
        ("- 1", "map"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_store_specs(bad)
        assert where in info.value.detail


SEED_SCHEMA = {
    "mysql": "CREATE TABLE config_tokens (id char(255) NOT NULL PRIMARY KEY, token text NOT NULL, "
    "revoked tinyint NOT NULL)",
    "other": "CREATE TABLE config_tokens (id varchar(255) NOT NULL PRIMARY KEY, token text NOT NULL, "
    "revoked smallint NOT NULL)",
}
SEED_QUERY = "SELECT token as token from config_tokens WHERE id = ? AND revoked != 1"


async def test_sql_store_with_the_seed_schema(database_url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    kr = keyring()
    tok = encode_token(NOOP, kr)
    engine = create_async_engine(to_async_url(database_url))
    async with engine.begin() as conn:
        schema = SEED_SCHEMA["mysql" if database_url.startswith("mysql") else "other"]
        await conn.execute(sa.text(schema))
        await conn.execute(
            sa.text("INSERT INTO config_tokens (id, token, revoked) VALUES ('1', :t, 0), ('2', :t, 1)"), {"t": tok}
        )
    await engine.dispose()
    store = SqlStore(SqlOptions(url=database_url, query=SEED_QUERY, cache_ttl=0))
    service = ForwardAuthService(keyring=lambda: kr, stores={"db": store})
    try:
        assert await store.get("1") == tok
        assert await store.get("2") is None  # revoked in the seed's sense
        compiled = await service.resolve(token=None, store_id="db", token_id="1")
        assert compiled.document.tokenward.plugins
    finally:
        await service.close()


async def test_sql_store_down_is_a_503() -> None:
    store = SqlStore(SqlOptions(url="postgresql://nobody@127.0.0.1:1/x", query=SEED_QUERY))
    try:
        with pytest.raises(StorageUnavailable) as info:
            await store.get("1")
        assert info.value.error_code == "config_token_store_unavailable" and info.value.status == 503
    finally:
        await store.close()


async def test_sql_store_query_placeholder_and_colons(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(to_async_url(url))
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (k text, v text)"))
        await conn.execute(sa.text("INSERT INTO t VALUES ('a', 'x:y'), ('?', 'q')"))
    await engine.dispose()
    store = SqlStore(SqlOptions(url=url, query="SELECT v || ':z' AS token FROM t WHERE k = ? AND k != '?'"))
    try:
        assert await store.get("a") == "x:y:z"
    finally:
        await store.close()


async def test_sql_store_recovers_when_the_database_is_back(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    folder = tmp_path / "later"
    url = f"sqlite:///{folder / 's.db'}"
    store = SqlStore(SqlOptions(url=url, query=SEED_QUERY))
    try:
        with pytest.raises(StorageUnavailable):
            await store.get("1")
        folder.mkdir()
        engine = create_async_engine(to_async_url(url))
        async with engine.begin() as conn:
            await conn.execute(sa.text(SEED_SCHEMA["other"]))
            await conn.execute(sa.text("INSERT INTO config_tokens VALUES ('1', 'tok', 0)"))
        await engine.dispose()
        assert await store.get("1") == "tok"
    finally:
        await store.close()


class _Counting(TokenStore):
    """A store that caches nothing (``cache_ttl`` 0, not in memory): every resolution reads it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads = 0

    async def get(self, token_id: str) -> str | None:
        self.reads += 1
        return self.values.get(token_id)


async def test_a_store_that_caches_nothing_is_read_once_per_resolution() -> None:
    kr = keyring()
    store = _Counting({"1": encode_token(NOOP, kr)})
    service = ForwardAuthService(keyring=lambda: kr, stores={"s": store})
    try:
        for reads in (1, 2):  # a resolution reads it, then uses what it read (nothing is kept for the next)
            compiled = await service.resolve(token=None, store_id="s", token_id="1")
            assert compiled.document.tokenward.plugins and store.reads == reads
        with pytest.raises(NotFound):
            await service.resolve(token=None, store_id="s", token_id="2")
        assert store.reads == 3
    finally:
        await service.close()
