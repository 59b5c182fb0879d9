"""The desk's native backtest engine: Freqtrade 2026.9's backtesting rules, in a compiled loop.

:func:`run_backtest` takes a bundle, candle frames and a :class:`BacktestConfig` and returns the
trades and their :class:`~execdesk.backtest.metrics.Metrics`; :func:`run_backtest_arrays` is the same
run on arrays in and arrays out (signals + trade loop, no pandas), for benchmarks and hot paths. The
trade loop itself is numba code in :mod:`execdesk.backtest._kernel`.

Rules, each as Freqtrade 2026.9 does it (file and function in ``freqtrade/`` in brackets; the
"backtesting" file is ``optimize/backtesting.py``, "interface" is ``strategy/interface.py``, "trade"
is ``persistence/trade_model.py``). Verified bar for bar against Freqtrade's own backtester.

Data and time
  1. Signals are computed on every candle given (:func:`~execdesk.strategy.compute_signals`) and are
     known at the candle's close: Freqtrade shifts the signal columns by one candle, so the signal of
     candle *i* acts on candle *i + 1* at its open [backtesting ``_get_ohlcv_as_lists``].
  2. Warm-up: the first ``startup_candles`` candles of each pair (default: the bundle's
     ``startup_candles``, which a generated strategy declares as ``startup_candle_count``) are cut,
     as are candles opening before ``config.start``: Freqtrade trims ``startup_candle_count``
     candles from the data it loaded, which begins that many candles before the timerange start
     [``data/converter/converter.py`` ``trim_dataframe``, ``configuration/timerange.py``
     ``adjust_start_if_necessary``]. The first kept candle is then also dropped after the shift, so
     the first possible entry is at the open of the second kept candle, from the signal of the first.
     ``config.end`` keeps candles opening at or before it (the timerange's stop). To reproduce a
     Freqtrade run with ``--timerange``, pass exactly the candles Freqtrade loads (``startup`` before
     the start): indicators depend on how much history they saw.
  3. The clock steps one candle at a time from the earliest kept candle of any pair to the latest
     [backtesting ``time_pair_generator``]; a pair whose data starts later waits for it. Missing
     candles are filled first as Freqtrade's loader does: open = high = low = close = the previous
     close, volume 0 [``data/converter/converter.py`` ``ohlcv_fill_up_missing_data``]
     (:func:`run_backtest` only; the arrays entry requires gap-free candles).

Per candle, per pair
  4. Pair order: pairs with an open trade first, in the order their trades were opened, then the
     other pairs in pair-list order (``config.pairs``, default ``bundle.pairs``: Freqtrade's
     ``pair_whitelist`` order) [backtesting ``_time_pair_generator_det``]. The order decides who gets
     a free slot: a trade closed earlier in the candle frees its slot for a pair processed later.
  5. Entry (before any exit check of that pair on that candle) [backtesting ``backtest_loop`` step 2,
     ``check_for_trade_entry``]: a long when the entry signal is set and neither the exit signal
     nor the short entry signal is; no entry on the last candle of the backtest; only when the pair
     has no open trade (no position stacking); only when fewer than ``max_open_trades`` trades are
     open (``<= 0`` means unlimited) -- otherwise the signal counts as rejected
     [``trade_slot_available``]. The entry fills at the candle's open.
  6. Stake [``wallets.py`` ``get_trade_stake_amount``, ``_check_available_stake_amount``,
     ``validate_stake_amount``]: ``stake_amount`` of quote currency if the available balance covers
     it, else no trade. Available = ``min((wallet + closed profit) x tradable_balance_ratio - open
     stakes, wallet + closed profit - open stakes)``. Amount = stake / open truncated to the
     market's amount step (``amount_step``, 1e-8 as in the offline market definition); the stake
     actually used is amount x open [backtesting ``_enter_trade``].
  7. Prices on the tick grid [backtesting ``get_pair_precision``,
     ``data/btanalysis/historic_precision.py`` ``get_tick_size_over_time``, ``exchange/exchange_utils.py``
     ``price_to_precision``]: Freqtrade derives a price step per pair and calendar month from the data
     (10^-d, d = the most decimals of any open/high/low/close of the month written with 14
     significant digits; the market's price precision where the data gives none) and rounds the open
     rate (nearest), stop prices (up for longs, down for shorts) and close rates (nearest) to the
     step of the entry candle's month. Profits use the unrounded entry order price
     [trade ``recalc_trade_from_orders``]. ``round_prices=False`` turns all rounding off.
  8. Exits are checked on every candle from the entry candle on (the entry candle included), in
     Freqtrade's order [interface ``should_exit``; backtesting ``_check_trade_exit``,
     ``_get_close_rate``]; the first applicable one wins:
       a. exit signal (of the previous candle) unless the entry signal is set too -> the open
          (``use_exit_signal``, ``exit_profit_only`` with ``exit_profit_offset`` supported);
       b. stoploss: the stop (``open rate x (1 - |stoploss|)`` on the price grid, rounded up) is hit
          when the candle's low is at or below it -> the stop price, or the candle's open when the
          whole candle is below the stop (stop > high) [``_get_close_rate_for_stoploss``];
       c. ROI: the table entry with the largest key <= minutes held, where minutes held counts from
          the entry candle's open to this candle's open (so ``0`` on the entry candle); hit when the
          profit at the candle's high (fees included, rounded to 8 decimals) is above the entry
          [interface ``min_roi_reached``]. Close rate [``_get_close_rate_for_roi``]: the rate giving
          exactly that ROI after fees, ``open rate x (1 + roi) x (1 + fee) / (1 - fee)``, clamped to
          [low, high]; the open instead when an entry comes into force at this very candle
          (``minutes held == key``, key a multiple of the timeframe) and the open is already above
          the rate; ROI -1 on a timeframe multiple exits at the open. On the entry candle Freqtrade
          refuses an ROI exit on a red candle (open > close) when the open rate is below the candle's
          open and the ROI rate above its close (then d. is tried);
       d. trailing stop [interface ``ft_stoploss_adjust``, trade ``adjust_stop_loss``]: before the
          stop is checked, the candle's high moves it up to ``high x (1 - x)`` where x is
          ``trailing_stop.positive`` once the profit at the high exceeds ``offset``, else
          ``|stoploss|`` -- unless ``only_offset_is_reached`` and that profit is below ``offset``
          (then the stop stays); only while the stop is below the low. Once moved, a hit is a
          ``trailing_stop_loss`` exit at the stop price (the open if stop > high); on the entry
          candle the rate is ``open x (1 + offset - positive)`` (only_offset_is_reached) or
          ``open x (1 - x)``, not below the low.
     A stop moved by trailing is checked in b.'s place only as d., i.e. after ROI.
     The winner's rate, rounded to the price step, becomes an exit order that fills only if it lies
     within the candle's [low, high] [backtesting ``_exit_trade``, ``_get_order_filled``]. With
     exchange-style data it always does; with full-precision (e.g. generated) prices a rate clamped to
     the low or high can round just outside it. The order then stays open: a later candle's exit
     decision at another price replaces it, one at the same price keeps it (and the next applicable
     exit is tried) [``handle_similar_order``], and it fills on the first candle that reaches it,
     with the exit reason decided last.
  9. Profit [trade ``calculate_profit``, ``recalc_trade_from_orders``]: ``profit_abs = amount x close
     x (1 - fee) - amount x entry price x (1 + fee)``, rounded to 8 decimals; ``profit_ratio =
     profit_abs / (amount x entry price x (1 + fee))``. Fees are ``fee`` per side on the traded value.
 10. End of data [backtesting ``handle_left_open``]: trades still open are closed at the **open** of
     their pair's last candle, dated that candle, with exit reason ``force_exit`` (Freqtrade's name;
     in the rare case that this order cannot fill, as in 8., Freqtrade leaves the trade out of its
     results, and so does this engine).
 11. Shorts (``can_short=True``, Freqtrade's futures mode; spot ignores short signals) mirror longs
     (stop above, profit at the low, fees ``(1 - fee)`` in / ``(1 + fee)`` out); a trade closed
     against a new opposite signal may be followed by the new entry on the same candle
     [backtesting ``backtest``]. Leverage 1; funding fees and liquidation are not modelled.

Not modelled (the bundle language cannot express them): custom stoploss / exit / pricing callbacks,
position adjustment, protections, order timeouts and replacement callbacks, ``timeframe_detail``,
exchange minimum / maximum stakes, ``amend_last_stake_amount``.

Known residue: Freqtrade computes trade values in decimal arithmetic (``FtPrecise``) on the shortest
decimal form of each float; this engine uses float64. ``profit_abs`` (rounded to 8 decimals) agrees
exactly, ``profit_ratio`` to ~1e-15, and about one ROI close rate in a few hundred can land one price
step away (a relative 1e-14) when the exact rate sits on a rounding midpoint.

Trades are returned in the order they closed (Freqtrade's ``bt_trades``), force exits last.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from execdesk.backtest import _kernel
from execdesk.backtest.metrics import Metrics, compute_metrics
from execdesk.data.candles import OHLCV, dates_from_epoch_seconds, fill_gaps, to_arrays
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.errors import InvalidInput
from execdesk.strategy import Signals, StrategyBundle, compute_signals

#: Exit reasons, indexed by :attr:`TradeArrays.exit_reason` (Freqtrade's ``ExitType`` values).
EXIT_REASONS: Final[tuple[str, ...]] = ("roi", "stop_loss", "trailing_stop_loss", "exit_signal", "force_exit")
#: Columns of :attr:`BacktestResult.trades`.
TRADE_COLUMNS: Final[tuple[str, ...]] = (
    "pair", "open_date", "close_date", "open_rate", "close_rate", "amount", "stake_amount",
    "profit_ratio", "profit_abs", "exit_reason", "is_short", "trade_duration",
)  # fmt: skip

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BacktestConfig:
    """What a run depends on besides the bundle and the candles (Freqtrade's config keys in brackets).

    * ``stake_amount`` [stake_amount]: quote currency per trade (a fixed amount).
    * ``fee`` [fee]: fee ratio per side.
    * ``max_open_trades`` [max_open_trades]: across all pairs; ``<= 0`` means unlimited (-1 in Freqtrade).
    * ``dry_run_wallet`` [dry_run_wallet]: starting balance (stake availability, metrics).
    * ``start`` / ``end``: the backtest window (tz-aware); candles before ``start`` are warm-up only,
      candles opening after ``end`` are ignored. None: from the end of the warm-up / to the last candle.
    * ``pairs``: pair order (Freqtrade's ``pair_whitelist``); None = ``bundle.pairs``.
    * ``startup_candles`` [the strategy's ``startup_candle_count``]: None = ``bundle.startup_candles``.
    * ``tradable_balance_ratio`` [tradable_balance_ratio]: 0.99 as in Freqtrade.
    * ``amount_step``: the market's amount precision (truncation step, 1/step an integer); None: none.
    * ``round_prices``: Freqtrade's data-derived price steps (module docstring, rule 7);
      ``market_price_step`` is the market's price precision, used where the data gives none.
    * ``can_short`` [trading_mode futures + the strategy's can_short]: trade the short sides.
    * ``use_exit_signal``, ``exit_profit_only``, ``exit_profit_offset``, ``ignore_roi_if_entry_signal``:
      the strategy settings of those names (Freqtrade's defaults).
    """

    stake_amount: float = 1000.0
    fee: float = 0.001
    max_open_trades: int = 3
    dry_run_wallet: float = 10_000.0
    start: datetime | None = None
    end: datetime | None = None
    pairs: tuple[str, ...] | None = None
    startup_candles: int | None = None
    tradable_balance_ratio: float = 0.99
    amount_step: float | None = 1e-8
    round_prices: bool = True
    market_price_step: float | None = 1e-8
    can_short: bool = False
    use_exit_signal: bool = True
    exit_profit_only: bool = False
    exit_profit_offset: float = 0.0
    ignore_roi_if_entry_signal: bool = False

    def __post_init__(self) -> None:
        _positive("stake_amount", self.stake_amount)
        _positive("dry_run_wallet", self.dry_run_wallet)
        if not (_is_number(self.fee) and 0.0 <= self.fee < 1.0):
            raise InvalidInput(f"BacktestConfig.fee must be a ratio in [0, 1), got {self.fee!r}")
        if not (_is_number(self.tradable_balance_ratio) and 0.0 < self.tradable_balance_ratio <= 1.0):
            raise InvalidInput(
                f"BacktestConfig.tradable_balance_ratio must be in (0, 1], got {self.tradable_balance_ratio!r}"
            )
        if not isinstance(self.max_open_trades, int) or isinstance(self.max_open_trades, bool):
            raise InvalidInput(f"BacktestConfig.max_open_trades must be an int, got {self.max_open_trades!r}")
        if self.startup_candles is not None and (
            not isinstance(self.startup_candles, int) or isinstance(self.startup_candles, bool)
            or self.startup_candles < 0
        ):
            raise InvalidInput(f"BacktestConfig.startup_candles must be an int >= 0, got {self.startup_candles!r}")
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and (not isinstance(moment, datetime) or moment.utcoffset() is None):
                raise InvalidInput(f"BacktestConfig.{name} must be a timezone-aware datetime, got {moment!r}")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise InvalidInput(f"BacktestConfig.end ({self.end}) is before start ({self.start})")
        if self.pairs is not None and (not self.pairs or len(set(self.pairs)) != len(self.pairs)):
            raise InvalidInput(f"BacktestConfig.pairs must list each pair once, got {self.pairs!r}")
        _step_inverse("amount_step", self.amount_step)
        _step_inverse("market_price_step", self.market_price_step)
        if not _is_number(self.exit_profit_offset):
            raise InvalidInput(f"BacktestConfig.exit_profit_offset must be a number, got {self.exit_profit_offset!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: object) -> None:
    if not (_is_number(value) and float(value) > 0.0):  # type: ignore[arg-type]
        raise InvalidInput(f"BacktestConfig.{name} must be a finite number > 0, got {value!r}")


def _step_inverse(name: str, step: float | None) -> float:
    """``1 / step`` as an exact integer-valued float (0.0 for None); steps like 1e-8, 0.01, 0.5, 1."""
    if step is None:
        return 0.0
    if not (_is_number(step) and 0.0 < step <= 1.0):
        raise InvalidInput(f"BacktestConfig.{name} must be None or a step in (0, 1] like 1e-8, got {step!r}")
    inverse = round(1.0 / step)
    if abs(inverse * step - 1.0) > 1e-9:
        raise InvalidInput(f"BacktestConfig.{name} must be 1/n for an integer n (like 1e-8 or 0.5), got {step!r}")
    return float(inverse)


@dataclass(frozen=True, eq=False)
class TradeArrays:
    """Trades as arrays, one entry per trade in closing order (see the module docstring).

    ``pair`` indexes ``pairs``; times are epoch seconds of candle opens; ``exit_reason`` indexes
    :data:`EXIT_REASONS`. ``start`` / ``end`` are the open times of the first and last candle of the
    backtest (after warm-up; None without data), ``rejected_signals`` the entries refused for want of a trade slot,
    ``left_open`` the trades whose final ``force_exit`` order could not fill (left out, as by Freqtrade).
    """

    pairs: tuple[str, ...]
    pair: IntArray
    open_time: IntArray
    close_time: IntArray
    open_rate: FloatArray
    close_rate: FloatArray
    amount: FloatArray
    stake_amount: FloatArray
    profit_ratio: FloatArray
    profit_abs: FloatArray
    exit_reason: npt.NDArray[np.int8]
    is_short: BoolArray
    start: int | None
    end: int | None
    rejected_signals: int
    left_open: int = 0

    def __len__(self) -> int:
        return int(self.pair.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """The trades as a DataFrame with :data:`TRADE_COLUMNS` (UTC timestamps, minutes held)."""
        names = np.array(self.pairs, dtype=object)
        reasons = np.array(EXIT_REASONS, dtype=object)
        return pd.DataFrame(
            {
                "pair": names[self.pair] if len(self) else np.empty(0, dtype=object),
                "open_date": dates_from_epoch_seconds(self.open_time),
                "close_date": dates_from_epoch_seconds(self.close_time),
                "open_rate": self.open_rate,
                "close_rate": self.close_rate,
                "amount": np.round(self.amount, 8),
                "stake_amount": np.round(self.stake_amount, 8),
                "profit_ratio": self.profit_ratio,
                "profit_abs": self.profit_abs,
                "exit_reason": reasons[self.exit_reason] if len(self) else np.empty(0, dtype=object),
                "is_short": self.is_short,
                "trade_duration": (self.close_time - self.open_time) // 60,
            },
            columns=list(TRADE_COLUMNS),
        )


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Trades (:data:`TRADE_COLUMNS`, closing order) and their metrics; ``start``/``end``,
    ``rejected_signals`` and ``left_open`` as in :class:`TradeArrays` (which ``arrays`` holds)."""

    trades: pd.DataFrame
    metrics: Metrics
    start: datetime | None = None
    end: datetime | None = None
    rejected_signals: int = 0
    left_open: int = 0
    arrays: TradeArrays | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------- public entries


def run_backtest(bundle: StrategyBundle, frames: Mapping[str, pd.DataFrame], config: BacktestConfig) -> BacktestResult:
    """Backtest ``bundle`` on candle ``frames`` (one per pair, see :mod:`execdesk.data.candles`).

    Frames are validated, and missing candles filled as Freqtrade's loader fills them. Raises
    :class:`InvalidInput` for a pair without a frame, malformed candles, or a bad config.
    """
    tf = timeframe_to_seconds(bundle.timeframe)
    candles: dict[str, OHLCV] = {}
    for pair in _pairs(bundle, frames, config):
        candles[pair] = fill_gaps(to_arrays(frames[pair], pair), tf, pair)
    arrays = run_backtest_arrays(bundle, candles, config)
    trades = arrays.to_frame()
    start = None if arrays.start is None else _utc(arrays.start)
    end = None if arrays.end is None else _utc(arrays.end)
    metrics = compute_metrics(trades, config.dry_run_wallet, start, end)
    return BacktestResult(trades, metrics, start, end, arrays.rejected_signals, arrays.left_open, arrays)


def run_backtest_arrays(
    bundle: StrategyBundle,
    candles: Mapping[str, OHLCV],
    config: BacktestConfig,
    *,
    signals: Mapping[str, Signals] | None = None,
) -> TradeArrays:
    """Backtest on gap-free candle arrays: signals (unless given per pair), then the compiled loop.

    ``candles[pair].time`` must step by exactly the bundle's timeframe (use :func:`fill_gaps`), and
    all pairs must share the timeframe's phase. ``signals``, when given, replace
    :func:`~execdesk.strategy.compute_signals` for the pairs they name (same length as the candles).
    """
    tf = timeframe_to_seconds(bundle.timeframe)
    pairs = _pairs(bundle, candles, config)
    startup = bundle.startup_candles if config.startup_candles is None else config.startup_candles
    start_s = None if config.start is None else math.ceil(config.start.timestamp())
    end_s = None if config.end is None else math.floor(config.end.timestamp())

    kept: list[tuple[str, OHLCV, int, int]] = []  # pair, candles, rows used, first kept row
    for pair in pairs:
        ohlcv = candles[pair]
        _check_steps(ohlcv.time, tf, pair)
        used = len(ohlcv) if end_s is None else int(np.searchsorted(ohlcv.time, end_s, side="right"))
        first = startup if start_s is None else max(startup, int(np.searchsorted(ohlcv.time, start_s)))
        if first < used:
            kept.append((pair, ohlcv, used, first))
    if not kept:
        return _empty(tuple(pairs))

    t_start = min(int(ohlcv.time[first]) for _, ohlcv, _, first in kept)
    t_end = max(int(ohlcv.time[used - 1]) for _, ohlcv, used, _ in kept)
    n_pairs = len(kept)
    offset = np.zeros(n_pairs, dtype=np.int64)
    length = np.zeros(n_pairs, dtype=np.int64)
    first_grid = np.zeros(n_pairs, dtype=np.int64)
    first_row = np.zeros(n_pairs, dtype=np.int64)
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in ("o", "h", "l", "c", "el", "xl", "es", "xs")}
    step_rows: list[IntArray] = []  # price-step regimes (rule 7), flat rows
    step_inv: list[FloatArray] = []
    market_inv = _step_inverse("market_price_step", config.market_price_step)
    total = 0
    for i, (pair, ohlcv, used, first) in enumerate(kept):
        phase = int(ohlcv.time[0]) - t_start
        if phase % tf:
            raise InvalidInput(f"{pair}: candle times are not on the same {bundle.timeframe} grid as the other pairs")
        offset[i], length[i], first_grid[i], first_row[i] = total, used, phase // tf, first
        total += used
        cut = {name: getattr(ohlcv, name)[:used] for name in ("open", "high", "low", "close", "volume")}
        sig = signals.get(pair) if signals is not None else None
        if sig is None:
            sig = compute_signals(bundle, cut)
        elif len(sig) < used:
            raise InvalidInput(f"signals for {pair} cover {len(sig)} candles; expected {len(ohlcv)}")
        parts["o"].append(cut["open"])
        parts["h"].append(cut["high"])
        parts["l"].append(cut["low"])
        parts["c"].append(cut["close"])
        parts["el"].append(sig.entry_long[:used])
        parts["xl"].append(sig.exit_long[:used])
        parts["es"].append(sig.entry_short[:used])
        parts["xs"].append(sig.exit_short[:used])
        if config.round_prices:
            rows, inverses = _pair_price_steps(ohlcv, used, market_inv)
        else:
            rows, inverses = np.zeros(1, dtype=np.int64), np.zeros(1)
        step_rows.append(rows + offset[i])
        step_inv.append(inverses)
    step_end = np.cumsum([len(rows) for rows in step_rows], dtype=np.int64)
    step_first = step_end - np.array([len(rows) for rows in step_rows], dtype=np.int64)
    # force exits in the order Freqtrade first met the pairs (first processed candle, then list order)
    exit_order = np.lexsort((np.arange(n_pairs), first_grid + first_row)).astype(np.int64)
    roi = sorted((int(k), float(v)) for k, v in bundle.minimal_roi.items())
    ts = bundle.trailing_stop
    # the candles' identity (None unless every array is frozen): a layout in the kept buffers is reused
    layout = _identity([getattr(ohlcv, n) for _, ohlcv, _, _ in kept for n in ("open", "high", "low", "close")],
                       tuple(used for _, _, used, _ in kept))
    with _flat_buffers(total) as (prices, flags, holds):
        # the pairs' candles and signals laid out flat, one after the other (the kernel's layout);
        # the candles only when the buffers do not hold these very candles already
        if layout is None or not _same(holds.get("candles"), layout):
            holds.clear()
            for i, (o, h, lo, c) in enumerate(zip(parts["o"], parts["h"], parts["l"], parts["c"], strict=True)):
                _kernel.interleave(o, h, lo, c, prices, int(offset[i]))
            if layout is not None:
                holds["candles"] = layout
        for row, key in enumerate(("el", "xl", "es", "xs")):
            np.concatenate(parts[key], out=flags[row], casting="unsafe")  # as astype(bool)
        out_i, out_f, out_short, out_reason, rejected, unfilled = _kernel.simulate(
            prices, flags[0], flags[1], flags[2], flags[3],
            np.concatenate(step_rows), np.concatenate(step_inv), step_first, step_end,
            offset, length, first_grid, first_row, exit_order, (t_end - t_start) // tf + 1, tf // 60,
            float(bundle.stoploss), np.array([k for k, _ in roi], dtype=np.int64),
            np.array([v for _, v in roi], dtype=np.float64),
            ts is not None, 0.0 if ts is None else float(ts.positive), 0.0 if ts is None else float(ts.offset),
            bool(ts is not None and ts.only_offset_is_reached),
            float(config.fee), float(config.stake_amount), int(config.max_open_trades), float(config.dry_run_wallet),
            float(config.tradable_balance_ratio), _step_inverse("amount_step", config.amount_step),
            bool(config.can_short), bool(config.use_exit_signal), bool(config.exit_profit_only),
            float(config.exit_profit_offset), bool(config.ignore_roi_if_entry_signal),
        )  # fmt: skip
    names = tuple(pair for pair, *_ in kept)
    return TradeArrays(
        pairs=names,
        pair=np.ascontiguousarray(out_i[:, 0]),
        open_time=t_start + out_i[:, 1] * tf,
        close_time=t_start + out_i[:, 2] * tf,
        open_rate=np.ascontiguousarray(out_f[:, 0]),
        close_rate=np.ascontiguousarray(out_f[:, 1]),
        amount=np.ascontiguousarray(out_f[:, 2]),
        stake_amount=np.ascontiguousarray(out_f[:, 3]),
        profit_ratio=np.ascontiguousarray(out_f[:, 4]),
        profit_abs=np.ascontiguousarray(out_f[:, 5]),
        exit_reason=np.ascontiguousarray(out_reason),
        is_short=np.ascontiguousarray(out_short),
        start=t_start,
        end=t_end,
        rejected_signals=int(rejected),
        left_open=int(unfilled),
    )


# ---------------------------------------------------------------------------------- helpers


def price_step_table(
    time: IntArray, prices: Mapping[str, FloatArray], market_inverse: float
) -> tuple[IntArray, FloatArray]:
    """``1 / price step`` as Freqtrade derives the step from the data (rule 7), as regimes: the first
    row of each run of candles sharing a step (``0`` first, ascending) and its ``1 / step``.

    Per calendar month (UTC): d = the most decimals of any open/high/low/close written with 14
    significant digits; a month without any decimals takes the last earlier month that had some,
    else the market's step (``market_inverse``; 0 = none). ``time``: ascending epoch seconds. Work
    per month (:func:`execdesk.backtest._kernel.price_step_table`): full-precision prices are read
    only until the month's bound on decimals is reached, exchange prices once each.
    """
    o, h, lo, c = (np.ascontiguousarray(prices[name], dtype=np.float64) for name in ("open", "high", "low", "close"))
    rows, inverses = _kernel.price_step_table(np.ascontiguousarray(time, dtype=np.int64), o, h, lo, c,
                                              float(market_inverse))
    return rows, inverses


def price_step_inverses(time: IntArray, prices: Mapping[str, FloatArray], market_inverse: float) -> FloatArray:
    """Per candle, ``1 / price step`` (:func:`price_step_table`, one value per candle)."""
    rows, inverses = price_step_table(time, prices, market_inverse)
    counts = np.diff(np.append(rows, len(time)))
    result: FloatArray = np.repeat(inverses, counts)
    return result


def _pairs(bundle: StrategyBundle, available: Mapping[str, Any], config: BacktestConfig) -> tuple[str, ...]:
    pairs = bundle.pairs if config.pairs is None else config.pairs
    missing = [p for p in pairs if p not in available]
    if missing:
        raise InvalidInput(f"no candles for pair(s) {', '.join(missing)}; got {', '.join(available) or 'none'}")
    return tuple(pairs)


def _check_steps(time: IntArray, tf: int, pair: str) -> None:
    bad = int(_kernel.first_bad_step(np.ascontiguousarray(time, dtype=np.int64), tf))
    if bad >= 0:
        at = _utc(int(time[bad + 1])).isoformat()
        raise InvalidInput(
            f"{pair}: candles must step by exactly {tf} s; at {at} the step is {int(time[bad + 1] - time[bad])} s "
            "(fill gaps with fill_gaps, as Freqtrade's loader does)"
        )


# ---------------------------------------------------------------------------------- reuse across runs
#
# Many runs backtest the same candles (a fleet's bundles on one market, a benchmark's repeats). What
# depends on the candles alone -- the price-step regimes, the candles laid out flat -- is kept and
# reused, but only for candle arrays nobody can write into (:func:`_frozen`: OHLCV's contract, and
# what to_arrays delivers), recognised by identity: the very same array objects, held weakly (a
# freed array's id may be reused; its weak reference is then dead, and nothing matches).

Identity = tuple[tuple[int, ...], tuple["weakref.ref[npt.NDArray[Any]]", ...], tuple[int, ...]]


def _frozen(array: npt.NDArray[Any]) -> bool:
    """Whether nobody can write into ``array``: read-only, and so is every array it views, down to one
    owning its memory."""
    current: Any = array
    while isinstance(current, np.ndarray):
        if current.flags.writeable:
            return False
        current = current.base
    return current is None


def _identity(arrays: list[npt.NDArray[Any]], extra: tuple[int, ...]) -> Identity | None:
    """The identity of ``arrays`` (with ``extra`` numbers that also decide the result), None unless all are frozen."""
    if not all(_frozen(a) for a in arrays):
        return None
    return tuple(id(a) for a in arrays), tuple(weakref.ref(a) for a in arrays), extra


def _same(kept: Identity | None, current: Identity) -> bool:
    """Whether ``kept`` is the identity of the very arrays (and extra numbers) of ``current``."""
    if kept is None or kept[0] != current[0] or kept[2] != current[2]:
        return False
    return all(old() is new() for old, new in zip(kept[1], current[1], strict=True))


#: Pairs' price-step regimes kept (least recently used dropped first).
STEP_CACHE_SIZE: Final = 256
_step_cache: OrderedDict[tuple[Any, ...], tuple[Identity, IntArray, FloatArray]] = OrderedDict()
_step_lock = threading.Lock()


def _pair_price_steps(ohlcv: OHLCV, used: int, market_inverse: float) -> tuple[IntArray, FloatArray]:
    """:func:`price_step_table` of a pair's first ``used`` candles, computed once per frozen candle arrays."""
    arrays = [ohlcv.time, ohlcv.open, ohlcv.high, ohlcv.low, ohlcv.close]
    prices = {name: getattr(ohlcv, name)[:used] for name in ("open", "high", "low", "close")}
    identity = _identity(arrays, (used,))
    if identity is None:
        return price_step_table(ohlcv.time[:used], prices, market_inverse)
    key = (identity[0], used, market_inverse)
    with _step_lock:
        hit = _step_cache.get(key)
        if hit is not None and _same(hit[0], identity):
            _step_cache.move_to_end(key)
            return hit[1], hit[2]
    rows, inverses = price_step_table(ohlcv.time[:used], prices, market_inverse)
    rows.setflags(write=False)
    inverses.setflags(write=False)
    with _step_lock:
        _step_cache[key] = (identity, rows, inverses)
        _step_cache.move_to_end(key)
        while len(_step_cache) > STEP_CACHE_SIZE:
            _step_cache.popitem(last=False)
    return rows, inverses


#: Rows up to which :func:`_flat_buffers` keeps its buffers between runs (36 bytes a row: 72 MB).
FLAT_BUFFER_ROWS: Final = 2_000_000
_flat_lock = threading.Lock()
_flat_kept: list[tuple[FloatArray, BoolArray, dict[str, Identity]]] = []  # at most one set


@contextmanager
def _flat_buffers(total: int) -> Iterator[tuple[FloatArray, BoolArray, dict[str, Identity]]]:
    """Room for the flat layout of a run: a C-contiguous ``(total, 4)`` float64 array (open, high,
    low, close per row), a ``(4, total)`` bool array (entry/exit long/short, each row C-contiguous),
    and a note of what they hold (``candles``: the :data:`Identity` of the candles in the float
    array; the caller keeps it true).

    Fresh memory costs a page fault per 4 KiB at first touch; on this desk's 2-core machines that
    came to about as much as the trade loop itself. So one set of buffers (up to
    :data:`FLAT_BUFFER_ROWS` rows) is kept and reused by whichever run holds it; a run that finds it
    taken (another thread) or too small for the limit gets fresh arrays (and an empty note). The
    kernel keeps no reference to them: it returns trades in arrays of its own.
    """
    if total > FLAT_BUFFER_ROWS or not _flat_lock.acquire(blocking=False):
        yield np.empty((total, 4)), np.empty((4, total), dtype=np.bool_), {}
        return
    try:
        if not _flat_kept or _flat_kept[0][0].shape[0] < total:
            _flat_kept[:] = [(np.empty((total, 4)), np.empty((4, total), dtype=np.bool_), {})]
        prices, flags, holds = _flat_kept[0]
        yield prices[:total], flags[:, :total], holds
    finally:
        _flat_lock.release()


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _empty(pairs: tuple[str, ...]) -> TradeArrays:
    f = np.empty(0, dtype=np.float64)
    i = np.empty(0, dtype=np.int64)
    return TradeArrays(
        pairs=pairs, pair=i, open_time=i, close_time=i, open_rate=f, close_rate=f, amount=f, stake_amount=f,
        profit_ratio=f, profit_abs=f, exit_reason=np.empty(0, dtype=np.int8), is_short=np.empty(0, dtype=np.bool_),
        start=None, end=None, rejected_signals=0,
    )
