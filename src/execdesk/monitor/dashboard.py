"""A PNG dashboard per deployment: live against the backtest that approved it, in four panels.

1. **Equity**, live against backtest, both as a multiple of the deployment's capital. Live: the
   ``equity.snapshot`` series (marked to market, unrealised P&L included) over the capital. Backtest:
   the compounded trade returns of the approved backtest (``monitor.baseline``), ``prod(1 + f r_i)``,
   **spread by time at the backtest's own pace**: trade ``i`` lands at ``start + i x (backtest period /
   backtest trades)``, so the line shows where the backtest's trade sequence would have taken the
   deployment in the same time; it stops at the live period's end (or earlier, when the sample runs
   out). ``f`` is the live trades' mean stake as a fraction of capital (1 without live trades): the
   returns are per trade *on its stake*, and compounding them on the whole capital would overstate the
   backtest's path by the inverse of the exposure.
2. **Rolling Sharpe** of the live equity's period returns over ``window`` snapshots, annualised with
   365-day years (:func:`execdesk.monitor.metrics.rolling_sharpe`), beside the backtest's Sharpe.
3. **Drawdown**: the live underwater curve ``1 - E_t / max_{s<=t} E_s`` from the snapshots, with the
   backtest's max drawdown and the drift rule's warning level (``drawdown_warn_multiple`` x it).
4. **Drift**: the Page-Hinkley statistic of :mod:`execdesk.monitor.drift` after each live trade (at
   its close), on ``z = (r - mean_bt) / sd_bt``, with its warning and critical thresholds. Without a
   backtest trade-return sample the panel says so.

matplotlib is imported inside :func:`write_dashboard` (the CLI stays fast) and drawn through its Agg
canvas directly, without pyplot: no global figure state, no GUI backend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from execdesk.monitor.drift import DriftConfig, page_hinkley
from execdesk.monitor.metrics import rolling_sharpe

#: the rolling Sharpe's window, in snapshots (two weeks of daily snapshots)
SHARPE_WINDOW = 14
#: the figure's size in inches at ``DPI`` dots per inch: 1,200 x 900 pixels
FIGSIZE = (12.0, 9.0)
DPI = 100


@dataclass(frozen=True, slots=True)
class DashboardData:
    """What one deployment's dashboard draws (plain series; the report builds them from the ledger).

    ``equity``: live equity by UTC time; ``trades``: the live round trips (``close_date``,
    ``profit_ratio``, ``stake_amount``), in closing order; ``baseline_returns``: the backtest's per-trade
    profit ratios (None: none recorded); ``backtest_days``: the validation period's length.
    """

    deployment: str
    name: str
    capital: float
    equity: pd.Series
    trades: pd.DataFrame
    baseline_returns: tuple[float, ...] | None
    backtest_days: float
    backtest_sharpe: float | None
    backtest_max_drawdown: float | None
    verdict: str | None = None
    drift: DriftConfig = field(default_factory=DriftConfig)
    state: str | None = None  # the deployment's state as the report has it, e.g. "HALTED (circuit_breaker)"


def stake_fraction(trades: pd.DataFrame, capital: float) -> float:
    """The live trades' mean stake over the capital, capped at 1; 1 without trades."""
    if trades.empty or capital <= 0:
        return 1.0
    return float(min(1.0, trades["stake_amount"].astype(float).mean() / capital))


