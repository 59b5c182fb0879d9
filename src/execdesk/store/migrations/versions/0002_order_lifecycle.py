"""Order lifecycle: limit and stop prices, the venue's order id, and why an order ended.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("price", sa.String(40), nullable=True))
        batch.add_column(sa.Column("stop_price", sa.String(40), nullable=True))
        batch.add_column(sa.Column("venue_order_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("status_reason", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for name in ("status_reason", "venue_order_id", "stop_price", "price"):
            batch.drop_column(name)
