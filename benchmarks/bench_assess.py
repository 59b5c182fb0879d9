"""Time of the pre-deployment assessment against a portfolio of 200 live deployments.

Run: ``.venv/bin/python benchmarks/bench_assess.py [--quick] [--runs N] [--json]``; prints a table, or
JSON with ``--json``.

Portfolio: 200 live deployments on 20 assets (BTC, ETH, SOL, ... as in the generator's profiles), equity
20M, 10M of it allocated (40k-60k each). Daily returns: seeded generated daily candles of the 20 assets
(``execdesk.data.generate_market``, 2023-01-01 to 2024-07-01, their common market factor makes them
correlate ~0.4); each deployment holds 1-3 of them, is in the market on a seeded two-state (in / out)
Markov chain, at a leverage of 0.3-1.0, pays 5 bps on each switch and went live on a random day of
2023, so its series has 180-546 days. Its exposure is its allocation x leverage spread over its assets
(about one in five short).

Candidate: trend_ema_cross-like, BTC + ETH long, daily returns over 2024-01-01..06-30 from the same
candles, 90 per-trade returns (the bootstrap's input: 2,000 paths), 5% stop. Two requests are timed:

* ``within limits``: 1% of equity — every cap passes, no search;
* ``over limits``: 12% of equity — the deployed, correlated and worst-case caps fail, so the largest
  allocation and the loosest stop are searched by bisection (the costliest path).

Method: ``execdesk.risk.assessment.assess`` called with prepared inputs, one warm-up call, then
``--runs`` timed calls (``perf_counter``); median and p95 (nearest rank) in milliseconds.

The whole service path, ``execdesk.api.actions.assess`` (what ``execdesk assess`` runs, without the
process start-up), is timed on a home whose ledger holds the same 200 deployments: a desk config, 200
``deployment.created`` events, one filled order per held asset (the exposure) and a daily
``equity.snapshot`` per day with all 200 deployments' equity. The ledger is written directly (events
recorded through ``Ledger.record``), not by running 200 strategies: that would take minutes and the
assessment only reads these events. The candidate is the trend_ema_cross example bundle at 10%.
Besides the total, each step is timed once more on its own with the same functions the service calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execdesk.data import PairProfile, generate_market
from execdesk.domain.events import Event, EventKind
from execdesk.risk.assessment import AssessmentLimits, Candidate, LiveDeployment, PortfolioSnapshot, assess
from execdesk.store.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "src" / "execdesk" / "examples" / "bundles" / "trend_ema_cross.yaml"
ASSETS = ("BTC", "ETH", "SOL", "AVAX", "BNB", "XRP", "ADA", "DOT", "LINK", "LTC",
          "ATOM", "NEAR", "UNI", "AAVE", "FIL", "ARB", "OP", "INJ", "SUI", "TRX")
N_DEP = 200
EQUITY = 20_000_000.0
START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)
PERIOD = (pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-07-01", tz="UTC"))


# ------------------------------------------------------------------------------------------------ inputs
def asset_returns(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily close returns of the 20 assets (indexed by UTC midnight) and their correlation."""
    profiles = {f"{a}/USDT": PairProfile(start_price=100.0, base_volume=1e6) for a in ASSETS}
    frames = generate_market(profiles, "1d", START, END, seed)
    closes = pd.DataFrame({p.split("/")[0]: f.set_index("date")["close"] for p, f in frames.items()})
    returns = closes.pct_change().iloc[1:]
    return returns, returns.corr()


def live_deployments(returns: pd.DataFrame, rng: np.random.Generator) -> tuple[LiveDeployment, ...]:
    """200 deployments as the module docstring describes."""
    out = []
    n_days = len(returns)
    for i in range(N_DEP):
        held = rng.choice(len(ASSETS), size=int(rng.integers(1, 4)), replace=False)
        side = -1.0 if rng.random() < 0.2 else 1.0
        leverage = float(rng.uniform(0.3, 1.0))
        allocated = float(rng.uniform(40_000.0, 60_000.0))
        stay = float(rng.uniform(0.85, 0.97))
        state = np.empty(n_days, dtype=bool)
        state[0] = rng.random() < 0.5
        flips = rng.random(n_days) > stay
        for t in range(1, n_days):
            state[t] = state[t - 1] ^ flips[t]
        market = returns.iloc[:, held].to_numpy().mean(axis=1)
        switches = np.r_[False, state[1:] != state[:-1]]
        daily = side * leverage * state * market - 0.0005 * switches
        live_from = int(rng.integers(0, 365))
        series = pd.Series(daily[live_from:], index=returns.index[live_from:])
        exposure = {ASSETS[a]: side * allocated * leverage / len(held) for a in held}
        out.append(LiveDeployment(f"dep-{i:03d}", allocated, exposure, series))
    return tuple(out)


