"""reward_stock: how many of a stocked reward have been given

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reward_stock",
        sa.Column("reward_id", sa.String(length=128), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("reward_id", name=op.f("pk_reward_stock")),
    )


def downgrade() -> None:
    op.drop_table("reward_stock")
