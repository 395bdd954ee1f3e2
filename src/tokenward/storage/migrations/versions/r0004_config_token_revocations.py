"""Create config_token_revocations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tokenward.storage.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_token_revocations",
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_by", sa.String(320), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_config_token_revocations"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("config_token_revocations")
