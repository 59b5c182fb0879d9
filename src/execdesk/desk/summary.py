"""What a run did, for the person who ran it: the run's summary (deployments, equity, drawdown, the loop's
counters) and its timeline (the decisions in order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from execdesk.data.feed import MarketView
from execdesk.desk.loop import LoopStats
from execdesk.desk.settings import RecordedDesk
from execdesk.domain.events import EventKind
from execdesk.domain.marks import MARK_EVENTS, PORTFOLIO, Watermarks, fold_marks
from execdesk.domain.state import DeskState
from execdesk.store.ledger import Ledger


@dataclass(frozen=True, slots=True)
class DeploymentSummary:
    id: str
    strategy: str
    name: str
    version: int
    pairs: list[str]
    allocation: float
    trades: int
    wins: int
    pnl: float
    pnl_pct: float
    max_drawdown: float
    state: str
    state_reason: str
    path: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class RunSummary:
    home: Path
    ledger: str
    deployments: list[DeploymentSummary]
    trading_state: str
    trading_reason: str
    equity: float
    capital: float
    max_drawdown: float
    bars: int
    stats: LoopStats
    wall_seconds: float
    timeline: list[dict[str, Any]]
    reports: list[str] = field(default_factory=list)
    already_complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home), "ledger": self.ledger, "trading_state": self.trading_state,
            "trading_reason": self.trading_reason, "equity": round(self.equity, 2), "capital": self.capital,
            "return_pct": round((self.equity / self.capital - 1) * 100, 4),
            "max_drawdown": round(self.max_drawdown, 6), "bars": self.bars,
            "loop": {"eventful_bars": self.stats.eventful_bars, "evaluations": self.stats.evaluations,
                     "orders": self.stats.orders, "denied": self.stats.denied, "fills": self.stats.fills},
            "wall_seconds": round(self.wall_seconds, 3), "already_complete": self.already_complete,
            "deployments": [d.as_dict() for d in self.deployments], "timeline": self.timeline,
            "reports": self.reports,
        }


def summarize(ledger: Ledger, market: MarketView, wall: float, stats: LoopStats, home: Path,
              already_complete: bool = False) -> RunSummary:
    state = ledger.state
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    closes = {p: float(t.close[-1]) for p, t in market.pairs.items()}
    paths = state_paths(ledger)
    deployments = [deployment_summary(state, d, closes, marks, paths.get(d.id, "")) for d in state.deployments.values()]
    capital = RecordedDesk.of(state).capital or 0.0
    equity = float(state.cash()) + sum(float(p.qty) * closes.get(p.pair, float(p.avg_price))  # (a bot's pair: at cost)
                                       for p in state.open_positions())
    return RunSummary(home, ledger.location, deployments, state.trading_state.value,
                      state.trading_reason, equity, capital, marks.max_drawdown.get(PORTFOLIO, 0.0),
                      market.n, stats, wall, timeline(ledger), already_complete=already_complete)


def deployment_summary(state: DeskState, dep: Any, closes: dict[str, float], marks: Watermarks, path: str
                       ) -> DeploymentSummary:
    unrealised = sum(float(p.qty) * (closes.get(p.pair, float(p.avg_price)) - float(p.avg_price))
                     for p in state.open_positions() if p.deployment_id == dep.id)
    pnl = float(dep.realized_pnl - dep.fees) + unrealised
    capital = float(dep.capital)
    return DeploymentSummary(dep.id, dep.strategy_id, dep.name, dep.version, list(dep.pairs), float(dep.allocation),
                             dep.trades, dep.wins, round(pnl, 2), round(pnl / capital * 100, 4) if capital else 0.0,
                             round(marks.max_drawdown.get(dep.id, 0.0), 6), dep.state.value,
                             dep.state_reason, path)


_TIMELINE_KINDS = {EventKind.ALERT_RAISED, EventKind.TRADING_STATE_CHANGED, EventKind.BREACH_DETECTED,
                   EventKind.BREACH_CONFIRMED, EventKind.BREACH_AUTHORIZED, EventKind.ALLOCATION_STAGED,
                   EventKind.GATE, EventKind.DEPLOYMENT_STATE_CHANGED, EventKind.POSITIONS_HANDED_OVER,
                   EventKind.ORDER_SUBMITTED, EventKind.ORDER_FILLED, EventKind.ORDER_DENIED}


_OUTCOME_WORDS = {"passed": "ok", "not_required": "not required"}


def timeline(ledger: Ledger) -> list[dict[str, Any]]:
    """What the desk decided, in order: deployments through the gates, alerts, the circuit breaker's steps,
    the lifecycle of deployments (scheduled, paused, removed, rolled back) and the desk's state changes; of the
    orders, a deployment's first stop resting at the venue and each fill of one, and the first entry the risk
    manager denied by each rule for each deployment."""
    from execdesk.lead.lifecycle import LIFECYCLE_REASONS

    out = []
    gates: dict[str, list[str]] = {}
    stops: dict[str, dict[str, Any]] = {}  # the stop orders, by client order id
    stopped: set[str] = set()  # the deployments whose first stop is told
    denied: set[tuple[str, str]] = set()
    for e in ledger.events(_TIMELINE_KINDS):
        p = e.payload
        if e.kind is EventKind.ORDER_SUBMITTED:
            if p["type"] != "STOP_MARKET":
                continue
            stops[p["client_order_id"]] = p
            if p["deployment_id"] in stopped:
                continue
            stopped.add(p["deployment_id"])
            what = (f"{p['deployment_id']}: its stop rests at the venue: {p['pair']} {p['side'].lower()} "
                    f"{_num(p['qty'])} if the price reaches {_num(p['stop_price'])} (stoploss on the exchange; "
                    "moved with the position, cancelled before any other exit)")
        elif e.kind is EventKind.ORDER_FILLED:
            stop = stops.get(p["client_order_id"])
            if stop is None:
                continue
            what = (f"{stop['deployment_id']}: the stop resting at the venue filled inside the bar: {stop['pair']} "
                    f"{_num(p['qty'])} at {_num(p['price'])} (stop {_num(stop['stop_price'])}, "
                    f"{float(p['slippage_bps']):+.1f} bps)")
        elif e.kind is EventKind.ORDER_DENIED:
            rule = str(p["verdict"].get("rule", ""))
            if (p["deployment_id"], rule) in denied:
                continue
            denied.add((p["deployment_id"], rule))
            what = (f"risk denies {p['deployment_id']}'s {p['reason'].replace('_', ' ')} on {p['pair']}: {rule}, "
                    f"{p['verdict'].get('reason', '')} (the first {rule} denial of {p['deployment_id']})")
        elif e.kind is EventKind.GATE:
            words = p["reason"].split(":")[0] if p["gate"] == "risk" and p["outcome"] != "refused" else None
            seen = gates.setdefault(p["request_id"], [])
            seen.append(f"{p['gate']} {words or _OUTCOME_WORDS.get(p['outcome'], p['outcome'])}")
            if p["outcome"] in ("refused", "denied"):
                what = f"lead: {p['deployment_id']} -> {p['venue']} refused at the {p['gate']} gate: {p['reason']}"
            elif p["outcome"] == "pending":
                what = f"lead: {p['deployment_id']} -> {p['venue']} waits for a human: {p['reason']}"
            elif p["gate"] == "monitor":
                what = f"lead deploys {p['deployment_id']} -> {p['venue']}: {', '.join(seen)}"
            else:
                continue
        elif e.kind is EventKind.DEPLOYMENT_STATE_CHANGED:
            if p["reason"] not in LIFECYCLE_REASONS:  # the ladders' and protocols' changes have their alerts
                continue
            evidence = p.get("evidence") or {}
            who = f" by {evidence['by']}" if evidence.get("by") else ""
            because = f": {evidence['reason']}" if evidence.get("reason") else ""
            what = f"{p['deployment_id']} {p['from']} -> {p['to']} ({p['reason']}{who}{because})"
        elif e.kind is EventKind.POSITIONS_HANDED_OVER:
            pairs = ", ".join(f"{x['pair']} {x['qty']}" for x in p["positions"])
            what = f"lead hands {p['from']}'s positions over to {p['to']}: {pairs}"
        elif e.kind is EventKind.ALLOCATION_STAGED:
            if p["action"] not in ("promote", "fall_back"):  # holds are routine; a proposed removal is an alert
                continue
            what = f"risk stages {p['deployment_id']}: {p['reason']}"
        elif e.kind is EventKind.ALERT_RAISED:
            if p["level"] == "INFO":  # in the ledger and the alert files; the summary keeps to what matters
                continue
            what = f"[{p['level']}] {p['message']}"
        elif e.kind is EventKind.TRADING_STATE_CHANGED:
            what = f"desk {p['from']} -> {p['to']} ({p['reason']})"
        elif e.kind is EventKind.BREACH_CONFIRMED:
            if p.get("limit") == "manual":
                what = f"risk records equity {float(p['equity']):,.2f} for the kill switch"
            else:
                what = (f"risk {'confirms' if p['confirmed'] else 'does not confirm'} the breach on fresh equity "
                        f"{float(p['equity']):,.2f} (drawdown {float(p['drawdown']):.2%})")
        elif e.kind is EventKind.BREACH_AUTHORIZED:
            what = f"{'lead' if p['by'] == 'lead' else p['by']} authorizes: {p['action']} ({p['policy']})"
        elif p.get("by") == "human":
            what = f"kill switch pulled by {p.get('by_name', 'a human')}: {p['reason']}"
        else:
            what = f"monitor detects portfolio drawdown {p['drawdown']:.2%} >= {p['limit']:.0%}"
        out.append({"seq": e.seq, "time": pd.Timestamp(e.time, unit="s", tz="UTC").isoformat(), "kind": e.kind.value,
                    "deployment_id": e.deployment_id, "what": what})
    return out


def _num(value: Any) -> str:
    """A recorded decimal for people: 6 significant digits."""
    return f"{float(value):,.6g}"


def state_paths(ledger: Ledger) -> dict[str, str]:
    """Each deployment's states in order, e.g. ``ACTIVE -> REDUCING (drawdown_halt, circuit_breaker) -> HALTED
    (circuit_breaker)``."""
    paths: dict[str, list[tuple[str, list[str]]]] = {}
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED, EventKind.DEPLOYMENT_STATE_CHANGED}):
        dep = e.payload["deployment_id"]
        if e.kind is EventKind.DEPLOYMENT_CREATED:
            paths[dep] = [("ACTIVE", [])]
        elif paths[dep][-1][0] == e.payload["to"]:  # same state, another reason: say both
            paths[dep][-1][1].append(e.payload["reason"])
        else:
            paths[dep].append((e.payload["to"], [e.payload["reason"]]))
    return {dep: " -> ".join(f"{state} ({', '.join(reasons)})" if reasons else state for state, reasons in steps)
            for dep, steps in paths.items()}
