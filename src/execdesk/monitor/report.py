"""Performance reports from the ledger: append-only files, one new folder per report.

A report folder is created exclusively (``reports/NNNN-<desk time>/``), so a report is never
overwritten. It holds:

* ``report.json`` (stable keys) and ``report.md`` (for people). Per deployment: trades, win rate, P&L,
  fees, max drawdown, state, its daily equity, the validation figures of the backtest that approved it
  beside the live ones, and its execution quality (fill ratio, reject rate, slippage against the
  desk's price and against the backtest's fills, fees, latency). ``report.json`` also holds the
  comparison below under ``comparison``.
* ``comparison.json``, ``comparison.yaml`` (the same data) and ``comparison.md``: live against
  backtest per deployment — a row per drift rule (metric, backtest, live, drift, status ok / warn /
  critical, with the rule, sample size and p-value) from :func:`execdesk.monitor.drift.evaluate_drift`,
  the verdict (continue / review / pause / stop) and the live metrics
  (:func:`execdesk.monitor.metrics.live_metrics`); and a portfolio summary.
* ``dashboard-<deployment>.png``: four panels per deployment (:mod:`execdesk.monitor.dashboard`).

docs/REPORTS.md describes every file and figure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from execdesk.backtest.metrics import compute_metrics
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import MARK_EVENTS, PORTFOLIO, fold_marks
from execdesk.errors import InvalidInput
from execdesk.monitor.baseline import DRAWDOWN_MIN_TRADES, baseline_of, bootstrap_drawdown, trade_path_drawdown
from execdesk.monitor.dashboard import DashboardData, write_dashboard
from execdesk.monitor.drift import ROW_LABELS, VERDICTS, DriftConfig, evaluate_drift, format_cell
from execdesk.monitor.metrics import live_metrics
from execdesk.monitor.quality import execution_quality
from execdesk.monitor.trades import handovers_of, round_trips
from execdesk.phases import phase
from execdesk.safefiles import pid_alive
from execdesk.store.ledger import Ledger
from execdesk.strategy.bundle import ValidationReport


def build_report(ledger: Ledger, deployment: str | None = None,
                 drift_config: DriftConfig | None = None) -> dict[str, Any]:
    """The report's data (what ``report.json`` holds) for every deployment, or only ``deployment``."""
    return _build(ledger, deployment, drift_config or DriftConfig())[0]


