"""`tokenward db`: apply and inspect the SQL schema migrations."""

from __future__ import annotations

import asyncio

import typer

from tokenward.cli._common import GuardedGroup, load_settings
from tokenward.storage import Database
from tokenward.storage.schema_head import packaged_head

app = typer.Typer(
    cls=GuardedGroup,
    no_args_is_help=True,
    help="Manage the SQL database: apply schema migrations and show the schema revision. "
    "The database is TOKENWARD_DATABASE_URL, or the SQLite file tokenward.db in the data dir (docs/storage.md).",
)

_URL_OPTION = typer.Option(
    None,
    "--database-url",
    help="Database URL (sqlite:///PATH, postgresql://…, mysql://…); overrides TOKENWARD_DATABASE_URL.",
)


def _database(database_url: str | None) -> Database:
    settings = load_settings(database_url=database_url)
    return Database.connect(settings.database_url_or_default)


def _describe(revision: str | None) -> str:
    if revision is None:
        return "no schema yet (run `tokenward db upgrade`)"
    head = packaged_head()
    if head is None:  # not plain from the files: ask Alembic
        from tokenward.storage.migrations import head_revision

        head = head_revision()
    if revision == head:
        return f"{revision} (head)"
    return f"{revision} (head is {head}; run `tokenward db upgrade`)"


@app.command()
def upgrade(database_url: str | None = _URL_OPTION) -> None:
    """Apply every pending migration and print the revision the database is now at."""

    async def run() -> str | None:
        async with _database(database_url) as db:
            await db.upgrade()
            return await db.current_revision()

    revision = asyncio.run(run())
    typer.echo(f"database schema at revision {_describe(revision)}")


@app.command()
def current(database_url: str | None = _URL_OPTION) -> None:
    """Print the schema revision the database is at (changes nothing)."""

    async def run() -> str | None:
        async with _database(database_url) as db:
            return await db.current_revision()

    typer.echo(_describe(asyncio.run(run())))
