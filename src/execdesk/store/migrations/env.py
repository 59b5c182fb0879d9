"""Alembic environment: runs on the connection the ledger hands over (see store.ledger)."""

from __future__ import annotations

from alembic import context

from execdesk.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the ledger always passes its connection
    raise RuntimeError("execdesk migrations run through execdesk.store.ledger.upgrade()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
