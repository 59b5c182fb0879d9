"""Inputs of the pre-deployment assessment, gathered from the ledger and the native backtester.

* :func:`portfolio_from_ledger` — the live portfolio: equity, and per live deployment (not HALTED)
  its capital, its exposure by asset (positions at their entry price) and its daily returns (from
  the ledger's daily equity snapshots).
* :func:`candidate_from_bundle` — the strategy to deploy: its daily and per-trade returns from the
  native backtester over the bundle's validation period (per-trade returns from the validation
  report when it gives them), and its expected exposure (the allocation spread over its pairs).
* :func:`window_returns` — a strategy's daily returns over a window of days from the native backtester
  (equity marked to each day's last close), so that several strategies' fall on the same dates.
* :func:`same_dates` — the candidate's and each live deployment's daily returns over one common window,
  the series the pairwise correlations are measured on (see its docstring for how live days combine).
* :func:`asset_correlation` — daily close-to-close return correlations between base assets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from execdesk.backtest.engine import BacktestConfig, run_backtest, run_backtest_arrays
from execdesk.backtest.metrics import equity_curve
from execdesk.data.candles import fill_gaps, to_arrays
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.domain.events import EventKind
from execdesk.domain.marks import MARK_EVENTS, PORTFOLIO, fold_marks
from execdesk.domain.types import TradingState
from execdesk.risk.assessment import Candidate, LiveDeployment, PortfolioSnapshot, SameDates
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


def window_returns(bundle: StrategyBundle, frames: Mapping[str, pd.DataFrame], start: pd.Timestamp,
                   end: pd.Timestamp, wallet: float = 10_000.0) -> pd.Series:
    """Daily returns of ``bundle`` backtested by the native engine on ``frames`` from ``start`` (the candles
    before it are its warm-up) to ``end`` (exclusive), staked as :func:`candidate_from_bundle` stakes it.

    Its equity at the end of each UTC day is the wallet, plus the profit of the trades closed by then, plus each
    open trade's at the day's last close (less its entry fee): marked to market, as the ledger's daily
    snapshots of a live deployment are. The return of a day is its equity over the day before's (the first
    day's over the wallet). Indexed by UTC day (00:00, tz-aware) from the day of the first candle it trades
    (``start`` when the frames hold its warm-up) to the window's last; empty when it trades no candle there.
    """
    config = BacktestConfig(stake_amount=wallet / max(len(bundle.pairs), 1), max_open_trades=len(bundle.pairs),
                            dry_run_wallet=wallet, tradable_balance_ratio=1.0, start=start.to_pydatetime())
    tf = timeframe_to_seconds(bundle.timeframe)
    candles = {p: fill_gaps(to_arrays(frames[p], p), tf, p) for p in bundle.pairs}
    trades = run_backtest_arrays(bundle, candles, config)
    if trades.start is None:
        return pd.Series(dtype=float)
    days = pd.date_range(pd.Timestamp(trades.start, unit="s", tz="UTC").floor("D"), end - pd.Timedelta(days=1),
                         freq="D")
    if days.empty:
        return pd.Series(dtype=float)
    ends = (days + pd.Timedelta(days=1)).as_unit("s").asi8  # each day's end, epoch seconds
    # the last close by each day's end: the close of the last candle opening before it
    marks = np.full((len(trades.pairs), ends.size), np.nan)
    for i, pair in enumerate(trades.pairs):
        ohlcv = candles[pair]
        row = np.searchsorted(ohlcv.time, ends, side="left") - 1
        marks[i] = np.where(row >= 0, ohlcv.close[np.maximum(row, 0)], np.nan)
    opened, closed = trades.open_time[:, None], trades.close_time[:, None]
    realized = np.where(closed <= ends, trades.profit_abs[:, None], 0.0).sum(axis=0)
    sign = np.where(trades.is_short, -1.0, 1.0)[:, None]
    unrealized = (sign * trades.amount[:, None] * (marks[trades.pair] - trades.open_rate[:, None])
                  - config.fee * trades.stake_amount[:, None])
    holding = (opened < ends) & (closed > ends) & np.isfinite(unrealized)
    equity = wallet + realized + np.where(holding, unrealized, 0.0).sum(axis=0)
    before = np.concatenate(([wallet], equity[:-1]))
    return pd.Series(equity / before - 1.0, index=days)


def same_dates(candidate: pd.Series, strategies: Mapping[str, pd.Series | str], portfolio: PortfolioSnapshot,
               window: tuple[date, date], label: str, market_data: bool) -> SameDates:
    """The series the pairwise correlations are measured on: ``candidate`` (the candidate's :func:`window_returns`)
    and, per live deployment of ``portfolio`` named in ``strategies``, its strategy's over the same ``window`` on
    the same candles (``strategies``: per deployment id its series, or why it has none; a deployment not named is
    not compared), the candles being ``label``.

    Live days: where the ledger holds a deployment's own daily returns (``LiveDeployment.returns``, indexed by
    the date of the snapshot that ends each: 00:00 UTC after the day earned) on days of
    the window and the candles are market data (``market_data``: a datadir), those live returns take precedence
    over its backtest's on those days (they are what it did on that market); a deployment without a backtest is
    then measured on its live days alone. On generated candles live days are not used: they were earned on
    another market than the one the candidate is backtested on, and would only add noise. Each deployment's
    source says which it was.
    """
    first, last = pd.Timestamp(window[0], tz="UTC"), pd.Timestamp(window[1], tz="UTC")
    series: dict[str, pd.Series] = {}
    sources: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for dep in portfolio.deployments:
        if dep.id not in strategies:
            continue
        live = dep.returns
        if len(live):
            index = pd.DatetimeIndex(live.index)
            days = (index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")).normalize()
            # indexed by the snapshot's date: the daily snapshot at 00:00 UTC closes the day before, whose return it is
            live = pd.Series(live.to_numpy(dtype=np.float64), index=days - pd.Timedelta(days=1))
            live = live[(live.index >= first) & (live.index <= last)].dropna()
        own = strategies[dep.id]
        used = market_data and len(live) > 0
        if isinstance(own, str):
            if used:
                series[dep.id] = live
                sources[dep.id] = f"{label}: the candidate's backtest; its {len(live)} live ledger days ({own})"
            else:
                unavailable[dep.id] = own
                sources[dep.id] = label
            continue
        if used:
            series[dep.id] = live.combine_first(own)
            sources[dep.id] = f"{label}: backtests of both strategies; its live ledger returns on {len(live)} days"
        else:
            series[dep.id] = own
            sources[dep.id] = f"{label}: backtests of both strategies" + (
                f" (its {len(live)} live ledger days in the window not used: generated candles)" if len(live) else "")
    return SameDates(candidate, window[0], window[1], series, sources, unavailable)


def asset_correlation(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Pearson correlation of daily close returns between the frames' base assets."""
    closes = {}
    for pair, frame in frames.items():
        series = frame.set_index("date")["close"].resample("1D").last()
        closes[base_asset(pair)] = series
    return pd.DataFrame(closes).pct_change().corr()
