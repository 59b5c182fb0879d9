"""The backtest a deployment is watched against: its trade returns (the validation report's, or the native
backtester's over the validation period), the drift book's :class:`~execdesk.monitor.drift.Baseline` built from
them, and the strategy drawdown measured alike on both sides (the compounded path of trade returns, live; its
bootstrap quantile over as many trades, backtest)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from execdesk.backtest.engine import BacktestConfig
from execdesk.monitor.drift import Baseline
from execdesk.strategy import StrategyBundle
from execdesk.strategy.bundle import ValidationReport


def baseline_returns(bundle: StrategyBundle) -> dict[str, Any]:
    """The trade returns of the backtest that approved ``bundle``, for the monitor's drift tests: the
    validation report's own (``returns``) when it gives them, else the native backtester's trades over
    the validation period on the same generated candles the assessment and codegen proofs use."""
    if bundle.validation.returns:
        return {"returns": [float(r) for r in bundle.validation.returns], "source": "validation report"}
    from execdesk.backtest.engine import run_backtest
    from execdesk.codegen.pipeline import market_for_bundle

    frames, source = market_for_bundle(bundle)
    stake = 10_000.0 / max(len(bundle.pairs), 1)
    result = run_backtest(bundle, frames, BacktestConfig(stake_amount=stake, max_open_trades=len(bundle.pairs),
                                                         dry_run_wallet=10_000.0, tradable_balance_ratio=1.0))
    returns = [round(float(r), 10) for r in result.trades.profit_ratio]
    durations = [int(d) for d in result.trades.trade_duration]
    return {"returns": returns, "durations_min": durations,
            "source": f"native backtest over the validation period: {source}"}


def trade_path_drawdown(returns: Sequence[float]) -> float:
    """Max drawdown of the equity path that compounding ``returns`` trade after trade gives (0 for none).
    Worked: +10%, -20%, +5%: path 1.10, 0.88, 0.924; peak 1.10; drawdown 1 - 0.88 / 1.10 = 20%."""
    if len(returns) == 0:
        return 0.0
    path = np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))
    peaks = np.maximum.accumulate(np.concatenate(([1.0], path)))[1:]
    return float(np.max(1.0 - path / peaks))


class TradePath:
    """:func:`trade_path_drawdown` kept up to date one trade at a time (O(1) a trade, the same figure to the bit:
    the running product is what ``cumprod`` computes, the peak starts at 1.0 as its ``[1.0]`` prefix does)."""

    __slots__ = ("drawdown", "n", "peak", "value")

    def __init__(self) -> None:
        self.value = 1.0
        self.peak = 1.0
        self.drawdown = 0.0
        self.n = 0

    def add(self, ratio: float) -> None:
        self.value = value = self.value * (1.0 + ratio)
        if value > self.peak:
            self.peak = value
        dd = 1.0 - value / self.peak
        if dd > self.drawdown or self.n == 0:
            self.drawdown = dd
        self.n += 1


def bootstrap_drawdown(sample: Sequence[float], n: int, cache: dict[int, float], paths: int = 1000,
                       quantile: float = 0.999) -> float:
    """The drawdown the backtest's trade returns reach over ``n`` trades in all but 0.1% of orderings: the
    ``quantile`` (0.999) of the max drawdowns of ``paths`` paths of ``n`` returns drawn from ``sample`` (seeded,
    so the same sample and ``n`` give the same figure). A longer live record may lawfully see a deeper
    drawdown than the backtest's single path: this is what "above the backtest's" is measured against."""
    n = _grid(n)  # on a grid 10-25% apart (rounded up: a longer record may go deeper), so few are computed
    if n in cache:
        return cache[n]
    rng = np.random.default_rng(n)
    paths = max(200, min(paths, 400_000 // n))  # long records: fewer paths (the quantile moves slowly with n)
    draws = rng.choice(np.asarray(sample, dtype=np.float64), size=(paths, n))
    path = np.cumprod(1.0 + draws, axis=1)
    peaks = np.maximum(np.maximum.accumulate(path, axis=1), 1.0)
    value = float(np.quantile((1.0 - path / peaks).max(axis=1), quantile))
    cache[n] = value
    return value


def _grid(n: int) -> int:
    """The smallest of 1, 2, ..., 10, 11, 13, 15, ... (each about 10% above the last, 25% past 100)
    that is >= ``n``."""
    g = 1
    while g < n:
        g = g + 1 if g < 10 else math.ceil(g * (1.1 if g < 100 else 1.25))
    return g


def baseline_of(report: ValidationReport, returns: Sequence[float] | None) -> Baseline:
    """The approved backtest, with its drawdown measured like the live one when its trade returns are known
    (the drawdown of their compounded path); else the report's own figure."""
    sample = returns if returns is not None else report.returns
    if not sample:
        return Baseline.from_report(report)
    return Baseline.create(sharpe=report.sharpe, max_drawdown=trade_path_drawdown(sample), win_rate=report.win_rate,
                           avg_trade_duration_min=report.avg_trade_duration.total_seconds() / 60,
                           slippage_budget_bps=report.slippage_budget_bps, trades=report.trades, returns=sample)


DRAWDOWN_MIN_TRADES = 20
