"""Backtest metrics from a trade list, with Freqtrade 2026.9's formulas.

The strategy summary of ``freqtrade backtesting`` (``optimize/optimize_reports/optimize_reports.py``
``generate_strategy_stats`` and ``generate_trading_stats``, using ``data/metrics.py``) is what these
reproduce; ``W`` is the starting balance (``dry_run_wallet``), ``p`` the per-trade ``profit_abs``,
``days = max(1, (end - start).days)`` with ``start``/``end`` the first and last candle of the backtest:

* ``wins`` / ``losses`` / ``draws``: trades with ``profit_ratio`` > 0 / < 0 / == 0;
  ``win_rate = wins / trades`` (Freqtrade's ``winrate``).
* ``total_profit_abs = sum(p)``; ``total_profit_ratio = sum(p) / W`` (``profit_total``);
  ``avg_profit_ratio`` = mean ``profit_ratio`` (``profit_mean``).
* ``profit_factor = sum(p > 0) / |sum(p < 0)|``, 0 without losses.
* Drawdown (``calculate_max_drawdown`` on ``profit_abs``, trades sorted by ``close_date``): the
  closed-trade equity ``W + cumsum(p)`` against its running peak (the peak never below ``W``).
  ``max_drawdown_abs`` is the largest fall in quote currency; ``max_drawdown`` is Freqtrade's
  ``max_drawdown_account``, the fall *at that point* relative to the peak balance; and
  ``max_relative_drawdown`` the largest relative fall anywhere (Freqtrade's ``max_relative_drawdown``).
* ``sharpe = (sum(p / W) / days) / std(p / W) x sqrt(365)`` (population std: ``calculate_sharpe``);
  ``sortino`` the same with the std of the losing trades only (``calculate_sortino``);
  ``calmar = (sum(p) / W / days x 100) / max_drawdown x sqrt(365)`` (``calculate_calmar``). Each is
  0 without trades or with ``start == end``, and -100 when its denominator is 0 or undefined.
* ``avg_trade_duration``: mean minutes held, rounded to whole minutes (``holding_avg``).
* ``returns``: per-trade ``profit_ratio`` in closing order (the bundle reports' ``returns``).

Freqtrade's wallet-based variants (``wallet_stats``: daily balance snapshots) are not reproduced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

_ANNUALISATION = 365  # Freqtrade's _calculate_annualized_ratio: daily returns, every day trades


@dataclass(frozen=True)
class Metrics:
    """Summary of a backtest's trades; see the module docstring for every formula."""

    trades: int
    wins: int
    losses: int
    draws: int
    win_rate: float
    total_profit_abs: float
    total_profit_ratio: float
    avg_profit_ratio: float
    profit_factor: float
    max_drawdown: float
    max_drawdown_abs: float
    max_relative_drawdown: float
    sharpe: float
    sortino: float
    calmar: float
    avg_trade_duration: timedelta
    final_balance: float
    returns: tuple[float, ...]


def equity_curve(trades: pd.DataFrame, starting_balance: float) -> pd.Series:
    """Closed-trade equity: ``starting_balance`` plus cumulative ``profit_abs``, indexed by
    ``close_date`` (trades sorted by it, as Freqtrade's drawdown does)."""
    ordered = trades.sort_values("close_date")
    values = starting_balance + ordered["profit_abs"].to_numpy(dtype=np.float64).cumsum()
    return pd.Series(values, index=pd.DatetimeIndex(ordered["close_date"]), name="equity")


@dataclass(frozen=True)
class _Drawdown:
    absolute: float  # largest fall (quote currency)
    account: float  # relative fall at that point (max_drawdown_account)
    relative: float  # largest relative fall (max_relative_drawdown)


def _drawdown(trades: pd.DataFrame, starting_balance: float) -> _Drawdown:
    """``calculate_max_drawdown`` (absolute and ``relative=True``) on ``profit_abs``."""
    profits = trades.sort_values("close_date")["profit_abs"].to_numpy(dtype=np.float64)
    cumulative = np.concatenate(([0.0], profits.cumsum()))
    high = np.maximum(0.0, np.maximum.accumulate(cumulative))
    high[0] = 0.0
    drawdown = cumulative - high
    if starting_balance:
        peak = starting_balance + high
        relative = (peak - (starting_balance + cumulative)) / peak
    else:  # Freqtrade's approximation without a balance
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = (high - cumulative) / high
        relative[0] = 0.0
    worst = int(np.argmin(drawdown))  # first occurrence, as pandas' idxmin
    return _Drawdown(abs(float(drawdown[worst])), float(relative[worst]), float(np.nanmax(relative)))


def _annualised(mean: float, denominator: float) -> float:
    if denominator != 0 and not math.isnan(denominator):
        return float(mean / denominator * math.sqrt(_ANNUALISATION))
    return -100.0


def compute_metrics(
    trades: pd.DataFrame, starting_balance: float, start: datetime | None, end: datetime | None
) -> Metrics:
    """Metrics of ``trades`` (columns ``close_date``, ``profit_abs``, ``profit_ratio``,
    ``trade_duration``) for a backtest from ``start`` to ``end`` with ``starting_balance``."""
    n = len(trades)
    profit_abs = trades["profit_abs"].to_numpy(dtype=np.float64)
    profit_ratio = trades["profit_ratio"].to_numpy(dtype=np.float64)
    total = float(profit_abs.sum())
    if n == 0:
        return Metrics(
            trades=0, wins=0, losses=0, draws=0, win_rate=0.0, total_profit_abs=0.0, total_profit_ratio=0.0,
            avg_profit_ratio=0.0, profit_factor=0.0, max_drawdown=0.0, max_drawdown_abs=0.0,
            max_relative_drawdown=0.0, sharpe=0.0, sortino=0.0, calmar=0.0, avg_trade_duration=timedelta(),
            final_balance=float(starting_balance), returns=(),
        )
    wins = int((profit_ratio > 0).sum())
    losses = int((profit_ratio < 0).sum())
    gained = float(profit_abs[profit_abs > 0].sum())
    lost = float(profit_abs[profit_abs < 0].sum())
    drawdown = _drawdown(trades, starting_balance)

    sharpe = sortino = calmar = 0.0
    if start is not None and end is not None and start != end:
        days = max(1, (end - start).days)
        per_trade = profit_abs / starting_balance
        mean = float(per_trade.sum()) / days
        sharpe = _annualised(mean, float(np.std(per_trade)))
        losing = per_trade[profit_abs < 0]
        sortino = _annualised(mean, float(np.std(losing)) if losing.size else math.nan)
        calmar = _annualised(total / starting_balance / days * 100, drawdown.account)
    durations = trades["trade_duration"].to_numpy(dtype=np.float64)
    return Metrics(
        trades=n,
        wins=wins,
        losses=losses,
        draws=n - wins - losses,
        win_rate=wins / n,
        total_profit_abs=total,
        total_profit_ratio=total / starting_balance,
        avg_profit_ratio=float(profit_ratio.mean()),
        profit_factor=gained / abs(lost) if lost else 0.0,
        max_drawdown=drawdown.account,
        max_drawdown_abs=drawdown.absolute,
        max_relative_drawdown=drawdown.relative,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        avg_trade_duration=timedelta(minutes=round(float(durations.mean()))),
        final_balance=float(starting_balance) + total,
        returns=tuple(float(x) for x in profit_ratio),
    )
