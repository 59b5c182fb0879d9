"""Tests of execdesk.data.candles: validation of candle frames and their array form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from execdesk.data import OHLCV, CandleError, to_arrays, validate_candles
from execdesk.data.candles import dates_from_epoch_seconds
from execdesk.errors import InvalidInput

PAIR = "ETH/BTC"
BASE = int(datetime(2018, 1, 10, 4, 55, tzinfo=UTC).timestamp())


def good_frame(n: int = 6) -> pd.DataFrame:
    """Valid 5m candles from 2018-01-10 04:55 UTC (the start of Freqtrade's ETH/BTC test data)."""
    close = 0.1 + 0.001 * np.arange(n)
    open_ = np.r_[0.0995, close[:-1]]
    return pd.DataFrame(
        {
            "date": dates_from_epoch_seconds(BASE + 300 * np.arange(n, dtype=np.int64)),
            "open": open_,
            "high": np.maximum(open_, close) + 0.0005,
            "low": np.minimum(open_, close) - 0.0005,
            "close": close,
            "volume": np.full(n, 1000.0),
        }
    )


def at(row: int) -> str:
    return datetime.fromtimestamp(BASE + 300 * row, UTC).isoformat()


def set_value(column: str, row: int, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df

    return mutate


def test_validate_candles_when_frame_is_good_then_passes() -> None:
    # Act / Assert (no exception)
    validate_candles(good_frame(), PAIR)


def test_validate_candles_when_high_below_low_then_message_names_pair_time_and_values() -> None:
    # Arrange: the candle at 05:00 has high 0.09 < low 0.1
    frame = good_frame()
    frame.loc[1, ["open", "high", "low", "close"]] = [0.095, 0.09, 0.1, 0.095]

    # Act
    with pytest.raises(CandleError) as caught:
        validate_candles(frame, PAIR)

    # Assert
    assert str(caught.value) == "ETH/BTC @ 2018-01-10T05:00:00+00:00: high 0.09 < low 0.1"
    assert caught.value.pair == PAIR
    assert caught.value.time == "2018-01-10T05:00:00+00:00"
    assert caught.value.problem == "high 0.09 < low 0.1"
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    ("mutate", "row", "problem"),
    [
        (set_value("open", 2, np.nan), 2, "open is nan"),
        (set_value("high", 3, np.inf), 3, "high is inf"),
        (set_value("low", 1, np.nan), 1, "low is nan"),
        (set_value("close", 4, np.nan), 4, "close is nan"),
        (set_value("volume", 5, np.nan), 5, "volume is nan"),
        (lambda df: df.assign(low=df["low"].where(df.index != 2, 0.0)), 2, "low 0.0 is not positive"),
        (
            lambda df: df.assign(**{c: df[c].where(df.index != 3, -1.0) for c in ("open", "low", "close")}),
            3,
            "open -1.0 is not positive",
        ),
        (set_value("volume", 4, -2.5), 4, "volume -2.5 is negative"),
        (set_value("open", 2, 0.2), 2, "open 0.2 outside [low "),
        (set_value("close", 3, 0.001), 3, "close 0.001 outside [low "),
        (
            lambda df: df.assign(date=df["date"].where(df.index != 4, df["date"].iloc[2])),
            4,
            "duplicate timestamp (also at row 2)",
        ),
        (
            lambda df: df.assign(date=df["date"].where(df.index != 3, df["date"].iloc[1] - pd.Timedelta("1min"))),
            3,
            "timestamps out of order: follows 2018-01-10T05:05:00+00:00",
        ),
    ],
    ids=[
        "nan-open", "inf-high", "nan-low", "nan-close", "nan-volume", "zero-price", "negative-price",
        "negative-volume", "open-outside", "close-outside", "duplicate", "unordered",
    ],
)  # fmt: skip
def test_validate_candles_when_candle_is_bad_then_candle_error_names_pair_time_and_problem(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], row: int, problem: str
) -> None:
    # Arrange
    frame = mutate(good_frame())

    # Act
    with pytest.raises(CandleError) as caught:
        validate_candles(frame, PAIR)

    # Assert
    error = caught.value
    assert error.pair == PAIR
    assert error.time == pd.Timestamp(frame["date"].iloc[row]).isoformat()
    assert error.problem.startswith(problem)
    assert str(error).startswith(f"{PAIR} @ {error.time}: ")


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda df: df.drop(columns=["volume", "low"]), "missing columns: low, volume"),
        (lambda df: df.iloc[:0], "no candles"),
        (lambda df: df.assign(date=df["date"].dt.tz_localize(None)), "timezone-naive"),
        (lambda df: df.assign(date=df["date"].dt.tz_convert("Europe/Berlin")), "time zone Europe/Berlin"),
        (lambda df: df.assign(date=df["date"].astype(str)), "date column has dtype"),
        (lambda df: df.assign(date=df["date"].where(df.index != 2, pd.NaT)), "row 2: date is missing (NaT)"),
        (lambda df: df.assign(close=df["close"].astype(str)), "column close has dtype"),
    ],
    ids=["missing-columns", "empty", "naive", "non-utc", "string-dates", "nat", "string-prices"],
)
def test_validate_candles_when_frame_is_malformed_then_candle_error_names_pair_without_time(
    mutate: Callable[[pd.DataFrame], pd.DataFrame], problem: str
) -> None:
    # Arrange
    frame = mutate(good_frame())

    # Act
    with pytest.raises(CandleError) as caught:
        validate_candles(frame, PAIR)

    # Assert
    assert caught.value.pair == PAIR
    assert caught.value.time is None
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"{PAIR}: ")


