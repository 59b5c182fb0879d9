"""The native backtest engine against Freqtrade's own backtester (and vectorbt beside them).

Run: ``.venv/bin/python benchmarks/bench_engine.py [--quick]`` (vectorbt is the benchmark-only
extra: ``.venv/bin/pip install -e ".[bench]"``; without it that column is skipped).

Same generated strategy (the trend_ema_cross example on 5m candles), same data, same config:
1. in process — engine time only, data loaded and imports done: native ``run_backtest_arrays``
   (signals + compiled trade loop; median of 5 after a warm-up call) vs Freqtrade's
   ``backtest_one_strategy`` (its indicators, signals and trade loop, as timed inside the harness);
2. whole processes — a fresh interpreter that loads the candle files and backtests: the native
   engine vs Freqtrade's harness (import, config, offline exchange, data load, backtest);
3. trades compared trade for trade (pair, open and close date, profit);
4. vectorbt ``Portfolio.from_signals`` on the same entry/exit signals (next-open fills, the same
   stoploss and fee): its time, and how many trades it finds (it does not model Freqtrade's ROI
   table, trailing rules or slot limits, so it is not expected to match).
Also the real Freqtrade test candles (ETH/BTC, LTC/BTC, XLM/BTC 5m) from ../shared when present.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execdesk.backtest.engine import BacktestConfig, run_backtest, run_backtest_arrays
from execdesk.codegen.render import render_strategy
from execdesk.data import PairProfile, generate_market, load_pair, to_arrays, write_pair
from execdesk.freqtrade.runner import FreqtradeSettings, backtest_strategy, run_harness
from execdesk.strategy import StrategyBundle, compute_signals, load_bundle, validate_bundle

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "src" / "execdesk" / "examples" / "bundles" / "trend_ema_cross.yaml"
SHARED = ROOT.parent / "shared" / "data" / "freqtrade-testdata"
STAKE, FEE, SLOTS, WALLET = 100.0, 0.001, 5, 10_000.0


def _bundle(pairs: list[str], timeframe: str) -> StrategyBundle:
    spec = load_bundle(BUNDLE).to_canonical_dict()
    spec.update(pairs=pairs, timeframe=timeframe)
    return validate_bundle(spec, "benchmark bundle")


def _native_in_process(bundle: StrategyBundle, frames: dict[str, pd.DataFrame], config: BacktestConfig) -> float:
    arrays = {p: to_arrays(f, p) for p, f in frames.items()}
    run_backtest_arrays(bundle, arrays, config)  # warm-up: numba's cache and TA-Lib's import
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        run_backtest_arrays(bundle, arrays, config)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _native_whole_process(datadir: Path, pairs: list[str], timeframe: str) -> float:
    code = (
        "import sys, json\nfrom pathlib import Path\n"
        "from execdesk.backtest.engine import BacktestConfig, run_backtest\n"
        "from execdesk.data import load_pair\nfrom execdesk.strategy import load_bundle, validate_bundle\n"
        f"pairs = {pairs!r}\nspec = load_bundle(Path({str(BUNDLE)!r})).to_canonical_dict()\n"
        f"spec.update(pairs=pairs, timeframe={timeframe!r})\nbundle = validate_bundle(spec)\n"
        f"frames = {{p: load_pair(Path({str(datadir)!r}), p, {timeframe!r}) for p in pairs}}\n"
        f"r = run_backtest(bundle, frames, BacktestConfig(stake_amount={STAKE}, fee={FEE}, max_open_trades={SLOTS}, "
        f"dry_run_wallet={WALLET}))\nprint(len(r.trades))\n"
    )
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def _vectorbt(bundle: StrategyBundle, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    try:
        import vectorbt as vbt
    except ImportError:
        return {"skipped": "vectorbt not installed (pip install -e '.[bench]')"}
    opens, entries, exits = {}, {}, {}
    for pair, frame in frames.items():
        o = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64).T
        sig = compute_signals(bundle, dict(zip(["open", "high", "low", "close", "volume"], o, strict=True)))
        index = pd.DatetimeIndex(frame["date"])
        opens[pair] = pd.Series(o[0], index=index)
        # the signal of candle i acts at the open of candle i + 1, as in Freqtrade
        entries[pair] = pd.Series(np.roll(sig.entry_long, 1) & (np.arange(len(o[0])) > 0), index=index)
        exits[pair] = pd.Series(np.roll(sig.exit_long, 1) & (np.arange(len(o[0])) > 0), index=index)
    price, ent, ex = pd.DataFrame(opens), pd.DataFrame(entries), pd.DataFrame(exits)
    kwargs = {"fees": FEE, "sl_stop": abs(bundle.stoploss), "size": STAKE, "size_type": "value",
              "init_cash": WALLET, "freq": bundle.timeframe}
    vbt.Portfolio.from_signals(price, ent, ex, **kwargs)  # warm-up: numba compilation
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        pf = vbt.Portfolio.from_signals(price, ent, ex, **kwargs)
        trades = int(pf.trades.count().sum())
        times.append(time.perf_counter() - t0)
    return {"seconds": round(statistics.median(times), 4), "trades": trades}


def _compare(ft_trades: Any, native: pd.DataFrame) -> dict[str, Any]:
    ours = sorted((r.pair, pd.Timestamp(r.open_date), pd.Timestamp(r.close_date)) for r in native.itertuples())
    theirs = sorted((t.pair, pd.Timestamp(t.open_date), pd.Timestamp(t.close_date)) for t in ft_trades)
    ft_profit = sum(t.profit_abs for t in ft_trades)
    return {"freqtrade_trades": len(theirs), "native_trades": len(ours), "identical": ours == theirs,
            "freqtrade_profit": round(ft_profit, 6), "native_profit": round(float(native.profit_abs.sum()), 6)}


def bench(frames: dict[str, pd.DataFrame], timeframe: str, label: str) -> dict[str, Any]:
    pairs = list(frames)
    bundle = _bundle(pairs, timeframe)
    config = BacktestConfig(stake_amount=STAKE, fee=FEE, max_open_trades=SLOTS, dry_run_wallet=WALLET)
    native_s = _native_in_process(bundle, frames, config)
    native = run_backtest(bundle, frames, config)
    generated = render_strategy(bundle)
    settings = FreqtradeSettings(stake_amount=STAKE, fee=FEE, max_open_trades=SLOTS, dry_run_wallet=WALLET,
                                 timeout_s=1800.0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        strategy = work / generated.filename
        strategy.write_text(generated.source)
        ft = backtest_strategy(strategy, generated.class_name, frames, timeframe, settings, work_dir=work / "ft")
        # the same harness run again as a whole process, on the files the first run left
        args = json.loads((work / "ft" / "backtest-args.json").read_text())
        t0 = time.perf_counter()
        run_harness("backtest", args, timeout_s=1800.0, cwd=work / "ft")
        ft_whole = time.perf_counter() - t0
        datadir = work / "native-data"
        for pair, frame in frames.items():
            write_pair(datadir, pair, timeframe, frame)
        native_whole = _native_whole_process(datadir, pairs, timeframe)
    ft_engine = float(ft.timings["backtest_s"])
    return {
        "data": label, "pairs": len(pairs), "candles_per_pair": min(len(f) for f in frames.values()),
        "parity": _compare(ft.trades, native.trades),
        "in_process": {"native_s": round(native_s, 4), "freqtrade_s": round(ft_engine, 3),
                       "speedup": round(ft_engine / native_s, 1)},
        "whole_process": {"native_s": round(native_whole, 2), "freqtrade_s": round(ft_whole, 2),
                          "speedup": round(ft_whole / native_whole, 1)},
        "vectorbt": _vectorbt(bundle, frames),
    }


def generated_frames(pairs: int, candles: int) -> dict[str, pd.DataFrame]:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    profiles = {f"P{i}/USDT": PairProfile(start_price=100.0 * (i + 1), base_volume=1e6) for i in range(pairs)}
    return generate_market(profiles, "5m", start, start + timedelta(minutes=5 * candles), seed=5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    pairs, candles = (2, 10_000) if args.quick else (5, 100_000)
    results = [bench(generated_frames(pairs, candles), "5m", f"generated {pairs} x {candles}")]
    names = ["ETH/BTC", "LTC/BTC", "XLM/BTC"]
    if all((SHARED / f"{p.replace('/', '_')}-5m.feather").is_file() for p in names):
        results.append(bench({p: load_pair(SHARED, p, "5m") for p in names}, "5m", "Freqtrade test data"))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
