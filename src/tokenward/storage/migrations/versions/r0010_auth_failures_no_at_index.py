"""Drop auth_failures' index on ``at``: purges go by id (storage/regulation.py).

Every failed credential check writes a row per key; the index on ``at`` alone served only the once-a-minute purge,
and cost each of those rows one more B-tree insert (a quarter to a third of a flood's write time on SQLite). The
purge now finds the first row still in the window in id order and deletes the ids before it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_auth_failures_at", table_name="auth_failures")


def downgrade() -> None:
    op.create_index("ix_auth_failures_at", "auth_failures", ["at"])
