"""Start-up skips Alembic when the database is already at the head the migration files name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy import Connection

from tokenward.storage import Database
from tokenward.storage.migrations import alembic_config, head_revision
from tokenward.storage.schema_head import packaged_head


def write_revisions(folder: Path, *pairs: tuple[str, str]) -> Path:
    folder.mkdir()
    for revision, down in pairs:
        (folder / f"r{revision}_x.py").write_text(
            f'"""x"""\n\nrevision: str = "{revision}"\ndown_revision: str | None = {down}\n', encoding="utf-8"
        )
    return folder


def test_the_files_name_the_head_alembic_finds() -> None:
    assert packaged_head() == head_revision()


def test_anything_unclear_is_left_to_alembic(tmp_path: Path) -> None:
    assert packaged_head(write_revisions(tmp_path / "chain", ("0001", "None"), ("0002", '"0001"'))) == "0002"
    two_heads = write_revisions(tmp_path / "two", ("0001", "None"), ("0002", '"0001"'), ("0003", '"0001"'))
    assert packaged_head(two_heads) is None
    merge = write_revisions(tmp_path / "merge", ("0001", "None"), ("0002", '("0001", "0003")'))
    assert packaged_head(merge) is None
    assert packaged_head(write_revisions(tmp_path / "gap", ("0002", '"0001"'))) is None
    (tmp_path / "empty").mkdir()
    assert packaged_head(tmp_path / "empty") is None


async def test_a_database_behind_head_is_still_migrated(sqlite_database_url: str) -> None:
    async with Database.connect(sqlite_database_url) as db:
        config = alembic_config()

        def to_previous(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.upgrade(config, "head-1")

        async with db.engine.begin() as conn:
            await conn.run_sync(to_previous)
        behind = await db.current_revision()
        assert behind is not None and behind != head_revision()
        await db.upgrade()
        assert await db.current_revision() == head_revision()


async def test_a_current_database_is_checked_without_importing_alembic(sqlite_database_url: str) -> None:
    async with Database.connect(sqlite_database_url) as db:
        await db.upgrade()
    probe = (
        "import asyncio, json, sys\nfrom tokenward.storage import Database\n"
        "async def main():\n"
        f"    async with Database.connect({sqlite_database_url!r}) as db:\n"
        "        await db.upgrade()\n"
        "        return await db.current_revision()\n"
        "revision = asyncio.run(main())\n"
        "print(json.dumps([revision, sorted(m for m in sys.modules if m.split('.')[0] == 'alembic')]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    revision, alembic_modules = json.loads(done.stdout.splitlines()[-1])
    assert revision == head_revision()
    assert alembic_modules == []
