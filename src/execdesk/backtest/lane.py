"""One strategy on one pair: its signals and its exit rules, on its own candles.

A lane answers two questions for the desk's loop, both as grid indices so the loop can skip the
bars where nothing can happen:

* flat: at which bar does the next entry signal fire (:meth:`Lane.next_entry`)?
* in a position: at which bar must the position exit, why, and at what price would the backtest
  have filled the exit (:meth:`Lane.first_exit`)? The exit rules are the native backtester's, the
  very same compiled code (:func:`execdesk.backtest._kernel.scan_exit`, Freqtrade's rules: the
  docstring of :mod:`execdesk.backtest.engine`, rule 8): on each candle from the one the position
  was filled in, the trailing stop follows the candle's high (low), then the first of exit signal,
  stoploss, ROI, trailing stop that applies wins. Prices are not rounded to a price step (the desk's
  fills are not on Freqtrade's price grid).

Timing: the desk decides at a candle's close and its market orders fill at the next bar's open. An
exit signal of candle *k - 1* is what the backtest fills at candle *k*'s open: the lane reports it
as decided at the close of *k - 1*. A stop, ROI or trailing-stop exit happens inside candle *k* in
the backtest: the lane reports it at the close of *k* (the desk's market order then fills at the
next open) with the backtest's rate, so the desk can measure its slippage against the backtest. A
strategy whose stoploss rests at the venue (its bundle's ``order_types``) asks :meth:`Lane.stop_level`
where the stop is after each candle instead: the venue fills it inside the bar that trades through it.

Signals are computed once over all candles at hand: TA-Lib's indicators and the expression language
are causal (a value at candle *i* uses candles <= *i* only), so this is the same as evaluating bar by
bar, and it is what makes a replay fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from execdesk.backtest import _kernel
from execdesk.backtest.engine import BacktestConfig
from execdesk.data.feed import LaneCandles
from execdesk.domain.types import Direction, IntentReason
from execdesk.strategy import StrategyBundle, compute_signals

IntArray = npt.NDArray[np.int64]

#: The kernel's exit reason codes as the desk's intent reasons.
EXIT_REASONS: Final[dict[int, IntentReason]] = {
    _kernel.EXIT_SIGNAL: IntentReason.EXIT_SIGNAL,
    _kernel.STOP_LOSS: IntentReason.STOPLOSS,
    _kernel.ROI: IntentReason.ROI,
    _kernel.TRAILING_STOP_LOSS: IntentReason.TRAILING_STOP,
}


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """Where and why a position exits: decided at the close of grid bar ``g``, the close of the lane's
    candle ``candle``. ``rate`` is the price the backtester fills that exit at (the open of the next
    candle for an exit signal; the stop, ROI or trailing-stop price inside the candle otherwise)."""

    g: int
    reason: IntentReason
    candle: int
    rate: float


class Lane:
    """A deployment's strategy on one pair (see module docstring).

    ``config`` supplies what the exit rules read besides the bundle, as for a backtest: ``fee``
    (profits at the high / low count it, as Freqtrade's do), ``use_exit_signal``,
    ``exit_profit_only``, ``exit_profit_offset`` and ``ignore_roi_if_entry_signal``; default
    :class:`BacktestConfig`'s defaults.
    """

    def __init__(self, deployment_id: str, pair: str, bundle: StrategyBundle, candles: LaneCandles, *,
                 config: BacktestConfig | None = None) -> None:
        self.deployment_id = deployment_id
        self.pair = pair
        self.bundle = bundle
        self.candles = candles
        self.config = BacktestConfig() if config is None else config
        o = candles.ohlcv
        self.signals = compute_signals(bundle, {"open": o.open, "high": o.high, "low": o.low, "close": o.close,
                                                "volume": o.volume})
        long_at = self.signals.entry_long & ~self.signals.entry_short
        short_at = self.signals.entry_short & ~self.signals.entry_long
        self._entry_g = candles.close_index[np.flatnonzero(long_at | short_at)]
        self._entry_dir = np.where(long_at, 1, -1)[np.flatnonzero(long_at | short_at)]
        self.stoploss = float(bundle.stoploss)
        roi = sorted((int(k), float(v)) for k, v in bundle.minimal_roi.items())
        self._roi_minutes = np.array([k for k, _ in roi], dtype=np.int64)
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
    def first_exit(self, direction: Direction, entry_time: int, entry_price: float, after_g: int,
                   stoploss: float | None = None) -> ExitPlan | None:
        """The first exit of the position decided at a grid index > ``after_g`` (None: none in the data).

        The position was filled at ``entry_time`` (a bar's open, inside or at the start of one of the
        lane's candles: the entry candle) at ``entry_price``. The backtester's exit rules run from
        the entry candle on, as if the trade had opened at that candle's open at ``entry_price``;
        candles closing at or before ``after_g`` only move the trailing stop (the position is still
        open after them), and an exit signal counts from the first candle closing after ``after_g``.
        ``stoploss`` replaces the bundle's (a risk manager's tighter stop), measured from the entry price.
        """
        o = self.candles.ohlcv
        n = len(o.time)
        k_entry = max(int(np.searchsorted(o.time, entry_time, side="right")) - 1, 0)
        start = max(k_entry, int(np.searchsorted(self.candles.close_index, after_g, side="right")))
        if start >= n:
            return None
        ts, cfg, sig = self.trailing, self.config, self.signals
        sl = self.stoploss if stoploss is None else stoploss
        k, code, rate = _kernel.scan_exit(
            o.open, o.high, o.low, o.close, sig.entry_long, sig.exit_long, sig.entry_short, sig.exit_short,
            k_entry, start, float(entry_price), 1.0, float(cfg.fee), direction is Direction.SHORT, 0.0,
            self.candles.timeframe_seconds // 60, sl, self._roi_minutes, self._roi_values,
            ts is not None, 0.0 if ts is None else float(ts.positive), 0.0 if ts is None else float(ts.offset),
            bool(ts is not None and ts.only_offset_is_reached),
            bool(cfg.use_exit_signal), bool(cfg.exit_profit_only), float(cfg.exit_profit_offset),
            bool(cfg.ignore_roi_if_entry_signal),
        )  # fmt: skip
        if k < 0:
            return None
        # an exit signal of candle k - 1 fills at candle k's open: the desk decides it at k - 1's close
        candle = int(k) - 1 if code == _kernel.EXIT_SIGNAL else int(k)
        return ExitPlan(int(self.candles.close_index[candle]), EXIT_REASONS[int(code)], candle, float(rate))

    def stop_level(self, direction: Direction, entry_time: int, entry_price: float, upto_g: int,
                   stoploss: float | None = None) -> float:
        """The position's stop price once the lane's candles closing by grid index ``upto_g`` have moved it (the
        initial stop, ``entry_price`` x (1 - |stoploss|) for a long, unless a trailing stop has followed the
        highs since the entry candle); ``stoploss`` as in :meth:`first_exit`."""
        ts = self.trailing
        sl = abs(self.stoploss if stoploss is None else stoploss)
        if ts is None:  # (the kernel's initial stop, without its walk over the candles: nothing moves it)
            return entry_price * (1.0 + sl) if direction is Direction.SHORT else entry_price * (1.0 - sl)
        o = self.candles.ohlcv
        k_entry = max(int(np.searchsorted(o.time, entry_time, side="right")) - 1, 0)
        upto = int(np.searchsorted(self.candles.close_index, upto_g, side="right")) - 1
        return float(_kernel.stop_after(
            o.open, o.high, o.low, o.close, k_entry, upto, float(entry_price), float(self.config.fee),
            direction is Direction.SHORT, 0.0, self.stoploss if stoploss is None else stoploss,
            ts is not None, 0.0 if ts is None else float(ts.positive), 0.0 if ts is None else float(ts.offset),
            bool(ts is not None and ts.only_offset_is_reached),
        ))

    def next_close(self, after_g: int) -> int | None:
        """The grid index of the lane's first candle close after ``after_g`` (None: no more in the data)."""
        k = int(np.searchsorted(self.candles.close_index, after_g, side="right"))
        return int(self.candles.close_index[k]) if k < len(self.candles.close_index) else None
