"""Wall time of the kill switch and of the circuit breaker on a desk holding 1,000 open positions.

Run: ``.venv/bin/python benchmarks/bench_kill.py [--quick] [--runs N]``; prints JSON.

The desk. D deployments (default 200) x P pairs (default 5) on generated 1h candles, through the real
loop (:class:`~execdesk.desk.loop.DeskLoop`), wired as ``run_desk`` wires it: the ledger on SQLite in a
fresh home, the paper venue embedded (its default fees, slippage and 25% volume cap), the alert router
with HOME/alerts.jsonl, the liaison's outbox, HOME/control for kill requests. Every deployment's bundle
(the trend_ema_cross example's validation report, so the monitor watches it) enters at once on every pair
(``close > 0``; a fifth of the deployments short, so the exits are both sells and buys) and never exits on
its own (no exit signal, no ROI, a 99% stop). Its entries go through the risk manager (``PreTrade``: limits
loosened so that 1,000 positions fit: ``max_open_positions`` 1,000, 10% of a deployment's equity per
position, staging off, the deployments' drawdown ladders out of reach) and the order manager; the
paper venue fills them at the next bar's open. So the 1,000 positions are real fills of real orders,
in the ledger, the risk book, the venue and the monitor, when the switch is pulled.

Two scenarios, each run ``--runs`` times on a fresh desk (new home, ledger, venue, loop):

* ``manual``: ``execdesk kill`` (:func:`execdesk.api.actions.kill`) leaves its request in HOME/control as
  soon as the 1,000 positions are open (from the loop's progress callback, at the end of the fills' bar);
  the loop acts on it at the next bar: ``DeskLoop._controls`` -> ``Lead.manual_kill`` (its decisions applied
  by ``DeskLoop.act_on``).
* ``breaker``: the same desk with a market-wide shock (-40% in one bar, all pairs); the monitor's
  vectorised stretch finds the portfolio drawdown past the ladder's kill level (5%, the only step set) and
  the lead trips the circuit breaker: ``Lead.on_breaches`` -> ``Lead._circuit_breaker``.

Both end in ``Lead._close_everything``: desk and deployments REDUCING, every open order cancelled, an exit
for every position through the risk manager and the order manager; the venue fills them at the next bar's
open; ``Lead.after_fills`` sets HALTED once flat.

What is timed (``time.perf_counter``, from the bench's wrappers around the loop's own methods on the
instance — nothing in the desk is changed): t0 = the loop hands the kill to the lead (``manual_kill`` /
``on_breaches`` called). Then, from t0:

* ``closes_recorded_s``: the lead returns — every close order risk-checked and recorded (``order.submitted``
  folded into the state, buffered for the ledger);
* ``closes_flushed_s``: the kill request's handling returns (manual: ``_controls`` flushes the ledger
  and moves the request to done/; the breaker path has no flush of its own: the embedded venue's ledger is
  flushed every 5,000 events or at the end of the run);
* ``closes_at_venue_s``: the bar ends — ``OrderManager.send`` has handed every order to the venue;
* ``halted_s``: the next bar's fills booked and ``trading.state_changed`` -> HALTED recorded;
* ``next_bar_done_s``: that bar's loop work done (the watch's drift assessment of 1,000 closed trades etc.).

The ledger's flush of the fills and the HALTED events comes later (the next flush: here the end of the
run); its duration is reported as ``final_flush_s``. Bar arithmetic: the kill bar's index and close time,
the bar whose open filled the exits, and ``flat_at`` from the HALTED event (its time minus the kill bar's
close time, in seconds and bars).

The interpreter's cyclic garbage collector, from t0 to HALTED: ``gc_collections`` per generation and ``gc_ms``
(from ``gc.callbacks``; a generation-2 collection scans the whole heap and can dwarf the kill's own work). Every
trial starts with ``gc.collect()``, so that the trials before it leave it no garbage.

The work is checked, every run (:func:`check_work`): D x P positions open at the kill and no order, one close
order per position (a fifth of the deployments short: their exits buys), none denied, all at the venue, each
filled once, no position left, the desk and every deployment HALTED (circuit_breaker), flat one bar after the kill.
A run that did other work than that stops the benchmark (:class:`WorkDiffers`; the command exits 2 with what
differed) — a faster figure for less work is no figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execdesk.api.actions import kill
from execdesk.backtest.engine import BacktestConfig
from execdesk.backtest.lane import Lane
from execdesk.clock import ReplayClock
from execdesk.data.feed import MarketView
from execdesk.data.generator import PairProfile, Shock, generate_market
from execdesk.desk.loop import DeskLoop
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import OrderStatus, TradingState
from execdesk.lead.liaison import LiaisonConfig, build_liaison
from execdesk.monitor.alerts import AlertsConfig, JsonlSink, build_router
from execdesk.risk.config import DrawdownLadder, RiskConfig, StagingConfig
from execdesk.store.ledger import Ledger
from execdesk.strategy import StrategyBundle, load_bundle, validate_bundle
from execdesk.venues.paper import PaperVenue, PaperVenueConfig

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "src" / "execdesk" / "examples" / "bundles"
CAPITAL = Decimal(10_000_000)
START = datetime(2024, 1, 1, tzinfo=UTC)
BARS = 12  # entries at bar 0's close, filled at bar 1's open; the kill at bar 2 (manual) or the shock's bar
SHOCK_BAR = 6
FAR = DrawdownLadder(alert=None, reduce=0.9, trim=None, kill=0.95)  # a ladder that does not fire here


def _bundles(deployments: int, pairs: list[str], short_every: int) -> list[StrategyBundle]:
    template = load_bundle(BUNDLES / "trend_ema_cross.yaml").to_canonical_dict()
    out = []
    for i in range(deployments):
        spec = dict(template)
        side = "short" if short_every and i % short_every == short_every - 1 else "long"
        spec.update(pairs=pairs, timeframe="1h", indicators={}, entry={side: "close > 0"}, exit={},
                    stoploss=-0.99, minimal_roi={})
        out.append(validate_bundle(spec, f"kill benchmark bundle {i}"))
    return out


def _deploy(ledger: Ledger, bundles: list[StrategyBundle], t: int) -> list[str]:
    """As ``run_desk`` deploys: the desk configured, then per deployment its creation and its monitor baseline."""
    ledger.record(Event(t, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                        "capital": CAPITAL}))
    share = Decimal(1) / len(bundles)
    ids = []
    for i, b in enumerate(bundles):
        dep = f"{b.id}-{i:03d}"
        ids.append(dep)
        ledger.record(Event(t, EventKind.DEPLOYMENT_CREATED, {
            "deployment_id": dep, "strategy_id": b.id, "name": b.name, "version": b.version,
            "bundle_hash": b.bundle_hash, "timeframe": b.timeframe, "pairs": list(b.pairs), "allocation": share,
            "capital": CAPITAL * share, "validation": b.validation.model_dump(mode="json")}, dep))
        ledger.record(Event(t, EventKind.MONITOR_BASELINE, {
            "deployment_id": dep, "returns": [float(r) for r in b.validation.returns or ()],
            "source": "validation report"}, dep))
    ledger.flush()
    return ids


def _desk(home: Path, deployments: int, n_pairs: int, breaker: bool) -> DeskLoop:
    pairs = [f"P{i}/USDT" for i in range(n_pairs)]
    shocks = [Shock(START + timedelta(hours=SHOCK_BAR), -0.40, bars=1)] if breaker else []
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e9) for p in pairs}, "1h", START,
                             START + timedelta(hours=BARS), seed=5, shocks=shocks)
    market = MarketView(frames, "1h")
    bundles = _bundles(deployments, pairs, short_every=5)
    ledger = Ledger.for_home(home)
    ids = _deploy(ledger, bundles, int(market.time[0]))
    fee = PaperVenueConfig().fee_bps / 10_000
    lanes = [Lane(dep, pair, b, market.lane_candles(pair, "1h"), config=BacktestConfig(fee=fee))
             for dep, b in zip(ids, bundles, strict=True) for pair in pairs]
    venue = PaperVenue("USDT", ledger.state.cash(), PaperVenueConfig(), pairs=market.pairs,
                       bar_seconds=market.tf_seconds)
    portfolio = DrawdownLadder(alert=None, reduce=None, trim=None, kill=0.05) if breaker else FAR
    risk = RiskConfig(risk_per_trade=0.2, max_position_fraction=0.1, max_open_positions=deployments * n_pairs,
                      staging=StagingConfig(enabled=False), portfolio_drawdown=portfolio, deployment_drawdown=FAR)
    loop = DeskLoop(ledger, market, lanes, venue, risk, ReplayClock(),
                    liaison=build_liaison(LiaisonConfig(), home / "outbox", webhooks=False), control=home / "control")
    loop.router = build_router(AlertsConfig(), loop.record_alert, webhooks=False)
    loop.router.sinks.append(JsonlSink(home / "alerts.jsonl"))
    return loop


class _Timer:
    """Timestamps from wrappers set on the loop's instance (the desk's code is not changed)."""

    def __init__(self, loop: DeskLoop, home: Path, positions: int, breaker: bool) -> None:
        self.loop, self.home, self.positions, self.breaker = loop, home, positions, breaker
        self.t: dict[str, float] = {}
        self.g: dict[str, int] = {}
        self.seq: dict[str, int] = {}
        self.stats: dict[str, int] = {}
        self.flushes: list[tuple[float, float, int]] = []
        self.requested = False
        self.gc_counts = [0, 0, 0]  # collections per generation from t0 to HALTED
        self.gc_s = 0.0
        self._gc_began = 0.0
        gc.callbacks.append(self._gc)
        lead = loop.lead
        self._wrap(loop, "_controls", self._controls)
        self._wrap(loop, "_bar", self._bar)
        self._wrap(loop, "_end_bar", self._end_bar)
        self._wrap(lead, "manual_kill", self._kill)
        self._wrap(lead, "on_breaches", self._kill)
        self._wrap(lead, "after_fills", self._after_fills)
        self._wrap(loop.ledger, "flush", self._flush)
        loop.progress = self._progress

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks``: the collections between t0 and HALTED, and their time."""
        if "t0" not in self.t or "halted" in self.t:
            return
        if phase == "start":
            self._gc_began = time.perf_counter()
            return
        self.gc_counts[info["generation"]] += 1
        self.gc_s += time.perf_counter() - self._gc_began

    def close(self) -> None:
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    @staticmethod
    def _wrap(obj: Any, name: str, around: Callable[..., Any]) -> None:
        inner = getattr(obj, name)
        setattr(obj, name, lambda *a, **k: around(inner, *a, **k))

    def _progress(self, done: int, n: int) -> None:
        """Pull the switch (``execdesk kill``) once the positions are all open."""
        if self.breaker or self.requested:
            return
        if len(self.loop.ledger.state.open_position_keys) >= self.positions:
            self.requested = True
            kill(self.home, "kill switch benchmark", int(self.loop.market.time[done - 1]))

    def _kill(self, inner: Callable[..., Any], g: int, *args: Any) -> Any:
        """Around the lead's turn (a generator of decisions the loop applies as they come): t0 when the loop
        asks, ``closes_recorded`` when the last decision is applied."""
        state, loop = self.loop.ledger.state, self.loop
        first = "t0" not in self.t
        if first:
            self.g["kill"] = g
            self.seq["before"] = state.last_seq
            self.stats["open_positions"] = len(state.open_position_keys)
            self.stats["open_orders"] = len(state.open_order_ids)
            self.stats["orders_before"], self.stats["fills_before"] = loop.stats.orders, loop.stats.fills
            self.t["t0"] = time.perf_counter()
        yield from inner(g, *args)
        if first:
            self.t["closes_recorded"] = time.perf_counter()
            self.seq["closes_recorded"] = state.last_seq
            self.stats["close_orders"] = loop.stats.orders - self.stats["orders_before"]
            self.stats["denied"] = loop.stats.denied

    def _controls(self, inner: Callable[[int], None], g: int) -> None:
        inner(g)
        if self.g.get("kill") == g and "closes_flushed" not in self.t:
            self.t["closes_flushed"] = time.perf_counter()

    def _end_bar(self, inner: Callable[..., None], g: int, eventful: bool) -> None:
        inner(g, eventful)
        if self.g.get("kill") == g and "closes_at_venue" not in self.t:
            self.t["closes_at_venue"] = time.perf_counter()
            self.stats["at_venue"] = len(self.loop.venue.open_orders())

    def _after_fills(self, inner: Callable[[int, int], Any], g: int, t: int) -> Any:
        yield from inner(g, t)
        state = self.loop.ledger.state
        if "t0" in self.t and "halted" not in self.t and state.trading_state is TradingState.HALTED:
            self.t["halted"] = time.perf_counter()
            self.g["flat"], self.g["flat_at"] = g, t
            self.seq["halted"] = state.last_seq
            self.stats["pending_at_halted"] = self.loop.ledger.pending

    def _bar(self, inner: Callable[[int], None], g: int) -> None:
        inner(g)
        if self.g.get("flat") == g and "next_bar_done" not in self.t:
            self.t["next_bar_done"] = time.perf_counter()

    def _flush(self, inner: Callable[[], None]) -> None:
        pending = self.loop.ledger.pending
        t0 = time.perf_counter()
        inner()
        self.flushes.append((t0, time.perf_counter(), pending))


