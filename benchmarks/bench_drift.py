"""Drift evaluation for many deployments (execdesk.monitor.drift.DriftBook); issue 6 §6.

Run: ``.venv/bin/python benchmarks/bench_drift.py [--deployments 1000] [--trades 1000] [--runs 5]``;
prints JSON.

Set-up (not timed): D deployments, each with its own seeded backtest of 500 Student-t trade returns
(the KS histogram has 2 x 500 + 1 cells per deployment) and 1,000 live trades with durations.

Timed, median (p50) and max of ``--runs`` runs:

* ``full_cycle``: a fresh book fed all D x T trades (running sums, Page-Hinkley over every trade in
  order, the KS histogram), then every rule evaluated for every deployment (``evaluate_arrays``: rules,
  PH, PSR, KS, verdicts) — a monitor restarting from the ledger;
* ``incremental_cycle``: one new trade for each of the D deployments (``add_trades``), then every rule
  evaluated again — one monitoring cycle of the running desk (at least 20 runs);
* ``findings``: turning the arrays into D x 8 :class:`Finding` records (``evaluate``), for reports.

Memory: ``DriftBook.nbytes`` (the arrays of the online state and the per-deployment baseline arrays)
and the tracemalloc peak while building and filling a book (baseline tuples and temporaries included).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from execdesk.monitor.drift import VERDICTS, Baseline, DriftBook

SPARE = 200  # live trades beyond the history, one per incremental cycle


def setup(deployments: int, trades: int, seed: int = 0) -> tuple[list[Baseline], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bases = []
    for _ in range(deployments):
        bt = 0.002 + 0.012 * rng.standard_t(5, 500)
        bases.append(Baseline.create(sharpe=1.5, max_drawdown=0.2, win_rate=float((bt > 0).mean()),
                                     avg_trade_duration_min=300.0, slippage_budget_bps=5.0, returns=bt))
    live = 0.002 + 0.012 * rng.standard_t(5, (deployments, trades + SPARE))
    durations = rng.exponential(300.0, (deployments, trades + SPARE))
    return bases, live, durations


def timed(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return {"p50_s": round(statistics.median(seconds), 4), "max_s": round(max(seconds), 4), "runs": runs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--trades", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    d, t = args.deployments, args.trades
    bases, live, durations = setup(d, t)
    ids = [f"dep{i}" for i in range(d)]
    rows_all = np.repeat(np.arange(d), t)
    history, history_d = live[:, :t].ravel(), durations[:, :t].ravel()

    def full() -> DriftBook:
        book = DriftBook(ids, bases)
        book.add_trades(rows_all, history, history_d)
        book.observe(np.arange(d), max_drawdown=np.full(d, 0.1), slippage_bps_mean=np.full(d, 4.0),
                     fills=np.full(d, 2 * t))
        book.evaluate_arrays()
        return book

    full_time = timed(full, args.runs)
    book = full()
    rows = np.arange(d)
    column = iter(range(t, t + SPARE))

    def incremental() -> None:  # one new trade per deployment
        k = next(column)
        book.add_trades(rows, live[:, k], durations[:, k])
        book.evaluate_arrays()

    incremental_time = timed(incremental, min(max(args.runs, 20), SPARE))
    findings_time = timed(book.evaluate, args.runs)

    tracemalloc.start()
    traced = DriftBook(ids, bases)
    traced.add_trades(rows_all, history, history_d)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {
        "benchmark": "drift", "deployments": d, "trades_per_deployment": t, "backtest_sample": 500,
        "full_cycle": full_time, "incremental_cycle": incremental_time, "findings": findings_time,
        "state_nbytes_mb": round(book.nbytes / 2**20, 2),
        "state_nbytes_per_deployment_kb": round(book.nbytes / d / 1024, 2),
        "tracemalloc_peak_build_and_fill_mb": round(peak / 2**20, 2),
        "verdicts_after": {VERDICTS[int(v)].value: int(n) for v, n in
                           zip(*np.unique(book.evaluate_arrays()["verdict"], return_counts=True), strict=True)},
        "python": sys.version.split()[0], "machine": platform.machine(),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
