"""Tests of execdesk.backtest.engine: Freqtrade's backtesting rules on hand-made candles.

Candles are hourly from T0. Signals ride on the volume column (the test bundle's conditions read
it): 1 = entry long, 2 = exit long, 3 = both, 0 = nothing. A signal on candle i acts at the open of
candle i + 1; unless a test says otherwise the entry signal is on candle 0, so a long fills at the
open of candle 1 (100), and prices are not rounded to a tick (``round_prices=False``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execdesk.backtest import _kernel, engine
from execdesk.backtest.engine import (
    EXIT_REASONS,
    TRADE_COLUMNS,
    BacktestConfig,
    BacktestResult,
    fill_gaps,
    price_step_inverses,
    run_backtest,
    run_backtest_arrays,
)
from execdesk.data.candles import OHLCV, dates_from_epoch_seconds, to_arrays
from execdesk.errors import InvalidInput
from execdesk.strategy import Signals, StrategyBundle, validate_bundle

H = 3600
T0 = 1_700_006_400  # 2023-11-15 00:00 UTC
A, B, C = "AAA/USDT", "BBB/USDT", "CCC/USDT"
Row = tuple[float, float, float, float, int]  # open, high, low, close, signal code
FLAT: Row = (100, 100.5, 99.5, 100, 0)


def frame(rows: list[Row], start: int = T0, step: int = H) -> pd.DataFrame:
    o, h, lo, c, v = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    times = np.arange(len(rows), dtype=np.int64) * step + start
    return pd.DataFrame({"date": dates_from_epoch_seconds(times), "open": o, "high": h, "low": lo, "close": c,
                         "volume": v})


def bundle(pairs: tuple[str, ...] = (A,), **overrides: Any) -> StrategyBundle:
    data: dict[str, Any] = {
        "id": "STR-T02", "name": "engine_test", "version": 1, "timeframe": "1h", "pairs": list(pairs),
        "indicators": {}, "entry": {"long": "volume == 1 or volume == 3"}, "exit": {"long": "volume >= 2"},
        "stoploss": -0.05, "minimal_roi": {"0": 10.0},
        "validation": {"period": {"start": "2024-01-01", "end": "2024-06-30"}, "trades": 10, "sharpe": 1.0,
                       "max_drawdown": 0.1, "win_rate": 0.5, "profit_factor": 1.2, "avg_trade_duration": "4h",
                       "slippage_budget_bps": 5.0},
    }
    data.update(overrides)
    return validate_bundle(data)


def run(rows: list[Row] | dict[str, list[Row]], b: StrategyBundle | None = None, **config: Any) -> BacktestResult:
    frames = {A: frame(rows)} if isinstance(rows, list) else {p: frame(r) for p, r in rows.items()}
    b = b or bundle(tuple(frames))
    return run_backtest(b, frames, BacktestConfig(**{"round_prices": False, **config}))


def only_trade(result: BacktestResult) -> pd.Series:
    assert len(result.trades) == 1, result.trades
    return result.trades.iloc[0]


def at(candle: int) -> pd.Timestamp:
    return pd.Timestamp(T0 + candle * H, unit="s", tz="UTC")


def profit_abs(amount: float, open_rate: float, close_rate: float, fee: float = 0.001) -> float:
    return round(amount * close_rate * (1 - fee) - amount * open_rate * (1 + fee), 8)


# ---------------------------------------------------------------- entries
def test_entry_when_signal_on_candle_close_then_fills_at_next_open() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100.7, 101, 99, 100, 0), FLAT, FLAT]
    trade = only_trade(run(rows))
    assert trade["open_date"] == at(1)
    assert trade["open_rate"] == 100.7
    assert trade["amount"] == pytest.approx(1000 / 100.7, abs=1e-8)


def test_entry_when_exit_signal_on_same_candle_then_no_trade() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 3), FLAT, FLAT, FLAT]
    assert run(rows).trades.empty


def test_entry_when_signal_on_second_to_last_candle_then_none_on_last_candle() -> None:
    rows: list[Row] = [FLAT, FLAT, (100, 101, 99, 100, 1), FLAT]
    assert run(rows).trades.empty


def test_amount_when_stake_not_divisible_then_truncated_to_step() -> None:
    rows: list[Row] = [(3, 3.1, 2.9, 3, 1), (3, 3.1, 2.9, 3, 0), (3, 3.1, 2.9, 3, 0)]
    trade = only_trade(run(rows))
    assert trade["amount"] == 333.33333333
    assert trade["stake_amount"] == pytest.approx(999.99999999, abs=1e-8)


# ---------------------------------------------------------------- stoploss
def test_stoploss_when_low_touches_stop_then_exits_at_stop_price() -> None:
    rows: list[Row] = [
        (100, 101, 99, 100, 1),
        (100, 102, 97, 99, 0),  # fill at 100; stop at 95
        (99, 100, 96, 97, 0),
        (97, 98, 94, 95.5, 0),  # low 94 <= 95
        (95, 96, 90, 92, 0),
    ]
    trade = only_trade(run(rows))
    assert (trade["exit_reason"], trade["close_date"]) == ("stop_loss", at(3))
    assert trade["close_rate"] == pytest.approx(95.0)
    assert trade["profit_abs"] == pytest.approx(profit_abs(10, 100, 95.0), abs=1e-8)


def test_stoploss_when_whole_candle_below_stop_then_exits_at_open() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 102, 97, 99, 0), (93, 94, 90, 92, 0), FLAT]
    trade = only_trade(run(rows))
    assert (trade["exit_reason"], trade["close_date"], trade["close_rate"]) == ("stop_loss", at(2), 93.0)


def test_stoploss_when_open_below_stop_but_high_above_then_exits_at_stop_as_freqtrade() -> None:
    # Freqtrade only uses the open when the stop is above the candle's high.
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 102, 97, 99, 0), (94, 96, 90, 92, 0), FLAT]
    trade = only_trade(run(rows))
    assert trade["close_rate"] == pytest.approx(95.0)


def test_stoploss_when_hit_on_entry_candle_then_exits_same_candle() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 94, 96, 0), FLAT]
    trade = only_trade(run(rows))
    assert (trade["exit_reason"], trade["close_date"], trade["trade_duration"]) == ("stop_loss", at(1), 0)


# ---------------------------------------------------------------- ROI
ROI = {"0": 0.10, "120": 0.03}


def test_roi_when_first_step_reached_then_exits_at_roi_rate() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 111, 99, 105, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi=ROI), fee=0.0))
    assert (trade["exit_reason"], trade["close_date"]) == ("roi", at(2))
    assert trade["close_rate"] == pytest.approx(110.0)


def test_roi_rate_includes_both_fees() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 111, 99, 105, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi=ROI), fee=0.001))
    assert trade["close_rate"] == pytest.approx(100 * 1.10 * 1.001 / 0.999)
    assert trade["profit_ratio"] == pytest.approx(0.10, abs=1e-12)


def test_roi_when_step_comes_into_force_and_open_above_rate_then_exits_at_open() -> None:
    rows: list[Row] = [
        (100, 101, 99, 100, 1),
        (100, 101, 99, 100, 0),  # entry: 0 min held
        (100, 104, 99, 103.5, 0),  # 60 min: ROI 10 % not reached
        (104, 105, 103.8, 104.5, 0),  # 120 min: ROI 3 % (rate 103) takes over; open 104 > 103
        FLAT,
    ]
    trade = only_trade(run(rows, bundle(minimal_roi=ROI), fee=0.0))
    assert (trade["exit_reason"], trade["close_date"], trade["close_rate"]) == ("roi", at(3), 104.0)


def test_roi_when_step_comes_into_force_and_open_below_rate_then_exits_at_rate() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 104, 99, 103.5, 0),
                       (102, 105, 101, 104, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi=ROI), fee=0.0))
    assert (trade["close_date"], trade["close_rate"]) == (at(3), pytest.approx(103.0))


def test_roi_when_whole_candle_above_rate_later_then_exits_at_low() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 104, 99, 103.5, 0),
                       (101, 102.9, 100, 102, 0), (104, 106, 103.5, 105, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi=ROI), fee=0.0))
    assert (trade["close_date"], trade["close_rate"]) == (at(4), 103.5)


def test_roi_minutes_are_counted_from_entry_open_to_candle_open() -> None:
    # 60 min after the entry the 10 % entry applies, not the 3 % one (it starts at 120 min)
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 105, 99, 104, 0), FLAT, FLAT]
    assert run(rows, bundle(minimal_roi=ROI), fee=0.0).trades.iloc[0]["exit_reason"] == "force_exit"


def test_roi_on_entry_candle_when_green_then_exits_on_entry_candle() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 106, 99.5, 104, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi={"0": 0.05}), fee=0.0))
    assert (trade["exit_reason"], trade["close_date"], trade["trade_duration"]) == ("roi", at(1), 0)
    assert trade["close_rate"] == pytest.approx(105.0)


@pytest.mark.parametrize(("entry_open", "exits_on_entry_candle"), [(100.123456789014, False), (100.123456789016, True)])
def test_roi_on_red_entry_candle_when_open_rate_rounds_below_open_then_refused(
    entry_open: float, exits_on_entry_candle: bool
) -> None:
    # The data's price step is 1e-11 (14 significant digits of the entry open); Freqtrade refuses
    # an entry-candle ROI exit on a red candle when the rounded open rate is below the open.
    rows: list[Row] = [(100, 101, 99, 100, 1), (entry_open, 106, 97, 98, 0), (99, 100, 98, 99.5, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi={"0": 0.05}), fee=0.0, round_prices=True))
    assert (trade["close_date"] == at(1)) is exits_on_entry_candle
    if exits_on_entry_candle:
        assert trade["open_rate"] == 100.12345678902
        assert trade["close_rate"] == pytest.approx(100.12345678902 * 1.05, abs=1e-11)


def test_roi_minus_one_when_step_starts_then_exits_at_open() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (99, 100, 98, 99, 0), (98.5, 99, 97, 98, 0),
                       FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi={"0": 10.0, "120": -1})))
    assert (trade["exit_reason"], trade["close_date"], trade["close_rate"]) == ("roi", at(3), 98.5)


# ---------------------------------------------------------------- trailing stop
def trailing(only_offset: bool) -> StrategyBundle:
    ts = {"positive": 0.02, "offset": 0.05, "only_offset_is_reached": only_offset}
    return bundle(stoploss=-0.10, trailing_stop=ts)


def test_trailing_when_offset_reached_then_arms_and_triggers_at_trailed_stop() -> None:
    rows: list[Row] = [
        (100, 101, 99, 100, 1),
        (100, 101, 99.5, 100.5, 0),
        (100.5, 104, 100, 103, 0),  # profit at the high 4 % < offset 5 %: stays at 90
        (105.5, 107, 105, 106, 0),  # 7 % > 5 %: stop to 107 x 0.98 = 104.86; low 105 above it
        (106, 106.5, 104, 105, 0),  # low 104 <= 104.86
        FLAT,
    ]
    trade = only_trade(run(rows, trailing(True), fee=0.0))
    assert (trade["exit_reason"], trade["close_date"]) == ("trailing_stop_loss", at(4))
    assert trade["close_rate"] == pytest.approx(104.86)


def test_trailing_when_offset_not_reached_then_stop_does_not_move() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99.5, 100.5, 0), (100.5, 104.5, 100, 103, 0),
                       (103, 104, 93, 95, 0), FLAT]
    assert run(rows, trailing(True), fee=0.0).trades.iloc[0]["exit_reason"] == "force_exit"


def test_trailing_without_only_offset_then_trails_by_stoploss_below_offset() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99.5, 100.5, 0), (100.5, 104, 93, 95, 0), FLAT]
    trade = only_trade(run(rows, trailing(False), fee=0.0))
    # the high 104 moved the stop to 104 x 0.9 = 93.6 before the low 93 was checked
    assert (trade["exit_reason"], trade["close_date"]) == ("trailing_stop_loss", at(2))
    assert trade["close_rate"] == pytest.approx(93.6)


def test_trailing_when_triggered_on_entry_candle_then_worst_case_rate() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 108, 99, 100, 0), FLAT]
    trade = only_trade(run(rows, trailing(True), fee=0.0))
    # stop 108 x 0.98 = 105.84 >= low: Freqtrade assumes open x (1 + offset - positive)
    assert (trade["exit_reason"], trade["close_date"]) == ("trailing_stop_loss", at(1))
    assert trade["close_rate"] == pytest.approx(103.0)


def test_exit_order_when_stoploss_and_roi_on_same_candle_then_stoploss_wins() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 112, 94, 100, 0), FLAT]
    trade = only_trade(run(rows, bundle(minimal_roi={"0": 0.10}), fee=0.0))
    assert (trade["exit_reason"], trade["close_rate"]) == ("stop_loss", pytest.approx(95.0))


# ---------------------------------------------------------------- exit signal
def test_exit_signal_then_exits_at_next_open() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 102, 99, 101, 2),
                       (101.3, 102, 100, 101, 0), FLAT]
    trade = only_trade(run(rows))
    assert (trade["exit_reason"], trade["close_date"], trade["close_rate"]) == ("exit_signal", at(3), 101.3)


def test_exit_signal_when_entry_signal_too_then_ignored() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (100, 102, 99, 101, 3),
                       (101.3, 102, 100, 101, 0), FLAT]
    assert only_trade(run(rows))["exit_reason"] == "force_exit"


def test_exit_signal_beats_stoploss_on_same_candle() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 2), (98, 99, 90, 92, 0), FLAT]
    trade = only_trade(run(rows))
    assert (trade["exit_reason"], trade["close_rate"]) == ("exit_signal", 98.0)


def test_exit_profit_only_when_open_not_profitable_then_signal_waits() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 2), (99, 100, 98, 99, 2),
                       (101, 102, 100.5, 101, 0), FLAT]
    trade = only_trade(run(rows, exit_profit_only=True, exit_profit_offset=0.001))
    assert (trade["exit_reason"], trade["close_date"], trade["close_rate"]) == ("exit_signal", at(3), 101.0)


# ---------------------------------------------------------------- slots, pairs, end of data
def test_max_open_trades_when_three_pairs_signal_then_third_is_rejected() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), FLAT, FLAT, FLAT]
    result = run({A: rows, B: rows, C: rows}, max_open_trades=2)
    assert sorted(result.trades["pair"]) == [A, B]
    assert result.rejected_signals == 1


def test_pair_order_when_open_trade_closes_then_later_pair_gets_the_slot_same_candle() -> None:
    # B holds the only slot; at candle 3 it exits (processed first: it has an open trade) and A,
    # listed before B, enters on that same candle.
    rows_a: list[Row] = [FLAT, FLAT, (100, 101, 99, 100, 1), FLAT, FLAT]
    rows_b: list[Row] = [(100, 101, 99, 100, 1), FLAT, (100, 101, 99, 100, 2), FLAT, FLAT]
    trades = run({A: rows_a, B: rows_b}, max_open_trades=1).trades
    assert list(trades["pair"]) == [B, A]
    assert trades.iloc[0]["close_date"] == at(3) == trades.iloc[1]["open_date"]


def test_one_trade_per_pair_when_signals_repeat_then_no_stacking() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1)] * 3 + [(100, 101, 94, 96, 1), (96, 97, 95, 96, 1), (96, 97, 95, 96, 0)]
    trades = run(rows).trades
    assert list(trades["open_date"]) == [at(1), at(4)]
    assert trades.iloc[0]["close_date"] == at(3)


def test_end_of_data_when_trade_open_then_force_exit_at_last_open() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (101, 102, 100, 101, 0),
                       (102.5, 103, 101, 102, 0)]
    trade = only_trade(run(rows))
    assert (trade["exit_reason"], trade["close_date"], trade["close_rate"]) == ("force_exit", at(3), 102.5)


def test_fees_when_trade_closes_then_freqtrade_profit_formulas() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 2), (110, 111, 109, 110, 0), FLAT]
    trade = only_trade(run(rows, fee=0.002))
    expected = round(10 * 110 * 0.998 - 10 * 100 * 1.002, 8)
    assert trade["profit_abs"] == pytest.approx(expected, abs=1e-9) == pytest.approx(95.8)
    assert trade["profit_ratio"] == pytest.approx(expected / (10 * 100 * 1.002))


def test_stake_when_balance_too_low_then_no_entry_and_not_rejected() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), FLAT, FLAT]
    result = run({A: rows, B: rows}, dry_run_wallet=1500.0)
    assert list(result.trades["pair"]) == [A]
    assert result.rejected_signals == 0


# ---------------------------------------------------------------- warm-up and window
def test_warmup_when_signal_before_start_then_not_traded() -> None:
    rows: list[Row] = [FLAT, FLAT, (100, 101, 99, 100, 1), FLAT, (100, 101, 99, 100, 1), FLAT, FLAT]
    for config in ({"startup_candles": 3}, {"start": datetime.fromtimestamp(T0 + 3 * H, tz=UTC)}):
        result = run(rows, **config)
        assert list(result.trades["open_date"]) == [at(5)]
        assert result.start == datetime.fromtimestamp(T0 + 3 * H, tz=UTC)


def test_end_when_given_then_later_candles_ignored() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), FLAT, FLAT, (103, 104, 102, 103, 0), FLAT]
    trade = only_trade(run(rows, end=datetime.fromtimestamp(T0 + 3 * H, tz=UTC)))
    assert (trade["close_date"], trade["close_rate"]) == (at(3), 103.0)


# ---------------------------------------------------------------- price rounding
def test_unfilled_exit_when_rounded_rate_off_the_candle_then_exits_on_a_later_candle() -> None:
    # Whole candle 2 is below the stop: exit at its open, which equals its high and rounds (to the
    # data's 1e-12 step) above it -- Freqtrade's order does not fill and is replaced a candle later.
    gap = 94.1234567890128
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 0), (gap, gap, 90, 91, 0),
                       (91.5, 92, 89, 90, 0), FLAT]
    exact = only_trade(run(rows))
    assert (exact["close_date"], exact["close_rate"]) == (at(2), gap)
    rounded = only_trade(run(rows, round_prices=True))
    assert (rounded["exit_reason"], rounded["close_date"], rounded["close_rate"]) == ("stop_loss", at(3), 91.5)


def test_price_steps_follow_the_data_per_month() -> None:
    jan, feb, mar = 1_704_067_200, 1_706_745_600, 1_709_251_200  # 2024-01-01, 02-01, 03-01
    time = np.array([jan, jan + H, feb, mar], dtype=np.int64)
    prices = {k: np.array([1.5, 2.25, 3.0, 0.12345678901234]) for k in ("open", "high", "low", "close")}
    inverses = price_step_inverses(time, prices, 1e8)
    assert list(inverses) == [100.0, 100.0, 100.0, 1e14]  # February has no decimals: January's step


# ---------------------------------------------------------------- shorts (futures)
SHORT = {"entry": {"short": "volume == 4"}, "exit": {"short": "volume == 5"}}


def test_short_when_can_short_then_stop_above_entry() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 4), (100, 101, 99, 100, 0), (102, 106, 101, 104, 0), FLAT]
    trade = only_trade(run(rows, bundle(**SHORT), can_short=True))
    assert (trade["is_short"], trade["exit_reason"]) == (True, "stop_loss")
    assert trade["close_rate"] == pytest.approx(105.0)
    expected = round(10 * 100 * 0.999 - 10 * 105 * 1.001, 8)
    assert trade["profit_abs"] == pytest.approx(expected, abs=1e-8)
    assert trade["profit_ratio"] == pytest.approx(expected / (10 * 100 * 0.999))


def test_short_when_spot_then_ignored() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 4), FLAT, FLAT]
    assert run(rows, bundle(**SHORT)).trades.empty


def test_flip_when_long_exits_on_short_signal_then_short_enters_same_candle() -> None:
    n = 6
    candles = to_arrays(frame([FLAT] * n), A)
    sig = Signals(*(np.zeros(n, dtype=np.bool_) for _ in range(4)))
    sig.entry_long[0] = True
    sig.exit_long[2] = sig.entry_short[2] = True
    arrays = run_backtest_arrays(bundle(), {A: candles}, BacktestConfig(can_short=True, round_prices=False),
                                 signals={A: sig})
    trades = arrays.to_frame()
    assert list(trades["is_short"]) == [False, True]
    assert trades.iloc[0]["close_date"] == trades.iloc[1]["open_date"] == at(3)


# ---------------------------------------------------------------- API and validation
def test_result_frame_columns_and_metrics() -> None:
    rows: list[Row] = [(100, 101, 99, 100, 1), (100, 101, 99, 100, 2), (110, 111, 109, 110, 0), FLAT]
    result = run(rows)
    assert tuple(result.trades.columns) == TRADE_COLUMNS
    assert str(result.trades["open_date"].dt.tz) == "UTC"
    assert result.metrics.trades == 1
    assert result.metrics.wins == 1
    assert result.metrics.total_profit_abs == pytest.approx(result.trades["profit_abs"].sum())


def test_deterministic_when_run_twice_then_identical() -> None:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    rows: list[Row] = [(c, c * 1.01, c * 0.99, c, int(rng.integers(0, 3))) for c in close]
    first, second = run(rows, round_prices=True), run(rows, round_prices=True)
    pd.testing.assert_frame_equal(first.trades, second.trades)


def test_missing_candles_are_filled_like_freqtrade() -> None:
    ohlcv = to_arrays(frame([(100, 101, 99, 100, 0), (100, 102, 98, 101, 0), (101, 103, 100, 102, 0)]), A)
    gappy = OHLCV(time=ohlcv.time[[0, 2]], open=ohlcv.open[[0, 2]], high=ohlcv.high[[0, 2]],
                  low=ohlcv.low[[0, 2]], close=ohlcv.close[[0, 2]], volume=ohlcv.volume[[0, 2]])
    filled = fill_gaps(gappy, H)
    assert list(filled.time) == [T0, T0 + H, T0 + 2 * H]
    assert (filled.open[1], filled.high[1], filled.low[1], filled.close[1], filled.volume[1]) == (100, 100, 100, 100, 0)


def test_errors_name_the_problem() -> None:
    rows: list[Row] = [FLAT, FLAT]
    with pytest.raises(InvalidInput, match="no candles for pair"):
        run_backtest(bundle((A, B)), {A: frame(rows)}, BacktestConfig())
    with pytest.raises(InvalidInput, match="same 1h grid"):
        run_backtest(bundle((A, B)), {A: frame(rows), B: frame(rows, start=T0 + 60)}, BacktestConfig())
    with pytest.raises(InvalidInput, match="fee"):
        BacktestConfig(fee=1.5)
    with pytest.raises(InvalidInput, match="amount_step"):
        BacktestConfig(amount_step=0.3)
    with pytest.raises(InvalidInput, match="timezone-aware"):
        BacktestConfig(start=datetime(2024, 1, 1))


def test_no_data_after_warmup_then_empty_result() -> None:
    result = run([FLAT, FLAT], startup_candles=5)
    assert result.trades.empty
    assert result.start is None
    assert result.metrics.trades == 0


# ---------------------------------------------------------------- numeric helpers
def test_to_tick_rounds_like_ccxt_and_freqtrade() -> None:
    assert _kernel.to_tick(0.125, 100.0, 0) == 0.13  # the decimal 0.125 is a tie: half up
    assert _kernel.to_tick(0.124, 100.0, 0) == 0.12
    assert _kernel.to_tick(0.121, 100.0, 1) == 0.13
    assert _kernel.to_tick(0.129, 100.0, -1) == 0.12
    assert _kernel.to_tick(0.12, 100.0, 1) == 0.12  # on the grid: unchanged
    assert _kernel.to_tick(1.23456, 0.0, 1) == 1.23456  # no step


def test_truncate_amount() -> None:
    assert _kernel.truncate_amount(1000 / 3, 1e8) == 333.33333333
    assert _kernel.truncate_amount(0.3, 1e8) == 0.3
    assert _kernel.truncate_amount(0.123456789, 0.0) == 0.123456789


def test_fraction_digits_match_numpy_formatting() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([10.0 ** rng.uniform(-6, 6, 2000), np.round(rng.uniform(0, 100, 500), 3), [1.0, 2.5]])
    for v in values:
        text = np.format_float_positional(v, precision=14, unique=False, fractional=False, trim="-")
        decimals = text.split(".")[1].rstrip("0") if "." in text else ""
        e = math.floor(math.log10(v))
        assert _kernel._fraction_digits(v, e) == (len(decimals) if decimals else -1), v


# ---------------------------------------------------------------- properties
@st.composite
def markets(draw: st.DrawFn) -> tuple[dict[str, OHLCV], dict[str, Signals], int]:
    n = draw(st.integers(5, 60))
    n_pairs = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    candles: dict[str, OHLCV] = {}
    signals: dict[str, Signals] = {}
    for i in range(n_pairs):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
        open_ = np.concatenate([[100.0], close[:-1]])
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.04, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.04, n))
        times = T0 + np.arange(n, dtype=np.int64) * H
        candles[f"P{i}/USDT"] = OHLCV(time=times, open=open_, high=high, low=low, close=close, volume=np.ones(n))
        signals[f"P{i}/USDT"] = Signals(*(rng.random(n) < draw(st.floats(0.05, 0.6)) for _ in range(4)))
    return candles, signals, draw(st.integers(1, 3))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets(), st.booleans(), st.booleans())
def test_property_no_overlap_per_pair_and_never_above_max_open_trades(
    market: tuple[dict[str, OHLCV], dict[str, Signals], int], can_short: bool, with_trailing: bool
) -> None:
    candles, signals, max_open = market
    b = bundle(tuple(candles), stoploss=-0.03, minimal_roi={"0": 0.05, "120": 0.01},
               trailing_stop={"positive": 0.01, "offset": 0.02} if with_trailing else None)
    config = BacktestConfig(max_open_trades=max_open, can_short=can_short)
    arrays = run_backtest_arrays(b, candles, config, signals=signals)
    trades = arrays.to_frame()
    assert set(trades["exit_reason"]) <= set(EXIT_REASONS)
    assert (trades["close_date"] >= trades["open_date"]).all()
    for _, group in trades.groupby("pair"):
        ordered = group.sort_values("open_date")
        opens, closes = ordered["open_date"].to_numpy(), ordered["close_date"].to_numpy()
        # a new trade may start on the candle the previous one closed on (a futures flip) but never before
        assert (opens[1:] >= closes[:-1]).all()
        if not can_short:
            assert (opens[1:] > closes[:-1]).all()
    times = np.unique(np.concatenate([trades["open_date"].to_numpy(), trades["close_date"].to_numpy()]))
    for t in times:
        still_open = ((trades["open_date"] <= t) & (trades["close_date"] > t)).sum()
        assert still_open <= max_open


# ---------------------------------------------------------------- reuse across runs
def random_market(seed: int, n: int = 400, pairs: int = 3, frozen: bool = True) -> dict[str, OHLCV]:
    """Candles with full-precision prices; frozen: read-only arrays (as to_arrays makes them)."""
    rng = np.random.default_rng(seed)
    out: dict[str, OHLCV] = {}
    for i in range(pairs):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = np.concatenate([[100.0], close[:-1]])
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
        arrays = [T0 + np.arange(n, dtype=np.int64) * H, open_, high, low, close, np.ones(n)]
        for a in arrays:
            a.setflags(write=not frozen)
        out[f"P{i}/USDT"] = OHLCV(*arrays)
    return out


def random_signals(candles: dict[str, OHLCV], seed: int) -> dict[str, Signals]:
    rng = np.random.default_rng(seed)
    return {p: Signals(*(rng.random(len(c)) < 0.1 for _ in range(4))) for p, c in candles.items()}


def copied(candles: dict[str, OHLCV]) -> dict[str, OHLCV]:
    return {p: OHLCV(*(np.array(getattr(c, f)) for f in ("time", "open", "high", "low", "close", "volume")))
            for p, c in candles.items()}


def same_trades(a: Any, b: Any) -> bool:
    fields = ("pair", "open_time", "close_time", "open_rate", "close_rate", "amount", "profit_abs", "exit_reason")
    return len(a) == len(b) and all(getattr(a, f).tobytes() == getattr(b, f).tobytes() for f in fields)


def test_price_step_table_expands_to_the_inverses() -> None:
    candles = random_market(1, n=2000, pairs=1)["P0/USDT"]
    prices = {k: getattr(candles, k) for k in ("open", "high", "low", "close")}
    rows, inverses = engine.price_step_table(candles.time, prices, 1e8)
    per_candle = price_step_inverses(candles.time, prices, 1e8)
    assert list(np.repeat(inverses, np.diff(np.append(rows, len(candles))))) == list(per_candle)


def test_frozen_means_nobody_can_write() -> None:
    owner = np.arange(5.0)
    assert not engine._frozen(owner)
    owner.setflags(write=False)
    assert engine._frozen(owner)
    assert engine._frozen(owner[1:])
    writable = np.arange(5.0)
    view = writable[1:]
    view.setflags(write=False)
    assert not engine._frozen(view)  # its memory can still change through `writable`


def test_runs_on_the_same_frozen_candles_reuse_their_steps_and_agree() -> None:
    candles = random_market(2)
    signals = random_signals(candles, 2)
    b = bundle(tuple(candles), minimal_roi={"0": 0.03})
    config = BacktestConfig(max_open_trades=2, round_prices=True)
    first = run_backtest_arrays(b, candles, config, signals=signals)
    cached = len(engine._step_cache)
    again = run_backtest_arrays(b, candles, config, signals=signals)
    assert len(engine._step_cache) == cached  # nothing new to compute
    fresh = run_backtest_arrays(b, copied(candles), config, signals=signals)  # writable copies: computed anew
    assert len(first) > 0
    assert same_trades(first, again)
    assert same_trades(first, fresh)


def test_other_candles_in_between_are_not_taken_for_the_first() -> None:
    a, other = random_market(3), random_market(4)
    signals = random_signals(a, 3)
    b = bundle(tuple(a), minimal_roi={"0": 0.03})
    config = BacktestConfig(max_open_trades=0, round_prices=True)
    first = run_backtest_arrays(b, a, config, signals=signals)
    between = run_backtest_arrays(b, other, config, signals=signals)
    assert same_trades(between, run_backtest_arrays(b, copied(other), config, signals=signals))
    assert same_trades(first, run_backtest_arrays(b, a, config, signals=signals))
    shorter = BacktestConfig(max_open_trades=0, round_prices=True, end=datetime.fromtimestamp(T0 + 200 * H, tz=UTC))
    assert same_trades(run_backtest_arrays(b, a, shorter, signals=signals),
                       run_backtest_arrays(b, copied(a), shorter, signals=signals))


def test_writable_candles_are_read_anew_every_run() -> None:
    candles = random_market(5, frozen=False)
    signals = random_signals(candles, 5)
    b = bundle(tuple(candles), minimal_roi={"0": 0.03})
    config = BacktestConfig(max_open_trades=0, round_prices=True)
    run_backtest_arrays(b, candles, config, signals=signals)
    for c in candles.values():  # the same arrays, changed in place
        for name in ("open", "high", "low", "close"):
            getattr(c, name)[:] = np.round(getattr(c, name) * 1.01, 2)
    after = run_backtest_arrays(b, candles, config, signals=signals)
    assert same_trades(after, run_backtest_arrays(b, copied(candles), config, signals=signals))


def test_flat_buffers_when_taken_or_too_large_are_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    with engine._flat_buffers(10) as (prices, flags, _holds), engine._flat_buffers(10) as (other, _, other_holds):
        assert prices.shape == (10, 4)
        assert flags.shape == (4, 10)
        assert not np.shares_memory(prices, other)
        assert other_holds == {}
    monkeypatch.setattr(engine, "FLAT_BUFFER_ROWS", 5)
    with engine._flat_buffers(10) as (big, _, big_holds):
        assert big.shape == (10, 4)
        assert big_holds == {}
    with engine._flat_buffers(4) as (small, _, _):
        assert small.flags.c_contiguous