def _trial(deployments: int, n_pairs: int, breaker: bool) -> dict[str, Any]:
    positions = deployments * n_pairs
    gc.collect()  # (what the trials before left is not this one's to collect)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        t_build = time.perf_counter()
        loop = _desk(home, deployments, n_pairs, breaker)
        timer = _Timer(loop, home, positions, breaker)
        built = time.perf_counter() - t_build
        t_run = time.perf_counter()
        try:
            loop.run()
        finally:
            timer.close()
        run_s = time.perf_counter() - t_run
        tt, g, seq, st = timer.t, timer.g, timer.seq, timer.stats
        if "halted" not in tt:
            raise WorkDiffers(f"the desk did not halt: {loop.ledger.state.trading_state} "
                              f"({loop.ledger.state.trading_reason}); stats {st}")
        state = loop.ledger.state
        market = loop.market
        kinds = Counter(e.kind.value for e in loop.ledger.events() if seq["before"] < e.seq <= seq["halted"])
        exits = [o for o in state.orders.values() if o.reason == "circuit_breaker"]
        halted = [e for e in loop.ledger.events({EventKind.TRADING_STATE_CHANGED}) if e.payload["to"] == "HALTED"]
        final = [f for f in timer.flushes if f[0] > tt["halted"]]
        kill_close = market.close_time(g["kill"])
        t0 = tt["t0"]
        result = {
            "open_positions": st["open_positions"], "open_orders_at_kill": st["open_orders"],
            "close_orders": st["close_orders"], "denied": st["denied"],
            "close_orders_filled": sum(o.status is OrderStatus.FILLED for o in exits),
            "fills": sum(state.orders[f.client_order_id].reason == "circuit_breaker" for f in state.fills.values()),
            "exit_sides": dict(Counter(o.side for o in exits)),
            "open_positions_after": len(state.open_position_keys),
            "state_after": f"{state.trading_state.value} ({state.trading_reason})",
            "deployments_halted": sum(d.state is TradingState.HALTED for d in state.deployments.values()),
            "events_to_closes_recorded": seq["closes_recorded"] - seq["before"],
            "events_to_halted": seq["halted"] - seq["before"], "event_kinds": dict(kinds.most_common()),
            "kill_bar": g["kill"], "kill_bar_close": kill_close, "flat_bar": g["flat"],
            "flat_bar_open": int(market.time[g["flat"]]), "flat_at": halted[0].payload["evidence"]["flat_at"],
            "flat_after_kill_close_s": int(halted[0].payload["evidence"]["flat_at"]) - kill_close,
            "flat_after_kill_bars": g["flat"] - g["kill"],
            "closes_recorded_s": tt["closes_recorded"] - t0,
            "closes_flushed_s": tt["closes_flushed"] - t0 if "closes_flushed" in tt else None,
            "closes_at_venue_s": tt["closes_at_venue"] - t0, "orders_at_venue": st["at_venue"],
            "halted_s": tt["halted"] - t0, "next_bar_done_s": tt["next_bar_done"] - t0,
            "events_pending_at_halted": st["pending_at_halted"],
            "final_flush_s": final[0][1] - final[0][0] if final else None,
            "final_flush_events": final[0][2] if final else None,
            "gc_collections": list(timer.gc_counts), "gc_s": timer.gc_s,
            "build_s": built, "run_s": run_s,
        }
        loop.ledger.close()
    check_work(result, deployments, n_pairs)
    return result