def _build(ledger: Ledger, deployment: str | None,
           config: DriftConfig) -> tuple[dict[str, Any], list[DashboardData]]:
    state = ledger.state
    if deployment is not None and deployment not in state.deployments:
        known = ", ".join(sorted(state.deployments)) or "none"
        raise InvalidInput(f"no deployment {deployment!r} in this home's ledger (deployments: {known})")
    validations: dict[str, Any] = {}
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}):
        validations[e.payload["deployment_id"]] = e.payload.get("validation", {})
    baselines = {e.payload["deployment_id"]: e.payload for e in ledger.events({EventKind.MONITOR_BASELINE})}
    desk_capital = [float(e.payload["capital"]) for e in ledger.events({EventKind.DESK_CONFIGURED})]
    slippage: dict[str, list[float]] = defaultdict(list)
    for e in ledger.events({EventKind.ORDER_FILLED}):
        slippage[e.deployment_id or ""].append(float(e.payload.get("slippage_bps", 0)))
    curves: dict[str, list[tuple[str, float]]] = {PORTFOLIO: []}
    times: dict[str, list[int]] = {PORTFOLIO: []}
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    last_time = 0
    for e in ledger.events({EventKind.EQUITY_SNAPSHOT}):
        stamp = pd.Timestamp(e.time, unit="s", tz="UTC").isoformat()
        last_time = e.time
        curves[PORTFOLIO].append((stamp, e.payload["equity"]))
        times[PORTFOLIO].append(e.time)
        for dep_id, values in e.payload["deployments"].items():
            curves.setdefault(dep_id, []).append((stamp, values["equity"]))
            times.setdefault(dep_id, []).append(e.time)
    trips = round_trips(state.fills.values(), handovers_of(ledger.events({EventKind.POSITIONS_HANDED_OVER})))
    quality = execution_quality(ledger)
    period_end = pd.Timestamp(last_time or 0, unit="s", tz="UTC").to_pydatetime() if last_time else None
    deps = []
    comparisons = []
    dashboards = []
    for dep in state.deployments.values():
        if deployment is not None and dep.id != deployment:
            continue
        last_equity = marks.last_equity.get(dep.id, float(dep.capital))
        pnl = last_equity - float(dep.capital)
        dep_trips = trips[trips.deployment_id == dep.id].reset_index(drop=True)
        deps.append({
            "id": dep.id, "strategy": dep.strategy_id, "name": dep.name, "version": dep.version,
            "pairs": dep.pairs, "state": dep.state.value, "state_reason": dep.state_reason,
            "capital": float(dep.capital), "equity": round(last_equity, 2), "pnl": round(pnl, 2),
            "pnl_pct": round(pnl / float(dep.capital) * 100, 4) if dep.capital else 0.0,
            "realized_pnl": float(dep.realized_pnl), "fees": float(dep.fees), "trades": dep.trades, "wins": dep.wins,
            "win_rate": dep.wins / dep.trades if dep.trades else 0.0,
            "max_drawdown": round(marks.max_drawdown.get(dep.id, 0.0), 6),
            "validation": validations.get(dep.id, {}),
            "metrics": _metrics(dep_trips, float(dep.capital), dep.created_at, period_end),
            "execution": quality.get(dep.id, {}),
            "equity_curve": curves.get(dep.id, []),
        })
        equity = _series(times.get(dep.id, []), [v for _, v in curves.get(dep.id, [])])
        row, dash = compare_deployment(
            dep.id, dep.name, float(dep.capital), validations.get(dep.id, {}), baselines.get(dep.id), dep_trips,
            equity, slippage.get(dep.id, []), float(dep.fees), marks.max_drawdown.get(dep.id), config)
        comparisons.append(row)
        if dash is not None:
            dashboards.append(dataclasses.replace(dash, state=f"{dep.state.value} ({dep.state_reason})"
                                                  if dep.state_reason else dep.state.value))
    as_of = pd.Timestamp(last_time, unit="s", tz="UTC").isoformat() if last_time else None
    portfolio_equity = _series(times[PORTFOLIO], [v for _, v in curves[PORTFOLIO]])
    capital = desk_capital[0] if desk_capital else float(sum(d.capital for d in state.deployments.values()))
    portfolio = _portfolio(comparisons, portfolio_equity, trips, capital, slippage.values(),
                           float(sum(d.fees for d in state.deployments.values())),
                           marks.max_drawdown.get(PORTFOLIO))
    data = {
        "as_of": as_of,
        "trading_state": state.trading_state.value, "trading_reason": state.trading_reason,
        "portfolio": {"equity": round(marks.last_equity.get(PORTFOLIO, float(state.cash())), 2),
                      "max_drawdown": round(marks.max_drawdown.get(PORTFOLIO, 0.0), 6),
                      "equity_curve": curves[PORTFOLIO]},
        "deployments": deps,
        "comparison": _plain({"as_of": as_of, "portfolio": portfolio, "deployments": comparisons,
                              "drift_config": asdict(config)}),
    }
    return data, dashboards


def _series(times: list[int], values: list[float]) -> pd.Series:
    index = pd.to_datetime(pd.Series(times, dtype="int64"), unit="s", utc=True)
    return pd.Series([float(v) for v in values], index=pd.DatetimeIndex(index), dtype="float64")


# ---------------------------------------------------------------------------------------------- comparison

def validation_report(payload: dict[str, Any]) -> ValidationReport | None:
    """The ``deployment.created`` event's validation dict as a report (None when absent or invalid)."""
    if not payload:
        return None
    try:
        return ValidationReport.model_validate(payload)
    except ValueError:
        return None


