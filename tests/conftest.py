"""Fixtures shared by every test package.

Databases (see ``tests/storage/servers.py``):

- ``database_url``: URL of a fresh, empty database, parametrised over sqlite, postgresql and
  mariadb (marks ``postgres`` / ``mariadb``); dropped after the test.
- ``database``: a connected :class:`~tokenward.storage.Database` on ``database_url`` with
  migrations applied; closed after the test.
- ``store_database``: like ``database`` plus a first ``memory`` case yielding ``None`` — for
  repository contract suites: build the in-memory implementation on ``None``, the SQL one
  otherwise.
- ``sqlite_database_url`` / ``sqlite_database``: SQLite only, for tests that need *a*
  database but do not test storage portability.
- ``data_dir``: an initialised data dir named by ``TOKENWARD_DATA_DIR``, no other TOKENWARD_*
  variable set — for CLI tests.

Every test also gets the root logger back as it found it (``configure_logging``, run by an
in-process ``serve``, would otherwise leave its handler and level to the tests after it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers import clear_tokenward_env, init_data_dir
from tests.storage.servers import backend_params, fresh_database_url
from tokenward.storage import Database


@pytest.fixture(autouse=True)
def _root_logger_as_found() -> Iterator[None]:
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and type(handler).__module__ == "tokenward.logs":
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    clear_tokenward_env(monkeypatch)
    init_data_dir(tmp_path / "data")
    monkeypatch.setenv("TOKENWARD_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture(params=backend_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with Database.connect(database_url) as db:
        await db.upgrade()
        yield db


@pytest.fixture(params=backend_params("memory"))
async def store_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database | None]:
    if request.param == "memory":
        yield None
        return
    with fresh_database_url(request.param, tmp_path) as url:
        async with Database.connect(url) as db:
            await db.upgrade()
            yield db


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tokenward.db'}"


@pytest.fixture
async def sqlite_database(sqlite_database_url: str) -> AsyncIterator[Database]:
    async with Database.connect(sqlite_database_url) as db:
        await db.upgrade()
        yield db
