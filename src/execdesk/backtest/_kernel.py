"""The compiled trade loop of :mod:`execdesk.backtest.engine` (numba, ``cache=True``).

Everything here works on plain float64 / int64 / bool arrays; the rules it implements, and the
Freqtrade functions each one mirrors, are listed in the docstring of :mod:`execdesk.backtest.engine`.
The loop is sequential and branch-for-branch deterministic: the same arrays give the same trades.

Layout: the candles of every pair are concatenated into flat arrays (the prices as rows of open,
high, low, close); pair ``p`` owns the flat rows ``offset[p] .. offset[p] + length[p] - 1`` and its
row ``r`` opens at grid step ``first_grid[p] + r`` of the common time grid (one step per candle,
``0`` = the backtest start). Signals are the raw per-candle signals (known at the candle's close);
the loop reads row ``r``'s decision from candle ``r - 1``, as Freqtrade shifts its signal columns by one.
:func:`simulate` visits a pair's candles only where something may happen (entry signals, candles
that may exit an open trade): between them it scans the signals, highs and lows in tight loops.

The exit rules of one candle live in one place, :func:`_exit_step` (inlined): :func:`simulate` calls
it for every open trade, and :func:`scan_exit` walks one trade of one pair with it to find that
trade's first exit (the desk's lanes, :mod:`execdesk.backtest.lane`, plan their exits with it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Exit reason codes (indices into engine.EXIT_REASONS).
ROI = 0
STOP_LOSS = 1
TRAILING_STOP_LOSS = 2
EXIT_SIGNAL = 3
FORCE_EXIT = 4
NO_EXIT = -1

# exit reason of each candidate slot in simulate (the order Freqtrade lists them in)
_SLOT_REASON = np.array([EXIT_SIGNAL, STOP_LOSS, ROI, TRAILING_STOP_LOSS], dtype=np.int64)

# bit patterns (price_step_table)
_ONE = np.uint64(1)
_INF_BITS = np.uint64(0x7FF0000000000000)

# price_to_precision rounding modes
_ROUND = 0
_ROUND_UP = 1
_ROUND_DOWN = -1


@njit(cache=True)
def to_tick(x: float, inv: float, mode: int) -> float:
    """``x`` on the price grid of step ``1 / inv`` (``inv`` 0: unchanged).

    ``mode`` 0 rounds to the nearest step (ties up, as ccxt's ``decimal_to_precision`` on the
    shortest decimal form of ``x``), 1 up, -1 down (Freqtrade's ``price_to_precision`` in TICK_SIZE
    mode, which also rounds to 14 decimals). ``inv`` is an integer (a power of ten), so ``n / inv``
    is the float nearest to the decimal ``n x step``.
    """
    if inv == 0.0:
        return x
    n = np.floor(x * inv)
    lo = n / inv
    if lo > x:
        n -= 1.0
        lo = n / inv
    hi = (n + 1.0) / inv
    if hi <= x:
        n += 1.0
        lo = hi
        hi = (n + 1.0) / inv
    if lo == x:
        return x
    if mode == _ROUND_UP:
        return round(hi, 14)
    if mode == _ROUND_DOWN:
        return round(lo, 14)
    # ccxt rounds the shortest decimal form of x half up; x equals the float of the midpoint
    # decimal exactly when that decimal is its shortest form (a tie)
    return hi if x >= (2.0 * n + 1.0) / (2.0 * inv) else lo


@njit(cache=True)
def truncate_amount(x: float, inv: float) -> float:
    """``x`` truncated to the amount step ``1 / inv`` (``inv`` 0: unchanged)."""
    if inv == 0.0:
        return x
    n = np.floor(x * inv)
    if n / inv > x:
        n -= 1.0
    if (n + 1.0) / inv <= x:
        n += 1.0
    return n / inv


@njit(cache=True)
def profit_ratio(is_short: bool, amount: float, open_value: float, rate: float, fee: float) -> float:
    """Freqtrade's ``calc_profit_ratio`` at ``rate`` (rounded to 8 decimals)."""
    if open_value == 0.0:
        return 0.0
    if is_short:
        return round(1.0 - amount * rate * (1.0 + fee) / open_value, 8)
    return round(amount * rate * (1.0 - fee) / open_value - 1.0, 8)


@njit(cache=True)
def _roi_index(roi_minutes: np.ndarray, duration: int) -> int:
    """Index of the largest ROI key <= ``duration`` minutes, -1 if none."""
    found = -1
    for i in range(roi_minutes.shape[0]):
        if roi_minutes[i] <= duration:
            found = i
    return found


@njit(cache=True)
def _stop_rate(
    is_short: bool, stop: float, stop_pct: float, trailing_exit: bool, duration: int,
    o: float, h: float, lo: float, ts_only: bool, ts_positive: float, ts_offset: float,
) -> float:
    """Close rate of a (trailing) stop: ``_get_close_rate_for_stoploss``."""
    if is_short:
        if stop < lo:
            return o
    elif stop > h:
        return o
    if trailing_exit and duration == 0:
        side = -1.0 if is_short else 1.0
        if ts_only and ts_positive != 0.0:
            rate = o * (1.0 + side * abs(ts_offset) - side * abs(ts_positive))
        else:
            rate = o * (1.0 - side * abs(stop_pct))
        return min(h, rate) if is_short else max(lo, rate)
    return stop


