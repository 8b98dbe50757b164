"""report indexes: ledger entries and orders by time, lots by expiry

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ledger_entries_occurred", "ledger_entries", ["occurred_at"])
    op.create_index("ix_orders_occurred", "orders", ["occurred_at"])
    op.create_index("ix_point_lots_expires", "point_lots", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_point_lots_expires", table_name="point_lots")
    op.drop_index("ix_orders_occurred", table_name="orders")
    op.drop_index("ix_ledger_entries_occurred", table_name="ledger_entries")
