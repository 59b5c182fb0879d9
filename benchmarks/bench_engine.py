"""The native backtest engine against Freqtrade's own backtester, and against vectorbt doing the same work.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--quick]`` (vectorbt is the benchmark-only
extra: ``.venv/bin/pip install -e ".[bench]"``; without it that leg is skipped, said so in the output).

Same generated strategy (the trend_ema_cross example on 5m candles), same data, same config:

1. in process -- engine time only, data loaded, imports and compilation done:
   * native ``run_backtest_arrays``: signals, price steps and the compiled trade loop;
   * vectorbt ``Portfolio.from_signals`` doing the same work (:func:`_vectorbt_run`): the same
     signals computed inside the timer from the same candle arrays, shifted one candle (next-open
     fills at the open), the same warm-up, the stoploss checked intrabar on open/high/low
     (``sl_stop``), the ROI table as a take-profit whose level follows the minutes held
     (``tp_stop`` + ``adjust_tp_func_nb``: each level converted to the price move that gives that
     profit after fees), the same fee, stake and wallet (shared cash), then its trades extracted.
     What it still does not model is listed in ``VECTORBT_DIFFERENCES`` (printed);
   * native also on fresh copies of the candle arrays each run (nothing reused: ``native_cold``);
   * the legs alternate, median of 7 each after a warm-up call (shared machine: alternating
     exposes them to the same load); Freqtrade's ``backtest_one_strategy`` (its indicators,
     signals and trade loop) as timed inside the harness;
2. whole processes -- a fresh interpreter that loads the candle files and backtests: the native
   engine vs Freqtrade's harness (import, config, offline exchange, data load, backtest);
3. trades compared trade for trade (pair, open and close date; profit summed);
4. the work counters (candles, trades native / Freqtrade / vectorbt, identical trades) checked
   against the ranges in ``EXPECTED``: the script exits non-zero, saying which counter moved, when
   the work changes (a faster figure for less work is not a result).

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
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from execdesk.backtest.engine import BacktestConfig, TradeArrays, run_backtest, run_backtest_arrays
from execdesk.codegen.render import render_strategy
from execdesk.data import OHLCV, PairProfile, generate_market, load_pair, to_arrays, write_pair
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.freqtrade.runner import FreqtradeSettings, backtest_strategy, run_harness
from execdesk.strategy import StrategyBundle, compute_signals, load_bundle, validate_bundle

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "src" / "execdesk" / "examples" / "bundles" / "trend_ema_cross.yaml"
SHARED = ROOT.parent / "shared" / "data" / "freqtrade-testdata"
STAKE, FEE, SLOTS, WALLET = 100.0, 0.001, 5, 10_000.0
REPEATS = 7
COLUMNS = ("open", "high", "low", "close", "volume")

#: Work counters each data set must show: (low, high) inclusive, or an exact value. Change them
#: only with the change that moves them, and say why.
EXPECTED: dict[str, dict[str, Any]] = {
    "generated 5 x 100000": {
        "candles": 500_000, "native_trades": (8_700, 9_000), "freqtrade_trades": (8_700, 9_000),
        "identical": True, "vectorbt_trades": (8_500, 9_200),
    },
    "generated 2 x 10000": {
        "candles": 20_000, "native_trades": (300, 420), "freqtrade_trades": (300, 420),
        "identical": True, "vectorbt_trades": (290, 440),
    },
    "Freqtrade test data": {
        "candles": 17_280, "native_trades": (380, 395), "freqtrade_trades": (380, 395),
        "identical": True, "vectorbt_trades": (360, 410),
    },
}  # fmt: skip

#: What the vectorbt leg does not model (Freqtrade's rules that ``from_signals`` cannot express).
VECTORBT_DIFFERENCES = (
    "stops and take-profit are not checked on the entry candle (vectorbt checks them from the next bar)",
    "a stop or take-profit hit wins over an exit signal on the same candle (Freqtrade: the exit signal, at the open)",
    "a candle opening beyond the stop/take-profit exits at its open in both; Freqtrade also exits at the open "
    "only when the whole candle is beyond the stop, and clamps an ROI rate to the candle otherwise",
    "no price rounding to the exchange's tick grid (Freqtrade's price steps per month), and amounts are not "
    "truncated to the market's 1e-8 step (vectorbt's size_granularity leaves a 1e-8 remainder open after each "
    "exit, which then blocks every later entry of the pair)",
    "max_open_trades is not modelled (one trade per pair; with 5 slots and at most 5 pairs it never binds)",
    "trades still open at the end stay open (Freqtrade force-exits them at the last candle's open)",
)


def _bundle(pairs: list[str], timeframe: str) -> StrategyBundle:
    spec = load_bundle(BUNDLE).to_canonical_dict()
    spec.update(pairs=pairs, timeframe=timeframe)
    return validate_bundle(spec, "benchmark bundle")


def _config() -> BacktestConfig:
    return BacktestConfig(stake_amount=STAKE, fee=FEE, max_open_trades=SLOTS, dry_run_wallet=WALLET)


# ---------------------------------------------------------------------------------- vectorbt leg


@njit
def _roi_take_profit(c: Any, minutes: np.ndarray, levels: np.ndarray, tf_minutes: int) -> float:
    """vectorbt ``adjust_tp_func_nb``: the take-profit level of the ROI entry in force after the
    minutes held (from the entry candle's open to this candle's open, as Freqtrade counts them)."""
    if c.init_i < 0:
        return c.curr_stop
    held = (c.i - c.init_i) * tf_minutes
    level = np.nan
    for j in range(minutes.shape[0]):
        if minutes[j] <= held:
            level = levels[j]
    return level


def _roi_levels(bundle: StrategyBundle, fee: float) -> tuple[np.ndarray, np.ndarray]:
    """The ROI table as take-profit levels: Freqtrade exits at ``roi`` profit after fees, i.e. at
    ``open x (1 + roi) x (1 + fee) / (1 - fee)``, a price move of that minus one."""
    table = sorted((int(k), float(v)) for k, v in bundle.minimal_roi.items())
    minutes = np.array([k for k, _ in table], dtype=np.int64)
    levels = np.array([(1.0 + v) * (1.0 + fee) / (1.0 - fee) - 1.0 for _, v in table])
    return minutes, levels


def _vectorbt_run(vbt: Any, bundle: StrategyBundle, candles: Mapping[str, OHLCV], config: BacktestConfig) -> Any:
    """The timed vectorbt leg: signals, from_signals, trades (vectorbt's exit-trade records)."""
    startup = bundle.startup_candles
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("open", "high", "low", "close", "entries", "exits")}
    for ohlcv in candles.values():
        sig = compute_signals(bundle, {name: getattr(ohlcv, name) for name in COLUMNS})
        n = len(ohlcv)
        # the signal of candle i acts at the open of candle i + 1 (Freqtrade's shift); the first
        # possible entry is the candle after the first one kept after the warm-up, none on the last
        entries = np.zeros(n, dtype=np.bool_)
        exits = np.zeros(n, dtype=np.bool_)
        entries[1:] = sig.entry_long[:-1]
        exits[1:] = sig.exit_long[:-1]
        entries[: startup + 1] = False
        exits[: startup + 1] = False
        entries[-1] = False
        for name in ("open", "high", "low", "close"):
            columns[name].append(getattr(ohlcv, name))
        columns["entries"].append(entries)
        columns["exits"].append(exits)
    m = {k: np.column_stack(v) for k, v in columns.items()}
    minutes, levels = _roi_levels(bundle, config.fee)
    pf = vbt.Portfolio.from_signals(
        m["close"], m["entries"], m["exits"], price=m["open"], open=m["open"], high=m["high"], low=m["low"],
        fees=config.fee, size=config.stake_amount, size_type="value",
        init_cash=config.dry_run_wallet, cash_sharing=True, group_by=True,
        sl_stop=abs(bundle.stoploss), tp_stop=levels[0], stop_entry_price="price", stop_exit_price="stoplimit",
        adjust_tp_func_nb=_roi_take_profit,
        adjust_tp_args=(minutes, levels, timeframe_to_seconds(bundle.timeframe) // 60),
    )  # fmt: skip
    return pf.trades.values


def _fresh(candles: Mapping[str, OHLCV]) -> dict[str, OHLCV]:
    """Copies of the candle arrays (read-only, as to_arrays makes them): candles the engine has not seen."""
    out = {}
    for pair, ohlcv in candles.items():
        arrays = [np.array(getattr(ohlcv, name)) for name in ("time", *COLUMNS)]
        for array in arrays:
            array.setflags(write=False)
        out[pair] = OHLCV(*arrays)
    return out


def _in_process(bundle: StrategyBundle, candles: Mapping[str, OHLCV], config: BacktestConfig) -> dict[str, Any]:
    """Native and vectorbt legs, alternating (median of REPEATS after a warm-up call each).

    Native twice: on the same candle arrays every run (``native``: what depends on the candles
    alone -- their price steps, their flat layout -- is reused, as for a fleet's bundles on one
    market) and on fresh copies every run (``native_cold``: all of it computed anew; the copy is made
    before the timer starts, as the data is loaded before it for every leg).
    """
    try:
        import vectorbt as vbt
    except ImportError:
        vbt = None
    native = run_backtest_arrays(bundle, candles, config)  # warm-up: numba's cache, TA-Lib's import
    legs: dict[str, list[float]] = {"native": [], "native_cold": [], "vectorbt": []}
    vbt_trades = None
    if vbt is not None:
        vbt_trades = _vectorbt_run(vbt, bundle, candles, config)  # warm-up: vectorbt's compilation
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        native = run_backtest_arrays(bundle, candles, config)
        legs["native"].append(time.perf_counter() - t0)
        fresh = _fresh(candles)
        t0 = time.perf_counter()
        cold = run_backtest_arrays(bundle, fresh, config)
        legs["native_cold"].append(time.perf_counter() - t0)
        if len(cold) != len(native) or not np.array_equal(cold.profit_abs, native.profit_abs):
            raise SystemExit("native run on fresh copies of the candles differs from the run on the originals")
        if vbt is not None:
            t0 = time.perf_counter()
            vbt_trades = _vectorbt_run(vbt, bundle, candles, config)
            legs["vectorbt"].append(time.perf_counter() - t0)
    median = {name: statistics.median(times) for name, times in legs.items() if times}
    out: dict[str, Any] = {"native_s": round(median["native"], 4), "native_cold_s": round(median["native_cold"], 4),
                           "native": native}
    if vbt is None or vbt_trades is None:
        out["vectorbt"] = {"skipped": "vectorbt not installed (pip install -e '.[bench]')"}
        return out
    ratios = [v / n for n, v in zip(legs["native"], legs["vectorbt"], strict=True)]
    out["vectorbt"] = {
        "version": vbt.__version__,
        "seconds": round(median["vectorbt"], 4),
        "trades": len(vbt_trades),
        "same_trades_as_freqtrade": _same_trades(vbt_trades, native, candles),
        "native_faster": round(median["vectorbt"] / median["native"], 1),
        "native_faster_paired": [round(min(ratios), 1), round(statistics.median(ratios), 1), round(max(ratios), 1)],
        "native_cold_faster": round(median["vectorbt"] / median["native_cold"], 1),
    }
    return out


def _same_trades(records: Any, native: TradeArrays, candles: Mapping[str, OHLCV]) -> int:
    """vectorbt trades with the same pair, entry candle and exit candle as a native (= Freqtrade) trade."""
    first = {i: int(ohlcv.time[0]) for i, ohlcv in enumerate(candles.values())}
    tf = int(next(iter(candles.values())).time[1] - next(iter(candles.values())).time[0])
    ours = {(int(p), (int(o) - first[int(p)]) // tf, (int(c) - first[int(p)]) // tf)
            for p, o, c in zip(native.pair, native.open_time, native.close_time, strict=True)}
    theirs = {(int(r["col"]), int(r["entry_idx"]), int(r["exit_idx"])) for r in records}
    return len(ours & theirs)


# ---------------------------------------------------------------------------------- Freqtrade and processes


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


def _compare(ft_trades: Any, native: pd.DataFrame) -> dict[str, Any]:
    ours = sorted((r.pair, pd.Timestamp(r.open_date), pd.Timestamp(r.close_date)) for r in native.itertuples())
    theirs = sorted((t.pair, pd.Timestamp(t.open_date), pd.Timestamp(t.close_date)) for t in ft_trades)
    ft_profit = sum(t.profit_abs for t in ft_trades)
    return {"freqtrade_trades": len(theirs), "native_trades": len(ours), "identical": ours == theirs,
            "freqtrade_profit": round(ft_profit, 6), "native_profit": round(float(native.profit_abs.sum()), 6)}


def bench(frames: dict[str, pd.DataFrame], timeframe: str, label: str) -> dict[str, Any]:
    pairs = list(frames)
    bundle = _bundle(pairs, timeframe)
    config = _config()
    candles = {p: to_arrays(f, p) for p, f in frames.items()}
    legs = _in_process(bundle, candles, config)
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
    parity = _compare(ft.trades, native.trades)
    return {
        "data": label, "pairs": len(pairs), "candles_per_pair": min(len(f) for f in frames.values()),
        "work": {
            "candles": sum(len(c) for c in candles.values()),
            "freqtrade_candles": sum(int(c["count"]) for c in ft.candles.values()),
            "native_trades": len(legs["native"]),
            "native_trades_run_backtest": parity["native_trades"],
            "freqtrade_trades": parity["freqtrade_trades"],
            "identical": parity["identical"],
            "vectorbt_trades": legs["vectorbt"].get("trades"),
        },
        "parity": parity,
        "in_process": {"native_s": legs["native_s"], "native_cold_s": legs["native_cold_s"],
                       "freqtrade_s": round(ft_engine, 3), "speedup": round(ft_engine / legs["native_s"], 1)},
        "whole_process": {"native_s": round(native_whole, 2), "freqtrade_s": round(ft_whole, 2),
                          "speedup": round(ft_whole / native_whole, 1)},
        "vectorbt": legs["vectorbt"],
    }


def check_work(result: Mapping[str, Any]) -> list[str]:
    """The work counters of one data set against :data:`EXPECTED`; the problems found (none: [])."""
    expected = EXPECTED.get(str(result["data"]))
    if expected is None:
        return [f"{result['data']}: no expected work counters for this data set (add them to EXPECTED)"]
    work = result["work"]
    problems = []
    if work["freqtrade_candles"] != work["candles"]:
        problems.append(f"Freqtrade loaded {work['freqtrade_candles']} candles, the native engine {work['candles']}")
    if work["native_trades"] != work["native_trades_run_backtest"]:
        problems.append(f"run_backtest_arrays found {work['native_trades']} trades, run_backtest "
                        f"{work['native_trades_run_backtest']}")
    for name, want in expected.items():
        got = work[name]
        if name == "vectorbt_trades" and got is None:
            continue  # vectorbt not installed: said in the output
        ok = want[0] <= got <= want[1] if isinstance(want, tuple) else got == want
        if not ok:
            problems.append(f"{name} = {got}, expected {want}")
    return [f"{result['data']}: {p}" for p in problems]


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
    print(json.dumps({"results": results, "vectorbt_does_not_model": VECTORBT_DIFFERENCES}, indent=2, default=str))
    for result in results:
        leg = result["vectorbt"]
        if "seconds" in leg:
            print(f"{result['data']}: native {result['in_process']['native_s'] * 1000:.1f} ms (candles seen before; "
                  f"fresh candle arrays: {result['in_process']['native_cold_s'] * 1000:.1f} ms), vectorbt "
                  f"{leg['seconds'] * 1000:.1f} ms doing the same work: native {leg['native_faster']}x faster "
                  f"(paired min/median/max {leg['native_faster_paired']}; fresh arrays "
                  f"{leg['native_cold_faster']}x); trades native "
                  f"{result['work']['native_trades']}, Freqtrade {result['work']['freqtrade_trades']}, vectorbt "
                  f"{leg['trades']} ({leg['same_trades_as_freqtrade']} with Freqtrade's pair, entry and exit candle)")
        else:
            print(f"{result['data']}: vectorbt leg skipped: {leg['skipped']}")
    problems = [p for result in results for p in check_work(result)]
    if problems:
        print("\nWORK CHANGED -- the figures above do not measure the work this benchmark is about:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    print("work counters: as expected")


if __name__ == "__main__":
    main()
