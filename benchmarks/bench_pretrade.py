"""Latency of the pre-trade fast path (execdesk.risk.fastpath.check), with PreTrade.decide for comparison.

Run: ``.venv/bin/python benchmarks/bench_pretrade.py [--quick] [--orders N]``; prints JSON, and exits 1 with the
reason on stderr when the work differs from what the figures are for (see "Work" below).

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

``PreTrade.decide`` (execdesk.risk.pretrade: what the desk loop calls per intent) is timed per call on the
same kind of orders, for a smaller count: entries sized by it (the fixed-fractional notional in Decimal, each
cap's room and the cuts in floats, the qty in Decimal, then the fast path; their qty is dropped) and exits
with their qty (the fast path as reduce-only). Its book is rebuilt from a ledger (a DeskState folded from
events) holding the same 1,000 positions, with the same cash, states and throttle rings; nothing is
committed, so every call sees the same book, as ``check`` does. The per-deployment Contexts are built
beforehand (not timed; in the loop the lead builds one per intent). ``decide`` leaves the verdict's words
(reason, numbers, the sizing's formula and caps) to when the verdict is recorded, so the same calls are
timed again with ``Verdict.as_dict()`` after each (``pretrade_decide_and_record``): what the loop pays per
intent, the order manager's recording aside. Last, ``PreTrade.commit`` of each approved entry, one after
the other on the same book (each sees the holds before it), per call.

Work. The figures are for this work only, so the benchmark counts it and stops (exit 1, the counters that
differ on stderr) when it differs: the number of calls timed, and for the default seed the share of each
verdict (approved or the rule denying) among the fast path's orders and decide's intents within expected
ranges (the seed-7 shares, +-20% of each or 4 standard deviations of its sampling at this count, whichever is
wider), and the entry/exit split. Another ``--seed`` builds another book: its counts are checked, its mix
only printed. The digest of decide's recorded verdicts (sha256 of their JSON) is printed to compare runs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import Direction, IntentReason, OrderIntent, Side, TradingState, dec
from execdesk.risk.config import RiskConfig
from execdesk.risk.fastpath import STATE_NAME, FastLimits, FastOrder, RiskState, check
from execdesk.risk.pretrade import Context, PreTrade

N_DEP, N_ASSET, N_GROUP, PER_DEP = 200, 50, 10, 5
BATCH = 100
DEFAULT_SEED = 7
#: share of each verdict at the default seed (200k orders; decide on their first 20k): what the figures are for
EXPECTED_MIX = {"approved": 0.2494, "max_order_notional": 0.1776, "gross_exposure": 0.1772, "free_cash": 0.1316,
                "correlated_exposure": 0.1144, "trading_state": 0.0669, "throttle": 0.0427, "price_band": 0.0284,
                "reduce_only": 0.0099, "deployment_exposure": 0.0019}
EXPECTED_DECIDE_MIX = {"approved": 0.5734, "correlated_exposure": 0.1768, "throttle": 0.1070,
                       "trading_state": 0.0671, "price_band": 0.0655, "reduce_only": 0.0104}
EXPECTED_EXIT_SHARE = 0.0415  # of decide's intents


def pair(a: int) -> str:
    return f"A{a}/USDT"


def build_book(rng: random.Random) -> tuple[RiskState, FastLimits, RiskConfig]:
    groups = {f"g{g}": [pair(a) for a in range(N_ASSET) if a % N_GROUP == g] for g in range(N_GROUP)}
    cfg = RiskConfig(max_open_positions=1_100, max_gross_exposure=1.5, max_order_notional=20_000,
                     max_correlated_exposure=0.09, throttle_count=8, throttle_window_s=60.0,
                     correlation_groups=groups)
    limits = FastLimits.from_config(cfg)
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


def build_pretrade(state: RiskState, cfg: RiskConfig) -> PreTrade:
    """A PreTrade whose book is the fast path's: the same positions, filled through a ledger, the same free
    cash (the ledger's capital is chosen for it) and the same throttle rings (copied in after the rebuild:
    the rings hold float seconds, the ledger's order times are whole seconds)."""
    deployments = [f"dep-{d}" for d in range(N_DEP)]
    events = [Event(0, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT", "capital": 0})]
    events += [Event(0, EventKind.DEPLOYMENT_CREATED, {
        "deployment_id": dep, "strategy_id": "S", "name": dep, "version": 1, "bundle_hash": "0", "timeframe": "1h",
        "pairs": [pair(a) for a in range(N_ASSET)], "allocation": Decimal(1), "capital": dec(state.dep_equity[d])},
        dep) for d, dep in enumerate(deployments)]
    spent = Decimal(0)
    for d in range(N_DEP):
        for a in range(N_ASSET):
            q = state.position(d, a)
            if q == 0.0:
                continue
            coid, qty, price = f"pre-{d}-{a}", dec(abs(q)), dec(state.last_price[a])
            fee = dec(qty * price * Decimal("0.001"))
            side = "BUY" if q > 0 else "SELL"
            spent += (qty * price if q > 0 else -qty * price) + fee
            events.append(Event(0, EventKind.ORDER_SUBMITTED, {
                "client_order_id": coid, "deployment_id": f"dep-{d}", "pair": pair(a), "side": side,
                "direction": "LONG" if q > 0 else "SHORT", "type": "MARKET", "qty": qty, "reason": "entry_signal",
                "signal_time": 0, "ref_price": price}, f"dep-{d}"))
            events.append(Event(0, EventKind.ORDER_FILLED, {"fill_id": f"{coid}-1", "client_order_id": coid,
                                                            "qty": qty, "price": price, "fee": fee}, f"dep-{d}"))
    events[0].payload["capital"] = dec(state.cash) + spent
    ledger = DeskState.from_events(events)
    pretrade = PreTrade(cfg, deployments, [pair(a) for a in range(N_ASSET)], Decimal("0.001"), state.equity)
    pretrade.rebuild(ledger, {pair(a): state.last_price[a] for a in range(N_ASSET)}, 0)
    pretrade.state.ring, pretrade.state.ring_head = list(state.ring), list(state.ring_head)
    view = pretrade.view()
    assert view.open_positions == state.open_positions
    assert abs(view.gross - state.gross) < 1e-6 * state.gross
    assert abs(view.cash - state.cash) < 1e-6
    return pretrade


def decide_inputs(state: RiskState, orders: Sequence[FastOrder]) -> list[tuple[OrderIntent, Context]]:
    """PreTrade's view of the same orders (entries are sized by it: their qty is dropped)."""
    contexts = [Context(TradingState(STATE_NAME[state.portfolio_state]), TradingState(STATE_NAME[state.dep_state[d]]),
                        state.equity, state.dep_equity[d], 0.05) for d in range(N_DEP)]
    out = []
    for o in orders:
        d, a = o.deployment, o.asset
        side = Side.BUY if o.side > 0 else Side.SELL
        direction = Direction.LONG if (o.side > 0) != o.reduce_only else Direction.SHORT
        reason = IntentReason.STOPLOSS if o.reduce_only else IntentReason.ENTRY_SIGNAL
        intent = OrderIntent(f"dep-{d}", pair(a), side, direction, reason, int(o.timestamp), dec(o.price),
                             dec(o.qty) if o.reduce_only else None)
        out.append((intent, contexts[d]))
    return out


def share_range(expected: float, n: int) -> tuple[float, float]:
    """The range a share expected at ``expected`` may come out in over ``n`` draws: +-20% of it or 4 standard
    deviations of its sampling, whichever is wider."""
    tol = max(0.2 * expected, 4.0 * math.sqrt(expected * (1.0 - expected) / n))
    return expected - tol, expected + tol


def check_mix(what: str, mix: Counter[str], n: int, expected: dict[str, float]) -> list[str]:
    """What differs between ``mix`` (counts of ``n``) and the ``expected`` shares."""
    problems = [f"{what}: {rule!r} ({count} of {n}) is not in the expected mix" for rule, count in mix.items()
                if rule not in expected]
    for rule, share in expected.items():
        lo, hi = share_range(share, n)
        got = mix.get(rule, 0) / n
        if not lo <= got <= hi:
            problems.append(f"{what}: {rule!r} is {got:.2%} of {n}, expected {lo:.2%}..{hi:.2%}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20k orders: a smoke run, not figures to record")
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
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
        pretrade = build_pretrade(state, cfg)
        ref_inputs = decide_inputs(state, orders[:n_ref])
        for a in ref_inputs[:1_000]:  # warm-up
            pretrade.decide(*a)
        ref_calls = per_call(pretrade.decide, ref_inputs, overhead)
        for a in ref_inputs[:1_000]:  # warm-up
            decide_and_record(pretrade, *a)
        rec_calls = per_call(decide_and_record, [(pretrade, *a) for a in ref_inputs], overhead)
    finally:
        gc.enable()
    ref_verdicts = [pretrade.decide(*a) for a in ref_inputs]
    ref_mix = Counter(v.rule for v in ref_verdicts)
    ref_entry = [i for i, (intent, _ctx) in enumerate(ref_inputs) if not intent.reduce_only]
    ref_exit = [i for i, (intent, _ctx) in enumerate(ref_inputs) if intent.reduce_only]
    digest = hashlib.sha256("\n".join(json.dumps(v.as_dict()) for v in ref_verdicts).encode()).hexdigest()
    commits = [(f"bench-{i}", ref_inputs[i][0], v) for i, v in enumerate(ref_verdicts)
               if v.approved and not ref_inputs[i][0].reduce_only]
    gc.collect()
    gc.disable()
    try:
        commit_calls = per_call(pretrade.commit, commits, overhead)
    finally:
        gc.enable()

    work = {"check_calls": len(calls), "check_batches": len(batches), "decide_calls": len(ref_calls),
            "decide_and_record_calls": len(rec_calls), "decide_entries": len(ref_entry), "decide_exits": len(ref_exit),
            "commit_calls (the approved entries)": len(commit_calls)}
    problems = [f"{name}: {got} calls, expected {want}" for name, got, want in (
        ("check", len(calls), n), ("check batches", len(batches), n // BATCH), ("decide", len(ref_calls), n_ref),
        ("decide and record", len(rec_calls), n_ref)) if got != want]
    if args.seed == DEFAULT_SEED:
        problems += check_mix("fast path", mix, n, EXPECTED_MIX)
        problems += check_mix("decide", ref_mix, n_ref, EXPECTED_DECIDE_MIX)
        lo, hi = share_range(EXPECTED_EXIT_SHARE, n_ref)
        if not lo <= len(ref_exit) / n_ref <= hi:
            problems.append(f"decide: exits are {len(ref_exit) / n_ref:.2%} of {n_ref}, expected {lo:.2%}..{hi:.2%}")

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
        "pretrade_decide_ns_per_call": {
            "all": percentiles(ref_calls),
            "entry": percentiles([ref_calls[i] for i in ref_entry]) if ref_entry else None,
            "exit": percentiles([ref_calls[i] for i in ref_exit]) if ref_exit else None,
        },
        "pretrade_decide_and_record_ns_per_call": {
            "all": percentiles(rec_calls),
            "entry": percentiles([rec_calls[i] for i in ref_entry]) if ref_entry else None,
            "exit": percentiles([rec_calls[i] for i in ref_exit]) if ref_exit else None,
        },
        "pretrade_commit_ns_per_call": percentiles(commit_calls) if commit_calls else None,
        "pretrade_decide_mix": dict(ref_mix.most_common()),
        "pretrade_verdicts_sha256": digest,
        "work": work,
        "work_checked": "counts and mix" if args.seed == DEFAULT_SEED else "counts (mix ranges are for seed 7)",
        "work_as_expected": not problems,
        "method": "per call: perf_counter_ns around each call minus the timer's median empty-pair cost; "
                  "batches: 100 back-to-back calls / 100; gc disabled while timing",
    }
    print(json.dumps(result, indent=2))
    if problems:
        print("bench_pretrade: the work differs from what these figures are for:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        sys.exit(1)


def decide_and_record(pretrade: PreTrade, intent: OrderIntent, ctx: Context) -> dict[str, object]:
    """decide, then the verdict as the order manager records it (its words put in at this point)."""
    return pretrade.decide(intent, ctx).as_dict()


if __name__ == "__main__":
    main()
