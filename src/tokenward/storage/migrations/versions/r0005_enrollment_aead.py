"""Add identity_enrollments.aead: the HPKE AEAD an authenticator's captchas are sealed with.

Existing enrolments keep ChaCha20-Poly1305 (the server default); WebCrypto authenticators
enrol with ``aes256gcm`` (docs/protocol.md §3).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "identity_enrollments",
        sa.Column("aead", sa.String(32), nullable=False, server_default="chacha20poly1305"),
    )


def downgrade() -> None:
    op.drop_column("identity_enrollments", "aead")
