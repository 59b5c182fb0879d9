"""Candle timeframes: names, lengths, bucket alignment and resampling.

The timeframe names and the bucket alignment follow Freqtrade (which follows ccxt): a candle of
timeframe ``tf`` opens at an epoch multiple of ``tf`` seconds, except weekly candles, which open on
Mondays 00:00 UTC (the Unix epoch was a Thursday, so plain epoch multiples of a week would start on
Thursdays, unlike every exchange's weekly candles).
"""

from __future__ import annotations

from typing import Final, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

from execdesk.data.candles import PRICE_COLUMNS, dates_from_epoch_seconds, epoch_seconds, validate_candles
from execdesk.errors import InvalidInput

_MINUTE: Final = 60
_HOUR: Final = 3600
_DAY: Final = 86400

# Freqtrade's usual set, ascending. Month candles ("1M") are left out on purpose: they have no
# fixed length, so nothing in the desk that works in seconds could handle them.
TIMEFRAMES: Final[tuple[str, ...]] = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
)  # fmt: skip

_SECONDS: Final[dict[str, int]] = {
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": _HOUR,
    "2h": 2 * _HOUR,
    "4h": 4 * _HOUR,
    "6h": 6 * _HOUR,
    "8h": 8 * _HOUR,
    "12h": 12 * _HOUR,
    "1d": _DAY,
    "3d": 3 * _DAY,
    "1w": 7 * _DAY,
}

# Weekly buckets start on Monday 1970-01-05, four days after the epoch (as in ccxt.round_timeframe).
_WEEK_ORIGIN: Final = 4 * _DAY


def timeframe_to_seconds(tf: str) -> int:
    """Length of one candle of timeframe ``tf`` in seconds.

    Raises :class:`InvalidInput` naming the bad value and the allowed set when ``tf`` is not one of
    :data:`TIMEFRAMES`.
    """
    try:
        return _SECONDS[tf]
    except (KeyError, TypeError):
        raise InvalidInput(f"unknown timeframe {tf!r}; expected one of {', '.join(TIMEFRAMES)}") from None


def timeframe_origin(tf: str) -> int:
    """Epoch second that bucket boundaries of ``tf`` are counted from (0, or a Monday for ``1w``)."""
    timeframe_to_seconds(tf)
    return _WEEK_ORIGIN if tf == "1w" else 0


@overload
def floor_epoch(seconds: int, tf: str) -> int: ...
@overload
def floor_epoch(seconds: npt.NDArray[np.int64], tf: str) -> npt.NDArray[np.int64]: ...
def floor_epoch(seconds: int | npt.NDArray[np.int64], tf: str) -> int | npt.NDArray[np.int64]:
    """Open time (epoch seconds) of the ``tf`` candle containing each of ``seconds``.

    Floor division keeps this right for times before 1970 too.
    """
    step = timeframe_to_seconds(tf)
    origin = timeframe_origin(tf)
    if isinstance(seconds, np.ndarray):
        return ((seconds - origin) // step) * step + origin
    return ((int(seconds) - origin) // step) * step + origin


def ceil_epoch(seconds: int, tf: str) -> int:
    """Open time (epoch seconds) of the first ``tf`` candle opening at or after ``seconds``."""
    floor = floor_epoch(seconds, tf)
    return floor if floor == seconds else floor + timeframe_to_seconds(tf)


def infer_timeframe(df: pd.DataFrame) -> str | None:
    """The timeframe whose length equals the smallest gap between consecutive candles.

    Returns None for frames of fewer than two candles. Raises :class:`InvalidInput` when the smallest
    gap is not the length of any known timeframe (irregular data).
    """
    if len(df) < 2:
        return None
    gaps = np.diff(epoch_seconds(df["date"]))
    smallest = int(gaps.min())
    for name, length in _SECONDS.items():
        if length == smallest:
            return name
    raise InvalidInput(
        f"cannot infer the timeframe: the smallest gap between candles is {smallest} s, "
        f"which is not the length of any of {', '.join(TIMEFRAMES)}"
    )


def resample(df: pd.DataFrame, to_tf: str, *, from_tf: str | None = None, pair: str = "candles") -> pd.DataFrame:
    """Aggregate candles of a finer timeframe into ``to_tf`` candles.

    open is the first open, high the max, low the min, close the last close and volume the sum of
    the candles falling in each bucket. Buckets are aligned like Freqtrade's (epoch multiples of the
    target length; Mondays for ``1w``) and labelled by their open time.

    Every bucket that holds at least one candle is kept, including a trailing (or leading) bucket
    that is only partly covered by the input: dropping an incomplete last candle is the caller's
    decision (Freqtrade makes it with ``drop_incomplete``), not something a resampler should guess.
    Buckets with no candles at all produce no row (no made-up flat candles).

    ``from_tf`` is the input's timeframe; when None it is inferred from the smallest gap between
    candles (see :func:`infer_timeframe`). ``pair`` only labels validation errors. Raises
    :class:`InvalidInput` when ``to_tf`` is not a whole multiple of the input timeframe, and a
    :class:`~execdesk.data.candles.CandleError` when the input is not a valid candle frame.
    """
    validate_candles(df, pair)
    target = timeframe_to_seconds(to_tf)
    source_tf = from_tf if from_tf is not None else infer_timeframe(df)
    if source_tf is not None:
        source = timeframe_to_seconds(source_tf)
        # Every known timeframe that divides a week also divides a day, so a whole multiple is
        # also enough for the Monday-aligned weekly buckets: no input candle straddles two buckets.
        if target % source != 0:
            raise InvalidInput(
                f"cannot resample {pair} from {source_tf} to {to_tf}: {to_tf} is not a whole multiple of {source_tf}"
            )

    times = epoch_seconds(df["date"])
    buckets = floor_epoch(times, to_tf)
    # Input is sorted (validated), so bucket labels are non-decreasing and each bucket is one run.
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(buckets)] - 1
    columns = {name: df[name].to_numpy(dtype=np.float64) for name in (*PRICE_COLUMNS, "volume")}
    out = pd.DataFrame(
        {
            "date": dates_from_epoch_seconds(buckets[starts]),
            "open": columns["open"][starts],
            "high": np.maximum.reduceat(columns["high"], starts),
            "low": np.minimum.reduceat(columns["low"], starts),
            "close": columns["close"][ends],
            "volume": np.add.reduceat(columns["volume"], starts),
        }
    )
    return out
