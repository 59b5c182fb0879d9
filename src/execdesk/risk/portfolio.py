"""Inputs of the pre-deployment assessment, gathered from the ledger and the native backtester.

* :func:`portfolio_from_ledger` — the live portfolio: equity, and per live deployment (not HALTED)
  its capital, its exposure by asset (positions at their entry price) and its daily returns (from
  the ledger's daily equity snapshots).
* :func:`candidate_from_bundle` — the strategy to deploy: its daily and per-trade returns from the
  native backtester over the bundle's validation period (per-trade returns from the validation
  report when it gives them), and its expected exposure (the allocation spread over its pairs).
* :func:`asset_correlation` — daily close-to-close return correlations between base assets.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from execdesk.backtest.engine import BacktestConfig, run_backtest
from execdesk.backtest.metrics import equity_curve
from execdesk.domain.events import EventKind
from execdesk.domain.marks import MARK_EVENTS, PORTFOLIO, fold_marks
from execdesk.domain.types import TradingState
from execdesk.risk.assessment import Candidate, LiveDeployment, PortfolioSnapshot
from execdesk.store.ledger import Ledger
from execdesk.strategy import StrategyBundle


def base_asset(pair: str) -> str:
    return pair.split("/", 1)[0]


def portfolio_from_ledger(ledger: Ledger) -> PortfolioSnapshot:
    """The live portfolio the ledger holds (see module docstring)."""
    state = ledger.state
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    equity = marks.last_equity.get(PORTFOLIO, float(state.cash()))
    curves: dict[str, dict[pd.Timestamp, float]] = {}
    for e in ledger.events({EventKind.EQUITY_SNAPSHOT}):
        day = pd.Timestamp(e.time, unit="s", tz="UTC").normalize()
        for dep_id, values in e.payload["deployments"].items():
            curves.setdefault(dep_id, {})[day] = float(values["equity"])
    live = []
    for dep in state.deployments.values():
        if dep.state is TradingState.HALTED:
            continue
        exposure: dict[str, float] = {}
        for pos in state.open_positions():
            if pos.deployment_id == dep.id:
                asset = base_asset(pos.pair)
                exposure[asset] = exposure.get(asset, 0.0) + float(pos.qty * pos.avg_price)
        daily = pd.Series(curves.get(dep.id, {}), dtype=float).sort_index()
        live.append(LiveDeployment(dep.id, float(dep.capital), exposure, daily.pct_change().dropna()))
    return PortfolioSnapshot(equity=equity, deployments=tuple(live))


def candidate_from_bundle(bundle: StrategyBundle, allocation: float, frames: Mapping[str, pd.DataFrame],
                          wallet: float = 10_000.0) -> tuple[Candidate, int]:
    """The candidate and the number of backtest trades its returns come from."""
    stake = wallet / max(len(bundle.pairs), 1)
    result = run_backtest(bundle, frames, BacktestConfig(stake_amount=stake, max_open_trades=len(bundle.pairs),
                                                         dry_run_wallet=wallet, tradable_balance_ratio=1.0))
    trades = result.trades
    if trades.empty:
        daily = pd.Series(dtype=float)
    else:
        curve = equity_curve(trades, wallet)
        daily = curve.resample("1D").last().ffill().pct_change().dropna()
    given = bundle.validation.returns
    trade_returns = tuple(float(r) for r in given) if given else tuple(float(r) for r in trades.profit_ratio)
    short_only = bundle.entry.long is None
    share = allocation / len(bundle.pairs) * (-1.0 if short_only else 1.0)
    exposure: dict[str, float] = {}
    for pair in bundle.pairs:
        exposure[base_asset(pair)] = exposure.get(base_asset(pair), 0.0) + share
    candidate = Candidate(id=f"{bundle.id}-v{bundle.version}", allocation=allocation, exposure=exposure,
                          returns=daily, trade_returns=trade_returns, stoploss=abs(float(bundle.stoploss)))
    return candidate, len(trades)


def asset_correlation(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Pearson correlation of daily close returns between the frames' base assets."""
    closes = {}
    for pair, frame in frames.items():
        series = frame.set_index("date")["close"].resample("1D").last()
        closes[base_asset(pair)] = series
    return pd.DataFrame(closes).pct_change().corr()
