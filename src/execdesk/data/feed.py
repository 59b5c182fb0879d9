"""The market as the desk's loop sees it: every pair's base candles on one global time grid.

The grid is the union of all pairs' candle open times at the feed's base timeframe. Per pair it
holds the bar values where the pair has a bar, the last close carried forward where it has none
(for marking positions to market), and for every grid index the next index at which the pair has a
bar (where a resting market order fills). Strategies on a coarser timeframe see their own candles,
resampled from the base ones, mapped to the grid index at which each of their candles closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from execdesk.data.candles import OHLCV, fill_gaps, to_arrays
from execdesk.data.timeframes import resample, timeframe_to_seconds
from execdesk.errors import InvalidInput

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class PairTrack:
    """One pair on the global grid."""

    pair: str
    index: int
    open: FloatArray
    close: FloatArray  # carried forward over the pair's gaps
    has_bar: BoolArray
    next_bar: IntArray  # next_bar[g]: first grid index > g where the pair has a bar (n if none)
    frame: pd.DataFrame  # the pair's own base candles, as loaded
    high: FloatArray  # NaN where the pair has no bar (as open)
    low: FloatArray
    volume: FloatArray  # 0 where the pair has no bar


@dataclass(frozen=True, slots=True, eq=False)
class LaneCandles:
    """A strategy's candles for one pair, and the grid index at which each of them closes."""

    ohlcv: OHLCV
    close_index: IntArray
    timeframe_seconds: int


class MarketView:
    """All pairs on the global grid (see module docstring)."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], timeframe: str) -> None:
        if not frames:
            raise InvalidInput("market data: no pairs given")
        self.timeframe = timeframe
        self.tf_seconds = timeframe_to_seconds(timeframe)
        arrays = {pair: to_arrays(df, pair) for pair, df in frames.items()}
        self.time: IntArray = np.unique(np.concatenate([a.time for a in arrays.values()]))
        n = len(self.time)
        self.n = n
        self.pairs: dict[str, PairTrack] = {}
        for i, (pair, a) in enumerate(sorted(arrays.items())):
            pos = np.searchsorted(self.time, a.time)
            has_bar = np.zeros(n, dtype=np.bool_)
            has_bar[pos] = True
            open_, high, low = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
            open_[pos], high[pos], low[pos] = a.open, a.high, a.low
            volume = np.zeros(n)
            volume[pos] = a.volume
            # carry the last close forward; before the pair's first bar, use its first open
            last = np.maximum.accumulate(np.where(has_bar, np.arange(n), -1))
            close = np.where(last >= 0, a.close[np.searchsorted(pos, np.maximum(last, 0))], a.open[0])
            bar_positions = np.flatnonzero(has_bar)
            nxt = np.searchsorted(bar_positions, np.arange(n), side="right")
            next_bar = np.where(nxt < len(bar_positions), bar_positions[np.minimum(nxt, len(bar_positions) - 1)], n)
            self.pairs[pair] = PairTrack(pair, i, open_, close.astype(np.float64), has_bar,
                                         next_bar.astype(np.int64), frames[pair], high, low, volume)
        self.close_matrix: FloatArray = np.vstack([t.close for t in self.pairs.values()])

    def close_time(self, g: int) -> int:
        """When grid bar ``g`` closes: the time the desk acts on it."""
        return int(self.time[g]) + self.tf_seconds

    def bar_of(self, t: int) -> int | None:
        """The grid bar that closes at ``t`` (None if none does)."""
        g = int(np.searchsorted(self.time, t - self.tf_seconds))
        return g if g < self.n and self.close_time(g) == t else None

    def closes(self, g: int) -> dict[str, float]:
        """Every pair's close at bar ``g``."""
        return {p: float(track.close[g]) for p, track in self.pairs.items()} if self.n else {}

    def track(self, pair: str) -> PairTrack:
        try:
            return self.pairs[pair]
        except KeyError:
            raise InvalidInput(f"market data has no pair {pair!r}; it has {', '.join(self.pairs)}") from None

    def lane_candles(self, pair: str, timeframe: str) -> LaneCandles:
        """The pair's candles at a strategy's ``timeframe`` (a whole multiple of the base one)."""
        track = self.track(pair)
        tf = timeframe_to_seconds(timeframe)
        if tf % self.tf_seconds:
            raise InvalidInput(f"strategy timeframe {timeframe} is not a whole multiple of the market data's "
                               f"{self.timeframe}")
        frame = track.frame if tf == self.tf_seconds else resample(track.frame, timeframe,
                                                                     from_tf=self.timeframe, pair=pair)
        # missing candles are filled as Freqtrade's loader fills them, so the strategy sees what it
        # would see in Freqtrade (and its exit rules count candles held the same way)
        ohlcv = fill_gaps(to_arrays(frame, pair), tf, pair)
        # a lane candle closes with the last base bar that starts before its own close; a trailing
        # candle whose last base bar is not here yet is incomplete and is not acted on
        last_base_open = ohlcv.time + tf - self.tf_seconds
        complete = int(np.searchsorted(last_base_open, self.time[-1], side="right"))
        if complete < len(ohlcv):
            ohlcv = OHLCV(*(getattr(ohlcv, name)[:complete] for name in ("time", "open", "high", "low", "close",
                                                                        "volume")))
            last_base_open = last_base_open[:complete]
        close_index = np.searchsorted(self.time, last_base_open, side="right") - 1
        return LaneCandles(ohlcv, close_index.astype(np.int64), tf)