class WorkDiffers(RuntimeError):
    """A run did other work than the benchmark asks for (see :func:`check_work`)."""


def expected_work(deployments: int, pairs: int, short_every: int = 5) -> dict[str, Any]:
    """The work every run must do: one close per position, each filled once, flat and HALTED a bar after the kill."""
    positions = deployments * pairs
    shorts = sum(1 for i in range(deployments) if short_every and i % short_every == short_every - 1) * pairs
    sides = {"SELL": positions - shorts, "BUY": shorts}
    return {"open_positions": positions, "open_orders_at_kill": 0, "close_orders": positions, "denied": 0,
            "orders_at_venue": positions, "close_orders_filled": positions, "fills": positions,
            "exit_sides": {side: n for side, n in sides.items() if n}, "open_positions_after": 0,
            "state_after": "HALTED (circuit_breaker)", "deployments_halted": deployments, "flat_after_kill_bars": 1}


def check_work(result: dict[str, Any], deployments: int, pairs: int) -> None:
    """Raise :class:`WorkDiffers` naming every counter of ``result`` (one run) that is not :func:`expected_work`'s."""
    want = expected_work(deployments, pairs)
    wrong = [f"{key}: {result.get(key)!r}, expected {value!r}" for key, value in want.items()
             if result.get(key) != value]
    if wrong:
        raise WorkDiffers(f"{deployments} x {pairs} positions: " + "; ".join(wrong))


