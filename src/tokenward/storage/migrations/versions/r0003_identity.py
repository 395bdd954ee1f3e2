"""Create identity tables: enrolments, enrolment codes, challenges, sessions.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from tokenward.storage.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "identity_enrollments",
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("email", name="pk_identity_enrollments"),
        **_MYSQL,
    )
    op.create_table(
        "identity_enrollment_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_identity_enrollment_codes"),
        **_MYSQL,
    )
    op.create_table(
        "identity_challenges",
        sa.Column("id", sa.String(43), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("client_id", sa.String(40), nullable=False),
        sa.Column("app_hash", sa.String(128), nullable=False),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("code_mac", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("consumed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identity_challenges"),
        **_MYSQL,
    )
    op.create_index("ix_identity_challenges_expires_at", "identity_challenges", ["expires_at"])
    op.create_table(
        "identity_sessions",
        sa.Column("id", sa.String(43), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("client_id", sa.String(40), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_identity_sessions"),
        **_MYSQL,
    )
    op.create_index("ix_identity_sessions_subject_client_id", "identity_sessions", ["subject", "client_id"])


def downgrade() -> None:
    op.drop_table("identity_sessions")
    op.drop_table("identity_challenges")
    op.drop_table("identity_enrollment_codes")
    op.drop_table("identity_enrollments")
