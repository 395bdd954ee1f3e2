"""Add identity_enrollment_codes.method: how a code was issued ("admin-code" or "email-code").

Redeeming a code hands its method to the enrolment (``identity_enrollments.method``). Codes
issued before this revision were all issued by an admin, hence the server default.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "identity_enrollment_codes",
        sa.Column("method", sa.String(16), nullable=False, server_default="admin-code"),
    )


def downgrade() -> None:
    op.drop_column("identity_enrollment_codes", "method")
