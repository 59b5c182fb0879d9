"""Throughput of the desk's whole loop, and of orders into the ledger.

Run: ``.venv/bin/python benchmarks/bench_loop.py [--quick]`` (or ``benchmarks/run.sh`` for all).

1. loop: D deployments x P pairs on N generated 5m candles, through the real loop (signals,
   exits, risk pre-trade, order manager, paper venue, ledger on SQLite, monitor, lead). A
   bar-strategy evaluation is one strategy evaluated on one of its candles; the figure counts every
   candle of every lane, divided by the wall time of building the lanes (indicators and signals) plus
   running the loop. Market generation is timed separately. The monitor watches and records its
   verdicts, but the lead's drift policy is "continue" for every verdict (``OBSERVE_ONLY``): the
   generated 5m market is not the one the example bundles were validated on, and a lead acting on
   the drift it sees would pause every deployment within ~10k bars, leaving a "dense" benchmark
   that no longer trades. The drawdown ladders are out of reach for the same reason. Every named
   configuration checks its work (orders, fills, denials, eventful bars) against the figures it
   was recorded with and exits non-zero when they moved: a figure measured on other work is not
   the figure this benchmark names.
   ``--scaling``: 10 / 100 / 1,000 deployments on 2 pairs, the candles cut so that each size makes
   about as many orders; the figure compared is microseconds of loop per order.
2. ledger: orders per second recorded by the order manager (an ``order.submitted`` event and its
   projection row each) and flushed in batches, into SQLite in WAL mode.
3. real data: the same loop over Freqtrade's real 5m test candles, when ../shared is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from execdesk.backtest.lane import Lane
from execdesk.clock import ReplayClock
from execdesk.data.feed import MarketView
from execdesk.data.generator import PairProfile, generate_market
from execdesk.desk.loop import DeskLoop
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import Direction, IntentReason, OrderIntent, Side
from execdesk.execution.oms import OrderManager
from execdesk.risk.config import DrawdownLadder, RiskConfig, StagingConfig
from execdesk.risk.pretrade import Verdict
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle, validate_bundle
from execdesk.venues.paper import PaperVenue

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "src" / "execdesk" / "examples" / "bundles"


#: the monitor's verdicts are recorded but not acted on: the dense configuration trades for its whole length
OBSERVE_ONLY = {"review": "continue", "pause": "continue", "stop": "continue"}


def _deploy(ledger: Ledger, bundles: list[Any], capital: Decimal) -> list[str]:
    ledger.record(Event(0, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                        "capital": capital}))
    ids = []
    share = Decimal(1) / len(bundles)
    for i, b in enumerate(bundles):
        dep = f"{b.id}-{i}"
        ids.append(dep)
        ledger.record(Event(0, EventKind.DEPLOYMENT_CREATED, {
            "deployment_id": dep, "strategy_id": b.id, "name": b.name, "version": b.version,
            "bundle_hash": b.bundle_hash, "timeframe": b.timeframe, "pairs": list(b.pairs), "allocation": share,
            "capital": capital * share, "validation": b.validation.model_dump(mode="json")}, dep))
    ledger.flush()
    return ids


def bench_loop(candles: int, deployments: int, pairs: int, timeframe: str = "5m", quiet: bool = False
               ) -> dict[str, Any]:
    """``quiet``: the same strategies with entry conditions that never hold, so the figure is the cost
    of evaluating bars (signals, exits, marking to market, the monitor) without the cost of trading."""
    names = [f"P{i}/USDT" for i in range(pairs)]
    start = datetime(2020, 1, 1, tzinfo=UTC)
    minutes = {"5m": 5, "1h": 60}[timeframe]
    end = start + timedelta(minutes=minutes * candles)
    t0 = time.perf_counter()
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e6) for p in names}, timeframe,
                             start, end, seed=1)
    t_gen = time.perf_counter() - t0
    return _run_loop(frames, timeframe, deployments, names, t_gen, quiet)


def _run_loop(frames: dict[str, Any], timeframe: str, deployments: int, names: list[str], t_gen: float,
              quiet: bool = False) -> dict[str, Any]:
    templates = [load_bundle(BUNDLES / f) for f in ("trend_ema_cross.yaml", "mean_revert_bbands.yaml",
                                                     "momentum_macd.yaml")]
    bundles = []
    for i in range(deployments):
        spec = templates[i % len(templates)].to_canonical_dict()
        spec.update(pairs=names, timeframe=timeframe)
        if quiet:
            spec["entry"] = {"long": "close < 0"}
        bundles.append(validate_bundle(spec, f"benchmark bundle {i}"))
    with tempfile.TemporaryDirectory() as home:
        ledger = Ledger.for_home(Path(home))
        ids = _deploy(ledger, bundles, Decimal(1_000_000))
        t0 = time.perf_counter()
        market = MarketView(frames, timeframe)
        t_market = time.perf_counter() - t0
        t0 = time.perf_counter()
        lanes = [Lane(dep, pair, b, market.lane_candles(pair, timeframe)) for dep, b in zip(ids, bundles, strict=True)
                 for pair in names]
        t_lanes = time.perf_counter() - t0
        venue = PaperVenue("USDT", ledger.state.cash())
        far = DrawdownLadder(alert=None, reduce=0.9, trim=None, kill=0.95)  # limits that do not fire here
        risk = RiskConfig(portfolio_drawdown=far, deployment_drawdown=far, max_open_positions=100_000,
                          throttle_count=1000, staging=StagingConfig(enabled=False))
        loop = DeskLoop(ledger, market, lanes, venue, risk, ReplayClock(), drift_policy=OBSERVE_ONLY)
        t0 = time.perf_counter()
        stats = loop.run()
        t_loop = time.perf_counter() - t0
        tenth = int(market.time[market.n * 9 // 10])  # orders in the last tenth of bars: still trading at the end
        last_tenth = sum(1 for o in ledger.state.orders.values() if o.created_at >= tenth)
        ledger.close()
    evaluations = sum(lane.evaluations for lane in lanes)
    total = t_lanes + t_loop
    result = {"quiet": quiet, "candles_per_pair": market.n, "pairs": len(names), "deployments": deployments,
              "lanes": len(lanes),
              "evaluations": evaluations, "orders": stats.orders, "last_tenth_orders": last_tenth,
              "fills": stats.fills, "denied": stats.denied,
              "eventful_bars": stats.eventful_bars, "generate_s": round(t_gen, 3),
              "market_view_s": round(t_market, 3), "signals_s": round(t_lanes, 3), "loop_s": round(t_loop, 3),
              "evaluations_per_s": round(evaluations / total),
              "loop_us_per_order": round(t_loop / stats.orders * 1e6, 1) if stats.orders else None}
    check_work(result)
    return result


#: the work of each named configuration (candles, deployments, pairs, quiet) as recorded: counters that must not
#: move unless the desk's behaviour did (then re-record them here and say why in docs/BENCHMARKS.md)
EXPECTED: dict[tuple[int, int, int, bool], dict[str, int]] = {
    (100_000, 20, 5, False): {"orders": 135_648, "fills": 121_555},
    (100_000, 20, 5, True): {"orders": 0, "fills": 0},
    (10_000, 3, 2, False): {},
    (10_000, 3, 2, True): {"orders": 0, "fills": 0},
}
TOLERANCE = 0.01  # +-1%: the counters are deterministic; the margin only spares a re-record for a rounding change


def check_work(result: dict[str, Any]) -> None:
    """Fail loudly when the benchmark did other work than it names: a dense configuration must trade for its whole
    length (orders in its last tenth of bars), and a named configuration must make the orders and fills it was
    recorded with."""
    key = (result["candles_per_pair"], result["deployments"], result["pairs"], result["quiet"])
    name = "quiet" if result["quiet"] else "dense"
    if not result["quiet"] and result.get("last_tenth_orders", 1) == 0:
        raise SystemExit(f"bench_loop: the {name} run made no order in its last tenth of bars: it is not dense")
    for counter, want in EXPECTED.get(key, {}).items():
        got = result[counter]
        if abs(got - want) > want * TOLERANCE:
            raise SystemExit(f"bench_loop: {name} {key}: {counter} {got:,} where {want:,} were recorded (+-"
                             f"{TOLERANCE:.0%}): the work this benchmark measures changed")


def bench_scaling(sizes: tuple[int, ...] = (10, 100, 1_000), evaluations: int = 4_000_000, pairs: int = 2
                  ) -> dict[str, Any]:
    """The loop's cost per order at each number of deployments, on about the same number of bar-strategy
    evaluations (the candles cut as deployments grow): linear cost gives the same microseconds per order."""
    runs = {}
    for d in sizes:
        runs[str(d)] = bench_loop(max(evaluations // (d * pairs), 500), d, pairs)
    per_order = [r["loop_us_per_order"] for r in runs.values()]
    spread = max(per_order) / min(per_order) - 1
    return {"runs": runs, "us_per_order": dict(zip(runs, per_order, strict=True)),
            "max_over_min": round(spread, 3), "linear_within_20pct": spread <= 0.2}


def bench_ledger(orders: int, batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        ledger = Ledger.for_home(Path(home))
        _deploy(ledger, [load_bundle(BUNDLES / "trend_ema_cross.yaml")], Decimal(1_000_000))
        dep = next(iter(ledger.state.deployments))
        oms = OrderManager(ledger, PaperVenue("USDT", Decimal(10) ** 12))  # cash for every order (none rejected)
        verdict = Verdict(True, "approved", "within limits", Decimal("0.5"))
        t0 = time.perf_counter()
        for i in range(orders):
            intent = OrderIntent(dep, "BTC/USDT", Side.BUY, Direction.LONG, IntentReason.ENTRY_SIGNAL, i,
                                 Decimal("100.5"))
            oms.submit(intent, verdict, i)
            if (i + 1) % batch == 0:
                oms.send()
        oms.send()
        elapsed = time.perf_counter() - t0
        ledger.close()
    return {"orders": orders, "batch": batch, "seconds": round(elapsed, 3), "orders_per_s": round(orders / elapsed)}


def bench_real(datadir: Path) -> dict[str, Any] | None:
    from execdesk.data.datadir import load_pair

    pairs = ["ETH/BTC", "LTC/BTC", "XLM/BTC"]
    if not all((datadir / f"{p.replace('/', '_')}-5m.feather").is_file() for p in pairs):
        return None
    frames = {p: load_pair(datadir, p, "5m") for p in pairs}
    return _run_loop(frames, "5m", 3, pairs, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--scaling", action="store_true", help="only the cost per order at 10 / 100 / 1,000 "
                                                               "deployments")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.scaling:
        results["scaling"] = bench_scaling(evaluations=400_000 if args.quick else 4_000_000)
    elif args.quick:
        results["loop"] = bench_loop(10_000, 3, 2)
        results["ledger"] = bench_ledger(20_000, 1_000)
    else:
        results["loop"] = bench_loop(100_000, 20, 5)
        results["ledger"] = bench_ledger(200_000, 1_000)
    real = None if args.scaling else bench_real(ROOT.parent / "shared" / "data" / "freqtrade-testdata")
    if real is not None:
        results["loop_real_data"] = real
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
