"""Tests of execdesk.backtest.metrics: known answers computed by hand (Freqtrade's formulas)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from execdesk.backtest.metrics import compute_metrics, equity_curve

START = datetime(2024, 1, 1, tzinfo=UTC)
END = START + timedelta(days=10)
WALLET = 1000.0


def trades(profits: list[float], ratios: list[float], durations: list[int] | None = None) -> pd.DataFrame:
    n = len(profits)
    closes = [pd.Timestamp(START + timedelta(days=i + 1)) for i in range(n)]
    return pd.DataFrame({
        "close_date": pd.DatetimeIndex(closes, tz=UTC) if n else pd.DatetimeIndex([], tz=UTC),
        "profit_abs": profits,
        "profit_ratio": ratios,
        "trade_duration": durations if durations is not None else [60] * n,
    })


def test_metrics_of_three_trades_by_hand() -> None:
    m = compute_metrics(trades([100.0, -50.0, 30.0], [0.1, -0.05, 0.03], [60, 120, 30]), WALLET, START, END)
    assert (m.trades, m.wins, m.losses, m.draws) == (3, 2, 1, 0)
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.total_profit_abs == pytest.approx(80.0)
    assert m.total_profit_ratio == pytest.approx(0.08)
    assert m.avg_profit_ratio == pytest.approx(0.08 / 3)
    assert m.profit_factor == pytest.approx(130 / 50)
    # equity 1000 -> 1100 -> 1050 -> 1080: the largest fall is 50 from the 1100 peak
    assert m.max_drawdown_abs == pytest.approx(50.0)
    assert m.max_drawdown == pytest.approx(50 / 1100)
    assert m.max_relative_drawdown == pytest.approx(50 / 1100)
    # sharpe: mean daily return = 0.08 / 10 days; population std of (0.1, -0.05, 0.03)
    mean = (0.1 - 0.05 + 0.03) / 3
    std = math.sqrt(((0.1 - mean) ** 2 + (-0.05 - mean) ** 2 + (0.03 - mean) ** 2) / 3)
    assert m.sharpe == pytest.approx(0.008 / std * math.sqrt(365))
    # sortino: a single losing trade has no spread -> Freqtrade's -100
    assert m.sortino == -100.0
    # calmar: (0.08 / 10 days x 100) / max_drawdown x sqrt(365)
    assert m.calmar == pytest.approx(0.8 / (50 / 1100) * math.sqrt(365))
    assert m.avg_trade_duration == timedelta(minutes=70)
    assert m.final_balance == pytest.approx(1080.0)
    assert m.returns == (0.1, -0.05, 0.03)


def test_sortino_uses_only_losing_trades() -> None:
    m = compute_metrics(trades([50.0, -50.0, -30.0], [0.05, -0.05, -0.03]), WALLET, START, END)
    mean = (0.05 - 0.05 - 0.03) / 10
    assert m.sortino == pytest.approx(mean / 0.01 * math.sqrt(365))  # std of (-0.05, -0.03) is 0.01


def test_drawdown_when_losses_come_first_then_measured_from_starting_balance() -> None:
    m = compute_metrics(trades([-50.0, 20.0], [-0.05, 0.02]), WALLET, START, END)
    assert m.max_drawdown_abs == pytest.approx(50.0)
    assert m.max_drawdown == pytest.approx(0.05)
    assert m.profit_factor == pytest.approx(20 / 50)


def test_account_drawdown_differs_from_largest_relative_drawdown() -> None:
    # falls: 100 from 1100 (9.1 %) early, then 150 from 1700 (8.8 %) later: the absolute maximum is the
    # second, and max_drawdown (Freqtrade's max_drawdown_account) is its relative size
    m = compute_metrics(trades([100.0, -100.0, 700.0, -150.0], [0.1, -0.1, 0.7, -0.15]), WALLET, START, END)
    assert m.max_drawdown_abs == pytest.approx(150.0)
    assert m.max_drawdown == pytest.approx(150 / 1700)
    assert m.max_relative_drawdown == pytest.approx(100 / 1100)


def test_no_losses_then_profit_factor_zero_as_freqtrade() -> None:
    m = compute_metrics(trades([10.0, 20.0], [0.01, 0.02]), WALLET, START, END)
    assert m.profit_factor == 0.0
    assert m.max_drawdown == 0.0
    assert m.calmar == -100.0


def test_no_trades_then_zero_metrics() -> None:
    m = compute_metrics(trades([], []), WALLET, START, END)
    assert (m.trades, m.win_rate, m.sharpe, m.max_drawdown, m.returns) == (0, 0.0, 0.0, 0.0, ())
    assert m.final_balance == WALLET


def test_ratios_when_period_is_empty_then_zero() -> None:
    m = compute_metrics(trades([10.0], [0.01]), WALLET, START, START)
    assert (m.sharpe, m.sortino, m.calmar) == (0.0, 0.0, 0.0)


def test_draws_count_neither_as_wins_nor_losses() -> None:
    m = compute_metrics(trades([0.0, 5.0], [0.0, 0.005]), WALLET, START, END)
    assert (m.wins, m.losses, m.draws) == (1, 0, 1)


def test_equity_curve_is_balance_after_each_close() -> None:
    curve = equity_curve(trades([100.0, -50.0], [0.1, -0.05]), WALLET)
    assert list(curve) == [1100.0, 1050.0]
    assert curve.index[0] == pd.Timestamp(START + timedelta(days=1))
