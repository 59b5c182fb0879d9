"""Live metrics of a deployment (or of the whole portfolio), as pure functions of what the ledger holds.

Inputs: the equity series marked to market (``pd.Series`` indexed by UTC timestamps, unrealised P&L
included), the round trips of :func:`execdesk.monitor.trades.round_trips` (columns ``profit_abs``,
``profit_ratio``, ``trade_duration`` in minutes), the capital at deployment, and the fills' slippage
(bps) and fees. Output: :class:`LiveMetrics`, frozen, with :meth:`LiveMetrics.as_dict`. The portfolio's figures are the
same function on the portfolio's equity snapshots, every deployment's trades and the total capital.

Conventions (every figure is pinned by a hand-computed test in tests/monitor/test_metrics.py):

* **Period returns** ``r_t = E_t / E_{t-1} - 1`` of consecutive equity points.
* **Annualisation.** Crypto trades 24/7, so a year is 365 days of 24 hours: ``P = 365 d / interval``
  periods a year (daily snapshots: ``P = 365``; hourly: ``8,760``; 5 minutes: ``105,120``). The interval is
  the ``interval`` argument or, by default, the median spacing of the series' index (robust to a missed
  snapshot). Ratios scale with ``sqrt(P)``.
* **Sharpe** ``= mean(r) / std(r, ddof=1) x sqrt(P)`` (risk-free rate 0); ``None`` with fewer than two
  returns or a flat series (std 0). :func:`rolling_sharpe` is the same over a moving window.
* **Sortino** ``= mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(P)``: downside deviation against a 0 target
  over *all* periods (Sortino & Price); ``None`` when no period lost.
* **Max drawdown** ``= max_t (1 - E_t / max_{s<=t} E_s)``, a ratio in [0, 1] like the validation
  report's, from the series including unrealised P&L (so it is at least the closed-trade drawdown).
* **Calmar** ``= CAGR / max drawdown`` with ``CAGR = (E_last / E_first)^(365 d / elapsed) - 1``;
  ``None`` without a drawdown or elapsed time. Over a few days the CAGR is large: read it as a rate.
* **P&L** ``= E_last - capital``; ``pnl_pct`` in percent of capital (as the reports show it);
  ``realized_pnl = sum(profit_abs)`` (net of fees), ``unrealized_pnl = pnl - realized_pnl``.
* **Trades** as the backtest counts them: a win has ``profit_ratio > 0``; ``win_rate = wins / trades``
  (``None`` without trades); ``avg_trade_duration_min`` the mean minutes held (``None`` without trades).
* **Profit factor** ``= sum(profit_abs > 0) / |sum(profit_abs < 0)|``: ``0.0`` when every trade lost,
  ``None`` when nothing was lost (undefined rather than infinite, so it serialises; Freqtrade reports 0
  there, which reads as "all losses"), ``None`` without trades.
* **Slippage** the mean of the fills' ``slippage_bps`` (``None`` without fills; ``fills`` counts them);
  **fees** their sum (or the total given).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from execdesk.errors import InvalidInput

YEAR = pd.Timedelta(days=365)


@dataclass(frozen=True, slots=True)
class LiveMetrics:
    """Live figures of one deployment or of the portfolio; see the module docstring for each formula."""

    capital: float
    equity: float
    pnl: float
    pnl_pct: float
    realized_pnl: float
    unrealized_pnl: float
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    periods_per_year: float | None
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    avg_trade_duration_min: float | None
    profit_factor: float | None
    slippage_bps_mean: float | None
    fills: int
    fees: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def periods_per_year(equity: pd.Series | pd.DatetimeIndex, interval: pd.Timedelta | None = None) -> float | None:
    """Periods a year (365 days) for ``interval``, or the median spacing of the index; None if unknown."""
    if interval is None:
        index = equity if isinstance(equity, pd.DatetimeIndex) else pd.DatetimeIndex(equity.index)
        if len(index) < 2:
            return None
        interval = pd.Timedelta((index[1:] - index[:-1]).median())
    if interval <= pd.Timedelta(0):
        raise InvalidInput(f"interval: got {interval}; expected a positive duration")
    return float(YEAR / interval)


def period_returns(equity: pd.Series) -> np.ndarray:
    values = equity.to_numpy(dtype=np.float64)
    return values[1:] / values[:-1] - 1.0 if values.size > 1 else np.empty(0)


def sharpe_ratio(returns: np.ndarray, periods: float) -> float | None:
    """``mean / std(ddof=1) x sqrt(periods)``; None with fewer than 2 returns or zero spread."""
    if returns.size < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / sd * math.sqrt(periods) if sd > 0 else None


def sortino_ratio(returns: np.ndarray, periods: float) -> float | None:
    """``mean / sqrt(mean(min(r, 0)^2)) x sqrt(periods)``; None when no period lost."""
    if returns.size == 0:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return float(np.mean(returns)) / downside * math.sqrt(periods) if downside > 0 else None


def max_drawdown(equity: pd.Series) -> float:
    """Largest fall from a running peak, as a ratio of the peak (0 for an empty or rising series)."""
    values = equity.to_numpy(dtype=np.float64)
    if values.size == 0:
        return 0.0
    return float(np.max(1.0 - values / np.maximum.accumulate(values)))


def rolling_sharpe(equity: pd.Series, window: int, interval: pd.Timedelta | None = None) -> pd.Series:
    """Sharpe of the last ``window`` period returns at each point (NaN until the window is full)."""
    periods = periods_per_year(equity, interval)
    returns = equity.pct_change()
    if periods is None:
        return returns * np.nan
    rolling = returns.rolling(window, min_periods=window)
    return rolling.mean() / rolling.std(ddof=1) * math.sqrt(periods)


def live_metrics(
    equity: pd.Series,
    trades: pd.DataFrame,
    capital: float,
    slippage_bps: Iterable[float] = (),
    fees: float | Iterable[float] = 0.0,
    *,
    interval: pd.Timedelta | None = None,
) -> LiveMetrics:
    """Live metrics of one deployment (or the portfolio: its equity, all trades, the total capital)."""
    if capital <= 0:
        raise InvalidInput(f"capital: got {capital}; expected a positive amount")
    equity = equity.dropna().sort_index()
    last = float(equity.iloc[-1]) if len(equity) else float(capital)
    pnl = last - capital
    periods = periods_per_year(equity, interval) if len(equity) > 1 or interval is not None else None
    returns = period_returns(equity)
    drawdown = max_drawdown(equity)
    sharpe = sortino = calmar = None
    if periods is not None:
        sharpe = sharpe_ratio(returns, periods)
        sortino = sortino_ratio(returns, periods)
    if len(equity) > 1 and drawdown > 0:
        elapsed = equity.index[-1] - equity.index[0]
        if elapsed > pd.Timedelta(0):
            cagr = (last / float(equity.iloc[0])) ** (YEAR / elapsed) - 1.0
            calmar = cagr / drawdown

    profit = trades["profit_abs"].to_numpy(dtype=np.float64)
    ratio = trades["profit_ratio"].to_numpy(dtype=np.float64)
    n = int(profit.size)
    wins, losses = int((ratio > 0).sum()), int((ratio < 0).sum())
    gained, lost = float(profit[profit > 0].sum()), float(-profit[profit < 0].sum())
    factor = None if n == 0 or lost == 0 else gained / lost
    durations = trades["trade_duration"].to_numpy(dtype=np.float64)
    slips = np.fromiter(slippage_bps, dtype=np.float64)
    fee_total = float(fees) if isinstance(fees, (int, float)) else float(np.fromiter(fees, dtype=np.float64).sum())
    realized = float(profit.sum())
    return LiveMetrics(
        capital=float(capital), equity=last, pnl=pnl, pnl_pct=pnl / capital * 100, realized_pnl=realized,
        unrealized_pnl=pnl - realized, sharpe=sharpe, sortino=sortino, calmar=calmar, max_drawdown=drawdown,
        periods_per_year=periods, trades=n, wins=wins, losses=losses, win_rate=wins / n if n else None,
        avg_trade_duration_min=float(durations.mean()) if n else None, profit_factor=factor,
        slippage_bps_mean=float(slips.mean()) if slips.size else None, fills=int(slips.size), fees=fee_total,
    )

