"""Tests of execdesk.backtest.lane: entry signals and the first exit, on hand-made candles.

Candles are hourly from T0 (a multiple of 4h, so 4h buckets start there); a long position is filled
at the open of candle 1 (T0 + 1h) at 100 unless a test says otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from execdesk.backtest.lane import ExitPlan, Lane
from execdesk.data.candles import dates_from_epoch_seconds
from execdesk.data.feed import MarketView
from execdesk.domain.types import Direction, IntentReason
from execdesk.strategy import StrategyBundle, validate_bundle

H = 3600
T0 = 1_700_006_400  # 2023-11-15 00:00 UTC, a multiple of 4h
PAIR = "BTC/USDT"
Row = tuple[float, float, float, float]  # open, high, low, close


def frame(rows: list[Row], start: int = T0, step: int = H) -> pd.DataFrame:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    times = np.arange(len(rows), dtype=np.int64) * step + start
    return pd.DataFrame({"date": dates_from_epoch_seconds(times), "open": o, "high": h, "low": lo, "close": c,
                         "volume": np.ones(len(rows))})


def bundle(**overrides: Any) -> StrategyBundle:
    data: dict[str, Any] = {
        "id": "STR-T01", "name": "lane_test", "version": 1, "timeframe": "1h", "pairs": [PAIR], "indicators": {},
        "entry": {"long": "close > 1000000"}, "stoploss": -0.05, "minimal_roi": {"0": 0.5},
        "validation": {"period": {"start": "2024-01-01", "end": "2024-06-30"}, "trades": 10, "sharpe": 1.0,
                       "max_drawdown": 0.1, "win_rate": 0.5, "profit_factor": 1.2, "avg_trade_duration": "4h",
                       "slippage_budget_bps": 5.0},
    }
    data.update(overrides)
    return validate_bundle(data)


def lane(rows: list[Row], b: StrategyBundle | None = None, timeframe: str = "1h",
         others: dict[str, pd.DataFrame] | None = None) -> Lane:
    market = MarketView({PAIR: frame(rows), **(others or {})}, "1h")
    return Lane("dep-1", PAIR, b or bundle(), market.lane_candles(PAIR, timeframe))


# ---------------------------------------------------------------- stoploss
STOP_ROWS: list[Row] = [
    (100, 101, 99, 100),
    (100, 102, 97, 99),    # fill at this open (100); stop at 100 x (1 - 0.05) = 95
    (99, 100, 96, 97),
    (97, 98, 94.9, 95.5),  # low 94.9 <= 95: stoploss
    (95, 96, 90, 92),
]


def test_first_exit_when_low_touches_the_stop_then_stoploss_at_that_candle() -> None:
    # Arrange
    ln = lane(STOP_ROWS)

    # Act
    plan = ln.first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(3, IntentReason.STOPLOSS, 3)


def test_first_exit_when_low_equals_the_stop_exactly_then_stoploss() -> None:
    # Arrange: candle 2's low is exactly 95
    rows = [*STOP_ROWS[:2], (99, 100, 95.0, 97), *STOP_ROWS[3:]]

    # Act
    plan = lane(rows).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.STOPLOSS, 2)


def test_first_exit_when_after_g_past_the_first_hit_then_next_candle_checked() -> None:
    # Act: candles closing after grid index 3 only
    plan = lane(STOP_ROWS).first_exit(Direction.LONG, T0 + H, 100.0, after_g=3)

    # Assert: candle 4's low 90 <= 95
    assert plan == ExitPlan(4, IntentReason.STOPLOSS, 4)


def test_first_exit_when_short_and_high_touches_the_stop_then_stoploss() -> None:
    # Arrange: short from 100, stop at 100 x (1 + 0.05) = 105
    rows: list[Row] = [(100, 101, 99, 100), (100, 103, 99, 101), (101, 105.5, 100, 104), (104, 110, 103, 109)]

    # Act
    plan = lane(rows).first_exit(Direction.SHORT, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.STOPLOSS, 2)


def test_first_exit_when_nothing_hits_then_none() -> None:
    # Arrange: prices drift within (95, 150)
    rows: list[Row] = [(100, 101, 99, 100)] * 6

    # Act / Assert
    assert lane(rows).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0) is None


# ---------------------------------------------------------------- ROI
def test_first_exit_when_roi_target_falls_with_time_held_then_roi_where_high_meets_it() -> None:
    # Arrange: ROI 10% from 0 min, 2% from 120 min
    rows: list[Row] = [
        (100, 101, 99, 100),
        (100, 105, 99, 104),  # held 60 min at its close: target 110; high 105 misses
        (102, 103.0, 101, 102),  # held 120 min: target 102; high 103 reaches it
        (102, 120, 101, 115),
    ]
    b = bundle(minimal_roi={"0": 0.10, "120": 0.02})

    # Act
    plan = lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.ROI, 2)


def test_first_exit_when_short_and_low_reaches_roi_then_roi() -> None:
    # Arrange: ROI 3% -> short target 100 x 0.97 = 97
    rows: list[Row] = [(100, 101, 99, 100), (100, 101, 98, 99), (99, 100, 96.5, 97)]
    b = bundle(minimal_roi={"0": 0.03})

    # Act
    plan = lane(rows, b).first_exit(Direction.SHORT, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.ROI, 2)


# ---------------------------------------------------------------- exit signal
def test_first_exit_when_exit_signal_at_a_close_then_exit_signal() -> None:
    # Arrange: exit when close < 98; stop 95 and ROI 50% are never touched
    rows: list[Row] = [(100, 101, 97, 97), (100, 101, 99, 99), (99, 100, 98, 98.5), (98.5, 99, 97, 97.5),
                       (97.5, 98, 96, 96)]
    b = bundle(exit={"long": "close < 98"})

    # Act
    plan = lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: candle 0 also signals, but it closed before the position existed
    assert plan == ExitPlan(3, IntentReason.EXIT_SIGNAL, 3)


def test_first_exit_when_stoploss_and_exit_signal_on_one_candle_then_stoploss_named() -> None:
    # Arrange
    b = bundle(exit={"long": "close < 96"})

    # Act
    plan = lane(STOP_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: candle 3 closes at 95.5 < 96 and its low breaks the stop: the stop wins the label
    assert plan == ExitPlan(3, IntentReason.STOPLOSS, 3)


# ---------------------------------------------------------------- trailing stop
TRAIL = {"positive": 0.02, "offset": 0.03, "only_offset_is_reached": True}


def test_first_exit_when_trailing_armed_by_earlier_high_then_trailing_stop() -> None:
    # Arrange: stop 90 and ROI 50% far away
    rows: list[Row] = [
        (100, 101, 99, 100),
        (100, 104, 99.5, 103),    # best before it: the entry 100 -> not armed
        (103, 103.5, 101.5, 102),  # best before: 104 (+4% >= offset 3%) -> level 104 x 0.98 = 101.92 >= low 101.5
        (102, 103, 90, 95),
    ]
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act
    plan = lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.TRAILING_STOP, 2)


def test_first_exit_when_offset_not_reached_then_trailing_not_armed() -> None:
    # Arrange: the best high 102.5 is +2.5% < offset 3%; candle 2 dips to 100.1 (< 102.5 x 0.98 = 100.45)
    rows: list[Row] = [(100, 101, 99, 100), (100, 102.5, 99.5, 102), (102, 102.2, 100.1, 101),
                       (101, 101.5, 100.5, 101)]
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act / Assert
    assert lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0) is None


def test_first_exit_when_trailing_without_offset_requirement_then_armed_by_any_gain() -> None:
    # Arrange: same candles, trailing armed as soon as the best price is above the entry
    rows: list[Row] = [(100, 101, 99, 100), (100, 102.5, 99.5, 102), (102, 102.2, 100.1, 101),
                       (101, 101.5, 100.5, 101)]
    b = bundle(stoploss=-0.10, trailing_stop={**TRAIL, "only_offset_is_reached": False})

    # Act
    plan = lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: level 102.5 x 0.98 = 100.45 >= low 100.1 at candle 2
    assert plan == ExitPlan(2, IntentReason.TRAILING_STOP, 2)


def test_first_exit_when_short_and_price_bounces_off_the_best_low_then_trailing_stop() -> None:
    # Arrange: short from 100; candle 1 low 95 (+5% >= 3%) -> level 95 x 1.02 = 96.9; candle 2 high 97
    rows: list[Row] = [(100, 101, 99, 100), (100, 100.5, 95, 96), (96, 97, 95.5, 96.5)]
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act
    plan = lane(rows, b).first_exit(Direction.SHORT, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.TRAILING_STOP, 2)


# ---------------------------------------------------------------- entries
ENTRY_ROWS: list[Row] = [(100, 100, 100, 100), (100, 100, 99, 99), (99, 101, 99, 101), (101, 101, 99, 99),
                         (99, 102, 99, 102), (102, 102, 98, 98)]


def test_next_entry_when_long_signals_then_grid_indices_in_turn() -> None:
    # Arrange: enter long when close > 100: candles 2 and 4
    ln = lane(ENTRY_ROWS, bundle(entry={"long": "close > 100"}))

    # Act / Assert
    assert ln.next_entry(-1) == (2, Direction.LONG)
    assert ln.next_entry(1) == (2, Direction.LONG)
    assert ln.next_entry(2) == (4, Direction.LONG)
    assert ln.next_entry(4) is None


def test_next_entry_when_short_signal_then_short_direction() -> None:
    # Arrange: enter short when close < 99: candle 5
    ln = lane(ENTRY_ROWS, bundle(entry={"short": "close < 99"}))

    # Act / Assert
    assert ln.next_entry(0) == (5, Direction.SHORT)


def test_next_entry_when_long_and_short_fire_together_then_that_candle_skipped() -> None:
    # Arrange: long when close > 100 (2, 4), short when close > 101 (4): candle 4 is ambiguous
    ln = lane(ENTRY_ROWS, bundle(entry={"long": "close > 100", "short": "close > 101"}))

    # Act / Assert
    assert ln.next_entry(2) is None
    assert ln.evaluations == 6


def test_next_entry_when_signal_uses_a_shift_then_warmup_candles_never_signal() -> None:
    # Arrange: close above the previous close: true at candles 2 and 4; startup is 1 candle
    ln = lane(ENTRY_ROWS, bundle(entry={"long": "close > shift(close, 1)"}))

    # Act / Assert
    assert ln.next_entry(-1) == (2, Direction.LONG)


# ---------------------------------------------------------------- coarser lanes
def hourly(n: int, start_price: float = 100.0) -> list[Row]:
    """n hourly candles rising by 1 per hour: candle i opens at start + i, closes at start + i + 1."""
    return [(start_price + i, start_price + i + 1, start_price + i - 0.5, start_price + i + 1) for i in range(n)]


def test_lane_when_4h_on_1h_data_then_candles_close_at_the_last_hour_of_each_bucket() -> None:
    # Arrange: 12 hourly candles -> 4h candles over hours 0-3, 4-7, 8-11
    ln = lane(hourly(12), bundle(timeframe="4h", entry={"long": "close > 108"}), timeframe="4h")

    # Act
    close_index = ln.candles.close_index.tolist()

    # Assert: 4h closes are 104, 108, 112 -> only the third (> 108) signals, closing at grid index 11
    assert close_index == [3, 7, 11]
    assert ln.candles.ohlcv.close.tolist() == [104.0, 108.0, 112.0]
    assert ln.candles.timeframe_seconds == 4 * H
    assert ln.next_entry(-1) == (11, Direction.LONG)
    assert [ln.candle_at_close(g) for g in (3, 4, 7, 11)] == [0, None, 1, 2]


def test_lane_when_grid_starts_earlier_than_the_pair_then_close_indices_shift_with_it() -> None:
    # Arrange: another pair starts 2 hours earlier, so the pair's hour 0 is grid index 2
    other = frame(hourly(14, 50.0), start=T0 - 2 * H)

    # Act
    ln = lane(hourly(12), bundle(timeframe="4h"), timeframe="4h", others={"ETH/USDT": other})

    # Assert
    assert ln.candles.close_index.tolist() == [5, 9, 13]


def test_first_exit_when_4h_lane_then_stop_checked_on_4h_candles_and_mapped_to_grid() -> None:
    # Arrange: hours 4-7 dip to 94 at hour 6 -> the 4h candle 1 (low 94 <= 95) closes at grid index 7
    rows = hourly(12)
    rows[6] = (106, 107, 94, 106.5)
    b = bundle(timeframe="4h", minimal_roi={"0": 0.9})

    # Act: filled at hour 1 (inside 4h candle 0) at 100
    plan = lane(rows, b, timeframe="4h").first_exit(Direction.LONG, T0 + H, 100.0, after_g=1)

    # Assert
    assert plan == ExitPlan(7, IntentReason.STOPLOSS, 1)


def test_lane_candles_when_last_4h_bucket_incomplete_then_dropped() -> None:
    # Arrange: 10 hours -> hours 8-9 are half a 4h candle
    ln = lane(hourly(10), bundle(timeframe="4h"), timeframe="4h")

    # Assert
    assert ln.candles.close_index.tolist() == [3, 7]
    assert len(ln.candles.ohlcv) == 2


@pytest.mark.parametrize("after_g", [-1, 0])
def test_first_exit_when_fill_inside_the_first_candle_then_that_candle_is_checked(after_g: int) -> None:
    # Arrange: 4h candle 0 holds hours 0-3; its low (99.5 at hour 0) breaks a 0.4% stop from 100 (99.6)
    b = bundle(timeframe="4h", stoploss=-0.004, minimal_roi={"0": 0.9})

    # Act
    plan = lane(hourly(8), b, timeframe="4h").first_exit(Direction.LONG, T0 + H, 100.0, after_g=after_g)

    # Assert
    assert plan == ExitPlan(3, IntentReason.STOPLOSS, 0)
