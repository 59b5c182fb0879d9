"""Prometheus ``GET /metrics``: the desk's figures in the Prometheus text format, computed when scraped.

Auth: like every route of the API but ``/api/health``, ``/metrics`` needs ``Authorization: Bearer <token>`` of a
live token whose role carries the ``read`` right (any role; 401 without one, 403 for a role without the right).
Give Prometheus a viewer token of its own (``execdesk token create --name prometheus --role viewer``) in the
scrape config::

    scrape_configs:
      - job_name: execdesk
        metrics_path: /metrics
        authorization: {type: Bearer, credentials_file: /etc/prometheus/execdesk.token}
        static_configs: [{targets: ["127.0.0.1:8765"]}]

What is served comes from one :class:`~prometheus_client.registry.CollectorRegistry` of this app (never the
process's global one) holding :class:`DeskCollector`, which reads ``app.state.view`` after a refresh: the folded
ledger (equity, drawdown and peak as ``/api/portfolio`` has them, cash, exposure, positions, deployments by state,
the trading state, orders by status, fills, the ledger's last sequence number), the pre-trade denials by rule and
the alerts by level (counted from the ``order.denied`` and ``alert.raised`` events after the last seq counted, so a
scrape reads only what the desk added since), the command queue's depth (``app.state.commands.depth``) and the
loop's bar latency: the desk runs in its own process, so its timings are read from ``HOME/metrics/loop.json``,
which the loop writes at most once a second and at the end of a run (:class:`execdesk.desk.loop.BarTimes`; absent
until a desk ran with it). Nothing here writes the ledger or waits for the desk.

Annotations here are evaluated as the module runs (no ``from __future__ import annotations``), as in
:mod:`execdesk.api.service`: FastAPI reads the route's parameter types.
"""

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from execdesk.api.tokens import TokenStore, Unauthenticated
from execdesk.api.view import DeskView
from execdesk.desk.identity import authorize
from execdesk.domain.events import EventKind
from execdesk.domain.types import AlertLevel, OrderStatus, TradingState

#: the text format every Prometheus reads (prometheus_client's own default when the scraper asks for nothing else)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the loop's timings in a desk's home (see :class:`execdesk.desk.loop.BarTimes`)
LOOP_FILE = Path("metrics") / "loop.json"
#: the lifecycles of :func:`execdesk.lead.lifecycle.lifecycle`
LIFECYCLES = ("scheduled", "live", "reducing", "paused", "closing", "removed", "retired", "halted")
_COUNTED = (EventKind.ORDER_DENIED, EventKind.ALERT_RAISED)


class EventCounts:
    """Pre-trade denials by rule and alerts by level, counted from the events after the last seq counted."""

    def __init__(self) -> None:
        self.seq = 0
        self.denied: Counter[str] = Counter()
        self.alerts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def advance(self, view: DeskView, to_seq: int) -> tuple[dict[str, int], dict[str, int]]:
        """Count the events in ``(self.seq, to_seq]``; the counts then."""
        from sqlalchemy import select

        from execdesk.store import models

        with self.lock:
            if to_seq < self.seq:  # another ledger than the one counted (a home restored): counted afresh
                self.seq, self.denied, self.alerts = 0, Counter(), Counter()
            if to_seq > self.seq:
                table = models.events
                query = (select(table.c.seq, table.c.kind, table.c.payload)
                         .where(table.c.seq > self.seq, table.c.seq <= to_seq,
                                table.c.kind.in_([k.value for k in _COUNTED]))
                         .order_by(table.c.seq))
                with view.ledger.engine.connect() as conn:
                    for row in conn.execution_options(yield_per=2000).execute(query):
                        payload = json.loads(row.payload)
                        if row.kind == EventKind.ORDER_DENIED.value:
                            self.denied[str((payload.get("verdict") or {}).get("rule", "unknown"))] += 1
                        else:
                            self.alerts[str(payload.get("level", "unknown"))] += 1
                self.seq = to_seq
            return dict(self.denied), dict(self.alerts)


