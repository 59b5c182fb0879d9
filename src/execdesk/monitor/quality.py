"""Execution quality from the ledger: how well the executor filled what the desk asked for.

Per fill (recorded with each ``order.filled``): slippage against the price the desk saw when it
decided (``slippage_bps``, positive = worse), slippage against the fill the backtest assumed for the
same exit (``backtest_slippage_bps``, exits the backtester decided), the fee, the time from the order
to the fill (``latency_s``) and the liquidity side. Per deployment: the orders sent, the fill ratio
(quantity filled / quantity ordered, over orders that reached an end), the reject rate, slippage mean
and 95th percentile, backtest slippage mean, fees and mean latency.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from execdesk.domain.events import EventKind
from execdesk.domain.types import OrderStatus
from execdesk.store.ledger import Ledger


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4)


def execution_quality(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Per deployment id: the figures above (see the module docstring)."""
    state = ledger.state
    slip: dict[str, list[float]] = defaultdict(list)
    bt_slip: dict[str, list[float]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    makers: dict[str, int] = defaultdict(int)
    for e in ledger.events({EventKind.ORDER_FILLED}):
        p = e.payload
        dep = e.deployment_id or ""
        slip[dep].append(float(p.get("slippage_bps", 0)))
        if "backtest_slippage_bps" in p:
            bt_slip[dep].append(float(p["backtest_slippage_bps"]))
        if "latency_s" in p:
            latency[dep].append(float(p["latency_s"]))
        makers[dep] += p.get("liquidity") == "maker"
    out: dict[str, dict[str, Any]] = {}
    for dep in state.deployments:
        orders = [o for o in state.orders.values() if o.deployment_id == dep]
        ended = [o for o in orders if not o.status.is_open]
        ordered = sum((o.qty for o in ended), Decimal(0))
        filled = sum((o.filled_qty for o in ended), Decimal(0))
        rejected = sum(1 for o in orders if o.status is OrderStatus.REJECTED)
        fees = sum((f.fee for f in state.fills.values() if f.deployment_id == dep), Decimal(0))
        out[dep] = {
            "orders": len(orders), "fills": len(slip[dep]), "maker_fills": makers[dep],
            "fill_ratio": round(float(filled / ordered), 6) if ordered else None,
            "reject_rate": round(rejected / len(orders), 6) if orders else None,
            "slippage_bps_mean": _mean(slip[dep]), "slippage_bps_p95": _p95(slip[dep]),
            "backtest_slippage_bps_mean": _mean(bt_slip[dep]), "fees": float(fees),
            "latency_s_mean": _mean(latency[dep]),
        }
    return out
