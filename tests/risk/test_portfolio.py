"""The assessment's inputs gathered from the ledger and the backtester."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from execdesk.backtest.engine import BacktestConfig, run_backtest
from execdesk.data import PairProfile, generate_market
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.risk.assessment import LiveDeployment, PortfolioSnapshot
from execdesk.risk.portfolio import (
    asset_correlation,
    candidate_from_bundle,
    portfolio_from_ledger,
    same_dates,
    window_returns,
)
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES


def test_portfolio_from_ledger_when_desk_ran_then_live_deployments_with_daily_returns_and_exposure(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    run_desk(load_desk_config(write_config()), tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        portfolio = portfolio_from_ledger(ledger)
        state = ledger.state
        live = {d.id for d in state.deployments.values() if d.state.value != "HALTED"}
        assert {d.id for d in portfolio.deployments} == live
        for dep in portfolio.deployments:
            assert len(dep.returns) >= 40  # 45 days of daily snapshots
            held = sum(float(p.qty * p.avg_price) for p in state.open_positions() if p.deployment_id == dep.id)
            assert sum(dep.exposure.values()) == pytest.approx(held)


def test_candidate_from_bundle_when_backtested_then_returns_and_exposure_spread_over_pairs() -> None:
    bundle = load_bundle(BUNDLES / "trend_ema_cross.yaml")
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e6) for p in bundle.pairs}, "1h",
                             datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC), seed=2)
    candidate, trades = candidate_from_bundle(bundle, 20_000.0, frames)
    assert trades > 0
    assert candidate.exposure == {"BTC": 10_000.0, "ETH": 10_000.0}
    assert len(candidate.returns) > 30
    assert candidate.trade_returns == bundle.validation.returns  # the report's own returns are preferred
    assert candidate.stoploss == 0.05


def test_asset_correlation_when_generated_market_then_symmetric_with_unit_diagonal() -> None:
    frames = generate_market({p: PairProfile(start_price=50.0, base_volume=1e6) for p in ("A/USDT", "B/USDT")}, "1h",
                             datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC), seed=4)
    corr = asset_correlation(frames)
    assert list(corr.columns) == ["A", "B"]
    assert np.allclose(np.diag(corr), 1.0)
    assert corr.loc["A", "B"] == pytest.approx(corr.loc["B", "A"])
    assert 0.2 < corr.loc["A", "B"] < 0.95  # the generator's common market factor


# ---------------------------------------------------------------- daily returns on the same dates
def test_window_returns_when_backtested_then_every_day_of_the_window_marked_and_compounding_to_the_profit() -> None:
    # Arrange: trend_ema_cross on 1h candles with 10 days of warm-up before a 60-day window
    bundle = load_bundle(BUNDLES / "trend_ema_cross.yaml")
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e6) for p in bundle.pairs}, "1h",
                             datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 11, tzinfo=UTC), seed=2)
    start, end = pd.Timestamp("2024-01-11", tz="UTC"), pd.Timestamp("2024-03-11", tz="UTC")

    # Act
    daily = window_returns(bundle, frames, start, end)

    # Assert: one return per day of the window, from its first day
    assert list(daily.index) == list(pd.date_range(start, end - pd.Timedelta(days=1), freq="D"))
    # every trade is closed by the end (force exit): compounded, the days give the trades' profit on the wallet
    trades = run_backtest(bundle, frames, BacktestConfig(stake_amount=5_000.0, max_open_trades=2,
                                                         dry_run_wallet=10_000.0, tradable_balance_ratio=1.0,
                                                         start=start.to_pydatetime())).trades
    assert len(trades) > 5
    assert 10_000.0 * float(np.prod(1.0 + daily.to_numpy())) == pytest.approx(10_000.0 + trades.profit_abs.sum())
    # marked to market: days without a close move while a position is open
    closing_days = set(pd.DatetimeIndex(trades.close_date).floor("D"))
    assert any(r != 0 for day, r in daily.items() if day not in closing_days)


def _live(dep_id: str, returns: pd.Series) -> LiveDeployment:
    return LiveDeployment(dep_id, 1_000.0, {}, returns)


def test_same_dates_when_market_data_then_live_days_take_precedence_and_without_a_backtest_they_alone_count(
) -> None:
    # Arrange: a 10-day window; A's backtest is 1% a day, its ledger returns 5% on Jan 4-5 (snapshots dated the
    # day after, 00:00 UTC) and one day outside the window; B has no backtest and two live days
    days = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    backtest = pd.Series(0.01, index=days)
    live_a = pd.Series([0.05, 0.05, 0.07], index=pd.DatetimeIndex(["2024-01-05", "2024-01-06", "2024-02-01"], tz="UTC"))
    live_b = pd.Series([0.02, 0.03], index=pd.DatetimeIndex(["2024-01-03", "2024-01-04"], tz="UTC"))
    portfolio = PortfolioSnapshot(10_000.0, (_live("A", live_a), _live("B", live_b), _live("C", live_b)))
    strategies: dict[str, pd.Series | str] = {"A": backtest, "B": "its deployment.created event records no bundle",
                                              "C": "its recorded bundle does not rebuild"}

    # Act
    on_data = same_dates(backtest, strategies, portfolio, (date(2024, 1, 1), date(2024, 1, 10)), "datadir /d", True)
    generated = same_dates(backtest, strategies, portfolio, (date(2024, 1, 1), date(2024, 1, 10)),
                           "generated desk candles (seed 7)", False)

    # Assert: market data: A's live days replace its backtest's on Jan 4-5; B is its live days alone
    a = on_data.deployments["A"]
    assert len(a) == 10
    assert a[pd.Timestamp("2024-01-04", tz="UTC")] == 0.05
    assert a.iloc[0] == 0.01
    assert on_data.sources["A"] == "datadir /d: backtests of both strategies; its live ledger returns on 2 days"
    assert list(on_data.deployments["B"]) == [0.02, 0.03]
    assert "its 2 live ledger days" in on_data.sources["B"]
    # generated candles: the live days are another market's, never mixed in; without a backtest, unavailable
    assert (generated.deployments["A"] == backtest).all()
    assert "its 2 live ledger days in the window not used" in generated.sources["A"]
    assert generated.unavailable == {"B": "its deployment.created event records no bundle",
                                     "C": "its recorded bundle does not rebuild"}
    assert (generated.start, generated.end) == (date(2024, 1, 1), date(2024, 1, 10))