@njit(cache=True)
def _roi_rate(
    is_short: bool, roi_entry: int, roi: float, duration: int, tf_minutes: int,
    o: float, h: float, lo: float, c: float, open_rate: float, amount: float, open_value: float, fee: float,
) -> float:
    """Close rate of an ROI exit (``_get_close_rate_for_roi``); NaN when Freqtrade refuses it."""
    if roi == -1.0 and roi_entry % tf_minutes == 0:
        return o
    if is_short:
        close_rate = (1.0 - roi) * open_value / (amount * (1.0 + fee))
        is_new_roi = o < close_rate
    else:
        close_rate = (1.0 + roi) * open_value / (amount * (1.0 - fee))
        is_new_roi = o > close_rate
    if duration > 0 and duration == roi_entry and roi_entry % tf_minutes == 0 and is_new_roi:
        return o
    if duration == 0:
        if is_short and o < c and open_rate > o and close_rate < c:
            return np.nan
        if not is_short and o > c and open_rate < o and close_rate > c:
            return np.nan
    return min(max(close_rate, lo), h)


#: The run's settings an exit decision reads (:func:`_exit_step`): timeframe minutes, |stoploss|,
#: trailing stop (on, positive, offset, only_offset_is_reached), fee, use_exit_signal,
#: exit_profit_only, exit_profit_offset, ignore_roi_if_entry_signal. Scalars only: an array handed to
#: the inlined helper costs reference counting on every candle (simulate took 1.7x as long with the ROI
#: table passed in, 3x with the trade-state arrays); so the caller looks the ROI entry up, and the
#: trade's state goes in and out as scalars.
ExitRules = tuple[int, float, bool, float, float, bool, float, bool, bool, float, bool]


@njit(cache=True)
def _open_trade(is_short: bool, rate: float, amount: float, fee: float, sl: float, inv: float) -> tuple[float, float]:
    """Open trade value (entry fee included) and initial stop of a trade opened at ``rate`` (on the price grid)."""
    if is_short:
        return amount * rate * (1.0 - fee), to_tick(rate * (1.0 + sl), inv, _ROUND_DOWN)
    return amount * rate * (1.0 + fee), to_tick(rate * (1.0 - sl), inv, _ROUND_UP)


@njit(cache=True, inline="always")
def _quiet(
    is_short: bool, enter_flag: bool, exit_flag: bool, use_exit_signal: bool, stop: float, hh: float, ll: float,
    roi_key: int, roi_value: float, amount: float, value: float, fee: float,
) -> bool:
    """Whether a candle certainly leaves an open trade (no exit order pending, no trailing stop) as it
    is: no exit signal, the stop not reached, and the best price short of the ROI entry in force by
    more than the profit ratio's rounding (8 decimals: 5e-9) and float error (~1e-15 relative) could
    bridge -- decided without computing a profit. :func:`_exit_step` returns at once on such a
    candle; :func:`simulate` skips the candles it would return on."""
    margin = 2e-8 + 1e-12 * abs(roi_value)
    return (
        not (use_exit_signal and exit_flag and not enter_flag)
        and (stop > hh if is_short else stop < ll)
        and (
            roi_key < 0
            or (
                ll * (amount * (1.0 + fee)) > (1.0 - roi_value + margin) * value
                if is_short
                else hh * (amount * (1.0 - fee)) < (1.0 + roi_value - margin) * value
            )
        )
    )


