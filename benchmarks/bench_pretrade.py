"""Latency of the pre-trade fast path (execdesk.risk.fastpath.check), with check_order for comparison.

Run: ``.venv/bin/python benchmarks/bench_pretrade.py [--quick] [--orders N]``; prints JSON.

Book: 200 deployments x 50 assets (10 correlation groups of 5), 1,000 open positions (5 per deployment),
a few deployments REDUCING or HALTED, throttle rings partly full. Orders: a seeded random mix of entries,
additions and exits, priced around the last price, so that both the approve path and every deny path are
taken (the mix is reported).

Method. The calls are timed two ways, with the garbage collector off (``check`` allocates nothing on the
approve path and a 4-field Denial on the deny path, so the collector would only add noise):

* per call: ``t0 = perf_counter_ns(); check(...); t1 = perf_counter_ns()``, minus the timer's own cost,
  measured empirically as the median of ``t1 - t0`` around nothing (``timer_overhead_ns``); the
  percentiles are of these per-call figures, so p99 and max see the real tail (a clock tick is
  ~1 ns on Linux; a sample can come out at or just below zero, it is kept as is);
* batches of 100: the time of 100 back-to-back calls divided by 100 (loop overhead included, timer cost
  amortised); the percentiles are of batch means, which smooth single-call outliers: a cross-check of
  the per-call p50, not a tail figure.

check_order is timed per call on the same kind of orders (entries sized by it, exits with their qty) for
a smaller count, with its snapshots built beforehand (building them is not timed; in the loop it is).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from execdesk.domain.types import Direction, IntentReason, OrderIntent, Side, TradingState, dec
from execdesk.risk.config import RiskConfig
from execdesk.risk.fastpath import FastLimits, FastOrder, RiskState, check
from execdesk.risk.pretrade import PretradeSnapshot, check_order

N_DEP, N_ASSET, N_GROUP, PER_DEP = 200, 50, 10, 5
BATCH = 100


def build_book(rng: random.Random) -> tuple[RiskState, FastLimits, RiskConfig]:
    cfg = RiskConfig(max_open_positions=1_100, max_gross_exposure=1.5, max_order_notional=20_000)
    limits = FastLimits.from_config(cfg, throttle_count=8, throttle_window_s=60.0, max_correlated_exposure=0.09)
    prices = [rng.uniform(1.0, 50_000.0) for _ in range(N_ASSET)]
    state = RiskState.new(N_DEP, N_ASSET, equity=6_000_000.0, cash=12_000_000.0, dep_equity=[75_000.0] * N_DEP,
                          asset_group=[a % N_GROUP for a in range(N_ASSET)], last_price=prices, limits=limits)
    for d in range(N_DEP):
        for a in rng.sample(range(N_ASSET), PER_DEP):
            side = 1 if rng.random() < 0.6 else -1
            qty = rng.uniform(2_000.0, 15_000.0) / prices[a]
            state.apply_fill(d, a, side * qty, prices[a], qty * prices[a] * limits.fee_rate)
    for d in rng.sample(range(N_DEP), 10):
        state.set_state(d, TradingState.REDUCING)
    for d in rng.sample(range(N_DEP), 4):
        state.set_state(d, TradingState.HALTED)
    for d in range(N_DEP):  # orders already placed: a few deployments near their throttle
        for _ in range(rng.choice((0, 1, 3, 8))):
            state.record_order(FastOrder(d, 0, 1, 1.0, 1.0, False, rng.uniform(0.0, 59.0)))
    assert state.open_positions == N_DEP * PER_DEP
    state.set_equity((state.gross + 12_000.0) / limits.max_gross_exposure)  # near the gross cap
    state.cash = 7_000.0  # what is left free: the larger entries meet the free-cash rule
    return state, limits, cfg


def make_orders(rng: random.Random, state: RiskState, n: int) -> list[FastOrder]:
    orders = []
    for _ in range(n):
        d, a = rng.randrange(N_DEP), rng.randrange(N_ASSET)
        last = state.last_price[a]
        q0 = state.position(d, a)
        price = last * rng.choice((1.0, 1.0, 1.0, rng.uniform(0.97, 1.03), rng.uniform(0.9, 1.1)))
        if q0 != 0.0 and rng.random() < 0.4:  # an exit (sometimes too big)
            qty = abs(q0) * rng.choice((1.0, 1.0, 0.5, 1.5))
            orders.append(FastOrder(d, a, -1 if q0 > 0 else 1, qty, price, True, 60.0 + rng.uniform(0, 30)))
        else:
            notional = rng.choice((1_000.0, 3_000.0, 8_000.0, 15_000.0, 25_000.0))
            orders.append(FastOrder(d, a, rng.choice((1, -1)), notional / last, price, False,
                                    60.0 + rng.uniform(0, 30)))
    return orders


def timer_overhead_ns(samples: int = 200_000) -> int:
    pc = time.perf_counter_ns
    deltas = []
    for _ in range(samples):
        t0 = pc()
        t1 = pc()
        deltas.append(t1 - t0)
    return int(statistics.median(deltas))


def percentiles(values: Sequence[float]) -> dict[str, float]:
    s = sorted(values)
    n = len(s)
    return {"n": n, "p50": round(s[n // 2], 1), "p90": round(s[int(n * 0.90)], 1),
            "p99": round(s[min(int(n * 0.99), n - 1)], 1), "p999": round(s[min(int(n * 0.999), n - 1)], 1),
            "max": round(s[-1], 1), "mean": round(sum(s) / n, 1)}


def per_call(fn: Callable[..., object], args: Sequence[tuple[Any, ...]], overhead: int) -> list[float]:
    pc = time.perf_counter_ns
    out = [0.0] * len(args)
    for i, a in enumerate(args):
        t0 = pc()
        fn(*a)
        t1 = pc()
        out[i] = t1 - t0 - overhead
    return out


def batched(state: RiskState, limits: FastLimits, orders: Sequence[FastOrder]) -> list[float]:
    pc = time.perf_counter_ns
    out = []
    for start in range(0, len(orders) - BATCH + 1, BATCH):
        batch = orders[start:start + BATCH]
        t0 = pc()
        for o in batch:
            check(o, state, limits)
        out.append((pc() - t0) / BATCH)
    return out


def pretrade_inputs(state: RiskState, orders: Sequence[FastOrder], cfg: RiskConfig
                    ) -> list[tuple[OrderIntent, PretradeSnapshot, RiskConfig]]:
    """check_order's view of the same orders (entries are sized by it: their qty is dropped)."""
    names = ("ACTIVE", "REDUCING", "HALTED")
    out = []
    for o in orders:
        d, a = o.deployment, o.asset
        side = Side.BUY if o.side > 0 else Side.SELL
        direction = Direction.LONG if (o.side > 0) != o.reduce_only else Direction.SHORT
        reason = IntentReason.STOPLOSS if o.reduce_only else IntentReason.ENTRY_SIGNAL
        intent = OrderIntent(f"dep-{d}", f"A{a}/USDT", side, direction, reason, int(o.timestamp), dec(o.price),
                             dec(o.qty) if o.reduce_only else None)
        snap = PretradeSnapshot(
            trading_state=TradingState(names[state.portfolio_state]),
            deployment_state=TradingState(names[state.dep_state[d]]),
            portfolio_equity=dec(round(state.equity, 8)), deployment_equity=dec(round(state.dep_equity[d], 8)),
            gross_exposure=dec(round(state.gross, 8)), deployment_exposure=dec(round(state.dep_exposure[d], 8)),
            cash=dec(round(state.cash, 8)), open_positions=state.open_positions,
            position_qty=dec(round(state.position(d, a), 8)), stop_distance=0.05, fee_rate=Decimal("0.001"))
        out.append((intent, snap, cfg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20k orders: a smoke run, not figures to record")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    n = 20_000 if args.quick else args.orders
    rng = random.Random(args.seed)
    state, limits, cfg = build_book(rng)
    orders = make_orders(rng, state, n)
    verdicts = [check(o, state, limits) for o in orders]
    mix = Counter("approved" if v is None else v.rule for v in verdicts)
    approve_idx = [i for i, v in enumerate(verdicts) if v is None]
    deny_idx = [i for i, v in enumerate(verdicts) if v is not None]

    gc.collect()
    gc.disable()
    try:
        overhead = timer_overhead_ns()
        for o in orders[:20_000]:  # warm-up
            check(o, state, limits)
        calls = per_call(check, [(o, state, limits) for o in orders], overhead)
        batches = batched(state, limits, orders)
        n_ref = min(n, 5_000 if args.quick else 20_000)
        ref_inputs = pretrade_inputs(state, orders[:n_ref], cfg)
        for a in ref_inputs[:1_000]:
            check_order(*a)
        ref_calls = per_call(check_order, ref_inputs, overhead)
    finally:
        gc.enable()

    result = {
        "bench": "pretrade",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "book": {"deployments": N_DEP, "assets": N_ASSET, "groups": N_GROUP, "open_positions": state.open_positions},
        "orders": n,
        "mix": dict(mix.most_common()),
        "timer_overhead_ns": overhead,
        "fastpath_ns_per_call": {
            "all": percentiles(calls),
            "approve": percentiles([calls[i] for i in approve_idx]) if approve_idx else None,
            "deny": percentiles([calls[i] for i in deny_idx]) if deny_idx else None,
        },
        "fastpath_ns_batch_mean_of_100": percentiles(batches),
        "check_order_ns_per_call": percentiles(ref_calls),
        "method": "per call: perf_counter_ns around each call minus the timer's median empty-pair cost; "
                  "batches: 100 back-to-back calls / 100; gc disabled while timing",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
