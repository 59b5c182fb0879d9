"""Rows of the projection tables, derived from a :class:`DeskState`.

The same functions write the projections (for the keys an event touched) and produce the full
expected tables from a rebuilt state, so "projections equal the fold of the events" is checked
against one definition of a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table

from execdesk.domain.state import DeploymentRecord, DeskState, FillRecord, OrderRecord, PositionRecord
from execdesk.store import models


def deployment_row(d: DeploymentRecord) -> dict[str, Any]:
    return {"id": d.id, "strategy_id": d.strategy_id, "name": d.name, "version": d.version,
            "bundle_hash": d.bundle_hash, "timeframe": d.timeframe, "pairs": json.dumps(d.pairs),
            "allocation": str(d.allocation), "capital": str(d.capital), "state": d.state.value,
            "state_reason": d.state_reason, "realized_pnl": str(d.realized_pnl), "fees": str(d.fees),
            "trades": d.trades, "wins": d.wins, "created_at": d.created_at,
            "venue": d.venue, "start_at": d.start_at}


def order_row(o: OrderRecord) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "deployment_id": o.deployment_id, "pair": o.pair,
            "side": o.side, "direction": o.direction, "type": o.type, "qty": str(o.qty),
            "filled_qty": str(o.filled_qty), "avg_price": str(o.avg_price), "status": o.status.value,
            "reason": o.reason, "signal_time": o.signal_time, "ref_price": str(o.ref_price),
            "created_at": o.created_at, "updated_at": o.updated_at,
            "price": None if o.price is None else str(o.price),
            "stop_price": None if o.stop_price is None else str(o.stop_price),
            "venue_order_id": o.venue_order_id, "status_reason": o.status_reason}


def fill_row(f: FillRecord) -> dict[str, Any]:
    return {"fill_id": f.fill_id, "client_order_id": f.client_order_id, "deployment_id": f.deployment_id,
            "pair": f.pair, "side": f.side, "qty": str(f.qty), "price": str(f.price), "fee": str(f.fee),
            "time": f.time}


def position_row(p: PositionRecord) -> dict[str, Any]:
    return {"deployment_id": p.deployment_id, "pair": p.pair, "qty": str(p.qty), "avg_price": str(p.avg_price),
            "realized_pnl": str(p.realized_pnl), "fees": str(p.fees), "opened_at": p.opened_at}


def desk_rows(s: DeskState) -> list[dict[str, Any]]:
    values = {
        "trading_state": s.trading_state.value,
        "trading_reason": s.trading_reason,
        "last_bar_time": "" if s.last_bar_time is None else str(s.last_bar_time),
        "bars_done": str(s.bars_done),
        "completed": "1" if s.completed else "0",
        "quote": s.quote,
        "config": json.dumps(s.config, sort_keys=True),
        "last_seq": str(s.last_seq),
    }
    return [{"key": k, "value": v} for k, v in values.items()]


def projection_rows(state: DeskState, keys: Iterable[tuple[str, Any]]) -> dict[Table, list[dict[str, Any]]]:
    """The rows to upsert for the touched ``keys`` (as collected in ``DeskState.dirty``)."""
    out: dict[Table, list[dict[str, Any]]] = {t: [] for t in (models.deployments, models.orders, models.fills,
                                                               models.positions, models.balances, models.desk,
                                                               models.commands)}
    for kind, key in keys:
        if kind == "deployment":
            out[models.deployments].append(deployment_row(state.deployments[key]))
        elif kind == "order":
            out[models.orders].append(order_row(state.orders[key]))
        elif kind == "fill":
            out[models.fills].append(fill_row(state.fills[key]))
        elif kind == "position":
            out[models.positions].append(position_row(state.positions[key]))
        elif kind == "balance":
            out[models.balances].append({"asset": key, "amount": str(state.balances[key])})
        elif kind == "desk":
            out[models.desk].extend(desk_rows(state))
        elif kind == "command":
            out[models.commands].append(state.commands[key].row())
    for table, rows in out.items():  # one row per key, in key order: deterministic writes
        pk = [c.name for c in table.primary_key.columns]
        unique = {tuple(r[c] for c in pk): r for r in rows}
        out[table] = [unique[k] for k in sorted(unique)]  # keys are tuples of str: plain order
    return out


def all_projection_rows(state: DeskState) -> dict[str, list[dict[str, Any]]]:
    """Every projection table as ``Ledger.read_projections`` returns it, derived from ``state``."""
    keys: list[tuple[str, Any]] = [("deployment", k) for k in state.deployments]
    keys += [("order", k) for k in state.orders]
    keys += [("fill", k) for k in state.fills]
    keys += [("position", k) for k in state.positions]
    keys += [("balance", k) for k in state.balances]
    keys += [("command", k) for k in state.commands]
    keys.append(("desk", None))
    return {table.name: rows for table, rows in projection_rows(state, keys).items()}
