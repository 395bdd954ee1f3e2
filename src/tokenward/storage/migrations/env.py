"""Alembic environment for tokenward.

Run through :meth:`tokenward.storage.Database.upgrade`, which hands over an open connection
in ``config.attributes["connection"]`` (the Alembic "sharing a connection" recipe); this file
never builds an engine or reads a URL itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        # Only drafting a revision (migrations.draft_revision) needs the models; upgrades run
        # the revision files alone, so a repository module is never imported to migrate.
        target_metadata=context.config.attributes.get("target_metadata"),
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("tokenward migrations need a live connection; offline SQL generation is not supported")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run tokenward migrations with `tokenward db upgrade` (or Database.upgrade())")
    run_migrations(connection)


main()
