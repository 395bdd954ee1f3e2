"""The test-database helper itself: a missing server skips locally and fails under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.storage.servers import fresh_database_url

DEAD = {"postgresql": "postgresql://postgres@127.0.0.1:1/postgres", "mariadb": "mysql://root@127.0.0.1:1/"}
ENV = {"postgresql": "TOKENWARD_TEST_POSTGRES_URL", "mariadb": "TOKENWARD_TEST_MARIADB_URL"}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_unreachable_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv(ENV[backend], DEAD[backend])
    monkeypatch.setenv("CI", ci)
    for _ in range(2):  # the second time comes from the cache, with the same message
        with pytest.raises(outcome) as caught, fresh_database_url(backend, tmp_path):
            pass
        message = str(caught.value)
        assert f"{backend} is not reachable" in message
        assert ("CI=true" in message) == (ci == "true")
        assert ("start it with" in message) and ENV[backend] in message


def test_sqlite_needs_no_server(tmp_path: Path) -> None:
    with fresh_database_url("sqlite", tmp_path) as url:
        assert url == f"sqlite:///{tmp_path}/tokenward.db"