@njit(cache=True, inline="always")
def _exit_step(
    decide: bool, rules: ExitRules, roi_key: int, roi_value: float,
    is_short: bool, duration: int, oo: float, hh: float, ll: float, cc: float, enter_flag: bool, exit_flag: bool,
    open_rate: float, amount: float, value: float, inv: float,
    stop: float, stop_pct: float, trailed: bool, pending: bool, pending_rate: float, reason: int,
) -> tuple[float, float, bool, bool, float, int, bool]:
    """One candle of an open trade: Freqtrade's exit decision (backtest_loop step 4) and fill (step 5).

    The one implementation of the exit rules (engine docstring, rule 8), for :func:`simulate` and
    :func:`scan_exit`. Arguments: ``rules`` (:data:`ExitRules`); the ROI table entry in force after
    ``duration`` minutes (``roi_key`` -1: none); the trade: side, minutes held (0 on the entry
    candle), open rate on the price grid, amount, open value, price step inverse (0: no rounding);
    the candle: open, high, low, close, and the entry / exit flag of the trade's side of the previous
    candle; the trade's state: stop, stop ratio, whether trailing moved the stop, the pending exit
    order (placed, price) and the exit reason decided last.

    First ``ft_stoploss_adjust``: the trailing stop follows the candle's high (low). Then, only if
    ``decide``, the exit candidates in Freqtrade's order (exit signal, stoploss, ROI, trailing stop;
    the first whose order can be placed wins; an identical pending order is kept and the next one
    tried) and the fill check (the order's price within the candle's low and high).

    Returns the new ``(stop, stop_pct, trailed, pending, pending_rate, reason, filled)``.
    """
    (tf_minutes, sl, trailing, ts_positive, ts_offset, ts_only, fee,
     use_exit_signal, exit_profit_only, exit_profit_offset, ignore_roi_if_entry_signal) = rules
    best = ll if is_short else hh
    # ft_stoploss_adjust: the trailing stop follows this candle's high (low) first
    dir_correct = stop > hh if is_short else stop < ll
    if trailing and dir_correct:
        profit_best = profit_ratio(is_short, amount, value, best, fee)
        if not (ts_only and profit_best < ts_offset):
            pct = ts_positive if profit_best > ts_offset else sl
            if is_short:
                new_stop = to_tick(best * (1.0 + pct), inv, _ROUND_DOWN)
                moved = new_stop < stop
            else:
                new_stop = to_tick(best * (1.0 - pct), inv, _ROUND_UP)
                moved = new_stop > stop
            if moved:
                stop = new_stop
                stop_pct = pct
                trailed = True
    if not decide:
        return stop, stop_pct, trailed, pending, pending_rate, reason, False
    # the common candle: nothing to decide (no profit computed)
    if not pending and _quiet(is_short, enter_flag, exit_flag, use_exit_signal, stop, hh, ll, roi_key, roi_value,
                              amount, value, fee):
        return stop, stop_pct, trailed, pending, pending_rate, reason, False
    profit_best = profit_ratio(is_short, amount, value, best, fee)
    # exit candidates (should_exit): the close rate before rounding of the exit signal, stoploss,
    # ROI and trailing stop; NaN where none
    r_signal = r_stop = r_roi = r_trail = np.nan
    if (use_exit_signal and exit_flag and not enter_flag) and (
        not exit_profit_only or profit_ratio(is_short, amount, value, oo, fee) > exit_profit_offset
    ):
        r_signal = oo
    stop_hit = stop <= hh if is_short else stop >= ll
    if stop_hit:
        r_stop = _stop_rate(is_short, stop, stop_pct, trailed, duration, oo, hh, ll, ts_only, ts_positive, ts_offset)
        if trailed:
            r_stop, r_trail = np.nan, r_stop
    if roi_key >= 0 and not (enter_flag and ignore_roi_if_entry_signal) and profit_best > roi_value:
        r_roi = _roi_rate(is_short, roi_key, roi_value, duration, tf_minutes, oo, hh, ll, cc, open_rate, amount,
                          value, fee)
    # the first exit whose order can be placed (handle_similar_order keeps an identical open order)
    for code in range(4):
        rate = r_signal if code == 0 else r_stop if code == 1 else r_roi if code == 2 else r_trail
        if np.isnan(rate):
            continue
        reason = _SLOT_REASON[code]
        rate = to_tick(rate, inv, _ROUND)
        if pending and pending_rate == rate:
            continue  # the same order is already open: keep it, try the next exit
        pending = True
        pending_rate = rate
        break
    # exit order fill (step 5): the price must lie within the candle
    filled = pending and ll <= pending_rate <= hh
    return stop, stop_pct, trailed, pending, pending_rate, reason, filled


@njit(cache=True)
def scan_exit(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
    enter_long: np.ndarray, exit_long: np.ndarray, enter_short: np.ndarray, exit_short: np.ndarray,
    entry: int, start: int, open_rate: float, amount: float, fee: float, is_short: bool, price_inv: float,
    tf_minutes: int, stoploss: float, roi_minutes: np.ndarray, roi_values: np.ndarray,
    trailing: bool, ts_positive: float, ts_offset: float, ts_only: bool,
    use_exit_signal: bool, exit_profit_only: bool, exit_profit_offset: float, ignore_roi_if_entry_signal: bool,
) -> tuple[int, int, float]:
    """The first exit of one trade of one pair, decided candle by candle exactly as :func:`simulate` does.

    The trade entered on candle ``entry`` (rows of the pair's candle and raw signal arrays, as in
    ``simulate`` the signal of candle ``k - 1`` acts on candle ``k``) at ``open_rate`` (already on the
    price grid of step ``1 / price_inv``; ``price_inv`` 0: no rounding), ``amount`` at ``fee`` per
    side; the other arguments are those of ``simulate``. ``roi_minutes`` must be int64.

    Candles ``entry .. start - 1`` only move the trailing stop: the trade is taken to be still open at
    the close of candle ``start - 1``. From candle ``start`` on every exit is considered, except an
    exit signal of candle ``start - 1`` itself (it acts at the open of ``start`` but was known at the
    close of ``start - 1``; ``simulate`` never has one on the entry candle, where the entry signal
    excludes it).

    Returns ``(candle, reason code, close rate)`` of the candle whose exit order fills, or
    ``(-1, NO_EXIT, nan)`` if none does before the data ends (``simulate`` would force-exit it).
    """
    n = o.shape[0]
    sl = abs(stoploss)
    rules = (tf_minutes, sl, trailing, ts_positive, ts_offset, ts_only, fee,
             use_exit_signal, exit_profit_only, exit_profit_offset, ignore_roi_if_entry_signal)
    value, stop = _open_trade(is_short, open_rate, amount, fee, sl, price_inv)
    stop_pct = sl
    trailed = False
    pending = False
    pending_rate = 0.0
    reason = NO_EXIT
    enter_side = enter_short if is_short else enter_long
    exit_side = exit_short if is_short else exit_long
    for k in range(max(entry, 0), n):
        enter_flag = False
        exit_flag = False
        if k > 0:
            enter_flag = enter_side[k - 1]
            exit_flag = exit_side[k - 1] and k > start
        duration = (k - entry) * tf_minutes
        roi_i = _roi_index(roi_minutes, duration)  # as in simulate (see ExitRules)
        roi_key = roi_minutes[roi_i] if roi_i >= 0 else -1
        roi_value = roi_values[roi_i] if roi_i >= 0 else 0.0
        stop, stop_pct, trailed, pending, pending_rate, reason, filled = _exit_step(
            k >= start, rules, roi_key, roi_value, is_short, duration, o[k], h[k], lo[k], c[k],
            enter_flag, exit_flag, open_rate, amount, value, price_inv,
            stop, stop_pct, trailed, pending, pending_rate, reason,
        )
        if filled:
            return k, reason, pending_rate
    return -1, NO_EXIT, np.nan


