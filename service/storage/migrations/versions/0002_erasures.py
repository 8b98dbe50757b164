"""erasures: members erased at their request

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("pseudonym", sa.String(length=128), nullable=False),
        sa.Column("erased_at", service.storage.types.UtcDateTime(), nullable=False),
        sa.Column("erased_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("pseudonym", name=op.f("pk_erasures")),
    )


def downgrade() -> None:
    op.drop_table("erasures")
