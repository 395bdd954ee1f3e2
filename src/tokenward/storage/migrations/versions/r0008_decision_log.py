"""Create decision_log (the decision log's SQL sink).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tokenward.storage.types import ID, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("instance", sa.String(128), nullable=False),
        sa.Column("file", sa.String(32), nullable=False),
        sa.Column("sub", sa.String(320), nullable=False),
        sa.Column("dom", sa.String(320), nullable=False),
        sa.Column("obj", sa.String(320), nullable=False),
        sa.Column("act", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("deciding_row", sa.String(1024), nullable=False),
        sa.Column("dialect", sa.String(8), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_log"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_decision_log_at", "decision_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_decision_log_at", table_name="decision_log")
    op.drop_table("decision_log")
