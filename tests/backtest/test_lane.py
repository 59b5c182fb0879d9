"""Tests of execdesk.backtest.lane: entry signals and the first exit, on hand-made candles.

Candles are hourly from T0 (a multiple of 4h, so 4h buckets start there); a long position is filled
at the open of candle 1 (T0 + 1h) at 100 unless a test says otherwise. The exit rules are the
backtester's (Freqtrade's): minutes held count from the entry candle's open, profits count the fee
(0.1% per side, the lane's default), the trailing stop follows a candle's high before its low is
checked. An exit signal of candle k - 1 (filled at k's open) is planned at the close of k - 1; a
stop, ROI or trailing exit inside candle k at the close of k.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from execdesk.backtest.engine import BacktestConfig
from execdesk.backtest.lane import ExitPlan, Lane
from execdesk.data.candles import dates_from_epoch_seconds
from execdesk.data.feed import MarketView
from execdesk.domain.types import Direction, IntentReason
from execdesk.strategy import StrategyBundle, validate_bundle

H = 3600
T0 = 1_700_006_400  # 2023-11-15 00:00 UTC, a multiple of 4h
PAIR = "BTC/USDT"
FEE = 0.001
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
         others: dict[str, pd.DataFrame] | None = None, config: BacktestConfig | None = None) -> Lane:
    market = MarketView({PAIR: frame(rows), **(others or {})}, "1h")
    return Lane("dep-1", PAIR, b or bundle(), market.lane_candles(PAIR, timeframe), config=config)


def plan_of(g: int, reason: IntentReason, candle: int, rate: float) -> ExitPlan:
    """An expected plan; the rate to within float rounding of the hand calculation."""
    return ExitPlan(g, reason, candle, pytest.approx(rate, rel=1e-12))  # type: ignore[arg-type]


# ---------------------------------------------------------------- stoploss
STOP_ROWS: list[Row] = [
    (100, 101, 99, 100),
    (100, 102, 97, 99),    # fill at this open (100); stop at 100 x (1 - 0.05) = 95
    (99, 100, 96, 97),
    (97, 98, 94.9, 95.5),  # low 94.9 <= 95: stoploss, filled at the stop
    (95, 96, 90, 92),
]


def test_first_exit_when_low_touches_the_stop_then_stoploss_at_the_stop_price() -> None:
    # Arrange
    ln = lane(STOP_ROWS)

    # Act
    plan = ln.first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: decided at candle 3's close; the backtest fills at the stop, 95
    assert plan == ExitPlan(3, IntentReason.STOPLOSS, 3, 95.0)


def test_first_exit_when_risk_manager_tightens_the_stop_then_the_tighter_stop_exits_earlier() -> None:
    # Arrange: stop halved by the drawdown ladder: 100 x (1 - 0.025) = 97.5; candle 1's low 97 touches it
    ln = lane(STOP_ROWS)

    # Act
    tight = ln.first_exit(Direction.LONG, T0 + H, 100.0, after_g=0, stoploss=-0.025)
    bundle_stop = ln.first_exit(Direction.LONG, T0 + H, 100.0, after_g=0, stoploss=None)

    # Assert
    assert tight == plan_of(1, IntentReason.STOPLOSS, 1, 97.5)
    assert bundle_stop == ExitPlan(3, IntentReason.STOPLOSS, 3, 95.0)


def test_first_exit_when_low_equals_the_stop_exactly_then_stoploss() -> None:
    # Arrange: candle 2's low is exactly 95
    rows = [*STOP_ROWS[:2], (99, 100, 95.0, 97), *STOP_ROWS[3:]]

    # Act
    plan = lane(rows).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.STOPLOSS, 2, 95.0)


def test_first_exit_when_whole_candle_below_the_stop_then_filled_at_its_open() -> None:
    # Arrange: candle 2 gaps down to open 93 with a high of 94, all of it below the stop 95
    rows = [*STOP_ROWS[:2], (93, 94, 92, 93), *STOP_ROWS[3:]]

    # Act
    plan = lane(rows).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.STOPLOSS, 2, 93.0)


def test_first_exit_when_after_g_past_the_first_hit_then_next_candle_checked() -> None:
    # Act: candles closing after grid index 3 only
    plan = lane(STOP_ROWS).first_exit(Direction.LONG, T0 + H, 100.0, after_g=3)

    # Assert: candle 4's low 90 <= 95 (its high 96 is above the stop: filled at the stop)
    assert plan == ExitPlan(4, IntentReason.STOPLOSS, 4, 95.0)


def test_first_exit_when_short_and_high_touches_the_stop_then_stoploss() -> None:
    # Arrange: short from 100, stop at 100 x (1 + 0.05) = 105
    rows: list[Row] = [(100, 101, 99, 100), (100, 103, 99, 101), (101, 105.5, 100, 104), (104, 110, 103, 109)]

    # Act
    plan = lane(rows).first_exit(Direction.SHORT, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == ExitPlan(2, IntentReason.STOPLOSS, 2, 105.0)


def test_first_exit_when_nothing_hits_then_none() -> None:
    # Arrange: prices drift within (95, 150)
    rows: list[Row] = [(100, 101, 99, 100)] * 6

    # Act / Assert
    assert lane(rows).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0) is None


# ---------------------------------------------------------------- ROI
# ROI 10% from 0 min, 2% from 120 min held, counted from the entry candle's open: candle 1 has held
# 0 min, candle 2 60 min, candle 3 120 min. With the fee the 2% target is the rate
# 100 x 1.001 x 1.02 / 0.999 = 102.2042 (the profit after both fees is 2% there).
ROI_TABLE = {"0": 0.10, "120": 0.02}
ROI_2PCT = 100 * 1.001 * 1.02 / 0.999


def test_first_exit_when_roi_target_falls_with_time_held_then_roi_at_the_target_rate() -> None:
    # Arrange
    rows: list[Row] = [
        (100, 101, 99, 100),
        (100, 105, 99, 104),    # 0 min: target 10%; high 105 is +4.8% after fees
        (102, 103, 101, 102),   # 60 min: still 10%
        (102, 103, 101, 102),   # 120 min: target 2%; high 103 (+2.8% after fees) passes 102.2042
        (102, 120, 101, 115),
    ]

    # Act
    plan = lane(rows, bundle(minimal_roi=ROI_TABLE)).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == plan_of(3, IntentReason.ROI, 3, ROI_2PCT)


def test_first_exit_when_roi_step_starts_with_open_above_its_target_then_roi_at_the_open() -> None:
    # Arrange: as above, but candle 3 (where the 2% step comes into force) opens at 102.5 > 102.2042
    rows: list[Row] = [(100, 101, 99, 100), (100, 105, 99, 104), (102, 103, 101, 102), (102.5, 103, 101, 102)]

    # Act
    plan = lane(rows, bundle(minimal_roi=ROI_TABLE)).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: Freqtrade exits at the open when a new ROI step finds the price already above it
    assert plan == ExitPlan(3, IntentReason.ROI, 3, 102.5)


def test_first_exit_when_short_and_low_reaches_roi_then_roi() -> None:
    # Arrange: ROI 3% -> short target 100 x 0.999 x 0.97 / 1.001 = 96.8062; candle 2's low is 96.5
    rows: list[Row] = [(100, 101, 99, 100), (100, 101, 98, 99), (99, 100, 96.5, 97)]
    b = bundle(minimal_roi={"0": 0.03})

    # Act
    plan = lane(rows, b).first_exit(Direction.SHORT, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == plan_of(2, IntentReason.ROI, 2, 100 * 0.999 * 0.97 / 1.001)


# ---------------------------------------------------------------- exit signal
SIGNAL_ROWS: list[Row] = [(100, 101, 97, 97), (100, 101, 99, 99), (99, 100, 98, 98.5), (98.5, 99, 97, 97.5),
                          (97.5, 98, 96, 96), (96, 96.5, 95.5, 96)]


def test_first_exit_when_exit_signal_at_a_close_then_exit_signal_there_at_the_next_open() -> None:
    # Arrange: exit when close < 98 (candles 0, 3, 4, 5); stop 95 and ROI 50% are never touched
    b = bundle(exit={"long": "close < 98"})

    # Act
    plan = lane(SIGNAL_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: decided at candle 3's close, filled by the backtest at candle 4's open (97.5); candle 0
    # also signals, but it closed before the position existed
    assert plan == ExitPlan(3, IntentReason.EXIT_SIGNAL, 3, 97.5)


def test_first_exit_when_after_g_is_the_signal_close_then_next_signal() -> None:
    # Arrange
    b = bundle(exit={"long": "close < 98"})

    # Act: the desk has seen candle 3's close (its signal) and still holds the position
    plan = lane(SIGNAL_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=3)

    # Assert: candle 4's signal, filled at candle 5's open
    assert plan == ExitPlan(4, IntentReason.EXIT_SIGNAL, 4, 96.0)


def test_first_exit_when_exit_profit_only_and_signal_at_a_loss_then_signal_ignored() -> None:
    # Arrange: the signals' exits would fill below the entry at 100
    b = bundle(exit={"long": "close < 98"})

    # Act
    plan = lane(SIGNAL_ROWS, b, config=BacktestConfig(exit_profit_only=True)).first_exit(
        Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan is None


def test_first_exit_when_stop_hit_inside_the_candle_that_signals_then_stoploss_first() -> None:
    # Arrange: candle 3 closes at 95.5 < 96 (its signal acts at candle 4), and its low breaks the stop
    b = bundle(exit={"long": "close < 96"})

    # Act
    plan = lane(STOP_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: the stop inside candle 3 comes first
    assert plan == ExitPlan(3, IntentReason.STOPLOSS, 3, 95.0)


def test_first_exit_when_exit_signal_and_stop_act_on_one_candle_then_exit_signal_wins() -> None:
    # Arrange: candle 2 closes at 97 < 97.2: its signal acts at candle 3, whose low breaks the stop
    b = bundle(exit={"long": "close < 97.2"})

    # Act
    plan = lane(STOP_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: Freqtrade checks the exit signal first: decided at candle 2's close, at candle 3's open
    assert plan == ExitPlan(2, IntentReason.EXIT_SIGNAL, 2, 97.0)


# ---------------------------------------------------------------- trailing stop
# positive 2% once the profit at the high (after fees) exceeds the 3% offset; stoploss 10% (stop 90)
TRAIL = {"positive": 0.02, "offset": 0.03, "only_offset_is_reached": True}
TRAIL_ROWS: list[Row] = [
    (100, 101, 99, 100),
    (100, 102, 99.5, 101.5),   # high 102: +1.8% after fees, below the offset: the stop stays at 90
    (102, 104, 102, 103),      # high 104: +3.8% after fees > 3% -> stop 104 x 0.98 = 101.92 < low 102
    (103, 103.5, 101.5, 102),  # low 101.5 <= 101.92
    (102, 103, 90, 95),
]


def test_first_exit_when_trailing_armed_by_earlier_high_then_trailing_stop() -> None:
    # Arrange
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act
    plan = lane(TRAIL_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == plan_of(3, IntentReason.TRAILING_STOP, 3, 104 * 0.98)


def test_first_exit_when_entry_candle_high_arms_trailing_and_its_low_hits_it_then_exit_on_the_entry_candle(
) -> None:
    # Arrange: candle 1's high 104 moves the stop to 101.92 before its low 99.5 is checked
    rows: list[Row] = [(100, 101, 99, 100), (100, 104, 99.5, 103), (103, 103.5, 101.5, 102)]
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act
    plan = lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: on the entry candle Freqtrade fills at open x (1 + offset - positive) = 101
    assert plan == plan_of(1, IntentReason.TRAILING_STOP, 1, 101.0)


def test_first_exit_when_offset_not_reached_then_trailing_not_armed() -> None:
    # Arrange: the best high 102.5 is +2.3% after fees < offset 3%; candle 2 dips to 100.1
    rows: list[Row] = [(100, 101, 99, 100), (100, 102.5, 99.5, 102), (102, 102.2, 100.1, 101),
                       (101, 101.5, 100.5, 101)]
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act / Assert
    assert lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0) is None


def test_first_exit_when_trailing_without_offset_requirement_then_stop_trails_at_stoploss_distance() -> None:
    # Arrange: below the offset the stop trails the high by |stoploss|: 102.5 x 0.9 = 92.25 after candle 1
    rows: list[Row] = [(100, 101, 99, 100), (100, 102.5, 99.5, 102), (102, 102.2, 92.0, 95),
                       (95, 96, 89, 90)]
    b = bundle(stoploss=-0.10, trailing_stop={**TRAIL, "only_offset_is_reached": False})

    # Act
    plan = lane(rows, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=0)

    # Assert: candle 2's low 92 <= 92.25 (the plain stop, 90, would not be hit before candle 3)
    assert plan == plan_of(2, IntentReason.TRAILING_STOP, 2, 92.25)


def test_first_exit_when_short_and_price_bounces_off_the_best_low_then_trailing_stop() -> None:
    # Arrange: short from 100; candle 2's low 95 (+4.8% after fees >= 3%) -> stop 95 x 1.02 = 96.9,
    # above its high 96.8; candle 3's high 97 reaches it
    rows: list[Row] = [(100, 101, 99, 100), (100, 100.5, 98, 98.5), (96.5, 96.8, 95, 95.5), (95.5, 97, 95.2, 96.5)]
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act
    plan = lane(rows, b).first_exit(Direction.SHORT, T0 + H, 100.0, after_g=0)

    # Assert
    assert plan == plan_of(3, IntentReason.TRAILING_STOP, 3, 95 * 1.02)


def test_first_exit_when_after_g_past_the_arming_candle_then_trailing_stop_still_armed() -> None:
    # Arrange: the desk has seen candle 2's close (the position is still open)
    b = bundle(stoploss=-0.10, trailing_stop=TRAIL)

    # Act
    plan = lane(TRAIL_ROWS, b).first_exit(Direction.LONG, T0 + H, 100.0, after_g=2)

    # Assert: candle 2's high still moved the stop
    assert plan == plan_of(3, IntentReason.TRAILING_STOP, 3, 104 * 0.98)


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

    # Assert: filled at the stop, 95
    assert plan == ExitPlan(7, IntentReason.STOPLOSS, 1, 95.0)


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

    # Assert: the backtest takes the trade as opened at the candle's open: all of the candle counts
    assert plan == plan_of(3, IntentReason.STOPLOSS, 0, 100 * (1 - 0.004))


# ---------------------------------------------------------------- the stop resting at the venue
def test_stop_level_when_no_trailing_then_the_entry_price_less_the_stoploss_whatever_the_candles() -> None:
    ln = lane(STOP_ROWS)

    # Assert: 100 x (1 - 0.05) after any number of candles; a tighter stop from the risk manager moves it
    assert ln.stop_level(Direction.LONG, T0 + H, 100.0, upto_g=0) == pytest.approx(95.0, rel=1e-12)
    assert ln.stop_level(Direction.LONG, T0 + H, 100.0, upto_g=3) == pytest.approx(95.0, rel=1e-12)
    assert ln.stop_level(Direction.LONG, T0 + H, 100.0, upto_g=3, stoploss=-0.025) == pytest.approx(97.5)
    assert ln.stop_level(Direction.SHORT, T0 + H, 100.0, upto_g=2) == pytest.approx(105.0, rel=1e-12)


def test_stop_level_when_trailing_then_it_follows_the_highs_once_the_offset_is_reached() -> None:
    ln = lane(TRAIL_ROWS, bundle(stoploss=-0.10, trailing_stop=TRAIL))

    # Assert: 90 until candle 2's high 104 arms the trail (104 x 0.98), where it stays (no higher high after)
    assert ln.stop_level(Direction.LONG, T0 + H, 100.0, upto_g=1) == pytest.approx(90.0, rel=1e-12)
    assert ln.stop_level(Direction.LONG, T0 + H, 100.0, upto_g=2) == pytest.approx(104 * 0.98, rel=1e-12)
    assert ln.stop_level(Direction.LONG, T0 + H, 100.0, upto_g=4) == pytest.approx(104 * 0.98, rel=1e-12)


def test_next_close_when_asked_then_the_lanes_next_candle_close_or_none_at_the_end() -> None:
    ln = lane(STOP_ROWS)
    assert ln.next_close(1) == 2
    assert ln.next_close(4) is None
