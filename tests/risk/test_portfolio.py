"""The assessment's inputs gathered from the ledger and the backtester."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from execdesk.data import PairProfile, generate_market
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.risk.portfolio import asset_correlation, candidate_from_bundle, portfolio_from_ledger
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
