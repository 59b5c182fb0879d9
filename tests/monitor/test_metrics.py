"""Live metrics: every figure against a hand calculation, and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from execdesk.errors import InvalidInput
from execdesk.monitor.metrics import live_metrics, periods_per_year, rolling_sharpe
from execdesk.monitor.trades import COLUMNS

DAY0 = pd.Timestamp("2026-01-01", tz="UTC")


def daily(*values: float) -> pd.Series:
    return pd.Series(values, index=pd.date_range(DAY0, periods=len(values), freq="D"))


def trades(*rows: tuple[float, float, int]) -> pd.DataFrame:
    """(profit_abs, profit_ratio, trade_duration minutes) per trade; the other columns blank."""
    frame = pd.DataFrame([{"profit_abs": p, "profit_ratio": r, "trade_duration": d} for p, r, d in rows],
                         columns=list(COLUMNS))
    return frame


NO_TRADES = pd.DataFrame(columns=list(COLUMNS))


def test_live_metrics_when_daily_equity_and_four_trades_then_every_figure_matches_the_hand_calculation() -> None:
    # Arrange: equity 100, 110, 99, 121 on four days; returns r = 0.1, -0.1, 2/9
    equity = daily(100, 110, 99, 121)
    book = trades((10, 0.1, 60), (-5, -0.05, 120), (3, 0.03, 30), (-2, -0.02, 90))
    # Act
    m = live_metrics(equity, book, capital=100, slippage_bps=[2, 4, 9], fees=[0.1, 0.2])
    # Assert
    # mean r = (0.1 - 0.1 + 0.2222)/3 = 0.074074; sample var = ((0.025926)^2 + (-0.174074)^2 + (0.148148)^2)/2
    #   = (0.000672 + 0.030302 + 0.021948)/2 = 0.026461, std 0.162669; Sharpe = 0.074074/0.162669 x sqrt(365) = 8.6997
    assert m.periods_per_year == 365
    assert m.sharpe == pytest.approx(0.074074 / 0.162669 * math.sqrt(365), rel=1e-4)
    assert m.sharpe == pytest.approx(8.6997, abs=1e-3)
    # downside deviation = sqrt((0 + 0.01 + 0)/3) = 0.057735; Sortino = 0.074074/0.057735 x 19.1050 = 24.511
    assert m.sortino == pytest.approx(24.511, abs=1e-2)
    # peaks 100, 110, 110, 121: drawdown 1 - 99/110 = 0.1
    assert m.max_drawdown == pytest.approx(0.1)
    # CAGR over 3 days = 1.21^(365/3) - 1; Calmar = that / 0.1
    assert m.calmar == pytest.approx((1.21 ** (365 / 3) - 1) / 0.1)
    # P&L 121 - 100 = 21 (21%); realised 10 - 5 + 3 - 2 = 6, so unrealised 15
    assert (m.equity, m.pnl, m.pnl_pct, m.realized_pnl, m.unrealized_pnl) == pytest.approx((121, 21, 21, 6, 15))
    # 2 wins, 2 losses; profit factor (10 + 3) / (5 + 2) = 13/7; mean duration (60+120+30+90)/4 = 75 min
    assert (m.trades, m.wins, m.losses, m.win_rate) == (4, 2, 2, 0.5)
    assert m.profit_factor == pytest.approx(13 / 7)
    assert m.avg_trade_duration_min == 75
    # slippage (2 + 4 + 9)/3 = 5 bps over 3 fills; fees 0.1 + 0.2
    assert (m.slippage_bps_mean, m.fills, m.fees) == pytest.approx((5, 3, 0.3))
    assert m.as_dict()["profit_factor"] == pytest.approx(13 / 7)


def test_live_metrics_when_a_year_passes_with_a_20pct_dip_then_calmar_is_cagr_over_drawdown() -> None:
    # 100 -> 80 (day 1) -> 120 (day 365): CAGR 20% over exactly one year, max drawdown 20%: Calmar 1
    equity = pd.Series([100.0, 80.0, 120.0], index=[DAY0, DAY0 + pd.Timedelta(days=1), DAY0 + pd.Timedelta(days=365)])
    m = live_metrics(equity, NO_TRADES, capital=100, interval=pd.Timedelta(days=1))
    assert m.max_drawdown == pytest.approx(0.2)
    assert m.calmar == pytest.approx(1.0)


def test_live_metrics_when_hourly_snapshots_then_annualised_with_sqrt_8760() -> None:
    # returns 0.01, -0.01, 0.02: mean 0.006667, sample std 0.015275; Sharpe = 0.4364 x sqrt(8760) = 40.85
    equity = pd.Series([100.0, 101.0, 99.99, 101.9898], index=pd.date_range(DAY0, periods=4, freq="h"))
    m = live_metrics(equity, NO_TRADES, capital=100)
    assert m.periods_per_year == 8760
    r = np.array([0.01, -0.01, 0.02])
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8760))
    assert m.sharpe == pytest.approx(40.85, abs=0.01)
    # an explicit interval wins over the index: the same returns read as daily
    assert live_metrics(equity, NO_TRADES, 100, interval=pd.Timedelta(days=1)).sharpe == pytest.approx(
        r.mean() / r.std(ddof=1) * math.sqrt(365))


def test_periods_per_year_when_a_snapshot_is_missing_then_the_median_spacing_is_used() -> None:
    index = pd.DatetimeIndex([DAY0, DAY0 + pd.Timedelta(days=1), DAY0 + pd.Timedelta(days=3),
                              DAY0 + pd.Timedelta(days=4)])
    assert periods_per_year(index) == 365
    with pytest.raises(InvalidInput, match="interval"):
        periods_per_year(index, pd.Timedelta(0))


def test_rolling_sharpe_when_window_two_then_each_point_uses_the_last_two_returns() -> None:
    equity = daily(100, 110, 99, 121)
    rolled = rolling_sharpe(equity, window=2)
    # window (0.1, -0.1): mean 0 -> 0; window (-0.1, 2/9): mean 0.061111, std 0.227866 -> 0.26819 x 19.105
    assert rolled.iloc[:2].isna().all()
    assert rolled.iloc[2] == pytest.approx(0.0)
    assert rolled.iloc[3] == pytest.approx(0.061111 / 0.227866 * math.sqrt(365), rel=1e-4)


def test_live_metrics_when_no_trades_and_flat_equity_then_ratios_are_none_and_counts_zero() -> None:
    m = live_metrics(daily(100, 100, 100), NO_TRADES, capital=100)
    assert (m.sharpe, m.sortino, m.calmar) == (None, None, None)
    assert (m.max_drawdown, m.pnl, m.trades, m.fills, m.fees) == (0.0, 0.0, 0, 0, 0.0)
    assert (m.win_rate, m.profit_factor, m.avg_trade_duration_min, m.slippage_bps_mean) == (None, None, None, None)


def test_live_metrics_when_no_equity_yet_then_equity_is_the_capital() -> None:
    m = live_metrics(pd.Series(dtype=float), NO_TRADES, capital=250)
    assert (m.equity, m.pnl, m.sharpe, m.periods_per_year) == (250, 0, None, None)


def test_live_metrics_when_one_winning_trade_then_win_rate_one_and_profit_factor_undefined() -> None:
    m = live_metrics(daily(100, 105), trades((5, 0.05, 240)), capital=100)
    assert (m.trades, m.win_rate, m.avg_trade_duration_min) == (1, 1.0, 240)
    assert m.profit_factor is None  # nothing lost: undefined, not infinite
    assert m.sharpe is None  # one return has no spread
    assert m.sortino is None  # and no losing period


def test_live_metrics_when_all_trades_lose_then_profit_factor_zero() -> None:
    m = live_metrics(daily(100, 97, 96), trades((-3, -0.03, 60), (-1, -0.01, 60)), capital=100)
    assert (m.profit_factor, m.win_rate, m.wins, m.losses) == (0.0, 0.0, 0, 2)
    # returns -0.03, -0.010309: mean -0.020155, downside sqrt((0.0009 + 0.00010628)/2) = 0.022431
    assert m.sortino == pytest.approx(-0.020155 / 0.022431 * math.sqrt(365), rel=1e-3)
    assert m.max_drawdown == pytest.approx(0.04)


def test_live_metrics_when_capital_not_positive_then_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="capital"):
        live_metrics(daily(100), NO_TRADES, capital=0)
