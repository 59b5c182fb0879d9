"""The circuit breaker with a pager that hangs: flat as fast as without one.

Run: ``.venv/bin/python benchmarks/bench_alerts.py [--runs N] [--quick] [--drain S]``; prints JSON.

The desk (the test suite's small desk, tripping its breaker): two example strategies (trend_ema_cross, breakout_4h)
on BTC/USDT and ETH/USDT, generated hourly candles from 2024-03-01 to 2024-03-16 (seed 3), 50,000 USDT; the
portfolio ladder's kill step alone, at 2% — the breaker trips on 2024-03-12 holding two positions. Live-like:
a wall clock (so the desk pages its webhooks) whose waits pass at once, and the paper venue with its own book
(``venue.persist``), not rebuilt from the ledger — so, as for an exchange, the ledger is committed before every
send to the venue. Built as ``run_desk`` builds it (``deploy_configured``, ``build_loop``), one fresh home per run.

Three scenarios, ``--runs`` times each, alternating:

* ``no_webhook``: the sinks of every desk (the log, ``HOME/alerts.jsonl``);
* ``hanging_webhook``: the same plus a pager for EMERGENCY alerts (``to: [on_call]``, defaults: 5 s timeout,
  3 attempts) on a loopback server that takes each request and never answers — about 15 s of timeouts and
  retries per alert for a desk that waits on it;
* ``hanging_liaison``: no pager, but the Orchestrator's liaison webhook (``liaison.webhooks.orchestrator``, the
  same defaults) on that server — the breaker's escalation message, then the run's portfolio status, each about
  15 s for a desk that posts them on its loop's thread.

Timed (``time.perf_counter``, from wrappers set on the loop's instance and the sink classes; the desk's code is
not changed), from t0 = the monitor starts marking the bar at which the breaker trips (the ``advance`` call
that returns the kill breach):

* ``closes_at_venue_s``: the last circuit-breaker close handed to the venue;
* ``first_told_s``: the breaker's EMERGENCY alert handed to its first sink;
* ``escalation_posted_s`` (``hanging_liaison``): the breaker's escalation handed to the Orchestrator's webhook;
* ``flat_s``: the fill of the last close booked (the venue fills them at the next bar's open, the breach bar's
  close) — *time to flat*;
* ``run_s``: ``DeskLoop.run`` whole, the couriers' drain at its end included (``alerts.drain_timeout``, 5 s
  by default; ``--drain`` sets it), and ``drain_s``: that drain alone (``DeskLoop.close_alerts``; the router's
  ``close_courier`` in code from before the liaison's courier).

``--before`` measures a checkout from before a courier (``PYTHONPATH=<its src>``): the same desk, the
ordering reported instead of checked.

Work checked on every run (it fails loudly when it differs between runs or scenarios): orders, fills, the
breaker's closes and their fills, alerts raised, lines in ``HOME/alerts.jsonl``, the ledger's events less the
delivery failures, the deliveries failed (0 without the pager; 1 with it: the EMERGENCY, left in flight when the
desk stopped; a liaison post is not a ledger event), the messages written to the outbox, and the breach bar and flat
time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from execdesk.desk.assembly import build_loop, build_market, deploy_configured
from execdesk.desk.settings import DeskConfig, load_desk_config
from execdesk.domain.events import EventKind
from execdesk.domain.types import OrderStatus
from execdesk.lead.liaison import JsonPoster
from execdesk.monitor.alerts import Alert, JsonlSink, LogSink, SinkResult, WebhookSink
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BUNDLES = ROOT / "src" / "execdesk" / "examples" / "bundles"

from tests.kit import InstantWallClock  # noqa: E402

CODE = "portfolio_drawdown_kill"
NO_LADDER = {"alert": None, "reduce": None, "trim": None, "kill": None}


def _config(folder: Path, webhook: bool, drain: float | None, liaison: bool = False) -> DeskConfig:
    alerts: dict[str, Any] = {"sinks": [{"kind": "log"}]}
    if webhook:
        alerts["sinks"].append({"kind": "webhook", "url_env": "EXECDESK_BENCH_PAGER", "to": ["on_call"],
                                "name": "pager"})
    if drain is not None:
        alerts["drain_timeout"] = drain
    config = {
        "desk": {"name": "bench-alerts", "capital": 50_000, "quote": "USDT", "seed": 3},
        "venue": {"kind": "paper", "fee_bps": 10, "slippage_bps": 5, "persist": True},
        "market": {"source": "generated", "timeframe": "1h", "start": "2024-03-01T00:00:00Z",
                   "end": "2024-03-16T00:00:00Z",
                   "pairs": {"BTC/USDT": {"start_price": 60000, "annual_vol": 0.6, "base_volume": 20000},
                             "ETH/USDT": {"start_price": 3000, "annual_vol": 0.75, "base_volume": 300000}}},
        "risk": {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": {"enabled": False},
                 "deployment_drawdown": NO_LADDER, "portfolio_drawdown": {**NO_LADDER, "kill": 0.02},
                 "assessment": {"max_deployed_fraction": 1.0, "max_worst_case_drawdown": 1.0,
                                "max_correlated_exposure": 10.0}},
        "alerts": alerts,
        "liaison": {"webhooks": {"orchestrator": {"url_env": "EXECDESK_BENCH_PAGER"}} if liaison else {}},
        "strategies": [{"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5},
                       {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3}],
    }
    path = folder / "desk.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_desk_config(path)


@contextmanager
def hanging_server() -> Iterator[str]:
    """A loopback webhook that reads each request and never answers (until the benchmark ends)."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            release.wait(600)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pager/token"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