def test_validate_candles_when_not_a_dataframe_then_candle_error() -> None:
    # Act / Assert
    with pytest.raises(CandleError, match="expected a pandas DataFrame, got list"):
        validate_candles([1, 2, 3], PAIR)


def test_validate_candles_when_several_bad_candles_then_earliest_is_named() -> None:
    # Arrange: negative volume at row 4, NaN close at row 1 (a later check, an earlier candle)
    frame = good_frame()
    frame.loc[4, "volume"] = -1.0
    frame.loc[1, "close"] = np.nan

    # Act
    with pytest.raises(CandleError) as caught:
        validate_candles(frame, PAIR)

    # Assert
    assert caught.value.time == at(1)
    assert caught.value.problem == "close is nan"


def test_validate_candles_when_million_rows_and_the_last_bad_then_it_is_found() -> None:
    # Arrange
    n = 1_000_000
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0.0, 0.001, n)))
    frame = pd.DataFrame(
        {
            "date": dates_from_epoch_seconds(60 * np.arange(n, dtype=np.int64)),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": np.ones(n),
        }
    )
    frame.loc[n - 1, "volume"] = -1.0

    # Act (its speed: benchmarks/bench_hotpaths.py)
    with pytest.raises(CandleError) as caught:
        validate_candles(frame, PAIR)

    # Assert
    assert caught.value.problem == "volume -1.0 is negative"
    assert caught.value.time == frame["date"].iloc[n - 1].isoformat()


def test_to_arrays_when_frame_is_good_then_contiguous_readonly_arrays_of_right_dtypes() -> None:
    # Arrange
    frame = good_frame()

    # Act
    arrays = to_arrays(frame, PAIR)

    # Assert
    assert isinstance(arrays, OHLCV)
    assert len(arrays) == len(frame)
    assert arrays.time.dtype == np.int64
    np.testing.assert_array_equal(arrays.time, BASE + 300 * np.arange(len(frame)))
    for name in ("open", "high", "low", "close", "volume"):
        array = getattr(arrays, name)
        assert array.dtype == np.float64
        assert array.flags.c_contiguous
        assert not array.flags.writeable
        np.testing.assert_array_equal(array, frame[name].to_numpy())


def test_to_arrays_when_frame_edited_later_then_arrays_unchanged() -> None:
    # Arrange
    frame = good_frame()
    arrays = to_arrays(frame, PAIR)
    before = arrays.close.copy()

    # Act
    frame.loc[0, "close"] = 0.1004

    # Assert
    np.testing.assert_array_equal(arrays.close, before)


def test_to_arrays_when_frame_is_bad_then_candle_error() -> None:
    # Arrange
    frame = good_frame()
    frame.loc[2, "high"] = 0.01

    # Act / Assert
    with pytest.raises(CandleError, match=r"ETH/BTC @ 2018-01-10T05:05:00\+00:00: high 0.01 < low"):
        to_arrays(frame, PAIR)


def test_ohlcv_when_lengths_differ_then_invalid_input() -> None:
    # Arrange
    ones = np.ones(3)

    # Act / Assert
    with pytest.raises(InvalidInput, match=r"OHLCV\.volume has 2 values; time has 3"):
        OHLCV(time=np.arange(3, dtype=np.int64), open=ones, high=ones, low=ones, close=ones, volume=ones[:2])