@njit(cache=True)
def stop_after(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, entry: int, upto: int, open_rate: float,
    fee: float, is_short: bool, price_inv: float, stoploss: float,
    trailing: bool, ts_positive: float, ts_offset: float, ts_only: bool,
) -> float:
    """The stop of a trade entered on candle ``entry`` at ``open_rate`` once candles ``entry .. upto`` have
    moved it (a trailing stop follows their highs, lows, as :func:`scan_exit` moves it); the initial stop
    when ``upto < entry``. Arguments as :func:`scan_exit`'s."""
    sl = abs(stoploss)
    rules = (0, sl, trailing, ts_positive, ts_offset, ts_only, fee, False, False, 0.0, False)
    value, stop = _open_trade(is_short, open_rate, 1.0, fee, sl, price_inv)
    stop_pct = sl
    trailed = False
    pending = False
    pending_rate = 0.0
    reason = NO_EXIT
    for k in range(max(entry, 0), min(upto + 1, o.shape[0])):
        stop, stop_pct, trailed, pending, pending_rate, reason, _filled = _exit_step(
            False, rules, -1, 0.0, is_short, 0, o[k], h[k], lo[k], c[k], False, False,
            open_rate, 1.0, value, price_inv, stop, stop_pct, trailed, pending, pending_rate, reason,
        )
    return stop


@njit(cache=True)
def interleave(
    o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, out: np.ndarray, first_row: int
) -> None:
    """Write ``(o, h, lo, c)[i]`` into ``out[first_row + i]`` (rows of 4: :func:`simulate`'s ``px``)."""
    for i in range(o.shape[0]):
        out[first_row + i, 0] = o[i]
        out[first_row + i, 1] = h[i]
        out[first_row + i, 2] = lo[i]
        out[first_row + i, 3] = c[i]


