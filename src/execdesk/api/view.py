"""What the REST API, the agent tools and the dashboard read: one home's ledger, followed.

:class:`DeskView` opens the ledger once (its chain verified as it is folded) and, before a read, folds what the
desk committed since (:meth:`~execdesk.store.ledger.Ledger.refresh`, each new event verified against the chain):
reads never write, never take the desk's lock and never wait for its loop. Every answer is plain JSON data; what
costs a scan of the events (curves, gates, the live-vs-backtest chart) is kept until the ledger moves on.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from execdesk.domain.events import Event, EventKind
from execdesk.errors import InvalidInput

#: the events the live stream carries (fills, alerts, gates, state changes, command outcomes, the desk's progress)
STREAM_KINDS = frozenset({
    EventKind.ORDER_FILLED, EventKind.ALERT_RAISED, EventKind.GATE, EventKind.APPROVAL_REQUESTED,
    EventKind.APPROVAL_DECIDED, EventKind.DEPLOYMENT_CREATED, EventKind.DEPLOYMENT_STATE_CHANGED,
    EventKind.TRADING_STATE_CHANGED, EventKind.COMMAND_RECEIVED, EventKind.COMMAND_REFUSED, EventKind.LADDER_STEPPED,
    EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED, EventKind.BREACH_AUTHORIZED, EventKind.REARMED,
    EventKind.EQUITY_SNAPSHOT, EventKind.RUN_STARTED, EventKind.RUN_COMPLETED, EventKind.REPORT_WRITTEN,
})
MAX_PAGE = 1000


class NotFound(InvalidInput):
    """What a route names is not in this home (the API's 404)."""


def plain(value: Any) -> Any:
    """A record as JSON data: decimals as strings, enums as their values."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return plain(asdict(value))
    return value


def event_dict(e: Event) -> dict[str, Any]:
    return {"seq": e.seq, "time": e.time, "kind": e.kind.value, "deployment_id": e.deployment_id, "payload": e.payload}


def page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit: got {limit}; expected 1..{MAX_PAGE}")
    if offset < 0:
        raise InvalidInput(f"offset: got {offset}; expected 0 or more")
    return limit, offset


class DeskView:
    """One home's ledger, followed by a reader (thread-safe; refreshed at most every ``every_s``)."""

    #: the reads' cache holds at most this many keys (one answer each, for the ledger's last seq)
    CACHE_KEYS = 256

    def __init__(self, home: Path, db_url: str | None = None, every_s: float = 0.2) -> None:
        from execdesk.desk.home import open_existing

        self.home = home
        self.db_url = db_url
        self.ledger = open_existing(home, db_url)
        self.every_s = every_s
        self._lock = threading.RLock()
        self._checked = time.monotonic()
        self._cache: dict[str, tuple[int, Any]] = {}

    def close(self) -> None:
        self.ledger.close(flush=False)

    @property
    def seq(self) -> int:
        return self.ledger.state.last_seq

    def refresh(self, force: bool = False) -> int:
        """Fold what the desk committed since the last look; the last event's seq."""
        with self._lock:
            now = time.monotonic()
            if force or now - self._checked >= self.every_s:
                self.ledger.refresh()
                self._checked = now
            return self.ledger.state.last_seq

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per state of the ledger."""
        with self._lock:
            seq = self.refresh()
            hit = self._cache.get(key)
            if hit is not None and hit[0] == seq:
                return hit[1]
            value = build()
            if len(self._cache) >= self.CACHE_KEYS:  # keys carry paging parameters: bounded
                self._cache.clear()
            self._cache[key] = (seq, value)
            return value

    # ---------------------------------------------------------------- reads
    def status(self) -> dict[str, Any]:
        from execdesk.api.actions import status_of

        return self.cached("status", lambda: status_of(self.ledger, self.home))

    def portfolio(self) -> dict[str, Any]:
        return self.cached("portfolio", self._portfolio)

    def _portfolio(self) -> dict[str, Any]:
        s = self.ledger.state
        curve: list[list[float]] = []
        for e in self.ledger.events({EventKind.EQUITY_SNAPSHOT}):
            curve.append([e.time, float(e.payload["equity"]), float(e.payload["drawdown"])])
        exposure = sum((abs(p.qty) * p.avg_price for p in s.open_positions()), Decimal(0))
        last = curve[-1] if curve else None
        peak = max((c[1] for c in curve), default=None)
        return {"trading_state": s.trading_state.value, "trading_reason": s.trading_reason,
                "quote": s.quote, "cash": float(s.cash()), "equity": last[1] if last else float(s.cash()),
                "drawdown": last[2] if last else 0.0, "peak": peak,
                "max_drawdown": max((c[2] for c in curve), default=0.0), "exposure": float(exposure),
                "open_positions": len(s.open_positions()), "open_orders": len(s.open_orders()),
                "deployments": len(s.deployments), "last_bar": s.last_bar_time, "completed": s.completed,
                "events": s.last_seq, "curve": curve}

    def deployment(self, dep_id: str) -> dict[str, Any]:
        with self._lock:
            self.refresh()
            if dep_id not in self.ledger.state.deployments:
                known = ", ".join(sorted(self.ledger.state.deployments)) or "none"
                raise NotFound(f"no deployment {dep_id!r} in this home (deployments: {known})")
        return self.cached(f"deployment:{dep_id}", lambda: self._deployment(dep_id))

    def _deployment(self, dep_id: str) -> dict[str, Any]:
        record = next(d for d in self.status()["deployments"] if d["id"] == dep_id)
        dep = self.ledger.state.deployments[dep_id]
        curve = [[e.time, float(e.payload["deployments"][dep_id]["equity"]),
                  float(e.payload["deployments"][dep_id]["drawdown"])]
                 for e in self.ledger.events({EventKind.EQUITY_SNAPSHOT})
                 if dep_id in e.payload.get("deployments", {})]
        return {**record, "pairs": dep.pairs, "timeframe": dep.timeframe, "capital": str(dep.capital),
                "created_at": dep.created_at, "replaces": dep.replaces, "gates": self.gates(dep_id),
                "curve": curve, "comparison": self._comparison(dep_id)}

    def _comparison(self, dep_id: str) -> dict[str, Any]:
        """Live against the backtest that approved it, trade by trade: cumulative return of the live round trips and
        of the backtest's trades (its baseline), each compounded from 1."""
        from execdesk.monitor.trades import handovers_of, round_trips

        baseline = next((e.payload for e in self.ledger.events({EventKind.MONITOR_BASELINE}, dep_id)), None)
        fills = [f for f in self.ledger.state.fills.values() if f.deployment_id == dep_id]
        trips = round_trips(fills, handovers_of(self.ledger.events({EventKind.POSITIONS_HANDED_OVER})))
        live = [float(r) for r in trips["profit_ratio"]] if len(trips) else []
        backtest = [float(r) for r in (baseline or {}).get("returns", [])]

        def path(returns: list[float]) -> list[float]:
            out, level = [1.0], 1.0
            for r in returns:
                level *= 1.0 + r
                out.append(round(level, 6))
            return out

        return {"live": path(live), "backtest": path(backtest), "live_trades": len(live),
                "backtest_trades": len(backtest), "source": (baseline or {}).get("source")}

    def gates(self, dep_id: str | None = None) -> list[dict[str, Any]]:
        kinds = {EventKind.GATE, EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED}
        with self._lock:
            self.refresh()
            return [event_dict(e) for e in self.ledger.events(kinds, dep_id)]

    def plans(self, dep_id: str | None = None) -> list[dict[str, Any]]:
        """The deployment requests' plans the lead wrote (one file per request), each with its deployment and
        request id; a file that is not a JSON object is named as unreadable, never served raw."""
        from execdesk.lead.deploy import plan_files

        out = []
        for path in plan_files(self.home):
            deployment = path.parent.parent.name
            if dep_id is not None and deployment != dep_id:
                continue
            try:
                data = json.loads(path.read_bytes())
            except (OSError, ValueError):
                data = None
            entry = {"deployment": deployment, "request_id": path.stem}
            out.append({**entry, "plan": data} if isinstance(data, dict) else {**entry, "error": "unreadable"})
        return out

    def records(self, what: str, limit: int, offset: int, deployment: str | None = None,
                status: str | None = None) -> dict[str, Any]:
        """orders, fills or positions, paged (newest last)."""
        limit, offset = page(limit, offset)
        with self._lock:
            self.refresh()
            s = self.ledger.state
            rows: list[Any]
            if what == "orders":
                rows = [o for o in s.orders.values() if status is None or o.status.value == status]
            elif what == "fills":
                rows = list(s.fills.values())
            else:
                rows = list(s.positions.values()) if status == "all" else s.open_positions()
            if deployment is not None:
                rows = [r for r in rows if r.deployment_id == deployment]
            total = len(rows)
            return {what: [plain(r) for r in rows[offset:offset + limit]], "total": total, "limit": limit,
                    "offset": offset}

    def events(self, after: int, limit: int, kinds: set[EventKind] | None = None,
               deployment: str | None = None) -> dict[str, Any]:
        """The ledger's events after ``after`` (paged by seq)."""
        limit, _ = page(limit, 0)
        if after < 0:
            raise InvalidInput(f"after: got {after}; expected an event sequence number (0 or more)")
        from sqlalchemy import select

        from execdesk.store import models

        with self._lock:
            self.refresh()
            last = self.seq
        table = models.events
        query = select(table).where(table.c.seq > after, table.c.seq <= last).order_by(table.c.seq).limit(limit)
        if kinds:
            query = query.where(table.c.kind.in_([k.value for k in kinds]))
        if deployment is not None:
            query = query.where(table.c.deployment_id == deployment)
        import json

        with self.ledger.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = [{"seq": r.seq, "time": r.time, "kind": r.kind, "deployment_id": r.deployment_id,
                "payload": json.loads(r.payload)} for r in rows]
        return {"events": out, "last_seq": last, "next_after": out[-1]["seq"] if len(out) == limit else None}

    def alerts(self, after: int, limit: int, level: str | None = None) -> dict[str, Any]:
        return dict(self.cached(f"alerts:{after}:{limit}:{level}", lambda: self._alerts(after, limit, level)))

    def _alerts(self, after: int, limit: int, level: str | None) -> dict[str, Any]:
        data = self.events(after, limit, {EventKind.ALERT_RAISED})
        if level is not None:
            data["events"] = [e for e in data["events"] if e["payload"].get("level") == level]
        return {"alerts": [{"seq": e["seq"], "time": e["time"], **e["payload"]} for e in data["events"]],
                "last_seq": data["last_seq"], "next_after": data["next_after"]}

    def command(self, command_id: str) -> dict[str, Any] | None:
        """A command's outcome as the ledger has it: applied (taken in, with its seq) or refused (why), or None. Read
        from the ledger as it is now (a poll for an outcome is not held back by the reads' refresh interval)."""
        with self._lock:
            self.refresh(force=True)
            record = self.ledger.state.commands.get(command_id)
            refused = [e for e in self.ledger.events({EventKind.COMMAND_REFUSED})
                       if e.payload.get("command_id") == command_id]
        if refused:
            return {"command_id": command_id, "status": "refused", "seq": refused[-1].seq,
                    "error": refused[-1].payload.get("error"), "action": refused[-1].payload.get("action")}
        if record is not None:
            return {"command_id": command_id, "status": "applied", "seq": record.seq, "action": record.action}
        return None

    def reports(self) -> dict[str, Any]:
        root = self.home / "reports"
        folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.name) if root.is_dir() else []
        return {"reports": [{"name": p.name, "files": sorted(f.name for f in p.iterdir() if f.is_file())}
                            for p in folders]}

    def report_file(self, name: str, file: str) -> Path:
        """A report's file, named by its folder and file name (nothing outside ``HOME/reports/`` is served)."""
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name) or not re.fullmatch(
                r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", file):
            raise NotFound(f"no report file {name}/{file}")
        path = self.home / "reports" / name / file
        if not path.is_file() or path.is_symlink() or not path.resolve().is_relative_to(
                (self.home / "reports").resolve()):
            raise NotFound(f"no report file {name}/{file}")
        return path
