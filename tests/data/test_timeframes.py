"""Tests of execdesk.data.timeframes: names, lengths, alignment, resampling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from execdesk.data import (
    TIMEFRAMES,
    PairProfile,
    ceil_epoch,
    floor_epoch,
    generate_pair,
    infer_timeframe,
    resample,
    timeframe_to_seconds,
)
from execdesk.data.candles import dates_from_epoch_seconds
from execdesk.errors import InvalidInput

START = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def candles(times: list[int], closes: list[float]) -> pd.DataFrame:
    """Simple valid candles: open = previous close, 1 % wicks, volume = index + 1."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "date": dates_from_epoch_seconds(np.asarray(times, dtype=np.int64)),
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": np.arange(1.0, len(close) + 1.0),
        }
    )


def test_timeframes_when_listed_then_freqtrade_set_in_ascending_order() -> None:
    # Arrange
    expected = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")

    # Act
    lengths = [timeframe_to_seconds(tf) for tf in TIMEFRAMES]

    # Assert
    assert expected == TIMEFRAMES
    assert lengths == sorted(lengths)


@pytest.mark.parametrize(
    ("tf", "seconds"),
    [("1m", 60), ("5m", 300), ("1h", 3600), ("12h", 43200), ("1d", 86400), ("3d", 259200), ("1w", 604800)],
)
def test_timeframe_to_seconds_when_known_then_length(tf: str, seconds: int) -> None:
    # Act / Assert
    assert timeframe_to_seconds(tf) == seconds


@pytest.mark.parametrize("bad", ["2m", "1M", "1H", "", "5 m"])
def test_timeframe_to_seconds_when_unknown_then_invalid_input_names_value_and_set(bad: str) -> None:
    # Act
    with pytest.raises(InvalidInput) as caught:
        timeframe_to_seconds(bad)

    # Assert
    assert repr(bad) in str(caught.value)
    assert "1m, 3m, 5m" in str(caught.value)
    assert "1w" in str(caught.value)


def test_floor_epoch_when_weekly_then_monday_like_ccxt() -> None:
    # Arrange: Wednesday 2024-01-10 13:45 UTC
    moment = int(datetime(2024, 1, 10, 13, 45, tzinfo=UTC).timestamp())

    # Act
    week = floor_epoch(moment, "1w")
    day3 = floor_epoch(moment, "3d")

    # Assert
    assert datetime.fromtimestamp(week, UTC) == datetime(2024, 1, 8, tzinfo=UTC)
    assert day3 % (3 * 86400) == 0  # plain epoch multiples, as ccxt does for days
    assert datetime.fromtimestamp(day3, UTC) == datetime(2024, 1, 9, tzinfo=UTC)


def test_floor_and_ceil_epoch_when_before_1970_or_aligned_then_consistent() -> None:
    # Act / Assert
    assert floor_epoch(-1, "1h") == -3600
    assert floor_epoch(np.array([-1, 0, 3599, 3600], dtype=np.int64), "1h").tolist() == [-3600, 0, 0, 3600]
    assert ceil_epoch(3600, "1h") == 3600
    assert ceil_epoch(3601, "1h") == 7200


def test_resample_when_5m_to_1h_then_ohlcv_aggregated_per_aligned_bucket() -> None:
    # Arrange: 00:25 .. 02:10 in 5m steps (a partial first and last hour)
    base = int(START.timestamp())
    times = [base + 25 * 60 + 300 * i for i in range(22)]
    frame = candles(times, [100.0 + i for i in range(22)])

    # Act
    out = resample(frame, "1h")

    # Assert
    expected = (
        frame.assign(bucket=frame["date"].dt.floor("1h"))
        .groupby("bucket")
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
    )
    assert out["date"].tolist() == list(expected.index)
    assert out["date"].iloc[0] == pd.Timestamp(START)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(out[name].to_numpy(), expected[name].to_numpy())


def test_resample_when_trailing_bucket_incomplete_then_kept() -> None:
    # Arrange: one full hour and two candles of the next
    base = int(START.timestamp())
    frame = candles([base + 300 * i for i in range(14)], [10.0] * 14)

    # Act
    out = resample(frame, "1h")

    # Assert
    assert len(out) == 2
    assert out["volume"].iloc[1] == 13.0 + 14.0


def test_resample_when_gap_then_no_made_up_bucket() -> None:
    # Arrange: hours 0 and 2 only
    base = int(START.timestamp())
    frame = candles([base, base + 300, base + 7200], [1.0, 2.0, 3.0])

    # Act
    out = resample(frame, "1h")

    # Assert
    assert out["date"].tolist() == [pd.Timestamp(START), pd.Timestamp(START + timedelta(hours=2))]


def test_resample_when_daily_to_weekly_then_buckets_start_monday() -> None:
    # Arrange: 2024-01-03 (Wednesday) for 10 days
    base = int(datetime(2024, 1, 3, tzinfo=UTC).timestamp())
    frame = candles([base + 86400 * i for i in range(10)], [float(i + 1) for i in range(10)])

    # Act
    out = resample(frame, "1w")

    # Assert
    assert out["date"].dt.day_of_week.tolist() == [0, 0]
    assert out["date"].iloc[0] == pd.Timestamp(datetime(2024, 1, 1, tzinfo=UTC))
    assert out["volume"].tolist() == [sum(range(1, 6)), sum(range(6, 11))]


def test_resample_when_generated_series_then_matches_pandas_and_stays_valid() -> None:
    # Arrange
    frame = generate_pair(
        "BTC/USDT", PairProfile(start_price=100.0, base_volume=1e4), "5m", START, START + timedelta(days=5), seed=1
    )

    # Act
    out = resample(frame, "4h")

    # Assert
    expected = frame.resample("4h", on="date").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    np.testing.assert_allclose(out[["open", "high", "low", "close", "volume"]].to_numpy(), expected.to_numpy())
    assert len(out) == 30


@pytest.mark.parametrize(("source", "target"), [("3m", "5m"), ("1h", "5m"), ("3d", "1w"), ("2h", "3m")])
def test_resample_when_target_not_multiple_of_source_then_invalid_input(source: str, target: str) -> None:
    # Arrange
    step = timeframe_to_seconds(source)
    base = int(START.timestamp())
    frame = candles([base + step * i for i in range(4)], [1.0, 2.0, 3.0, 4.0])

    # Act / Assert
    with pytest.raises(InvalidInput, match=f"not a whole multiple of {source}"):
        resample(frame, target)


def test_infer_timeframe_when_irregular_gap_then_invalid_input() -> None:
    # Arrange: 7 minutes apart
    base = int(START.timestamp())
    frame = candles([base, base + 420], [1.0, 2.0])

    # Act / Assert
    with pytest.raises(InvalidInput, match="420 s"):
        infer_timeframe(frame)
    assert infer_timeframe(frame.iloc[:1]) is None
