"""Tests of execdesk.data.feed.MarketView: the global grid, carried-forward closes, next bars, lane candles.

Two hourly pairs from T0:

    hour        0    1    2    3    4    5
    A/USDT     10   11   12   13   14   15    (closes; every hour)
    B/USDT    100  101    -  103  104  105    (no bar at hour 2)

Each candle opens at its close - 0.5, high = close + 1, low = open - 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from execdesk.data.candles import dates_from_epoch_seconds
from execdesk.data.feed import MarketView
from execdesk.errors import InvalidInput

H = 3600
T0 = 1_700_006_400  # a multiple of 4h
A, B = "A/USDT", "B/USDT"


def frame(hours: list[int], closes: list[float], start: int = T0) -> pd.DataFrame:
    c = np.array(closes, dtype=np.float64)
    o = c - 0.5
    times = start + np.array(hours, dtype=np.int64) * H
    return pd.DataFrame({"date": dates_from_epoch_seconds(times), "open": o, "high": c + 1, "low": o - 1, "close": c,
                         "volume": np.arange(1.0, len(c) + 1)})


def market() -> MarketView:
    return MarketView({B: frame([0, 1, 3, 4, 5], [100, 101, 103, 104, 105]),
                       A: frame([0, 1, 2, 3, 4, 5], [10, 11, 12, 13, 14, 15])}, "1h")


def test_market_view_when_two_pairs_then_one_grid_of_their_union_and_rows_by_pair_name() -> None:
    # Act
    m = market()

    # Assert
    assert m.n == 6
    assert (m.time - T0).tolist() == [0, H, 2 * H, 3 * H, 4 * H, 5 * H]
    assert [(t.pair, t.index) for t in m.pairs.values()] == [(A, 0), (B, 1)]
    assert m.close_time(2) == T0 + 3 * H


def test_market_view_when_pair_has_a_gap_then_close_carried_forward_and_open_nan() -> None:
    # Act
    b = market().track(B)

    # Assert: hour 2 carries hour 1's close 101
    assert b.close.tolist() == [100, 101, 101, 103, 104, 105]
    assert b.has_bar.tolist() == [True, True, False, True, True, True]
    assert np.isnan(b.open[2])
    assert b.open[3] == 102.5


def test_market_view_when_pair_has_a_gap_then_close_matrix_rows_hold_the_carried_closes() -> None:
    # Act
    m = market()

    # Assert
    np.testing.assert_array_equal(m.close_matrix, [[10, 11, 12, 13, 14, 15], [100, 101, 101, 103, 104, 105]])


def test_next_bar_when_gap_then_points_past_it_and_n_after_the_last_bar() -> None:
    # Act
    m = market()

    # Assert: the first grid index > g where the pair has a bar (6 = none)
    assert m.track(B).next_bar.tolist() == [1, 3, 3, 4, 5, 6]
    assert m.track(A).next_bar.tolist() == [1, 2, 3, 4, 5, 6]


def test_market_view_when_pair_starts_late_then_first_open_used_before_its_first_bar() -> None:
    # Arrange: C starts at hour 2 with open 49.5
    m = MarketView({A: frame([0, 1, 2, 3], [10, 11, 12, 13]), "C/USDT": frame([2, 3], [50, 51])}, "1h")

    # Act
    c = m.track("C/USDT")

    # Assert
    assert c.close.tolist() == [49.5, 49.5, 50, 51]
    assert c.has_bar.tolist() == [False, False, True, True]
    assert c.next_bar.tolist() == [2, 2, 3, 4]


def test_lane_candles_when_base_timeframe_then_pair_candles_at_their_grid_indices_and_gaps_filled() -> None:
    # Act
    lc = market().lane_candles(B, "1h")

    # Assert: B has no hour-2 bar; like Freqtrade's loader, the lane gets a flat candle at the
    # previous close (volume 0) there, closing at the grid's hour 2
    assert lc.close_index.tolist() == [0, 1, 2, 3, 4, 5]
    assert lc.ohlcv.close.tolist() == [100, 101, 101, 103, 104, 105]
    assert lc.ohlcv.volume[2] == 0
    assert lc.ohlcv.open[2] == lc.ohlcv.high[2] == lc.ohlcv.low[2] == 101
    assert lc.timeframe_seconds == H


def test_lane_candles_when_coarser_and_trailing_bucket_incomplete_then_dropped() -> None:
    # Act: 4h over hours 0-3 (complete) and 4-5 (incomplete: hours 6-7 not here yet)
    a = market().lane_candles(A, "4h")

    # Assert: open 9.5 (hour 0), high 14 (hour 3 close 13 + 1), low 8.5, close 13, volume 1+2+3+4
    assert a.close_index.tolist() == [3]
    assert (a.ohlcv.time - T0).tolist() == [0]
    o = a.ohlcv
    assert (o.open[0], o.high[0], o.low[0], o.close[0], o.volume[0]) == (9.5, 14.0, 8.5, 13.0, 10.0)


def test_lane_candles_when_coarse_bucket_has_a_gap_then_resampled_from_the_bars_present() -> None:
    # Act: B's first 4h candle holds hours 0, 1 and 3
    b = market().lane_candles(B, "4h")

    # Assert: close 103 (hour 3), high 104, low 98.5, volume 1+2+3; it closes at grid index 3
    assert b.close_index.tolist() == [3]
    o = b.ohlcv
    assert (o.open[0], o.high[0], o.low[0], o.close[0], o.volume[0]) == (99.5, 104.0, 98.5, 103.0, 6.0)


def test_lane_candles_when_pair_misses_the_last_hour_of_a_bucket_then_it_closes_at_that_grid_hour() -> None:
    # Arrange: D has no bar at hour 3, A has every hour 0-7
    m = MarketView({A: frame(list(range(8)), [float(10 + i) for i in range(8)]),
                    "D/USDT": frame([0, 1, 2, 4, 5, 6, 7], [20, 21, 22, 24, 25, 26, 27])}, "1h")

    # Act
    d = m.lane_candles("D/USDT", "4h")

    # Assert: 4h candles [0-3] and [4-7] close at grid indices 3 and 7
    assert d.close_index.tolist() == [3, 7]
    assert d.ohlcv.close.tolist() == [22.0, 27.0]


def test_lane_candles_when_all_buckets_complete_then_none_dropped() -> None:
    # Arrange: 8 hours -> two whole 4h candles
    m = MarketView({A: frame(list(range(8)), [float(10 + i) for i in range(8)])}, "1h")

    # Act
    a = m.lane_candles(A, "4h")

    # Assert
    assert a.close_index.tolist() == [3, 7]
    assert a.ohlcv.close.tolist() == [13.0, 17.0]


def test_lane_candles_when_timeframe_not_a_multiple_then_invalid_input() -> None:
    # Act / Assert
    with pytest.raises(InvalidInput, match="not a whole multiple"):
        market().lane_candles(A, "30m")


def test_track_when_pair_unknown_then_invalid_input_listing_pairs() -> None:
    # Act / Assert
    with pytest.raises(InvalidInput, match=r"no pair 'X/USDT'; it has A/USDT, B/USDT"):
        market().track("X/USDT")


def test_market_view_when_no_frames_then_invalid_input() -> None:
    # Act / Assert
    with pytest.raises(InvalidInput, match="no pairs given"):
        MarketView({}, "1h")
