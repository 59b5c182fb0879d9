"""Candle frames: the one in-memory layout of market data, its validation, and its array form.

A candle frame is a :class:`pandas.DataFrame` with the columns ``date`` (tz-aware UTC datetimes,
the candle *open* time), ``open``, ``high``, ``low``, ``close`` and ``volume`` (float64), sorted by
``date`` ascending with no duplicates. Frames made by this package carry ``datetime64[ms, UTC]``
dates, the unit Freqtrade uses once it has loaded data; :func:`validate_candles` accepts any unit.

Validation is vectorised: every check is a whole-column numpy operation, so a million candles take
tens of milliseconds. When several candles are wrong, the error names the earliest one (by row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from execdesk.errors import InvalidInput

CANDLE_COLUMNS: Final[tuple[str, ...]] = ("date", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: Final[tuple[str, ...]] = ("open", "high", "low", "close")
VALUE_COLUMNS: Final[tuple[str, ...]] = (*PRICE_COLUMNS, "volume")

# Names pandas / zoneinfo / pytz / datetime give the UTC zone. Zones that merely *happen* to have
# offset 0 in winter (Europe/London) are not UTC and are refused.
_UTC_NAMES: Final = frozenset({"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Zulu", "Etc/Zulu", "Universal", "Z"})

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CandleError(InvalidInput):
    """A candle frame is malformed.

    ``pair`` names the data set, ``time`` is the open time (ISO 8601) of the first offending candle,
    or None when the problem concerns the whole frame (missing column, wrong dtype, no rows), and
    ``problem`` says what is wrong with the values involved, e.g.
    ``ETH/BTC @ 2018-01-10T05:00:00+00:00: high 0.09 < low 0.1``.
    """

    def __init__(self, pair: str, time: str | None, problem: str) -> None:
        self.pair = pair
        self.time = time
        self.problem = problem
        where = f"{pair} @ {time}" if time is not None else pair
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True, eq=False)
class OHLCV:
    """Candles as plain numpy arrays, for the hot loop.

    ``time`` holds candle open times as int64 epoch seconds; the other fields are float64.
    All arrays are C-contiguous, of equal length and read-only (the same arrays may be shared by
    several consumers, so nobody may write into them).
    """

    time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        n = len(self.time)
        for name in VALUE_COLUMNS:
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"OHLCV.{name} has {len(getattr(self, name))} values; time has {n}")

    def __len__(self) -> int:
        return len(self.time)


def _fmt(value: float | np.floating) -> str:
    # repr of a Python float is the shortest exact form: 0.09, not 0.09000000000000001.
    return repr(float(value))


def _iso(stamp: object) -> str:
    return str(pd.Timestamp(stamp).isoformat())


def _check_frame(df: object, pair: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise CandleError(pair, None, f"expected a pandas DataFrame, got {type(df).__name__}")
    missing = [name for name in CANDLE_COLUMNS if name not in df.columns]
    if missing:
        raise CandleError(pair, None, f"missing columns: {', '.join(missing)}")
    if len(df) == 0:
        raise CandleError(pair, None, "no candles (the frame is empty)")
    return df


def _check_dates(dates: pd.Series, pair: str) -> None:
    dtype = dates.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        if str(dtype.tz) not in _UTC_NAMES:
            raise CandleError(pair, None, f"dates are in time zone {dtype.tz}; expected UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        raise CandleError(pair, None, f"dates are timezone-naive ({dtype}); expected tz-aware UTC datetimes")
    else:
        raise CandleError(pair, None, f"date column has dtype {dtype}; expected tz-aware UTC datetimes")
    missing = dates.isna().to_numpy()
    if missing.any():
        row = int(np.argmax(missing))
        raise CandleError(pair, None, f"row {row}: date is missing (NaT)")


def _float_columns(df: pd.DataFrame, pair: str) -> dict[str, FloatArray]:
    columns: dict[str, FloatArray] = {}
    for name in VALUE_COLUMNS:
        dtype = df[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise CandleError(pair, None, f"column {name} has dtype {dtype}; expected float64")
        columns[name] = df[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return columns


def validate_candles(df: pd.DataFrame, pair: str) -> None:
    """Check that ``df`` is a well-formed candle frame; raise :class:`CandleError` if not.

    Frame-level checks (in this order): it is a DataFrame, no column is missing, it has rows, dates
    are tz-aware UTC and none is NaT, value columns are numeric. Candle-level checks: every price and
    volume is a finite number, prices are positive, volume is not negative, high >= low, open and
    close lie within [low, high], no timestamp repeats, timestamps ascend. The error names ``pair``,
    the open time of the earliest offending candle and the values involved.
    """
    frame = _check_frame(df, pair)
    dates = frame["date"]
    _check_dates(dates, pair)
    v = _float_columns(frame, pair)
    o, h, lo, c, vol = v["open"], v["high"], v["low"], v["close"], v["volume"]
    stamps = dates.array.asi8  # int64 in the column's own unit: fine for equality and order
    n = len(stamps)

    # Each check: (mask of offending rows, message for row i). NaN compares False everywhere, so a
    # NaN row only trips the finiteness check, which comes first.
    checks: list[tuple[npt.NDArray[np.bool_], Callable[[int], str]]] = []

    def add(mask: npt.NDArray[np.bool_], describe: Callable[[int], str]) -> None:
        checks.append((mask, describe))

    def not_finite(name: str, col: FloatArray) -> Callable[[int], str]:
        return lambda i: f"{name} is {_fmt(col[i])}"

    def not_positive(name: str, col: FloatArray) -> Callable[[int], str]:
        return lambda i: f"{name} {_fmt(col[i])} is not positive"

    def outside(name: str, col: FloatArray) -> Callable[[int], str]:
        return lambda i: f"{name} {_fmt(col[i])} outside [low {_fmt(lo[i])}, high {_fmt(h[i])}]"

    for name in VALUE_COLUMNS:
        add(~np.isfinite(v[name]), not_finite(name, v[name]))
    for name in PRICE_COLUMNS:
        add(v[name] <= 0.0, not_positive(name, v[name]))
    add(vol < 0.0, lambda i: f"volume {_fmt(vol[i])} is negative")
    add(h < lo, lambda i: f"high {_fmt(h[i])} < low {_fmt(lo[i])}")
    add((o < lo) | (o > h), outside("open", o))
    add((c < lo) | (c > h), outside("close", c))
    add(
        dates.duplicated().to_numpy(),
        lambda i: f"duplicate timestamp (also at row {int(np.argmax(stamps == stamps[i]))})",
    )
    backwards = np.zeros(n, dtype=bool)
    backwards[1:] = stamps[1:] < stamps[:-1]
    add(backwards, lambda i: f"timestamps out of order: follows {_iso(dates.iloc[i - 1])}")

    first_row = n
    message: Callable[[int], str] | None = None
    for mask, describe in checks:
        if mask.any():
            row = int(np.argmax(mask))
            # Strictly earlier only: on a tie the earlier check in the list (the more basic problem) wins.
            if row < first_row:
                first_row, message = row, describe
    if message is not None:
        raise CandleError(pair, _iso(dates.iloc[first_row]), message(first_row))


def epoch_seconds(dates: pd.Series) -> IntArray:
    """Int64 epoch seconds of a tz-aware datetime column (sub-second parts are floored)."""
    return np.ascontiguousarray(dates.to_numpy(dtype="datetime64[s]").astype(np.int64))


def dates_from_epoch_seconds(seconds: IntArray) -> pd.DatetimeIndex:
    """``datetime64[ms, UTC]`` dates for int64 epoch seconds (the unit Freqtrade loads data in)."""
    millis = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype("datetime64[ms]")
    return pd.DatetimeIndex(millis).tz_localize("UTC")


def to_arrays(df: pd.DataFrame, pair: str = "candles") -> OHLCV:
    """Validate ``df`` (see :func:`validate_candles`; ``pair`` labels errors) and return its arrays.

    Validation costs a few milliseconds per 100k candles, once per series; the arrays it protects
    are then read millions of times by code that does no checks of its own.
    """
    validate_candles(df, pair)
    # Copies, not views: a later in-place edit of the frame must not reach the arrays.
    arrays = {name: np.array(df[name].to_numpy(dtype=np.float64), order="C") for name in VALUE_COLUMNS}
    time = epoch_seconds(df["date"])
    for array in (time, *arrays.values()):
        array.setflags(write=False)
    return OHLCV(time=time, **arrays)


def fill_gaps(ohlcv: OHLCV, tf_seconds: int, pair: str = "candles") -> OHLCV:
    """``ohlcv`` with missing candles filled as Freqtrade's loader fills them (flat candles at the
    previous close, volume 0); the same object when nothing is missing."""
    time = ohlcv.time
    if len(time) < 2 or bool(np.all(np.diff(time) == tf_seconds)):
        return ohlcv
    rel = time - time[0]
    if np.any(rel % tf_seconds):
        raise InvalidInput(f"{pair}: candle times are not spaced in whole {tf_seconds} s steps")
    slot = rel // tf_seconds
    n = int(slot[-1]) + 1
    have = np.zeros(n, dtype=np.bool_)
    have[slot] = True
    close = np.full(n, np.nan)
    close[slot] = ohlcv.close
    # forward fill: index of the last real candle at or before each slot
    last = np.maximum.accumulate(np.where(have, np.arange(n), 0))
    close = close[last]
    columns: dict[str, FloatArray] = {"close": close}
    for name in ("open", "high", "low"):
        col = close.copy()
        col[slot] = getattr(ohlcv, name)
        columns[name] = col
    volume = np.zeros(n)
    volume[slot] = ohlcv.volume
    columns["volume"] = volume
    return OHLCV(time=time[0] + np.arange(n, dtype=np.int64) * tf_seconds, **columns)
