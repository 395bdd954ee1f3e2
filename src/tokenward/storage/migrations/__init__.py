"""Alembic migrations shipped inside the package.

There is no ``alembic.ini``: :func:`alembic_config` builds the configuration in code, so
migrations run the same from a checkout and from an installed wheel. Apply them with
:meth:`tokenward.storage.Database.upgrade` or ``tokenward db upgrade``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from tokenward.storage.database import Database

__all__ = ["MIGRATIONS_DIR", "alembic_config", "draft_revision", "head_revision"]

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations (no ini file involved)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_path_separator", "os")
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    return config


def head_revision() -> str:
    """The newest revision shipped with this tokenward version."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships at least one revision
        raise RuntimeError("tokenward ships no migrations")
    return head


async def draft_revision(db: Database, *, message: str, rev_id: str) -> Path:
    """Write a new revision file that Alembic drafts by comparing ``db`` with the models.

    For contributors adding a table: ``db`` must be at the current head. Review the draft —
    autogenerate misses renames and server defaults — and return the path written.
    """
    from tokenward.storage.models import all_metadata

    config = alembic_config()
    config.attributes["target_metadata"] = all_metadata()

    def draft(connection: Connection) -> Path:
        config.attributes["connection"] = connection
        script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        if script is None or isinstance(script, list):  # pragma: no cover - one head, one revision
            raise RuntimeError("alembic did not write exactly one revision")
        return Path(script.path)

    async with db.engine.begin() as connection:
        return await connection.run_sync(draft)