def read_loop_file(home: Path) -> dict[str, Any] | None:
    """The loop's last written timings (None: no desk with them ran in this home, or a file not readable)."""
    try:
        data = json.loads((home / LOOP_FILE).read_bytes())
        bars = data["bar_seconds"]
        if len(bars["counts"]) != len(bars["le"]) + 1:
            return None
        return dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DeskCollector(Collector):
    """The desk's figures, computed at each scrape from the followed ledger, the command queue and the loop's file."""

    def __init__(self, view: DeskView, home: Path, depth: Any) -> None:
        self.view = view
        self.home = home
        self.depth = depth  # () -> the command queue's depth
        self.counts = EventCounts()

    def _ledger_figures(self) -> dict[str, Any]:
        """What the ledger says, at one sequence number (built once per state of the ledger)."""
        from execdesk.lead.lifecycle import lifecycle

        portfolio = self.view.portfolio()  # (refreshes the view: what follows reads the same state)
        s = self.view.ledger.state
        per_deployment: Counter[str] = Counter({d: 0 for d in s.deployments})
        for p in s.open_positions():
            per_deployment[p.deployment_id] += 1
        denied, alerts = self.counts.advance(self.view, s.last_seq)
        return {
            "portfolio": portfolio, "seq": s.last_seq, "quote": s.quote, "trading_state": s.trading_state.value,
            "per_deployment": dict(per_deployment),
            "deployments": Counter(d.state.value for d in s.deployments.values()),
            "lifecycles": Counter(lifecycle(d) for d in s.deployments.values()),
            "orders": Counter(o.status.value for o in s.orders.values()), "fills": len(s.fills),
            "bars_done": s.bars_done, "denied": denied, "alerts": alerts,
        }

    def collect(self) -> Iterator[Metric]:
        f = self.view.cached("metrics", self._ledger_figures)
        p = f["portfolio"]
        quote = f["quote"]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"execdesk_{name}", doc, value=value)

        def by(name: str, doc: str, label: str, values: dict[str, float], family: type = GaugeMetricFamily
               ) -> Metric:
            metric = family(f"execdesk_{name}", doc, labels=[label])
            for key in sorted(values):
                metric.add_metric([key], values[key])
            return metric

        yield gauge("equity", f"Portfolio equity ({quote}) at the last equity snapshot (cash before any)",
                    p["equity"])
        yield gauge("drawdown", "Portfolio drawdown from its peak at the last equity snapshot (a fraction)",
                    p["drawdown"])
        yield gauge("max_drawdown", "Worst portfolio drawdown over the equity snapshots (a fraction)",
                    p["max_drawdown"])
        yield gauge("peak_equity", f"Highest portfolio equity over the equity snapshots ({quote})",
                    p["peak"] if p["peak"] is not None else p["equity"])
        yield gauge("exposure", f"Gross exposure of the open positions at their entry prices ({quote})",
                    p["exposure"])
        yield gauge("cash", f"Cash ({quote})", p["cash"])
        yield gauge("open_positions", "Open positions (all deployments)", p["open_positions"])
        yield by("deployment_open_positions", "Open positions per deployment", "deployment", f["per_deployment"])
        yield gauge("open_orders", "Orders not yet filled, cancelled, rejected or expired", p["open_orders"])
        yield by("deployments", "Deployments by trading state", "state",
                 {s.value: f["deployments"].get(s.value, 0) for s in TradingState})
        yield by("deployments_by_lifecycle", "Deployments by lifecycle", "lifecycle",
                 {name: f["lifecycles"].get(name, 0) for name in LIFECYCLES})
        yield by("trading_state", "The desk's trading state: 1 for the current one, 0 for the others", "state",
                 {s.value: 1 if s.value == f["trading_state"] else 0 for s in TradingState})
        yield by("orders", "Orders by status", "status", {s.value: f["orders"].get(s.value, 0) for s in OrderStatus})
        yield CounterMetricFamily("execdesk_fills", "Fills booked", value=f["fills"])
        yield by("orders_denied", "Orders denied by the pre-trade risk check, by rule (order.denied events)",
                 "rule", f["denied"], CounterMetricFamily)
        yield by("alerts", "Alerts raised, by level (alert.raised events)", "level",
                 {a.value: f["alerts"].get(a.value, 0) for a in AlertLevel} | f["alerts"], CounterMetricFamily)
        yield CounterMetricFamily("execdesk_ledger_events", "Events in the ledger (the last event's sequence number)",
                                  value=f["seq"])
        yield gauge("command_queue_depth", "Control calls accepted by this service and not yet done", self.depth())
        loop = read_loop_file(self.home)
        if loop is None:
            yield gauge("loop_bars_done", "Bars the desk's loop has done (the ledger's last progress event)",
                        f["bars_done"])
            return
        yield gauge("loop_bars_done", "Bars the desk's loop has done (its metrics file)", loop["bars_done"])
        yield gauge("loop_bars", "Bars in the desk's market (its metrics file)", loop["bars"])
        yield gauge("loop_metrics_updated_timestamp_seconds", "When the desk's loop last wrote its metrics file "
                    "(Unix time; it writes at most once a second while it runs, and at a run's end)",
                    loop["updated_at"])
        bars = loop["bar_seconds"]
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, n in zip([*bars["le"], "+Inf"], bars["counts"], strict=True):
            cumulative += int(n)
            buckets.append((bound if isinstance(bound, str) else repr(float(bound)), cumulative))
        yield HistogramMetricFamily("execdesk_loop_bar_seconds", "The loop's work per eventful bar (its waits for "
                                    "the bar's open and close left out), seconds", buckets=buckets,
                                    sum_value=float(bars["sum"]))


def mount_metrics(app: FastAPI) -> None:
    """Serve ``/metrics`` (reads ``app.state.view`` and ``app.state.commands``)."""
    view: DeskView = app.state.view
    tokens: TokenStore = app.state.tokens
    registry = CollectorRegistry(auto_describe=False)
    collector = DeskCollector(view, app.state.home, lambda: app.state.commands.depth)
    registry.register(collector)
    app.state.metrics = collector

    @app.get("/metrics", tags=["read"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
    def metrics(authorization: Annotated[str | None, Header(description="Bearer <token>")] = None) -> Response:
        """The desk's figures for Prometheus (text format 0.0.4), computed now; a token with the read right."""
        if authorization is None or not authorization.startswith("Bearer "):
            raise Unauthenticated("no token: send 'Authorization: Bearer <token>' (execdesk token create)")
        authorize(tokens.authenticate(authorization.removeprefix("Bearer ")), "read")
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)
