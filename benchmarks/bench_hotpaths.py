"""Three hot paths the tests check for their work only (their speed is measured here, never asserted in a test):

* the seeded market generator: 5 pairs x 100,000 5m candles (``execdesk.data.generate_market``);
* candle validation of 1,000,000 1m rows whose last row is bad (``validate_candles``: vectorised, it must find
  the last row's negative volume);
* the expression language on 100,000 candles (``crossed_above(ema_fast, ema_slow) and rsi < 70 and close >
  shift(rolling_max(high, 20), 1)``).

Run: ``.venv/bin/python benchmarks/bench_hotpaths.py [--repeat N]``; prints JSON: per path the median, min and
max seconds of N timed runs after one warm-up, and the work each run did (checked equal on every run: the
benchmark fails loudly when it changes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execdesk.data import PairProfile, generate_market
from execdesk.data.candles import CandleError, validate_candles
from execdesk.data.timeframes import dates_from_epoch_seconds
from execdesk.strategy import as_signal, evaluate, parse_expression
from execdesk.strategy.expr import OHLCV

START = datetime(2024, 1, 1, tzinfo=UTC)
NAMES = frozenset({"ema_fast", "ema_slow", "rsi"}) | frozenset(OHLCV)


def generator() -> dict[str, Any]:
    pairs = {f"P{i}/USDT": PairProfile(start_price=10.0 * (i + 1), base_volume=1e5) for i in range(5)}
    frames = generate_market(pairs, "5m", START, START + timedelta(minutes=5 * 100_000), seed=0)
    return {"pairs": len(frames), "candles": sum(len(f) for f in frames.values()),
            "last_close": round(float(frames["P4/USDT"]["close"].iloc[-1]), 6)}


def _million_rows() -> pd.DataFrame:
    n = 1_000_000
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0.0, 0.001, n)))
    frame = pd.DataFrame({"date": dates_from_epoch_seconds(60 * np.arange(n, dtype=np.int64)), "open": close,
                          "high": close * 1.001, "low": close * 0.999, "close": close, "volume": np.ones(n)})
    frame.loc[n - 1, "volume"] = -1.0
    return frame


def validation(frame: pd.DataFrame) -> dict[str, Any]:
    try:
        validate_candles(frame, "ETH/BTC")
    except CandleError as exc:
        return {"rows": len(frame), "found": exc.problem, "at": exc.time}
    raise SystemExit("bench_hotpaths: validation found nothing wrong in a frame whose last row is bad")


def _expression_input() -> tuple[Any, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    env = {name: 100 + rng.normal(0, 1, 100_000).cumsum() for name in sorted(NAMES)}
    env["rsi"] = rng.uniform(0, 100, 100_000)  # an oscillator in [0, 100], so the rule fires
    expr = parse_expression("crossed_above(ema_fast, ema_slow) and rsi < 70 and close > "
                            "shift(rolling_max(high, 20), 1)", NAMES)
    return expr, env


def expression(expr: Any, env: dict[str, np.ndarray]) -> dict[str, Any]:
    signal = as_signal(evaluate(expr, env))
    return {"candles": int(signal.shape[0]), "signals": int(signal.sum())}


def _time(run: Callable[[], dict[str, Any]], repeat: int) -> dict[str, Any]:
    work = run()  # warm-up; its work is the reference
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        again = run()
        seconds.append(time.perf_counter() - started)
        if again != work:
            raise SystemExit(f"bench_hotpaths: the work changed between runs: {work} -> {again}")
    return {"work": work, "median_s": round(statistics.median(seconds), 4), "min_s": round(min(seconds), 4),
            "max_s": round(max(seconds), 4), "runs": repeat}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    frame = _million_rows()
    expr, env = _expression_input()
    loadavg = Path("/proc/loadavg").read_text().split()[:3] if sys.platform == "linux" else None
    out = {"loadavg_before": loadavg,
           "generate_market_5x100k_5m": _time(generator, args.repeat),
           "validate_candles_1m_rows": _time(lambda: validation(frame), args.repeat),
           "expression_100k_candles": _time(lambda: expression(expr, env), args.repeat)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