def compare_deployment(dep_id: str, name: str, capital: float, validation: dict[str, Any],
                       baseline: dict[str, Any] | None, trades: pd.DataFrame, equity: pd.Series,
                       slippage_bps: list[float], fees: float, bar_max_drawdown: float | None,
                       config: DriftConfig | None = None) -> tuple[dict[str, Any], DashboardData | None]:
    """One deployment live against its backtest: rows, verdict, live metrics (and its dashboard's data).

    ``trades`` are its round trips in closing order, ``equity`` its snapshot series, ``baseline`` the
    ``monitor.baseline`` payload (the backtest's trade returns; else the validation report's own are
    used, if any), ``bar_max_drawdown`` the monitor's bar-by-bar watermark (the larger of it and the
    snapshot series' drawdown is the live max drawdown).
    """
    config = config or DriftConfig()
    live = live_metrics(equity, trades, capital, slippage_bps, fees) if capital > 0 else None
    report = validation_report(validation)
    returns = baseline.get("returns") if baseline else None
    source = baseline.get("source") if baseline else None
    if returns is None and report is not None and report.returns:
        returns, source = list(report.returns), "validation report"
    entry: dict[str, Any] = {
        "id": dep_id, "name": name,
        "baseline": {"source": source, "returns": len(returns) if returns else 0,
                     "validation_trades": report.trades if report else None},
        "live_metrics": live.as_dict() if live else None,
        "dashboard": dashboard_name(dep_id),
    }
    if report is None:
        entry |= {"verdict": None, "rows": [], "note": "no valid validation report recorded: nothing to compare"}
        return entry, None
    # the drawdown rule as the monitor in the loop applies it (monitor/watch.py): the strategy's drawdown
    # on its compounded closed-trade returns, against what the backtest's returns reach over as many trades
    live_returns = trades["profit_ratio"].to_numpy(dtype=float).tolist()
    base = baseline_of(report, returns)
    drawdown: float | None = None
    judged = base.returns is not None or report.trades >= config.min_trades
    if len(live_returns) >= DRAWDOWN_MIN_TRADES and judged:
        drawdown = trade_path_drawdown(live_returns)
        if base.returns is not None:
            base = dataclasses.replace(base, max_drawdown=bootstrap_drawdown(base.returns, len(live_returns), {}))
    assessment = evaluate_drift(
        base,
        live_returns,
        trades["trade_duration"].to_numpy(dtype=float).tolist(),
        max_drawdown=drawdown, slippage_bps_mean=live.slippage_bps_mean if live else None,
        fills=live.fills if live else 0, sharpe=live.sharpe if live else None, config=config, deployment=dep_id)
    entry["equity_max_drawdown"] = max(bar_max_drawdown or 0.0, live.max_drawdown if live else 0.0)
    entry |= {"verdict": assessment.verdict.value,
              "rows": [{**f.as_dict(), "status": f.status.value} for f in assessment.findings]}
    period = report.period
    dash = DashboardData(
        deployment=dep_id, name=name, capital=capital, equity=equity, trades=trades,
        baseline_returns=tuple(float(r) for r in returns) if returns else None,
        backtest_days=max((period.end - period.start).days + 1, 1), backtest_sharpe=report.sharpe,
        backtest_max_drawdown=report.max_drawdown, verdict=assessment.verdict.value, drift=config)
    return entry, dash


def _portfolio(comparisons: list[dict[str, Any]], equity: pd.Series, trips: pd.DataFrame, capital: float,
               slippage: Iterable[list[float]], fees: float, bar_max_drawdown: float | None) -> dict[str, Any]:
    counts = {v.value: 0 for v in VERDICTS}
    for c in comparisons:
        if c["verdict"] is not None:
            counts[c["verdict"]] += 1
    judged = [c for c in comparisons if c["verdict"] is not None]
    worst = max((VERDICTS.index(c["verdict"]) for c in judged), default=None)
    worst_verdict = None if worst is None else VERDICTS[worst].value
    attention = [c["id"] for c in judged if c["verdict"] != "continue"]
    live = live_metrics(equity, trips, capital, [s for dep in slippage for s in dep], fees) if capital > 0 else None
    drawdown = max(bar_max_drawdown or 0.0, live.max_drawdown if live else 0.0)
    parts = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    line = f"{len(comparisons)} deployment(s): {parts or 'none judged'}"
    if worst_verdict is not None:
        line += f"; worst {worst_verdict}"
        if worst_verdict != "continue":
            line += f" ({', '.join(c['id'] for c in judged if c['verdict'] == worst_verdict)})"
    if live is not None:
        sharpe = "n/a" if live.sharpe is None else f"{live.sharpe:.2f}"
        line += (f". Portfolio equity {live.equity:,.2f} ({live.pnl_pct:+.2f}%), max drawdown {drawdown:.2%}, "
                 f"Sharpe {sharpe}, {live.trades} trades")
    return {"summary": line, "verdicts": counts, "worst_verdict": worst_verdict, "attention": attention,
            "max_drawdown": drawdown, "live_metrics": live.as_dict() if live else None}


