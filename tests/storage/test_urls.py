from __future__ import annotations

from pathlib import Path

import pytest

from tokenward.errors import ConfigError
from tokenward.storage import default_sqlite_url, redact, to_async_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///tokenward.db", "sqlite+aiosqlite:///tokenward.db"),
        ("sqlite:////var/lib/tokenward/tokenward.db", "sqlite+aiosqlite:////var/lib/tokenward/tokenward.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@db.example.com/tw", "postgresql+psycopg://u@db.example.com/tw"),
        ("postgres://u@db.example.com:5433/tw", "postgresql+psycopg://u@db.example.com:5433/tw"),
        ("postgresql+psycopg2://u@h/tw", "postgresql+psycopg://u@h/tw"),
        ("postgresql+psycopg://u@h/tw?sslmode=require", "postgresql+psycopg://u@h/tw?sslmode=require"),
        ("mysql://u@h/tw", "mysql+aiomysql://u@h/tw?charset=utf8mb4"),
        ("mariadb://u@h:3307/tw", "mysql+aiomysql://u@h:3307/tw?charset=utf8mb4"),
        ("mysql+pymysql://u@h/tw?charset=utf8", "mysql+aiomysql://u@h/tw?charset=utf8"),
        ("  postgresql://u@h/tw  ", "postgresql+psycopg://u@h/tw"),
    ],
)
def test_to_async_url(given: str, expected: str) -> None:
    assert to_async_url(given).render_as_string(hide_password=False) == expected


def test_password_is_kept_for_the_driver_but_never_rendered() -> None:
    url = to_async_url("postgresql://tw:s3cr%40t@h/tw")
    assert url.password == "s3cr@t"
    assert "s3cr" not in str(url)
    assert "s3cr" not in repr(url)
    assert redact(url) == "postgresql+psycopg://tw:***@h/tw"
    assert redact("mysql://root:hunter2@h/db") == "mysql://root:***@h/db"


@pytest.mark.parametrize("given", ["oracle://scott:tiger@h/db", "mssql+pyodbc://h/db", "redis://h:6379/0"])
def test_unknown_scheme_is_a_config_error_naming_the_setting(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        to_async_url(given)
    detail = caught.value.detail
    assert "TOKENWARD_DATABASE_URL" in detail
    assert "unsupported database scheme" in detail
    assert "sqlite:///" in detail and "postgresql://" in detail and "mysql://" in detail
    assert "tiger" not in detail
    assert caught.value.error_code == "config_invalid"


def test_unknown_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported driver 'asyncmy'") as caught:
        to_async_url("mysql+asyncmy://root:pw123@h/db")
    assert "pw123" not in caught.value.detail


@pytest.mark.parametrize("given", ["", "not a url", "postgresql://u:pw9x@h:notaport/db"])
def test_malformed_url_never_echoes_the_input(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        to_async_url(given)
    assert "TOKENWARD_DATABASE_URL" in caught.value.detail
    assert "not a url" not in caught.value.detail
    assert "pw9x" not in caught.value.detail


def test_default_sqlite_url_is_absolute_file_in_data_dir(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "data")
    assert url == f"sqlite:///{tmp_path}/data/tokenward.db"
    assert to_async_url(url).database == f"{tmp_path}/data/tokenward.db"


def test_default_sqlite_url_makes_relative_dirs_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_sqlite_url(Path("rel")) == f"sqlite:///{tmp_path}/rel/tokenward.db"
