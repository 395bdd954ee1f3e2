"""Alembic migrations shipped inside the package.

There is no ``alembic.ini``: :func:`alembic_config` builds the configuration in code, so
migrations run the same from a checkout and from an installed wheel. Apply them with
:meth:`tokenward.storage.Database.upgrade` or ``tokenward db upgrade``.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

__all__ = ["MIGRATIONS_DIR", "alembic_config", "head_revision"]

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations (no ini file involved)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_path_separator", "os")
    return config


def head_revision() -> str:
    """The newest revision shipped with this tokenward version."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships at least one revision
        raise RuntimeError("tokenward ships no migrations")
    return head
