"""adjustments and transfers: points moved by people

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adjustments",
        sa.Column("adjustment_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("allow_debt", sa.Integer(), nullable=False),
        sa.Column("made_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", service.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("adjustment_id", name=op.f("pk_adjustments")),
    )
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(length=128), nullable=False),
        sa.Column("from_id", sa.String(length=128), nullable=False),
        sa.Column("to_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("made_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", service.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_transfers")),
    )


def downgrade() -> None:
    op.drop_table("transfers")
    op.drop_table("adjustments")