class _Clock:
    """When things happened in the run (perf_counter), from wrappers on the loop's instance and the sinks."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.told: list[tuple[float, str]] = []  # (when, sink) the EMERGENCY was handed to a sink
        self.posted: list[float] = []  # when the escalation was handed to a liaison webhook
        self.closes_sent: list[float] = []

    def mark(self, key: str) -> None:
        self.t.setdefault(key, time.perf_counter())


@contextmanager
def _sinks_watched(clock: _Clock) -> Iterator[None]:
    """Each sink class's ``send`` notes when it was handed the breaker's alert (restored afterwards)."""
    saved = {cls: cls.send for cls in (LogSink, JsonlSink, WebhookSink)}
    for cls, send in saved.items():
        def watched(self: Any, alert: Alert, send: Callable[[Any, Alert], SinkResult] = send) -> SinkResult:
            if alert.code == CODE:
                clock.told.append((time.perf_counter(), self.name))
            return send(self, alert)

        cls.send = watched  # type: ignore[method-assign]
    post = JsonPoster.post

    def posted(self: JsonPoster, payload: Any) -> SinkResult:
        if payload.get("kind") == "escalation":
            clock.posted.append(time.perf_counter())
        return post(self, payload)

    JsonPoster.post = posted  # type: ignore[method-assign]
    try:
        yield
    finally:
        for cls, send in saved.items():
            cls.send = send  # type: ignore[method-assign]
        JsonPoster.post = post  # type: ignore[method-assign]


def _wrap(obj: Any, name: str, around: Callable[..., Any]) -> None:
    inner = getattr(obj, name)
    setattr(obj, name, lambda *a, **k: around(inner, *a, **k))


def _trial(webhook: bool, drain: float | None, liaison: bool = False) -> dict[str, Any]:
    clock = _Clock()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _config(folder, webhook, drain, liaison)
        home = folder / "home"
        bundles = [load_bundle(s.bundle) for s in config.strategies]
        market = build_market(config, bundles)
        with Ledger.for_home(home) as ledger, _sinks_watched(clock):
            deploy_configured(ledger, home, config, bundles, int(market.time[0]), set(market.pairs))
            loop = build_loop(ledger, home, config, bundles, market, None, InstantWallClock())
            state = ledger.state

            def advance(inner: Callable[..., Any], *args: Any) -> Any:
                began = time.perf_counter()
                stop, breaches, snaps = inner(*args)
                if stop is not None and "t0" not in clock.t and any(b.scope == "portfolio" for b in breaches):
                    clock.t["t0"] = began
                return stop, breaches, snaps

            def submit(inner: Callable[..., Any], order: Any) -> Any:
                ack = inner(order)
                rec = state.orders.get(order.client_order_id)
                if rec is not None and rec.reason == "circuit_breaker":
                    clock.closes_sent.append(time.perf_counter())
                return ack

            def collect_fills(inner: Callable[[], Any]) -> Any:
                fills = inner()
                closes = [o for o in state.orders.values() if o.reason == "circuit_breaker"]
                if closes and "flat" not in clock.t and all(o.status is OrderStatus.FILLED for o in closes):
                    clock.mark("flat")
                return fills

            _wrap(loop.monitor, "advance", advance)
            _wrap(loop.venue, "submit", submit)
            _wrap(loop.oms, "collect_fills", collect_fills)
            # the drain: the loop's close of its couriers (the router's alone in code from before the liaison's
            # courier; none in code from before the alert courier)
            owner, method = (loop, "close_alerts") if hasattr(loop, "close_alerts") else (loop.router, "close_courier")
            if hasattr(owner, method):
                def close_couriers(inner: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
                    began = time.perf_counter()
                    try:
                        return inner(*args, **kwargs)
                    finally:
                        clock.t["drain"] = time.perf_counter() - began

                _wrap(owner, method, close_couriers)
            began = time.perf_counter()
            loop.run()
            run_s = time.perf_counter() - began
            loop.venue.close()
            courier = getattr(loop.router, "courier", None)  # (None: the code from before the courier, --before)
            posts = getattr(loop.liaison, "courier", None)  # (None: from before the liaison's courier)
            events = list(ledger.events())
        lines = (home / "alerts.jsonl").read_text().splitlines()
        outbox = sorted(p.name for p in (home / "outbox").rglob("*.json"))
    t0 = clock.t["t0"]
    closes = [o for o in state.orders.values() if o.reason == "circuit_breaker"]
    breach = next(e for e in events if e.kind is EventKind.BREACH_DETECTED)
    halted = next(e for e in events if e.kind is EventKind.TRADING_STATE_CHANGED and e.payload["to"] == "HALTED")
    failed = [e.payload for e in events if e.kind is EventKind.ALERT_DELIVERY_FAILED]
    return {
        "work": {
            "orders": len(state.orders), "fills": len(state.fills), "closes": len(closes),
            "closes_filled": sum(o.status is OrderStatus.FILLED for o in closes),
            "alerts_raised": sum(e.kind is EventKind.ALERT_RAISED for e in events), "alert_lines": len(lines),
            "events_less_delivery_failures": len(events) - len(failed), "outbox_messages": len(outbox),
            "breach_at": breach.time, "flat_at": halted.payload["evidence"]["flat_at"],
        },
        "deliveries": {"failed": [(f["code"], f["sink"], f["error"].split(":")[0]) for f in failed],
                       "courier": None if courier is None else {"queued": courier.stats.queued,
                                                                "delivered": courier.stats.delivered,
                                                                "failed": courier.stats.failed,
                                                                "left": courier.stats.left},
                       "liaison_courier": None if posts is None else {"queued": posts.stats.queued,
                                                                      "delivered": posts.stats.delivered,
                                                                      "failed": posts.stats.failed,
                                                                      "left": posts.stats.left}},
        "closes_at_venue_s": max(clock.closes_sent) - t0,
        "first_told_s": min(t for t, _sink in clock.told) - t0,
        "told_after_closes": min(t for t, _sink in clock.told) > max(clock.closes_sent),
        "escalation_posted_s": min(clock.posted) - t0 if clock.posted else None,
        "posted_after_closes": min(clock.posted) > max(clock.closes_sent) if clock.posted else None,
        "flat_s": clock.t["flat"] - t0,
        "run_s": run_s,
        "drain_s": clock.t.get("drain", 0.0),
    }


def _check(name: str, trials: list[dict[str, Any]], expected_failures: int, before: bool) -> None:
    """Fail loudly when the work differs between runs, or the deliveries are not what the scenario makes, or (unless
    ``before``) a sink heard of the EMERGENCY before the closes were at the venue."""
    works = {json.dumps(t["work"], sort_keys=True) for t in trials}
    if len(works) != 1:
        raise SystemExit(f"bench_alerts: {name}: the work differs between runs: {sorted(works)}")
    for t in trials:
        if len(t["deliveries"]["failed"]) != expected_failures:
            raise SystemExit(f"bench_alerts: {name}: {len(t['deliveries']['failed'])} delivery failures, "
                             f"expected {expected_failures}: {t['deliveries']}")
        if not t["told_after_closes"] and not before:
            raise SystemExit(f"bench_alerts: {name}: a sink heard of the EMERGENCY before the closes reached the venue")
        if t["posted_after_closes"] is False and not before:
            raise SystemExit(f"bench_alerts: {name}: the escalation was posted before the closes reached the venue")


def _figures(trials: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("closes_at_venue_s", "first_told_s", "escalation_posted_s", "flat_s", "run_s", "drain_s"):
        values = [t[key] for t in trials if t[key] is not None]
        if values:
            out[key] = {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                        "max": round(max(values), 4)}
    out["told_after_closes"] = sorted({t["told_after_closes"] for t in trials})
    if trials[0]["posted_after_closes"] is not None:
        out["posted_after_closes"] = sorted({t["posted_after_closes"] for t in trials})
    out["work"] = trials[0]["work"]
    out["deliveries"] = trials[0]["deliveries"]
    return out


def bench_alerts(runs: int = 5, drain: float | None = None, before: bool = False) -> dict[str, Any]:
    """The scenarios ``runs`` times each, alternating, each on a fresh desk. ``before``: the desk's code is from
    before a courier (run with ``PYTHONPATH`` at such a checkout's ``src``): the ordering is reported, not
    checked."""
    trials: dict[str, list[dict[str, Any]]] = {"no_webhook": [], "hanging_webhook": [], "hanging_liaison": []}
    with hanging_server() as url:
        os.environ["EXECDESK_BENCH_PAGER"] = url
        _trial(webhook=False, drain=drain)  # (warm-up: the strategies' review cache, imports)
        for _ in range(runs):
            trials["no_webhook"].append(_trial(webhook=False, drain=drain))
            trials["hanging_webhook"].append(_trial(webhook=True, drain=drain))
            trials["hanging_liaison"].append(_trial(webhook=False, drain=drain, liaison=True))
    _check("no_webhook", trials["no_webhook"], 0, before)
    _check("hanging_webhook", trials["hanging_webhook"], 1, before)
    _check("hanging_liaison", trials["hanging_liaison"], 0, before)
    for name in ("hanging_webhook", "hanging_liaison"):
        if trials["no_webhook"][0]["work"] != trials[name][0]["work"]:
            raise SystemExit(f"bench_alerts: {name} changed the desk's work: {trials['no_webhook'][0]['work']}"
                             f" vs {trials[name][0]['work']}")
    return {"runs": runs, "drain_timeout_s": drain, **{k: _figures(v) for k, v in trials.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 runs: a smoke run")
    parser.add_argument("--drain", type=float, default=None, help="alerts.drain_timeout in seconds [the default]")
    parser.add_argument("--before", action="store_true",
                        help="the desk's code is from before the courier: report the ordering, do not check it")
    args = parser.parse_args()
    result = bench_alerts(2 if args.quick else args.runs, args.drain, args.before)
    result["python"] = sys.version.split()[0]
    result["machine"] = platform.machine()
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
