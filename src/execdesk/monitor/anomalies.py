"""Anomaly detectors: things that are wrong with the market or the plumbing rather than the strategy.

Each is a pure function of numbers, so the monitor can run it per bar or over a whole stretch:

* :func:`volume_spikes` — a bar whose volume is more than ``z`` (3) standard deviations above the
  mean of the ``window`` bars before it, on log volume (volume is heavy-tailed; a log scale keeps one
  spike from hiding the next);
* :func:`spread_widening` — the same test on quoted spreads (in basis points, on a log scale too: spreads
  are positive and heavy-tailed): a live desk's are read from the exchange's top of book at each bar's close
  (``market.quoted``), a replay's are the paper venue's model of its quote, derived from each bar
  (:func:`execdesk.venues.paper.quoted_spread_bps`: it widens with the bar's range, so in a shock);
* :func:`losing_streak_limit` — the longest run of losing trades the backtest's win rate makes
  plausible over a number of trades: the smallest ``k`` with ``n x (1 - win_rate)^k <= alpha`` (a
  union bound over the trades a run could start at), so a longer streak has probability below
  ``alpha`` if the strategy still wins as often as it did in its backtest;
* :func:`is_stale` — no candle although one is due: the last bar opened more than one timeframe plus
  ``grace`` ago;
* venue connectivity — counted by the order manager (calls that failed after their retries) and
  raised by the lead as alerts; nothing to compute here.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _trailing_z(values: FloatArray, window: int, min_periods: int) -> FloatArray:
    """z-score of each value against the ``window`` values before it (NaN until ``min_periods``)."""
    n = len(values)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    c1 = np.concatenate(([0.0], np.cumsum(values)))
    c2 = np.concatenate(([0.0], np.cumsum(values * values)))
    idx = np.arange(n)
    lo = np.maximum(idx - window, 0)
    count = idx - lo
    ok = count >= min_periods
    s1 = c1[idx] - c1[lo]
    s2 = c2[idx] - c2[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / count
        var = (s2 - count * mean * mean) / np.maximum(count - 1, 1)
        sd = np.sqrt(np.maximum(var, 0.0))
        z = (values - mean) / sd
    out[ok & (sd > 0)] = z[ok & (sd > 0)]
    return out


def volume_spikes(volume: FloatArray, window: int = 168, z: float = 3.0, min_periods: int = 24) -> FloatArray:
    """z-scores of log volume against the trailing window; a spike is where the result exceeds ``z``.

    Returns the z-score array (NaN where there is not enough history or the volume is not positive);
    callers compare it with ``z`` (kept in the signature so the default is documented in one place).
    """
    return _log_z(volume, window, min_periods)


def spread_widening(spread_bps: FloatArray, window: int = 168, z: float = 3.0, min_periods: int = 24) -> FloatArray:
    """z-scores of log quoted spreads (bps) against the trailing window; a widening is where the result exceeds
    ``z`` (see :func:`volume_spikes`: NaN where there is not enough history or the spread is not positive)."""
    return _log_z(spread_bps, window, min_periods)


def _log_z(values: FloatArray, window: int, min_periods: int) -> FloatArray:
    """:func:`_trailing_z` of the logs of the positive values (the others NaN, and left out of the windows)."""
    vals = np.asarray(values, dtype=np.float64)
    logs = np.where(vals > 0, np.log(np.where(vals > 0, vals, 1.0)), np.nan)
    valid = ~np.isnan(logs)
    out = np.full(len(vals), np.nan)
    if valid.any():
        out[valid] = _trailing_z(logs[valid], window, min_periods)
    return out


def losing_streak_limit(win_rate: float, n_trades: int, alpha: float = 0.01) -> int:
    """The longest losing streak the backtest's ``win_rate`` makes plausible over ``n_trades`` trades.

    Worked: win rate 0.55, 100 trades, alpha 0.01: p = 0.45; need 100 x 0.45^k <= 0.01, i.e.
    k >= ln(1e-4) / ln(0.45) = 11.53 -> 12. A streak of 13 losses or more is an anomaly.
    """
    p_loss = 1.0 - win_rate
    if p_loss <= 0.0:
        return 0  # a strategy that never lost: any loss is news
    if p_loss >= 1.0 or n_trades <= 0:
        return max(n_trades, 0)
    k = math.log(alpha / n_trades) / math.log(p_loss)
    return max(1, math.ceil(k - 1e-12))


def current_losing_streak(trade_returns: FloatArray) -> int:
    """How many of the last trades lost in a row (a zero-profit trade breaks the streak)."""
    streak = 0
    for r in np.asarray(trade_returns, dtype=np.float64)[::-1]:
        if r < 0:
            streak += 1
        else:
            break
    return streak


def is_stale(last_bar_open: int, now: int, timeframe_s: int, grace_s: int = 60) -> bool:
    """True when a candle is due but missing: the bar after the last one (it opens at
    ``last_bar_open + timeframe``) should have closed ``grace_s`` ago. Worked: 1h bars, last bar opened
    10:00; the 11:00 bar closes at 12:00; with 60 s grace the feed is stale from 12:01:01 on."""
    return now > last_bar_open + 2 * timeframe_s + grace_s
