"""The first ledger: events plus projections of deployments, orders, fills, positions, balances.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEC = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", BIG, primary_key=True, autoincrement=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_deployment_id", "events", ["deployment_id"])
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("strategy_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bundle_hash", sa.String(64), nullable=False),
        sa.Column("timeframe", sa.String(8), nullable=False),
        sa.Column("pairs", sa.Text, nullable=False),
        sa.Column("allocation", DEC, nullable=False),
        sa.Column("capital", DEC, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("realized_pnl", DEC, nullable=False),
        sa.Column("fees", DEC, nullable=False),
        sa.Column("trades", sa.Integer, nullable=False),
        sa.Column("wins", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(64), primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("pair", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("qty", DEC, nullable=False),
        sa.Column("filled_qty", DEC, nullable=False),
        sa.Column("avg_price", DEC, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("signal_time", sa.BigInteger, nullable=False),
        sa.Column("ref_price", DEC, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_orders_deployment_id", "orders", ["deployment_id"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.String(64), primary_key=True),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("pair", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("qty", DEC, nullable=False),
        sa.Column("price", DEC, nullable=False),
        sa.Column("fee", DEC, nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])
    op.create_index("ix_fills_deployment_id", "fills", ["deployment_id"])
    op.create_table(
        "positions",
        sa.Column("deployment_id", sa.String(64), primary_key=True),
        sa.Column("pair", sa.String(32), primary_key=True),
        sa.Column("qty", DEC, nullable=False),
        sa.Column("avg_price", DEC, nullable=False),
        sa.Column("realized_pnl", DEC, nullable=False),
        sa.Column("fees", DEC, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "balances",
        sa.Column("asset", sa.String(16), primary_key=True),
        sa.Column("amount", DEC, nullable=False),
    )
    op.create_table(
        "desk",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("desk", "balances", "positions", "fills", "orders", "deployments", "events"):
        op.drop_table(table)