@njit(cache=True)
def simulate(
    px: np.ndarray,
    enter_long: np.ndarray, exit_long: np.ndarray, enter_short: np.ndarray, exit_short: np.ndarray,
    step_rows: np.ndarray, step_inv: np.ndarray, step_first: np.ndarray, step_end: np.ndarray,
    offset: np.ndarray, length: np.ndarray, first_grid: np.ndarray, first_row: np.ndarray,
    exit_order: np.ndarray, n_grid: int, tf_minutes: int,
    stoploss: float, roi_minutes: np.ndarray, roi_values: np.ndarray,
    trailing: bool, ts_positive: float, ts_offset: float, ts_only: bool,
    fee: float, stake_amount: float, max_open_trades: int, wallet: float, tradable_ratio: float,
    amount_inv: float, can_short: bool, use_exit_signal: bool, exit_profit_only: bool,
    exit_profit_offset: float, ignore_roi_if_entry_signal: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Run the backtest over grid steps ``1 .. n_grid - 1``, then force-exit what is still open.

    ``px``: the candles, one row ``(open, high, low, close)`` per flat row (:func:`interleave`): the
    loop visits a pair's candles at its events only, and one candle's four prices then share a cache
    line instead of costing four misses.

    Price steps come as regimes (:func:`price_step_table`, rows made flat): pair ``p``'s are the
    entries ``step_first[p] .. step_end[p] - 1`` of ``step_rows`` (the flat row each starts at,
    ascending, the first at ``offset[p]``) and ``step_inv`` (``1 / step``, 0: no rounding); a trade
    takes the step in force at its entry candle. ``roi_minutes`` ascending (the engine sorts them).

    Returns ``(ints, floats, is_short, reasons, rejected, unfilled)``, one row per trade in closing
    order: ``ints`` = pair, entry grid step, exit grid step; ``floats`` = open rate (on the price
    grid), close rate, amount, stake amount, profit ratio, profit abs, entry order price.
    ``rejected`` counts entry signals refused for want of a trade slot (Freqtrade's
    ``rejected_signals``), ``unfilled`` the trades whose final force-exit order could not fill (left
    out of the results, as Freqtrade leaves them out).
    """
    n_pairs = offset.shape[0]
    sl = abs(stoploss)
    rules = (tf_minutes, sl, trailing, ts_positive, ts_offset, ts_only, fee,
             use_exit_signal, exit_profit_only, exit_profit_offset, ignore_roi_if_entry_signal)
    # the open trade of each pair (one at most: no position stacking)
    t_open = np.zeros(n_pairs, dtype=np.bool_)
    t_short = np.zeros(n_pairs, dtype=np.bool_)
    t_trailing = np.zeros(n_pairs, dtype=np.bool_)
    t_g = np.zeros(n_pairs, dtype=np.int64)
    t_raw = np.zeros(n_pairs)  # entry order price (unrounded): the final profit is computed from it
    t_rate = np.zeros(n_pairs)  # open rate on the price grid: exit decisions use it
    t_amount = np.zeros(n_pairs)
    t_stake = np.zeros(n_pairs)
    t_value = np.zeros(n_pairs)  # open trade value (entry fee included) from t_rate
    t_stop = np.zeros(n_pairs)
    t_stop_pct = np.zeros(n_pairs)
    t_inv = np.zeros(n_pairs)
    # an exit order placed but not filled (its price off the candle after rounding): it stays
    # open, and a later exit decision at another price replaces it (handle_similar_order)
    t_pending = np.zeros(n_pairs, dtype=np.bool_)
    t_pending_rate = np.zeros(n_pairs)
    t_reason = np.zeros(n_pairs, dtype=np.int64)  # trade.exit_reason: the last one decided
    open_list = np.empty(n_pairs, dtype=np.int64)  # pairs with an open trade, in entry order
    n_open = 0
    order = np.empty(n_pairs, dtype=np.int64)
    closed_profit = 0.0
    rejected = 0

    # one row per trade: a pair's trades enter on distinct candles, so the candles bound them (the
    # pages are only touched as trades are written; never reallocated, which keeps the hot loop free
    # of reference counting on these arrays)
    cap = 1
    for p in range(n_pairs):
        cap += length[p]
    out_i = np.empty((cap, 3), dtype=np.int64)
    out_f = np.empty((cap, 7), dtype=np.float64)
    out_short = np.empty(cap, dtype=np.bool_)
    out_reason = np.empty(cap, dtype=np.int8)
    n_trades = 0

    # Event steps only. next_g[p]: the next grid step at which the work on pair p may change
    # anything -- without an open trade, a step whose previous candle set an entry signal (a superset
    # of entries and rejected signals); with one, every step while an exit order is pending or a
    # trailing stop may move, else the first step that is not _quiet. The steps in between would
    # leave every state as it is, so the loop jumps over them. scan_g[p] >= 0: next_g[p] is to be
    # found from grid step scan_g[p] on (the scan is written out here, not in a helper: an array
    # handed to a helper costs reference counting at every call).
    next_g = np.empty(n_pairs, dtype=np.int64)
    scan_g = np.empty(n_pairs, dtype=np.int64)
    for p in range(n_pairs):
        scan_g[p] = first_grid[p] + max(first_row[p] + 1, 1 - first_grid[p])
    while True:
        g = n_grid
        for p in range(n_pairs):
            if scan_g[p] >= 0:
                k = offset[p] + scan_g[p] - first_grid[p]
                k_end = offset[p] + length[p]
                if k < k_end and not t_open[p]:
                    while k < k_end and not (enter_long[k - 1] or (can_short and enter_short[k - 1])):
                        k += 1
                elif k < k_end and not (trailing or t_pending[p]):
                    is_short = t_short[p]
                    stop = t_stop[p]
                    amount = t_amount[p]
                    value = t_value[p]
                    duration = (first_grid[p] + k - offset[p] - t_g[p]) * tf_minutes
                    roi_i = -1
                    while k < k_end:
                        while roi_i + 1 < roi_minutes.shape[0] and roi_minutes[roi_i + 1] <= duration:
                            roi_i += 1  # as _roi_index (the keys are sorted)
                        roi_key = roi_minutes[roi_i] if roi_i >= 0 else -1
                        roi_value = roi_values[roi_i] if roi_i >= 0 else 0.0
                        enter_flag = enter_short[k - 1] if is_short else enter_long[k - 1]
                        exit_flag = exit_short[k - 1] if is_short else exit_long[k - 1]
                        if not _quiet(is_short, enter_flag, exit_flag, use_exit_signal, stop, px[k, 1], px[k, 2],
                                      roi_key, roi_value, amount, value, fee):
                            break
                        duration += tf_minutes
                        k += 1
                next_g[p] = first_grid[p] + k - offset[p] if k < k_end else n_grid
                scan_g[p] = -1
            g = min(g, next_g[p])
        if g >= n_grid:
            break
        is_last = g == n_grid - 1
        # pairs with open trades first (in entry order), then the rest in pair-list order
        m = 0
        for j in range(n_open):
            order[m] = open_list[j]
            m += 1
        for p in range(n_pairs):
            if not t_open[p]:
                order[m] = p
                m += 1
        for j in range(n_pairs):
            p = order[j]
            if next_g[p] != g:
                continue
            r = g - first_grid[p]
            if r <= first_row[p] or r >= length[p]:
                continue
            k = offset[p] + r
            e_long = enter_long[k - 1]
            e_short = can_short and enter_short[k - 1]
            x_long = exit_long[k - 1]
            x_short = can_short and exit_short[k - 1]
            direction = 0
            if e_long and not (x_long or e_short):
                direction = 1
            elif e_short and not (x_short or e_long):
                direction = -1
            for _pass in range(2):
                had_dir = 0
                if t_open[p]:
                    had_dir = -1 if t_short[p] else 1
                # -- entry (backtest_loop step 2)
                if not is_last and direction != 0 and not t_open[p]:
                    if max_open_trades <= 0 or n_open < max_open_trades:
                        tied = 0.0
                        for jj in range(n_open):
                            tied += t_stake[open_list[jj]]
                        free = wallet + closed_profit - tied
                        available = min((wallet + closed_profit) * tradable_ratio - tied, free)
                        price = px[k, 0]
                        if available >= stake_amount:
                            amount = truncate_amount(stake_amount / price, amount_inv)
                            if amount > 0.0:
                                inv = step_at(step_rows, step_inv, step_first[p], step_end[p], k)
                                rate0 = to_tick(price, inv, _ROUND)
                                is_short = direction < 0
                                t_open[p] = True
                                t_short[p] = is_short
                                t_trailing[p] = False
                                t_pending[p] = False
                                t_g[p] = g
                                t_raw[p] = price
                                t_rate[p] = rate0
                                t_amount[p] = amount
                                t_stake[p] = amount * price
                                t_inv[p] = inv
                                t_value[p], t_stop[p] = _open_trade(is_short, rate0, amount, fee, sl, inv)
                                t_stop_pct[p] = sl
                                open_list[n_open] = p
                                n_open += 1
                    else:
                        rejected += 1
                # -- exit decision (step 4), the entry candle included, and the exit order's fill
                # (step 5): _exit_step, shared with scan_exit
                if t_open[p]:
                    is_short = t_short[p]
                    duration = (g - t_g[p]) * tf_minutes
                    roi_i = _roi_index(roi_minutes, duration)
                    roi_key = roi_minutes[roi_i] if roi_i >= 0 else -1
                    roi_value = roi_values[roi_i] if roi_i >= 0 else 0.0
                    if is_short:
                        enter_flag = enter_short[k - 1]
                        exit_flag = exit_short[k - 1]
                    else:
                        enter_flag = enter_long[k - 1]
                        exit_flag = exit_long[k - 1]
                    stop, stop_pct, trailed, pending, pending_rate, reason, filled = _exit_step(
                        True, rules, roi_key, roi_value, is_short, duration, px[k, 0], px[k, 1], px[k, 2], px[k, 3],
                        enter_flag, exit_flag, t_rate[p], t_amount[p], t_value[p], t_inv[p],
                        t_stop[p], t_stop_pct[p], t_trailing[p], t_pending[p], t_pending_rate[p], t_reason[p],
                    )
                    if trailed:  # the stop only ever moves by trailing
                        t_stop[p] = stop
                        t_stop_pct[p] = stop_pct
                        t_trailing[p] = True
                    t_pending[p] = pending
                    t_pending_rate[p] = pending_rate
                    t_reason[p] = reason
                    if filled:
                        n_trades, closed_profit, n_open = _close(
                            p, g, t_pending_rate[p], t_reason[p], fee, t_open, t_short, t_g, t_raw, t_rate,
                            t_amount, t_stake, open_list, n_open, closed_profit, out_i, out_f, out_short,
                            out_reason, n_trades,
                        )
                # futures only: a trade closed against the new signal's direction -> second pass
                if not can_short or direction == 0 or had_dir == 0 or t_open[p] or had_dir == direction:
                    break
        for p in range(n_pairs):  # the pairs worked on: their next events are found from the next step
            if next_g[p] == g:
                scan_g[p] = max(g + 1, first_grid[p] + first_row[p] + 1)

    # trades still open: force_exit at the open of the pair's last candle (handle_left_open)
    unfilled = 0
    for j in range(n_pairs):
        p = exit_order[j]
        if t_open[p]:
            k = offset[p] + length[p] - 1
            rate = to_tick(px[k, 0], t_inv[p], _ROUND)
            if not (t_pending[p] and t_pending_rate[p] == rate):
                t_pending_rate[p] = rate
            if px[k, 2] <= t_pending_rate[p] <= px[k, 1]:
                n_trades, closed_profit, n_open = _close(
                    p, first_grid[p] + length[p] - 1, t_pending_rate[p], FORCE_EXIT, fee, t_open, t_short, t_g,
                    t_raw, t_rate, t_amount, t_stake, open_list, n_open, closed_profit, out_i, out_f, out_short,
                    out_reason, n_trades,
                )
            else:
                unfilled += 1
    return out_i[:n_trades], out_f[:n_trades], out_short[:n_trades], out_reason[:n_trades], rejected, unfilled


@njit(cache=True)
def _close(
    p: int, exit_g: int, rate: float, reason: int, fee: float,
    t_open: np.ndarray, t_short: np.ndarray, t_g: np.ndarray, t_raw: np.ndarray, t_rate: np.ndarray,
    t_amount: np.ndarray, t_stake: np.ndarray, open_list: np.ndarray, n_open: int, closed_profit: float,
    out_i: np.ndarray, out_f: np.ndarray, out_short: np.ndarray, out_reason: np.ndarray, n_trades: int,
) -> tuple[int, float, int]:
    """Close pair ``p``'s trade at ``rate``: Freqtrade's profit formulas (``recalc_trade_from_orders``)."""
    amount = t_amount[p]
    raw = t_raw[p]
    if t_short[p]:
        open_value = amount * raw * (1.0 - fee)
        profit_abs = open_value - amount * rate * (1.0 + fee)
    else:
        open_value = amount * raw * (1.0 + fee)
        profit_abs = amount * rate * (1.0 - fee) - open_value
    profit_abs = round(profit_abs, 8)
    out_i[n_trades, 0] = p
    out_i[n_trades, 1] = t_g[p]
    out_i[n_trades, 2] = exit_g
    out_f[n_trades, 0] = t_rate[p]
    out_f[n_trades, 1] = rate
    out_f[n_trades, 2] = amount
    out_f[n_trades, 3] = t_stake[p]
    out_f[n_trades, 4] = profit_abs / open_value if open_value != 0.0 else 0.0
    out_f[n_trades, 5] = profit_abs
    out_f[n_trades, 6] = raw
    out_short[n_trades] = t_short[p]
    out_reason[n_trades] = reason
    n_trades += 1
    closed_profit += profit_abs
    t_open[p] = False
    # keep the open list in entry order (Freqtrade's bt_trades_open)
    w = 0
    for j in range(n_open):
        if open_list[j] != p:
            open_list[w] = open_list[j]
            w += 1
    return n_trades, closed_profit, w


@njit(cache=True)
def first_bad_step(time: np.ndarray, step: int) -> int:
    """The first ``i`` with ``time[i + 1] - time[i] != step``; -1 when every step is ``step``."""
    n = time.shape[0] - 1
    i = 0
    while i + 64 <= n:  # blocks without an early exit: the compiler vectorises them
        bad = False
        for k in range(i, i + 64):
            bad |= time[k + 1] - time[k] != step
        if bad:
            break
        i += 64
    while i < n:
        if time[i + 1] - time[i] != step:
            return i
        i += 1
    return -1


@njit(cache=True)
def _run_end(values: np.ndarray, i: int, low: int, high: int) -> int:
    """The first ``j >= i`` with ``values[j]`` outside ``[low, high)`` (``values.shape[0]`` if none)."""
    n = values.shape[0]
    j = i
    while j + 64 <= n:  # blocks without an early exit: the compiler vectorises them
        out = False
        for k in range(j, j + 64):
            out |= (values[k] < low) | (values[k] >= high)
        if out:
            break
        j += 64
    while j < n and low <= values[j] < high:
        j += 1
    return j


@njit(cache=True)
def _decade(v: float) -> int:
    """The decimal exponent ``e`` of ``v > 0``: ``10**e <= v < 10**(e + 1)`` (in float powers of ten)."""
    e = int(np.floor(np.log10(v)))
    if 10.0**e > v:
        e -= 1
    elif 10.0 ** (e + 1) <= v:
        e += 1
    return e


@njit(cache=True)
def _mantissa(v: float, e: int) -> tuple[float, int]:
    """``v`` (decimal exponent ``e``) written with 14 significant digits: ``(m, d)`` with ``v ~ m x 10**-d``,
    ``m`` an integer-valued float in ``[1e13, 1e14)``."""
    d = 13 - e
    m = np.rint(v * 10.0**d) if d >= 0 else np.rint(v / 10.0 ** (-d))
    if m >= 1e14:  # rounding carried into a new leading digit
        m = np.rint(m / 10.0)
        d -= 1
    return m, d


@njit(cache=True)
def _fraction_digits(v: float, e: int) -> int:
    """Decimals of ``v`` (decimal exponent ``e``) written with 14 significant digits, trailing zeros
    dropped; -1 if none.

    What Freqtrade's ``get_tick_size_over_time`` reads from ``format_float_positional(v,
    precision=14, unique=False, fractional=False, trim="-")``; the last digit may differ when ``v``
    lies within a float rounding error of a half step (harmless: a month's maximum is what counts).
    """
    m, d = _mantissa(v, e)
    mi = np.int64(m)
    while d > 0 and mi % 10 == 0:
        mi //= 10
        d -= 1
    return d if d > 0 else -1


@njit(cache=True)
def powers_of_ten(n: int) -> np.ndarray:
    """``10.0 ** k`` for ``k = 0 .. n - 1``, each exactly as compiled code computes ``10.0 ** k``."""
    out = np.empty(n)
    for k in range(n):
        out[k] = 10.0**k
    return out


@njit(cache=True, inline="always")
def _more_digits(v: float, e: int, best: int, pow10: np.ndarray) -> bool:
    """``_fraction_digits(v, e) > best`` (``best >= -1``; ``pow10`` from :func:`powers_of_ten`, 400
    entries), without stripping zeros digit by digit or computing powers.

    ``v`` has more than ``b = max(best, 0)`` decimals exactly when its 14-digit mantissa ``m`` (``d``
    decimals, :func:`_mantissa`'s, with the same powers of ten) is not a multiple of ``10**(d - b)``.
    ``m`` and ``10**k`` (k <= 14) are integers below 2**53, so ``m / 10**k`` is exact when the
    division is, and otherwise lies more than half an ulp from any integer: ``rint(m / p) * p == m``
    tests divisibility exactly.
    """
    d = 13 - e
    m = np.rint(v * pow10[d]) if d >= 0 else np.rint(v / pow10[-d])
    if m >= 1e14:  # rounding carried into a new leading digit
        m = np.rint(m / 10.0)
        d -= 1
        if m == np.inf:  # subnormal v: 10**d overflowed (as in _fraction_digits)
            return _fraction_digits(v, e) > best
    b = max(best, 0)
    if d <= b:
        return False
    if d - b > 14:  # 10**(d - b) > m > 0
        return True
    p = pow10[d - b]
    return np.rint(m / p) * p != m


@njit(cache=True)
def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of the proleptic Gregorian date ``y-m-d``."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9  # 0 = March
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@njit(cache=True)
def month_bounds(epoch_seconds: int) -> tuple[int, int]:
    """The calendar month (UTC) of an epoch second: ``(its first second, the next month's first second)``."""
    z = epoch_seconds // 86400 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153  # 0 = March
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    first = _days_from_civil(year, month, 1)
    following = _days_from_civil(year + 1, 1, 1) if month == 12 else _days_from_civil(year, month + 1, 1)
    return first * 86400, following * 86400


@njit(cache=True)
def price_step_table(
    time: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, market_inverse: float
) -> tuple[np.ndarray, np.ndarray]:
    """The price steps of a pair as regimes: ``(first row, 1 / step)`` of each run of candles that share a step.

    The step of a candle is ``10**-d`` for the most decimals ``d`` (:func:`_fraction_digits`) of any
    open, high, low or close of its calendar month (UTC; ``time`` ascending epoch seconds); a month
    without decimals keeps the step in force before it (pandas ``asof``), ``market_inverse`` (``1 /
    step``, 0 = none) before any. Consecutive months of the same step form one regime.

    Work per month: one pass for its smallest positive price, whose decade bounds the decimals any
    price of the month can have; then prices are read only until some price reaches that bound
    (full-precision data: after a few candles) -- with fewer decimals everywhere (exchange data)
    every price is read, but one division tells whether it beats the month's best so far.
    """
    n = time.shape[0]
    starts = np.empty(n, dtype=np.int64)
    inverses = np.empty(n)
    pow10 = powers_of_ten(400)  # 13 - e spans -295 .. 337 over the positive doubles
    o_bits, h_bits, lo_bits, c_bits = o.view(np.uint64), h.view(np.uint64), lo.view(np.uint64), c.view(np.uint64)
    scratch = np.empty(1, dtype=np.uint64)
    count = 0
    current = market_inverse
    e = 0
    e_low = np.inf  # the decade [e_low, e_high) of the last value seen: log10 only when it changes
    e_high = -np.inf
    i = 0
    while i < n:
        month_first, month_next = month_bounds(time[i])
        j = _run_end(time, i + 1, month_first, month_next)
        # the smallest positive finite price of the month, on the bit patterns: those of positive
        # doubles order as the doubles do; minus one, zero wraps to the top and so do negative
        # numbers (sign bit), and +inf and NaN lie above every finite one -- an integer minimum the
        # compiler vectorises, where a float one with NaN rules would not be
        low_bits = _INF_BITS - _ONE
        for k in range(i, j):
            low_bits = min(low_bits, o_bits[k] - _ONE, h_bits[k] - _ONE, lo_bits[k] - _ONE, c_bits[k] - _ONE)
        best = -1
        if low_bits < _INF_BITS - _ONE:
            scratch[0] = low_bits + _ONE
            bound = 13 - _decade(scratch.view(np.float64)[0])  # no price of the month has more decimals
            k = i
            while k < j and best < bound:
                for col in range(4):
                    v = o[k] if col == 0 else h[k] if col == 1 else lo[k] if col == 2 else c[k]
                    if not (v > 0.0 and v < np.inf):
                        continue
                    if not (e_low <= v < e_high):
                        e = _decade(v)
                        e_low = 10.0**e
                        e_high = 10.0 ** (e + 1)
                    if 13 - e > best and _more_digits(v, e, best, pow10):  # else v cannot beat the month's best
                        best = _fraction_digits(v, e)
                k += 1
        if best >= 0:
            current = 10.0**best
        if count == 0 or inverses[count - 1] != current:
            starts[count] = i
            inverses[count] = current
            count += 1
        i = j
    return starts[:count].copy(), inverses[:count].copy()


@njit(cache=True)
def step_at(rows: np.ndarray, inverses: np.ndarray, first: int, end: int, k: int) -> float:
    """The price step inverse in force at row ``k``: ``inverses[i]`` for the last ``i`` in ``first .. end - 1``
    with ``rows[i] <= k`` (``rows`` ascending there, ``rows[first] <= k``)."""
    a = first
    b = end - 1
    while a < b:
        mid = (a + b + 1) // 2
        if rows[mid] <= k:
            a = mid
        else:
            b = mid - 1
    return inverses[a]