def backtest_path(returns: Sequence[float], start: pd.Timestamp, end: pd.Timestamp, backtest_days: float,
                  fraction: float = 1.0) -> pd.Series:
    """The backtest's equity multiple ``prod(1 + fraction x r)`` at the backtest's pace from ``start``.

    Trade ``i`` (1-based) closes at ``start + i x backtest_days / len(returns)``; the path starts at 1.0
    and holds the trades that close by ``end``.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0 or backtest_days <= 0:
        return pd.Series([1.0], index=pd.DatetimeIndex([start]))
    step = pd.Timedelta(days=backtest_days) / r.size
    times = [start + step * i for i in range(r.size + 1)]
    values = np.concatenate([[1.0], np.cumprod(1.0 + fraction * r)])
    path = pd.Series(values, index=pd.DatetimeIndex(times))
    return path[path.index <= end]


def underwater(equity: pd.Series) -> pd.Series:
    """The drawdown at each point, ``1 - E_t / running peak`` (0 at a new high)."""
    return 1.0 - equity / equity.cummax()


def drift_path(trades: pd.DataFrame, baseline_returns: Sequence[float] | None,
               config: DriftConfig | None = None) -> pd.Series | None:
    """Page-Hinkley after each live trade, indexed by its close time; None without a usable sample."""
    config = config or DriftConfig()
    if baseline_returns is None or len(baseline_returns) < max(config.min_trades, 2):
        return None
    sample = np.asarray(baseline_returns, dtype=np.float64)
    sd = float(sample.std())
    if sd <= 0 or trades.empty:
        return None if sd <= 0 else pd.Series(dtype=np.float64)
    z = (trades["profit_ratio"].to_numpy(dtype=np.float64) - float(sample.mean())) / sd
    stat = page_hinkley(z, config.ph_delta, config.ph_clip)
    return pd.Series(stat, index=pd.DatetimeIndex(trades["close_date"]))


def write_dashboard(data: DashboardData, path: Path, window: int = SHARPE_WINDOW) -> Path:
    """Draw the four panels to a new PNG at ``path`` (created exclusively: an existing file is an error)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True)
    said = [f"state {data.state}"] if data.state else []
    said += [f"the monitor's verdict: {data.verdict}"] if data.verdict else []
    fig.suptitle(f"{data.deployment} ({data.name}): live vs backtest" + (f" — {'; '.join(said)}" if said else ""))
    equity = data.equity.dropna().sort_index()
    if equity.empty:
        for ax in axes.flat:
            _empty(ax, "no equity snapshots yet")
    else:
        _equity_panel(axes[0, 0], data, equity)
        _sharpe_panel(axes[0, 1], data, equity, window)
        _drawdown_panel(axes[1, 0], data, equity)
        _drift_panel(axes[1, 1], data, equity)
    for ax in axes[1]:
        ax.tick_params(axis="x", labelrotation=30)
    with path.open("xb") as fh:
        fig.savefig(fh, format="png", dpi=DPI)
    return path


def _equity_panel(ax: Any, data: DashboardData, equity: pd.Series) -> None:
    ax.plot(equity.index, equity / data.capital, label="live (marked to market)", color="tab:blue")
    if data.baseline_returns:
        fraction = stake_fraction(data.trades, data.capital)
        path = backtest_path(data.baseline_returns, equity.index[0], equity.index[-1], data.backtest_days, fraction)
        ax.step(path.index, path.to_numpy(), where="post", color="tab:gray",
                label=f"backtest trades at its pace (x stake {fraction:.0%})")
    ax.axhline(1.0, color="black", linewidth=0.5)
    ax.set_title("Equity / capital")
    ax.legend(loc="best", fontsize="small")


def _sharpe_panel(ax: Any, data: DashboardData, equity: pd.Series, window: int) -> None:
    rolling = rolling_sharpe(equity, window) if len(equity) > window else pd.Series(dtype=np.float64)
    if rolling.dropna().empty:
        _empty(ax, f"fewer than {window + 1} snapshots")
    else:
        ax.plot(rolling.index, rolling.to_numpy(), color="tab:blue", label=f"live, {window}-snapshot window")
    if data.backtest_sharpe is not None and math.isfinite(data.backtest_sharpe):
        ax.axhline(data.backtest_sharpe, color="tab:gray", linestyle="--", label="backtest")
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_title("Rolling Sharpe (annualised, 365-day year)")
    ax.legend(loc="best", fontsize="small")


def _drawdown_panel(ax: Any, data: DashboardData, equity: pd.Series) -> None:
    dd = underwater(equity)
    ax.fill_between(dd.index, -dd.to_numpy(), 0.0, color="tab:red", alpha=0.35, label="live")
    bt = data.backtest_max_drawdown
    if bt is not None and bt > 0:
        ax.axhline(-bt, color="tab:gray", linestyle="--", label=f"backtest max {bt:.1%}")
        ax.axhline(-bt * data.drift.drawdown_warn_multiple, color="tab:orange", linestyle=":",
                   label=f"warn at {data.drift.drawdown_warn_multiple:g}x")
    ax.yaxis.set_major_formatter(_percent())
    ax.set_title("Drawdown (underwater, incl. unrealised)")
    ax.legend(loc="lower left", fontsize="small")


def _drift_panel(ax: Any, data: DashboardData, equity: pd.Series) -> None:
    ph = drift_path(data.trades, data.baseline_returns, data.drift)
    ax.set_title("Drift: Page-Hinkley on live trades")
    if ph is None:
        _empty(ax, "no backtest trade-return sample")
        return
    if ph.empty:
        _empty(ax, "no closed live trades yet")
    else:
        ax.step(ph.index, ph.to_numpy(), where="post", color="tab:purple", label="PH statistic")
    ax.axhline(data.drift.ph_warn, color="tab:orange", linestyle="--", label=f"warn > {data.drift.ph_warn:g}")
    ax.axhline(data.drift.ph_critical, color="tab:red", linestyle="--",
               label=f"critical > {data.drift.ph_critical:g}")
    if len(equity) > 1:
        ax.set_xlim(equity.index[0], equity.index[-1])
    ax.legend(loc="upper left", fontsize="small")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0)
