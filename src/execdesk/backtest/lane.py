"""One strategy on one pair: its signals and its exit rules, on its own candles.

A lane answers two questions for the desk's loop, both as grid indices so the loop can skip the
bars where nothing can happen:

* flat: at which bar does the next entry signal fire (:meth:`Lane.next_entry`)?
* in a position: at which bar does the first exit condition hold (:meth:`Lane.first_exit`)? The
  conditions, checked on each candle from the one the position was filled in: stoploss touched
  (low/high against the stop), trailing stop touched, the ROI table's target reached for the time
  held, or an exit signal at the candle's close. The loop then sends a market exit that fills at the
  next bar's open.

Signals are computed once over all candles at hand: TA-Lib's indicators and the expression language
are causal (a value at candle *i* uses candles <= *i* only), so this is the same as evaluating bar by
bar, and it is what makes a replay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from execdesk.data.feed import LaneCandles
from execdesk.domain.types import Direction, IntentReason
from execdesk.strategy import StrategyBundle, compute_signals

IntArray = npt.NDArray[np.int64]

#: candles the first vectorised exit scan looks at; each further window doubles, up to SCAN_MAX
SCAN_FIRST = 64
SCAN_MAX = 8192


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """Where and why a position exits: decided at the close of grid bar ``g``."""

    g: int
    reason: IntentReason
    candle: int


class Lane:
    """A deployment's strategy on one pair (see module docstring)."""

    def __init__(self, deployment_id: str, pair: str, bundle: StrategyBundle, candles: LaneCandles) -> None:
        self.deployment_id = deployment_id
        self.pair = pair
        self.bundle = bundle
        self.candles = candles
        o = candles.ohlcv
        self.signals = compute_signals(bundle, {"open": o.open, "high": o.high, "low": o.low, "close": o.close,
                                                "volume": o.volume})
        long_at = self.signals.entry_long & ~self.signals.entry_short
        short_at = self.signals.entry_short & ~self.signals.entry_long
        self._entry_g = candles.close_index[np.flatnonzero(long_at | short_at)]
        self._entry_dir = np.where(long_at, 1, -1)[np.flatnonzero(long_at | short_at)]
        self.stoploss = float(bundle.stoploss)
        roi = sorted((int(k), float(v)) for k, v in bundle.minimal_roi.items())
        self._roi_minutes = np.array([k for k, _ in roi], dtype=np.float64)
        self._roi_values = np.array([v for _, v in roi], dtype=np.float64)
        self.trailing = bundle.trailing_stop

    @property
    def evaluations(self) -> int:
        """Bar-strategy evaluations this lane stands for: one per candle."""
        return len(self.candles.ohlcv)

    def evaluations_from(self, g: int) -> int:
        """Evaluations of the candles closing at grid index ``g`` or later."""
        return self.evaluations - int(np.searchsorted(self.candles.close_index, g))

    # ---------------------------------------------------------------- entries
    def next_entry(self, after_g: int) -> tuple[int, Direction] | None:
        """The first entry signal closing at a grid index > ``after_g``."""
        i = int(np.searchsorted(self._entry_g, after_g, side="right"))
        if i >= len(self._entry_g):
            return None
        return int(self._entry_g[i]), Direction.LONG if self._entry_dir[i] > 0 else Direction.SHORT

    def candle_at_close(self, g: int) -> int | None:
        """The lane candle that closes at grid index ``g``, if one does."""
        k = int(np.searchsorted(self.candles.close_index, g))
        return k if k < len(self.candles.close_index) and self.candles.close_index[k] == g else None

    # ---------------------------------------------------------------- exits
    def first_exit(self, direction: Direction, entry_time: int, entry_price: float, after_g: int) -> ExitPlan | None:
        """The first candle closing after grid index ``after_g`` at which the position must exit.

        The position was filled at ``entry_time`` (a bar's open) at ``entry_price``. Conditions are
        evaluated from the candle containing the fill; the trailing stop follows the best price seen
        on the candles before the one being checked.
        """
        o = self.candles.ohlcv
        t = o.time
        k_entry = max(int(np.searchsorted(t, entry_time, side="right")) - 1, 0)
        k_from = max(k_entry, int(np.searchsorted(self.candles.close_index, after_g, side="right")))
        n = len(t)
        is_long = direction is Direction.LONG
        exit_sig = self.signals.exit_long if is_long else self.signals.exit_short
        stop = entry_price * (1 + self.stoploss) if is_long else entry_price * (1 - self.stoploss)
        start, chunk = k_from, SCAN_FIRST
        while start < n:
            end = min(n, start + chunk)
            chunk = min(chunk * 2, SCAN_MAX)
            hi, lo = o.high[start:end], o.low[start:end]
            held_min = (t[start:end] + self.candles.timeframe_seconds - entry_time) / 60.0
            roi_idx = np.searchsorted(self._roi_minutes, held_min, side="right") - 1
            roi = np.where(roi_idx >= 0, self._roi_values[np.maximum(roi_idx, 0)], np.inf)
            if is_long:
                stop_hit = lo <= stop
                roi_hit = hi >= entry_price * (1 + roi)
            else:
                stop_hit = hi >= stop
                roi_hit = lo <= entry_price * (1 - roi)
            trail_hit = self._trailing_hits(is_long, entry_price, k_entry, start, end)
            hits = stop_hit | trail_hit | roi_hit | exit_sig[start:end]
            first = int(np.argmax(hits)) if hits.any() else -1
            if first >= 0:
                reason = (IntentReason.STOPLOSS if stop_hit[first] else IntentReason.TRAILING_STOP
                          if trail_hit[first] else IntentReason.ROI if roi_hit[first] else IntentReason.EXIT_SIGNAL)
                k = start + first
                return ExitPlan(int(self.candles.close_index[k]), reason, k)
            start = end
        return None

    def _trailing_hits(self, is_long: bool, entry_price: float, k_entry: int, start: int, end: int
                       ) -> npt.NDArray[np.bool_]:
        ts = self.trailing
        if ts is None:
            return np.zeros(end - start, dtype=np.bool_)
        o = self.candles.ohlcv
        # best price on the candles before each checked candle, from the entry candle on
        span = o.high[k_entry:end] if is_long else o.low[k_entry:end]
        best_run = np.maximum.accumulate(span) if is_long else np.minimum.accumulate(span)
        best = np.concatenate(([entry_price], best_run[:-1]))[start - k_entry:]
        best = np.maximum(best, entry_price) if is_long else np.minimum(best, entry_price)
        gain = best / entry_price - 1 if is_long else 1 - best / entry_price
        armed = gain >= float(ts.offset) if ts.only_offset_is_reached else gain > 0
        if is_long:
            level = best * (1 - float(ts.positive))
            return armed & (o.low[start:end] <= level)
        level = best * (1 + float(ts.positive))
        return armed & (o.high[start:end] >= level)
