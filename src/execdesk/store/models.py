"""The ledger's tables (SQLAlchemy 2 Core metadata; Alembic migrations create them).

``events`` is the append-only source of truth. The other tables are projections of the fold of
the events (:class:`execdesk.domain.state.DeskState`), kept in the same transaction so that
queries (``execdesk status``) need not replay the ledger. Accounting numbers are stored as decimal
strings: SQLite has no exact decimal type, and a ledger must not round.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

metadata = MetaData()

events = Table(
    "events", metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False, index=True),
    Column("deployment_id", String(64), nullable=True, index=True),
    Column("payload", Text, nullable=False),
    Column("hash", String(64), nullable=False),
)

deployments = Table(
    "deployments", metadata,
    Column("id", String(64), primary_key=True),
    Column("strategy_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("bundle_hash", String(64), nullable=False),
    Column("timeframe", String(8), nullable=False),
    Column("pairs", Text, nullable=False),
    Column("allocation", String(40), nullable=False),
    Column("capital", String(40), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", Text, nullable=False),
    Column("realized_pnl", String(40), nullable=False),
    Column("fees", String(40), nullable=False),
    Column("trades", Integer, nullable=False),
    Column("wins", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("venue", String(64), nullable=True),
    Column("start_at", BigInteger, nullable=True),
)

orders = Table(
    "orders", metadata,
    Column("client_order_id", String(64), primary_key=True),
    Column("deployment_id", String(64), nullable=False, index=True),
    Column("pair", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("type", String(16), nullable=False),
    Column("qty", String(40), nullable=False),
    Column("filled_qty", String(40), nullable=False),
    Column("avg_price", String(40), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("reason", String(32), nullable=False),
    Column("signal_time", BigInteger, nullable=False),
    Column("ref_price", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("price", String(40), nullable=True),
    Column("stop_price", String(40), nullable=True),
    Column("venue_order_id", String(128), nullable=True),
    Column("status_reason", String(256), nullable=True),
)

fills = Table(
    "fills", metadata,
    Column("fill_id", String(64), primary_key=True),
    Column("client_order_id", String(64), nullable=False, index=True),
    Column("deployment_id", String(64), nullable=False, index=True),
    Column("pair", String(32), nullable=False),
    Column("side", String(8), nullable=False),
    Column("qty", String(40), nullable=False),
    Column("price", String(40), nullable=False),
    Column("fee", String(40), nullable=False),
    Column("time", BigInteger, nullable=False),
)

positions = Table(
    "positions", metadata,
    Column("deployment_id", String(64), primary_key=True),
    Column("pair", String(32), primary_key=True),
    Column("qty", String(40), nullable=False),
    Column("avg_price", String(40), nullable=False),
    Column("realized_pnl", String(40), nullable=False),
    Column("fees", String(40), nullable=False),
    Column("opened_at", BigInteger, nullable=False),
)

balances = Table(
    "balances", metadata,
    Column("asset", String(16), primary_key=True),
    Column("amount", String(40), nullable=False),
)

desk = Table(
    "desk", metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)

#: the commands the desk took in (``command.received``), one row per command id: applying an id twice is
#: refused by the database itself (rows are inserted, never upserted)
commands = Table(
    "commands", metadata,
    Column("command_id", String(64), primary_key=True),
    Column("action", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)
