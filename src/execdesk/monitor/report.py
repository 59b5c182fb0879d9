"""Performance reports from the ledger: append-only files, one new folder per report.

A report folder is created exclusively (``reports/NNNN-<desk time>/``), so a report is never
overwritten; it holds ``report.json`` (stable keys) and ``report.md`` (for people). Per deployment:
trades, win rate, P&L, fees, max drawdown, state, its daily equity, the validation figures of
the backtest that approved it beside the live ones, and its execution quality (fill ratio, reject
rate, slippage against the desk's price and against the backtest's fills, fees, latency).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from execdesk.backtest.metrics import compute_metrics
from execdesk.domain.events import EventKind
from execdesk.errors import InvalidInput
from execdesk.execution.quality import execution_quality
from execdesk.monitor.equity import MARK_EVENTS, PORTFOLIO, fold_marks
from execdesk.monitor.trades import round_trips
from execdesk.store.ledger import Ledger


def build_report(ledger: Ledger, deployment: str | None = None) -> dict[str, Any]:
    state = ledger.state
    if deployment is not None and deployment not in state.deployments:
        known = ", ".join(sorted(state.deployments)) or "none"
        raise InvalidInput(f"no deployment {deployment!r} in this home's ledger (deployments: {known})")
    validations: dict[str, Any] = {}
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}):
        validations[e.payload["deployment_id"]] = e.payload.get("validation", {})
    curves: dict[str, list[tuple[str, float]]] = {PORTFOLIO: []}
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    last_time = 0
    for e in ledger.events({EventKind.EQUITY_SNAPSHOT}):
        stamp = pd.Timestamp(e.time, unit="s", tz="UTC").isoformat()
        last_time = e.time
        curves[PORTFOLIO].append((stamp, e.payload["equity"]))
        for dep_id, values in e.payload["deployments"].items():
            curves.setdefault(dep_id, []).append((stamp, values["equity"]))
    trips = round_trips(state.fills.values())
    quality = execution_quality(ledger)
    period_end = pd.Timestamp(last_time or 0, unit="s", tz="UTC").to_pydatetime() if last_time else None
    deps = []
    for dep in state.deployments.values():
        if deployment is not None and dep.id != deployment:
            continue
        last_equity = marks.last_equity.get(dep.id, float(dep.capital))
        pnl = last_equity - float(dep.capital)
        deps.append({
            "id": dep.id, "strategy": dep.strategy_id, "name": dep.name, "version": dep.version,
            "pairs": dep.pairs, "state": dep.state.value, "state_reason": dep.state_reason,
            "capital": float(dep.capital), "equity": round(last_equity, 2), "pnl": round(pnl, 2),
            "pnl_pct": round(pnl / float(dep.capital) * 100, 4) if dep.capital else 0.0,
            "realized_pnl": float(dep.realized_pnl), "fees": float(dep.fees), "trades": dep.trades, "wins": dep.wins,
            "win_rate": dep.wins / dep.trades if dep.trades else 0.0,
            "max_drawdown": round(marks.max_drawdown.get(dep.id, 0.0), 6),
            "validation": validations.get(dep.id, {}),
            "metrics": _metrics(trips[trips.deployment_id == dep.id], float(dep.capital), dep.created_at, period_end),
            "execution": quality.get(dep.id, {}),
            "equity_curve": curves.get(dep.id, []),
        })
    return {
        "as_of": pd.Timestamp(last_time, unit="s", tz="UTC").isoformat() if last_time else None,
        "trading_state": state.trading_state.value, "trading_reason": state.trading_reason,
        "portfolio": {"equity": round(marks.last_equity.get(PORTFOLIO, float(state.cash())), 2),
                      "max_drawdown": round(marks.max_drawdown.get(PORTFOLIO, 0.0), 6),
                      "equity_curve": curves[PORTFOLIO]},
        "deployments": deps,
    }


def _metrics(trades: pd.DataFrame, capital: float, created_at: int, end: datetime | None) -> dict[str, Any]:
    """The live trades' figures, by the same code as the backtests' (execdesk.backtest.metrics)."""
    m = compute_metrics(trades.reset_index(drop=True), capital,
                        pd.Timestamp(created_at, unit="s", tz="UTC").to_pydatetime(), end)
    return {"trades": m.trades, "win_rate": round(m.win_rate, 6), "profit_factor": _finite(m.profit_factor),
            "total_profit_abs": round(m.total_profit_abs, 6), "sharpe": _finite(m.sharpe),
            "sortino": _finite(m.sortino), "calmar": _finite(m.calmar),
            "max_drawdown_closed_trades": round(m.max_drawdown, 6),
            "avg_trade_duration_min": round(m.avg_trade_duration.total_seconds() / 60, 1)}


def _finite(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def write_report(ledger: Ledger, home: Path, deployment: str | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Build the report and write it to a new folder under ``home/reports``; never overwrites."""
    data = build_report(ledger, deployment)
    root = home / "reports"
    root.mkdir(parents=True, exist_ok=True)
    stamp = (data["as_of"] or "empty").replace(":", "").replace("+0000", "Z")
    number = 1 + max((int(p.name.split("-", 1)[0]) for p in root.iterdir() if p.name[:4].isdigit()), default=0)
    while True:
        folder = root / f"{number:04d}-{stamp}{'-' + deployment if deployment else ''}"
        try:
            folder.mkdir()
            break
        except FileExistsError:  # another writer took the number: take the next, never overwrite
            number += 1
    json_path, md_path = folder / "report.json", folder / "report.md"
    with json_path.open("x", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    with md_path.open("x", encoding="utf-8") as fh:
        fh.write(_markdown(data))
    return data, [json_path, md_path]


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "n/a"


def _markdown(data: dict[str, Any]) -> str:
    lines = [f"# Desk performance report — {data['as_of']}", "",
             f"Trading state: **{data['trading_state']}** ({data['trading_reason']}). "
             f"Portfolio equity {data['portfolio']['equity']:,.2f}, max drawdown "
             f"{data['portfolio']['max_drawdown']:.2%}.", "",
             "| deployment | state | trades | win rate | P&L | P&L % | max DD | Sharpe | backtest trades "
             "| backtest win rate | backtest max DD | backtest Sharpe |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in data["deployments"]:
        v = d["validation"]
        lines.append(f"| {d['id']} ({d['name']}) | {d['state']} ({d['state_reason']}) | {d['trades']} | "
                     f"{d['win_rate']:.0%} | {d['pnl']:,.2f} | {d['pnl_pct']:+.2f}% | {d['max_drawdown']:.2%} | "
                     f"{_num(d['metrics']['sharpe'])} | {v.get('trades', '')} | {v.get('win_rate', 0):.0%} | "
                     f"{v.get('max_drawdown', 0):.0%} | {_num(v.get('sharpe'))} |")
    lines += ["", "## Execution quality", "",
              "| deployment | orders | fills | fill ratio | reject rate | slippage bps (mean / p95) "
              "| vs backtest fills bps | fees | latency s |", "|---|---|---|---|---|---|---|---|---|"]
    for d in data["deployments"]:
        q = d.get("execution") or {}
        ratio = q.get("fill_ratio")
        rejects = q.get("reject_rate")
        lines.append(f"| {d['id']} | {q.get('orders', 0)} | {q.get('fills', 0)} | "
                     f"{'n/a' if ratio is None else format(ratio, '.1%')} | "
                     f"{'n/a' if rejects is None else format(rejects, '.1%')} | "
                     f"{_num(q.get('slippage_bps_mean'))} / {_num(q.get('slippage_bps_p95'))} | "
                     f"{_num(q.get('backtest_slippage_bps_mean'))} | {_num(q.get('fees'))} | "
                     f"{_num(q.get('latency_s_mean'))} |")
    lines += ["", "Live figures are from the ledger (fills, and equity marked to market at each bar's close);",
              "Sharpe and the other trade metrics are computed from the live round trips by the same code as",
              "the native backtester's (Freqtrade's formulas); backtest figures are those of the validation",
              "report that approved each strategy.", ""]
    return "\n".join(lines)