def candidate(returns: pd.DataFrame, rng: np.random.Generator, allocation: float) -> Candidate:
    """A BTC/ETH pair trade (long BTC, short ETH): its daily returns are the spread's while in the market."""
    inside = returns[(returns.index >= PERIOD[0]) & (returns.index < PERIOD[1])]
    state = rng.random(len(inside)) < 0.55
    spread = inside["BTC"].to_numpy() - inside["ETH"].to_numpy()
    daily = pd.Series(0.2 * state * spread + rng.normal(0.0005, 0.006, len(inside)), index=inside.index)
    trades = tuple(float(x) for x in np.clip(rng.normal(0.004, 0.06, 90), -0.05, None))
    return Candidate("pair-candidate-v1", allocation, {"BTC": allocation / 2, "ETH": -allocation / 2}, daily,
                     trades, stoploss=0.05)


# ------------------------------------------------------------------------------------------------ timing
def timed(fn: Callable[[], object], runs: int) -> dict[str, Any]:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    s = sorted(times)
    return {"runs": runs, "median_ms": round(statistics.median(s), 2),
            "p95_ms": round(s[min(len(s) - 1, int(np.ceil(0.95 * len(s))) - 1)], 2),
            "min_ms": round(s[0], 2), "max_ms": round(s[-1], 2)}


