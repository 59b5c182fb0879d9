"""Parity of the desk's exit decisions with the native backtester, on generated markets.

For the example bundles (as they are, and as futures strategies trading both sides with a trailing
stop), every trade of :func:`run_backtest` (no slot limit, so trades are many and independent) is
replayed alone from its entry candle and entry rate:

* :func:`_kernel.scan_exit` must find that trade's exit candle, reason and close rate, bit for bit,
  and no exit for a trade the backtest force-exits at the end of the data -- with price rounding
  off (the desk's setting) and on (which exercises exit orders that do not fill at once);
* :meth:`Lane.first_exit`, asked as the desk asks after the fill (``after_g`` = the close of the
  entry signal's candle), must plan that exit: at the close of the candle before the exit candle for
  an exit signal (the desk's market order fills at the exit candle's open), at the exit candle's
  close otherwise, with the backtest's close rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from execdesk.backtest import _kernel
from execdesk.backtest.engine import EXIT_REASONS, BacktestConfig, TradeArrays, price_step_inverses, run_backtest
from execdesk.backtest.lane import EXIT_REASONS as LANE_REASONS
from execdesk.backtest.lane import Lane
from execdesk.data import PairProfile, generate_market, to_arrays
from execdesk.data.candles import OHLCV
from execdesk.data.feed import MarketView
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.domain.types import Direction
from execdesk.strategy import Signals, StrategyBundle, compute_signals, load_bundle, validate_bundle

BUNDLES = Path(__file__).resolve().parents[2] / "src" / "execdesk" / "examples" / "bundles"
NAMES = ("trend_ema_cross", "momentum_macd", "breakout_4h")
START = datetime(2023, 1, 1, tzinfo=UTC)
FORCE_EXIT = EXIT_REASONS.index("force_exit")
EXIT_SIGNAL = EXIT_REASONS.index("exit_signal")


def example(name: str, futures: bool) -> StrategyBundle:
    """An example bundle; ``futures``: also short on its exit condition (covering on its entry
    condition), with a trailing stop."""
    spec = load_bundle(BUNDLES / f"{name}.yaml").to_canonical_dict()
    if futures:
        spec["entry"] = {**spec["entry"], "short": spec["exit"]["long"]}
        spec["exit"] = {**spec["exit"], "short": spec["entry"]["long"]}
        spec["trailing_stop"] = {"positive": 0.01, "offset": 0.02, "only_offset_is_reached": False}
    return validate_bundle(spec)


@dataclass(frozen=True)
class Run:
    bundle: StrategyBundle
    frames: dict[str, pd.DataFrame]
    config: BacktestConfig
    trades: TradeArrays


@cache
def backtest(name: str, futures: bool, round_prices: bool) -> Run:
    b = example(name, futures)
    profiles = {p: PairProfile(start_price=100.0 * (i + 1) + 0.123, base_volume=1e6) for i, p in enumerate(b.pairs)}
    days = 1500 if b.timeframe == "4h" else 400
    frames = generate_market(profiles, b.timeframe, START, START + timedelta(days=days), seed=11)
    config = BacktestConfig(max_open_trades=0, dry_run_wallet=1e9, round_prices=round_prices, can_short=futures)
    trades = run_backtest(b, frames, config).arrays
    assert trades is not None
    return Run(b, frames, config, trades)


@dataclass(frozen=True)
class PairData:
    ohlcv: OHLCV
    signals: Signals
    price_inv: np.ndarray


def pair_data(run: Run, pair: str) -> PairData:
    o = to_arrays(run.frames[pair], pair)
    columns = {k: getattr(o, k) for k in ("open", "high", "low", "close", "volume")}
    inv = (price_step_inverses(o.time, columns, 1e8) if run.config.round_prices else np.zeros(len(o)))
    return PairData(o, compute_signals(run.bundle, columns), inv)


def scan(run: Run, d: PairData, entry: int, open_rate: float, amount: float, is_short: bool) -> tuple[int, int, float]:
    b, cfg, ts = run.bundle, run.config, run.bundle.trailing_stop
    roi = sorted((int(k), float(v)) for k, v in b.minimal_roi.items())
    o, s = d.ohlcv, d.signals
    k, code, rate = _kernel.scan_exit(
        o.open, o.high, o.low, o.close, s.entry_long, s.exit_long, s.entry_short, s.exit_short,
        entry, entry, open_rate, amount, cfg.fee, is_short, float(d.price_inv[entry]),
        timeframe_to_seconds(b.timeframe) // 60, float(b.stoploss),
        np.array([k for k, _ in roi], dtype=np.int64), np.array([v for _, v in roi], dtype=np.float64),
        ts is not None, 0.0 if ts is None else float(ts.positive), 0.0 if ts is None else float(ts.offset),
        bool(ts is not None and ts.only_offset_is_reached),
        cfg.use_exit_signal, cfg.exit_profit_only, cfg.exit_profit_offset, cfg.ignore_roi_if_entry_signal,
    )  # fmt: skip
    return int(k), int(code), float(rate)


CASES = [pytest.param(name, futures, id=f"{name}-{'futures' if futures else 'spot'}")
         for name in NAMES for futures in (False, True)]


@pytest.mark.parametrize("round_prices", [False, True], ids=["unrounded", "rounded"])
@pytest.mark.parametrize(("name", "futures"), CASES)
def test_scan_exit_when_each_backtest_trade_replayed_alone_then_same_exit(
    name: str, futures: bool, round_prices: bool
) -> None:
    # Arrange
    run = backtest(name, futures, round_prices)
    t = run.trades
    tf = timeframe_to_seconds(run.bundle.timeframe)
    data = {pair: pair_data(run, pair) for pair in t.pairs}
    assert len(t) > 90

    # Act
    mismatches = []
    for i in range(len(t)):
        d = data[t.pairs[t.pair[i]]]
        entry = int((t.open_time[i] - d.ohlcv.time[0]) // tf)
        got = scan(run, d, entry, float(t.open_rate[i]), float(t.amount[i]), bool(t.is_short[i]))
        if t.exit_reason[i] == FORCE_EXIT:
            ok = got[:2] == (-1, _kernel.NO_EXIT) and np.isnan(got[2])
        else:
            expected = (int((t.close_time[i] - d.ohlcv.time[0]) // tf), int(t.exit_reason[i]), float(t.close_rate[i]))
            ok = got == expected
        if not ok:
            mismatches.append((i, got, EXIT_REASONS[t.exit_reason[i]], float(t.close_rate[i])))

    # Assert
    assert mismatches == []


def test_parity_runs_cover_every_exit_reason() -> None:
    # Act
    seen = {EXIT_REASONS[r] for name in NAMES for futures in (False, True) for round_prices in (False, True)
            for r in backtest(name, futures, round_prices).trades.exit_reason}

    # Assert
    assert seen == set(EXIT_REASONS)


@pytest.mark.parametrize(("name", "futures"), CASES)
def test_first_exit_when_backtest_trade_filled_then_lane_plans_the_backtest_exit(name: str, futures: bool) -> None:
    # Arrange: the desk's lanes on the same candles; prices unrounded, as the desk's
    run = backtest(name, futures, False)
    t = run.trades
    tf = timeframe_to_seconds(run.bundle.timeframe)
    market = MarketView(run.frames, run.bundle.timeframe)
    lanes = {pair: Lane("dep", pair, run.bundle, market.lane_candles(pair, run.bundle.timeframe), config=run.config)
             for pair in t.pairs}

    # Act
    mismatches = []
    for i in range(len(t)):
        lane = lanes[t.pairs[t.pair[i]]]
        close_index = lane.candles.close_index
        entry = int((t.open_time[i] - lane.candles.ohlcv.time[0]) // tf)
        direction = Direction.SHORT if t.is_short[i] else Direction.LONG
        # the entry signal closed with candle entry - 1; the fill came at the next open
        plan = lane.first_exit(direction, int(t.open_time[i]), float(t.open_rate[i]), int(close_index[entry - 1]))
        if t.exit_reason[i] == FORCE_EXIT:
            ok = plan is None
        else:
            exit_candle = int((t.close_time[i] - lane.candles.ohlcv.time[0]) // tf)
            candle = exit_candle - 1 if t.exit_reason[i] == EXIT_SIGNAL else exit_candle
            # the lane trades an amount of 1: an ROI rate (which divides by the amount) may differ in its last bits
            ok = (plan is not None and (plan.g, plan.reason, plan.candle) == (
                int(close_index[candle]), LANE_REASONS[int(t.exit_reason[i])], candle)
                and plan.rate == pytest.approx(float(t.close_rate[i]), rel=1e-12, abs=0.0))
        if not ok:
            mismatches.append((i, plan, EXIT_REASONS[t.exit_reason[i]], float(t.close_rate[i])))

    # Assert
    assert len(t) > 90
    assert mismatches == []