def _summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    timed = ("closes_recorded_s", "closes_flushed_s", "closes_at_venue_s", "halted_s", "next_bar_done_s",
             "final_flush_s", "gc_s")
    out: dict[str, Any] = {}
    for key in timed:
        values = [t[key] for t in trials if t[key] is not None]
        if values:
            out[key] = {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                        "max": round(max(values), 4)}
    first = trials[0]
    same = ("open_positions", "open_orders_at_kill", "close_orders", "denied", "orders_at_venue",
            "close_orders_filled", "fills",
            "exit_sides", "open_positions_after", "state_after", "deployments_halted", "events_to_closes_recorded",
            "events_to_halted", "event_kinds", "kill_bar", "kill_bar_close", "flat_bar", "flat_bar_open", "flat_at",
            "flat_after_kill_close_s", "flat_after_kill_bars", "events_pending_at_halted", "final_flush_events")
    out.update({k: first[k] for k in same})
    out["work_checked"] = f"{len(trials)} of {len(trials)} runs as expected (check_work)"
    out["gc_collections"] = [t["gc_collections"] for t in trials]  # per run: generations 0, 1, 2
    out["build_and_run_s"] = [round(t["build_s"] + t["run_s"], 2) for t in trials]
    return out


def bench_kill(deployments: int = 200, pairs: int = 5, runs: int = 5,
               scenarios: tuple[str, ...] = ("manual", "breaker")) -> dict[str, Any]:
    """Each scenario ``runs`` times on a fresh desk of ``deployments`` x ``pairs`` open positions."""
    result: dict[str, Any] = {"deployments": deployments, "pairs": pairs, "positions": deployments * pairs,
                              "runs": runs}
    for name in scenarios:
        trials = [_trial(deployments, pairs, breaker=name == "breaker") for _ in range(runs)]
        result[name] = _summary(trials)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="40 x 5 positions, 2 runs: a smoke run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    try:
        result = bench_kill(40, 5, 2) if args.quick else bench_kill(args.deployments, args.pairs, args.runs)
    except WorkDiffers as exc:
        print(f"bench_kill: the work differs from the benchmark's: {exc}", file=sys.stderr)
        sys.exit(2)
    result["python"] = sys.version.split()[0]
    result["machine"] = platform.machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