def bench_core(runs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    returns, corr = asset_returns(seed)
    portfolio = PortfolioSnapshot(EQUITY, live_deployments(returns, rng))
    days = [len(d.returns) for d in portfolio.deployments]
    out: dict[str, Any] = {"deployments": N_DEP, "assets": len(ASSETS), "return_days": [min(days), max(days)]}
    for name, fraction in (("within_caps", 0.01), ("over_caps", 0.12)):
        cand = candidate(returns, np.random.default_rng(seed + 1), fraction * EQUITY)
        result = assess(portfolio, cand, AssessmentLimits(), corr)
        figures = timed(lambda c=cand: assess(portfolio, c, AssessmentLimits(), corr), runs)
        out[name] = {"allocation_fraction": fraction, "verdict": result.verdict.value,
                     "failed": [r.name for r in result.rules if not r.passed], **figures}
    return out


# ------------------------------------------------------------------------------------------ service path
def build_home(home: Path, returns: pd.DataFrame, seed: int) -> int:
    """A ledger with the 200 deployments of :func:`live_deployments`; returns its event count."""
    rng = np.random.default_rng(seed)
    deployments = live_deployments(returns, rng)
    t0 = int(START.timestamp())
    with Ledger.for_home(home) as ledger:
        ledger.record(Event(t0, EventKind.DESK_CONFIGURED, {
            "config": {"bench": "assess"}, "identity": {"bench": "assess"}, "quote": "USDT",
            "capital": Decimal(str(EQUITY))}))
        for d in deployments:
            ledger.record(Event(t0, EventKind.DEPLOYMENT_CREATED, {
                "deployment_id": d.id, "strategy_id": d.id, "name": d.id, "version": 1, "bundle_hash": "0" * 64,
                "timeframe": "1h", "pairs": [f"{a}/USDT" for a in d.exposure],
                "allocation": Decimal(str(round(d.allocated / EQUITY, 8))),
                "capital": Decimal(str(round(d.allocated, 2)))}, d.id))
        for d in deployments:
            for n, (asset, notional) in enumerate(d.exposure.items()):
                coid = f"{d.id}-{n}"
                side = "BUY" if notional > 0 else "SELL"
                qty = Decimal(str(round(abs(notional) / 100.0, 6)))
                ledger.record(Event(t0, EventKind.ORDER_SUBMITTED, {
                    "client_order_id": coid, "deployment_id": d.id, "pair": f"{asset}/USDT", "side": side,
                    "direction": "LONG" if notional > 0 else "SHORT", "type": "MARKET", "qty": qty,
                    "reason": "ENTRY_SIGNAL", "signal_time": t0, "ref_price": Decimal(100)}, d.id))
                ledger.record(Event(t0, EventKind.ORDER_FILLED, {
                    "client_order_id": coid, "fill_id": f"f-{coid}", "qty": qty, "price": Decimal(100),
                    "fee": Decimal(0), "slippage_bps": 0.0}, d.id))
        curves = {d.id: d.allocated * (1.0 + d.returns).cumprod() for d in deployments}
        for day in returns.index:
            values = {d.id: {"equity": round(float(curves[d.id][day]), 6), "drawdown": 0.0}
                      for d in deployments if day in curves[d.id].index}
            ledger.record(Event(int(day.timestamp()) + 86_399, EventKind.EQUITY_SNAPSHOT,
                                {"equity": EQUITY, "drawdown": 0.0, "deployments": values}))
        ledger.flush()
        return ledger.state.last_seq


def bench_service(runs: int, seed: int) -> dict[str, Any]:
    from execdesk.api import actions
    from execdesk.codegen.pipeline import market_for_bundle
    from execdesk.risk.portfolio import asset_correlation, candidate_from_bundle, portfolio_from_ledger
    from execdesk.strategy import load_bundle, validate_bundle

    returns, _ = asset_returns(seed)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        t0 = time.perf_counter()
        events = build_home(home, returns, seed)
        build_s = time.perf_counter() - t0
        out_dir = Path(tmp) / "out"
        data = actions.assess(BUNDLE, home, 0.10, None, out_dir)
        total = timed(lambda: actions.assess(BUNDLE, home, 0.10, None, out_dir), runs)

        # the steps, once each, with the functions the service calls
        steps: dict[str, float] = {}

        def step(name: str, fn: Callable[[], Any]) -> Any:
            t = time.perf_counter()
            value = fn()
            steps[name] = round((time.perf_counter() - t) * 1e3, 1)
            return value

        bundle = load_bundle(BUNDLE)
        ledger = step("open ledger (fold events)", lambda: Ledger.for_home(home))
        try:
            portfolio = step("portfolio_from_ledger", lambda: portfolio_from_ledger(ledger))
            live_pairs = sorted({p for d in ledger.state.deployments.values() for p in d.pairs} - set(bundle.pairs))
        finally:
            ledger.close()
        spec = bundle.to_canonical_dict()
        spec["pairs"] = [*bundle.pairs, *live_pairs]
        frames, _ = step("market_for_bundle (generate candles)",
                         lambda: market_for_bundle(validate_bundle(spec, "assessment market")))
        cand, _ = step("candidate_from_bundle (backtest)", lambda: candidate_from_bundle(
            bundle, 0.10 * portfolio.equity, {p: frames[p] for p in bundle.pairs}))
        corr = step("asset_correlation", lambda: asset_correlation(frames))
        step("assess", lambda: assess(portfolio, cand, AssessmentLimits(), corr))
    return {"deployments": N_DEP, "ledger_events": events, "build_home_s": round(build_s, 2),
            "market_pairs": len(frames), "candles_per_pair": len(frames[bundle.pairs[0]]),
            "verdict": data["verdict"], **total, "steps_ms": steps}


# ------------------------------------------------------------------------------------------------ output
def table(results: dict[str, Any]) -> str:
    core = results["assess"]
    lines = [f"assess with {core['deployments']} live deployments ({core['assets']} assets, "
             f"{core['return_days'][0]}-{core['return_days'][1]} days of returns each)",
             f"{'what':<42}{'verdict':>13}{'median ms':>11}{'p95 ms':>9}{'runs':>6}"]
    for name in ("within_caps", "over_caps"):
        c = core[name]
        lines.append(f"{'risk.assessment.assess, ' + name.replace('_', ' '):<42}{c['verdict']:>13}"
                     f"{c['median_ms']:>11.2f}{c['p95_ms']:>9.2f}{c['runs']:>6}")
    s = results.get("service")
    if s is not None:
        lines.append(f"{'lead.service.assess (ledger, backtest)':<42}{s['verdict']:>13}"
                     f"{s['median_ms']:>11.1f}{s['p95_ms']:>9.1f}{s['runs']:>6}")
        lines.append(f"  ledger: {s['ledger_events']} events (built in {s['build_home_s']} s); market: "
                     f"{s['market_pairs']} pairs x {s['candles_per_pair']} 1h candles")
        for name, ms in s["steps_ms"].items():
            lines.append(f"  {name:<40}{ms:>10.1f} ms")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 runs each: a smoke run, not figures to record")
    parser.add_argument("--runs", type=int, default=20, help="timed runs of assess (the service path: a quarter)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-service", action="store_true", help="time risk.assessment.assess only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    results: dict[str, Any] = {
        "bench": "assess",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "assess": bench_core(runs, args.seed),
    }
    if not args.no_service:
        results["service"] = bench_service(max(3, runs // 4), args.seed)
    print(json.dumps(results, indent=2) if args.json else table(results))


if __name__ == "__main__":
    sys.exit(main())