def _plain(value: Any) -> Any:
    """JSON- and YAML-safe plain data: non-finite floats as None, tuples as lists, numpy scalars as Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return str(value)


def dashboard_name(dep_id: str) -> str:
    return f"dashboard-{re.sub(r'[^A-Za-z0-9._-]', '_', dep_id)}.png"


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


def write_report(ledger: Ledger, home: Path, deployment: str | None = None,
                 drift_config: DriftConfig | None = None, *, dashboards: bool = True,
                 number: int | None = None) -> tuple[dict[str, Any], list[Path]]:
    """Build the report and write it to a new folder under ``home/reports``; never overwrites.

    Files, in the order returned: report.json, report.md, comparison.json, comparison.yaml,
    comparison.md, then (unless ``dashboards`` is False: about 0.3 s each) one
    dashboard-<deployment>.png per deployment with a validation report. The folder is written under a hidden
    temporary name and renamed into place whole: a reader (or a crash) never sees half a report. ``number``
    [the next free one]: the folder's number (:func:`run_report`'s, recorded before it is written).
    """
    phase("reading the ledger and comparing each deployment with its backtest")
    data, charts = _build(ledger, deployment, drift_config or DriftConfig())
    root = home / "reports"
    root.mkdir(parents=True, exist_ok=True)
    stamp = (data["as_of"] or "empty").replace(":", "").replace("+0000", "Z")
    comparison = data["comparison"]
    texts = {
        "report.json": json.dumps(data, indent=2, sort_keys=True),
        "report.md": _markdown(data),
        "comparison.json": json.dumps(comparison, indent=2, sort_keys=True, allow_nan=False),
        "comparison.yaml": yaml.safe_dump(comparison, sort_keys=True, allow_unicode=True, width=120),
        "comparison.md": comparison_markdown(comparison),
    }
    tmp = root / f".report-{os.getpid()}-{time.monotonic_ns()}.tmp"
    tmp.mkdir()
    try:
        names = []
        for name, text in texts.items():
            with (tmp / name).open("x", encoding="utf-8") as fh:
                fh.write(text)
            names.append(name)
        for i, dash in enumerate(charts if dashboards else [], 1):
            phase(f"drawing {dash.deployment}'s chart ({i} of {len(charts)})")
            names.append(write_dashboard(dash, tmp / dashboard_name(dash.deployment)).name)
        n = number if number is not None else next_report_number(root)
        while True:
            folder = root / f"{n:04d}-{stamp}{'-' + deployment if deployment else ''}"
            if not folder.exists():
                try:
                    os.rename(tmp, folder)  # (a folder made there meanwhile with something in it is not replaced)
                    break
                except OSError as exc:
                    if not folder.exists():
                        raise InvalidInput(f"report folder {folder}: cannot be written ({exc.strerror or exc})") \
                            from None
            if number is not None:
                raise InvalidInput(f"report folder {folder}: something else is there already; not overwritten")
            n += 1  # another writer took the number: take the next
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return data, [folder / name for name in names]


def next_report_number(root: Path) -> int:
    """1 + the highest number of the report folders under ``root`` (1 for none)."""
    if not root.is_dir():
        return 1
    return 1 + max((int(p.name.split("-", 1)[0]) for p in root.iterdir() if p.name[:4].isdigit()), default=0)


def run_report(ledger: Ledger, home: Path) -> list[Path]:
    """The report of the desk's last completed run, written exactly once: its ``report.written`` event (the folder's
    number) is committed first, then the folder is written; a run killed in between writes it at its next start
    (the same number, from the ledger as it is then). Nothing when no run has completed; the files of the report
    when it is there already."""
    completed = written = None
    for e in ledger.events({EventKind.RUN_COMPLETED, EventKind.REPORT_WRITTEN}):
        if e.kind is EventKind.RUN_COMPLETED:
            completed, written = e, None
        else:
            written = e
    if completed is None:
        return []
    root = home / "reports"
    for stale in root.glob(".report-*.tmp") if root.is_dir() else []:  # a writer killed mid-report
        if not pid_alive(int(stale.name.split("-")[1])):
            shutil.rmtree(stale, ignore_errors=True)
    if written is None:
        numbers = [int(e.payload["number"]) for e in ledger.events({EventKind.REPORT_WRITTEN})]
        number = max([next_report_number(root) - 1, *numbers]) + 1
        ledger.record(Event(completed.time, EventKind.REPORT_WRITTEN, {"number": number, "of": "run"}))
        ledger.flush()
    else:
        number = int(written.payload["number"])
        there = [p for p in root.glob(f"{number:04d}-*") if p.is_dir() and not p.name.startswith(".")]
        if there:
            return sorted(there[0].iterdir(), key=_report_file_order)
    return write_report(ledger, home, number=number)[1]


_REPORT_FILES = ("report.json", "report.md", "comparison.json", "comparison.yaml", "comparison.md")


def _report_file_order(path: Path) -> tuple[int, str]:
    return (_REPORT_FILES.index(path.name) if path.name in _REPORT_FILES else len(_REPORT_FILES), path.name)


def comparison_cells(r: dict[str, Any]) -> tuple[str, str, str, str]:
    """A row's label (:data:`ROW_LABELS`), backtest, live and drift cells. PSR: the benchmark (the backtest's
    Sharpe per trade) and the probability the live Sharpe per trade beats it — not the Sharpe figures again."""
    metric = r["metric"]
    if metric == "psr":
        p = r.get("p_value")
        return (ROW_LABELS[metric], f"SR* {format_cell('sharpe', 'backtest', r['backtest'])}",
                "n/a" if not isinstance(p, (int, float)) else f"{p:.3g}", "-")
    return (ROW_LABELS.get(metric, metric), format_cell(metric, "backtest", r["backtest"]),
            format_cell(metric, "live", r["live"]), format_cell(metric, "drift", r["drift"]))


def comparison_markdown(comparison: dict[str, Any]) -> str:
    """``comparison.md``: the portfolio line, then per deployment its verdict and rule table."""
    lines = [f"# Live vs backtest — {comparison['as_of']}", "", comparison["portfolio"]["summary"], ""]
    for c in comparison["deployments"]:
        lines += [f"## {c['id']} ({c['name']}) — verdict: **{c['verdict'] or 'n/a'}**", ""]
        if not c["rows"]:
            lines += [c.get("note", "no comparison"), ""]
            continue
        b, m = c["baseline"], c["live_metrics"] or {}
        lines += [f"Backtest: {b['validation_trades']} trades in its validation report; "
                  f"{b['returns']} trade returns from {b['source'] or 'nowhere'}. "
                  f"Live: {m.get('trades', 0)} closed trades, {m.get('fills', 0)} fills, "
                  f"P&L {_num(m.get('pnl'))} ({_num(m.get('pnl_pct'))}%).", "",
                  "| metric | backtest | live | drift | status | n | rule |", "|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            status = r["status"] if r["min_sample_met"] else f"{r['status']} (sample too small)"
            label, backtest, live, drift = comparison_cells(r)
            lines.append(f"| {label} | {backtest} | {live} | {drift} | {status} "
                         f"| {r['n']} | {r['rule']} |")
        lines += ["", f"Dashboard: [{c['dashboard']}]({c['dashboard']})", ""]
    lines += ["Rules, thresholds and the verdict: `execdesk.monitor.drift` (docs/REPORTS.md). The figures here are",
              "per trade, from each trade's return on its stake: Sharpe per trade (not annualised); the drawdown",
              "of those returns compounded (as if each trade staked everything) — live over its trades, backtest",
              "the 99.9th percentile of 1,000 resamplings of its trade returns over as many trades — not the",
              "equity drawdown of report.md's \"equity max DD\"; PSR the probability that the live Sharpe per",
              "trade beats the benchmark SR*, the backtest's.", ""]
    return "\n".join(lines)


def _num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "n/a"


def _markdown(data: dict[str, Any]) -> str:
    lines = [f"# Desk performance report — {data['as_of']}", "",
             f"Trading state: **{data['trading_state']}** ({data['trading_reason']}). "
             f"Portfolio equity {data['portfolio']['equity']:,.2f}, max drawdown "
             f"{data['portfolio']['max_drawdown']:.2%}.", "",
             "| deployment | state | trades | win rate | P&L (net of fees) | P&L % of its capital | equity max DD "
             "| Sharpe (annualised, Freqtrade's) | backtest trades | backtest win rate | backtest max DD (its report) "
             "| backtest Sharpe (its report) |",
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
    comparison = data["comparison"]
    lines += ["", "## Live vs backtest", "", comparison["portfolio"]["summary"], "",
              "| deployment | verdict | warn | critical |", "|---|---|---|---|"]
    for c in comparison["deployments"]:
        flagged = {level: ", ".join(r["metric"] for r in c["rows"] if r["status"] == level) or "-"
                   for level in ("warn", "critical")}
        lines.append(f"| {c['id']} | {c['verdict'] or 'n/a'} | {flagged['warn']} | {flagged['critical']} |")
    lines += ["", "Every rule's figures: comparison.md (and .json / .yaml); charts: dashboard-<deployment>.png."]
    lines += ["", "Live figures are from the ledger (fills, and equity marked to market at each bar's close): P&L",
              "is the deployment's equity less its capital (net of fees; its capital is its allocation of the",
              "desk's), equity max DD the deepest fall of that equity from its peak; Sharpe and the other trade",
              "metrics are computed from the live round trips by the same code as the native backtester's",
              "(Freqtrade's formulas: Sharpe annualised with sqrt(365)). Backtest figures are those of the",
              "validation report that approved each strategy. The per-trade figures of comparison.md measure",
              "other things under their own names.", ""]
    return "\n".join(lines)
