"""Deployments: the venue each trades on and when a scheduled one starts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("venue", sa.String(64), nullable=True))
        batch.add_column(sa.Column("start_at", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        for name in ("start_at", "venue"):
            batch.drop_column(name)
