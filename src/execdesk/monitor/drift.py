"""Drift of live deployments against the backtest that approved them: early alarms, few false ones.

**Baseline.** :meth:`Baseline.from_report` takes the validation report's figures (Sharpe, max drawdown,
win rate, average trade duration, slippage budget) and, when there is one, its trade-return sample
(``report.returns`` or one supplied): mean, std (ddof 0), skew and kurtosis (biased, *not* excess, as
the PSR formula wants) and the per-trade Sharpe ``mean / std``. A sample of fewer than
``DriftConfig.min_trades`` returns, or with no spread, is treated as no sample.

**Findings** (:class:`Finding`: metric, backtest, live, drift, status, rule, min_sample_met, p_value, n).
Threshold rules say *how much* the live figure moved; on the noisy ones a test says *whether it is more
than luck*, and a rule escalates only as far as its evidence does (a 30% Sharpe shortfall after 25
trades is usually noise: the standard error of a per-trade Sharpe of 0.1 is 0.2 there):

============== ================================================================ ==============================
metric          rule (defaults in :class:`DriftConfig`)                           guard
============== ================================================================ ==============================
sharpe          shortfall > 15% warn, > 30% critical; evidence PSR < 0.01 for     ``min_trades`` (20)
                warn, < 1e-5 for critical. With a sample: per-trade Sharpe
                (like with like); without: the live annualised Sharpe given to
                :meth:`DriftBook.observe` against the report's, capped at warn
max_drawdown    live (equity incl. unrealised) > 0.8 x backtest warn, > 1.0 x      none: realised losses are
                critical                                                          facts, not estimates
win_rate        down > 15% relative, warn; evidence: one-sided two-proportion     ``min_trades``
                z-test (live n vs the backtest's trades) p < 0.01
avg_trade_dur.  changed > 50% either way, warn; evidence z-test p < 0.01          ``min_trades``
slippage_bps    mean > 2 x budget, warn                                           ``min_fills`` (20)
page_hinkley    one-sided PH on z = (r - mu_bt) / sd_bt clipped to +-4,           ``ph_min_trades`` (10),
                delta 0.5: statistic > 10 warn, > 15 critical                     a sample
psr             PSR(live per-trade Sharpe; benchmark the backtest's) < 0.01 warn, ``min_trades``, a sample
                < 1e-5 critical
ks              two-sample KS of live against backtest returns, p < 0.001 warn   ``ks_min_trades`` (30),
                (a change of shape, either way: never critical alone)             a sample
============== ================================================================ ==============================

Why these levels: the monitor re-evaluates after every trade, so a test at 5% fires on a healthy
deployment somewhere along 1,000 looks far more often than 5% of the time. Measured by simulation
(tests/monitor/test_drift.py: Student-t trade returns, backtests of 500 trades, 1,000 live trades from
the same population, every rule evaluated after every trade): with PSR < 0.05 / < 0.001 as warning /
critical, 31% of healthy deployments warned and 1.5% went critical at some point; with the defaults
above, 0 of 400 went critical and 11.75% ever warned (Sharpe/PSR 7%, win rate 5.5%, KS 1.25%,
Page-Hinkley 0.75%, duration 0.75%). A fall of the mean by 1 sd after trade 50 goes critical after a
median 27 trades (p90 41, max 69), nearly always by Page-Hinkley. Set ``psr_warn=0.05`` for the
paper's level.

A rule whose guard is not met reports ``ok`` with ``min_sample_met=False``: nothing alarms on three
trades. **Verdict** (:class:`Verdict`): ``stop`` when the drawdown is critical *and* a return rule
(sharpe, page_hinkley, psr) is critical — money lost past the approved line with evidence that the
edge is gone, not bad luck; ``pause`` on any other critical (reversible); ``review`` on any warning;
``continue`` otherwise.

**Page-Hinkley** for a fall of the mean, with the backtest's mean as the reference: ``m_T = sum(z_t +
delta)``, ``M_T = max(0, m_1..m_T)``, statistic ``PH_T = M_T - m_T`` (the CUSUM ``S_t = max(0, S_{t-1} -
z_t - delta)``, the same number). delta 0.5 is half the 1-sd shift it is tuned to catch. Clipping z at
+-4 keeps one crash trade from sounding the alarm on its own. The status follows the current
statistic (it clears if the stream recovers); the first trade at which each level was crossed is kept.

**PSR** (Bailey & López de Prado, 2012): ``PSR = Phi((SR - SR*) / sqrt(V))``, ``V = (1 - g3 SR + (g4 -
1) / 4 SR^2) / (n - 1)``, with SR the live per-trade Sharpe (std ddof 0), g3 / g4 the live skew /
kurtosis and SR* the backtest's per-trade Sharpe: the probability that the live Sharpe truly beats
the backtest's. The paper treats SR* as known; the backtest's is itself an estimate from m trades,
and ignoring that makes every deployment whose backtest was lucky drift towards PSR 0 as trades
accumulate (in the simulation, PSR < 0.05 at some point on 44% of healthy deployments). With
``psr_benchmark_error`` (default) V also holds the backtest estimate's variance (the same formula with
its moments and m).

**KS** p-values use the asymptotic Kolmogorov distribution (``scipy.stats.kstwobign``), close to
``ks_2samp(method="asymp")`` for the sample sizes it runs on (>= 30).

**Vectorised state** (:class:`DriftBook`): per deployment, running power sums of z (n, z, z^2, z^3,
z^4), wins, duration sums, the Page-Hinkley pair (m, M) and first-alarm trade numbers, and the KS
histogram of live returns over the backtest's distinct values (2K + 1 cells). :meth:`DriftBook.add_trades`
costs O(k log K) for k new trades; :meth:`DriftBook.evaluate_arrays` recomputes every rule from the
state in O(D) plus O(D x K) for KS (K: backtest sample size), without looking at past trades again.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from execdesk.errors import InvalidInput
from execdesk.strategy.bundle import ValidationReport

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: batches of at most this many trades go into the book in plain floats (numpy's fixed cost dominates below it)
SMALL_BATCH = 16
#: questions about at most this many deployments are answered row by row in plain floats (see DriftBook)
SMALL_ROWS = 8


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    CRITICAL = "critical"


class Verdict(StrEnum):
    CONTINUE = "continue"
    REVIEW = "review"
    PAUSE = "pause"
    STOP = "stop"


STATUSES = (Status.OK, Status.WARN, Status.CRITICAL)
VERDICTS = (Verdict.CONTINUE, Verdict.REVIEW, Verdict.PAUSE, Verdict.STOP)
METRICS = ("sharpe", "max_drawdown", "win_rate", "avg_trade_duration", "slippage_bps", "page_hinkley", "psr", "ks")
_RETURN_RULES = [METRICS.index(m) for m in ("sharpe", "page_hinkley", "psr")]


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Thresholds and guards of the drift rules; the table in the module docstring says what each does.

    Defaults: the issue's thresholds (Sharpe 15% / 30%, drawdown above the backtest's critical, win
    rate -15% relative, duration +-50%, slippage 2x budget), 20 trades before a rule speaks (30 for
    KS, 10 for Page-Hinkley, whose threshold already needs a run of losses), and test levels measured
    on simulated healthy and degrading streams (tests/monitor/test_drift.py).
    """

    sharpe_warn: float = 0.15
    sharpe_critical: float = 0.30
    drawdown_warn_multiple: float = 0.8
    drawdown_critical_multiple: float = 1.0
    win_rate_warn: float = 0.15
    duration_warn: float = 0.50
    slippage_warn_multiple: float = 2.0
    min_trades: int = 20
    min_fills: int = 20
    confirm_alpha: float = 0.01
    critical_alpha: float = 1e-5
    ph_delta: float = 0.5
    ph_warn: float = 10.0
    ph_critical: float = 15.0
    ph_clip: float = 4.0
    ph_min_trades: int = 10
    psr_warn: float = 0.01
    psr_critical: float = 1e-5
    psr_benchmark_error: bool = True
    ks_min_trades: int = 30
    ks_alpha: float = 0.001

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value) or value < 0:
                raise InvalidInput(f"drift config {f.name}: got {value}; expected a finite number >= 0")
        for name in ("confirm_alpha", "critical_alpha", "psr_warn", "psr_critical", "ks_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise InvalidInput(f"drift config {name}: got {getattr(self, name)}; expected a probability in (0, 1)")
        pairs = (("sharpe_warn", "sharpe_critical"), ("drawdown_warn_multiple", "drawdown_critical_multiple"),
                 ("ph_warn", "ph_critical"), ("critical_alpha", "confirm_alpha"), ("psr_critical", "psr_warn"))
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise InvalidInput(f"drift config {low}: got {getattr(self, low)}; expected <= {high} "
                                   f"({getattr(self, high)})")


_DEFAULTS = DriftConfig()


@dataclass(frozen=True, slots=True)
class Baseline:
    """The approved backtest's figures (and trade-return moments when it has a usable sample)."""

    sharpe: float
    max_drawdown: float
    win_rate: float
    avg_trade_duration_min: float
    slippage_budget_bps: float
    trades: int = 0
    returns: tuple[float, ...] | None = None
    mean: float | None = None
    std: float | None = None
    skew: float | None = None
    kurtosis: float | None = None
    trade_sharpe: float | None = None

    @classmethod
    def create(cls, *, sharpe: float, max_drawdown: float, win_rate: float, avg_trade_duration_min: float,
               slippage_budget_bps: float, trades: int = 0, returns: Sequence[float] | None = None,
               min_sample: int = _DEFAULTS.min_trades) -> Baseline:
        """A baseline from plain figures; ``returns`` (per-trade profit ratios) gives the moments."""
        sample = None if returns is None else np.asarray(returns, dtype=np.float64)
        moments: dict[str, Any] = {}
        if sample is not None and sample.size >= max(min_sample, 2) and np.all(np.isfinite(sample)):
            mean, std = float(sample.mean()), float(sample.std())
            if std > 0:
                moments = {"returns": tuple(sample.tolist()), "mean": mean, "std": std,
                           "skew": float(stats.skew(sample)), "kurtosis": float(stats.kurtosis(sample, fisher=False)),
                           "trade_sharpe": mean / std}
        return cls(sharpe=float(sharpe), max_drawdown=float(max_drawdown), win_rate=float(win_rate),
                   avg_trade_duration_min=float(avg_trade_duration_min),
                   slippage_budget_bps=float(slippage_budget_bps), trades=int(trades), **moments)

    @classmethod
    def from_report(cls, report: ValidationReport, returns: Sequence[float] | None = None,
                    min_sample: int = _DEFAULTS.min_trades) -> Baseline:
        """The report's figures; the trade returns are ``returns`` if given, else ``report.returns``."""
        return cls.create(sharpe=report.sharpe, max_drawdown=report.max_drawdown, win_rate=report.win_rate,
                          avg_trade_duration_min=report.avg_trade_duration.total_seconds() / 60,
                          slippage_budget_bps=report.slippage_budget_bps, trades=report.trades,
                          returns=returns if returns is not None else report.returns, min_sample=min_sample)

    @property
    def has_sample(self) -> bool:
        return self.returns is not None


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule on one deployment: the two figures, their drift, the status and the rule that set it."""

    metric: str
    backtest: float | None
    live: float | None
    drift: float | None
    status: Status
    rule: str
    min_sample_met: bool
    p_value: float | None = None
    n: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_PERCENT = {"max_drawdown", "win_rate"}
_RELATIVE = {"sharpe", "max_drawdown", "win_rate", "avg_trade_duration", "slippage_bps"}


def format_cell(metric: str, column: str, value: object) -> str:
    """A comparison value for people: ratios as percentages, relative drifts signed, None as n/a."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "n/a"
    if column == "drift":
        return f"{value:+.1%}" if metric in _RELATIVE else f"{value:.3f}"
    if metric in _PERCENT:
        return f"{value:.1%}"
    if metric == "avg_trade_duration":
        return f"{value:,.0f} min"
    if metric == "slippage_bps":
        return f"{value:.2f} bps"
    return f"{value:.3f}"


#: what each comparison row measures (comparison.md's first column; the JSON's ``metric`` stays the rule's name)
ROW_LABELS = {
    "sharpe": "Sharpe per trade",
    "max_drawdown": "drawdown of the compounded trade returns",
    "win_rate": "win rate",
    "avg_trade_duration": "mean trade duration",
    "slippage_bps": "slippage (backtest: its budget)",
    "page_hinkley": "Page-Hinkley (live: mean z of the trade returns)",
    "psr": "PSR (live: probability its Sharpe beats the benchmark)",
    "ks": "KS distance of the trade returns",
}


def finding_message(deployment: str, f: Finding) -> str:
    """An alert's message for a rule that fires: what it measures (:data:`ROW_LABELS`), the live figure against
    the backtest's, and the rule. PSR says its probability against its benchmark, not the Sharpe figures again."""
    if f.metric == "psr":
        p = "n/a" if f.p_value is None else f"{f.p_value:.3g}"
        return (f"{deployment}: PSR {p}, the probability its Sharpe per trade beats the backtest's "
                f"{format_cell('sharpe', 'backtest', f.backtest)} ({f.rule})")
    return (f"{deployment}: {ROW_LABELS.get(f.metric, f.metric)} {format_cell(f.metric, 'live', f.live)} vs "
            f"backtest {format_cell(f.metric, 'backtest', f.backtest)} ({f.rule})")


@dataclass(frozen=True, slots=True)
class DriftAssessment:
    deployment: str
    verdict: Verdict
    findings: tuple[Finding, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "verdict": self.verdict.value,
                "findings": [f.as_dict() for f in self.findings]}


def verdict_of(statuses: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """Verdict codes (index into VERDICTS) from status codes (rows x METRICS; 0 ok, 1 warn, 2 critical)."""
    worst = statuses.max(axis=1, initial=0)
    out = np.where(worst == 2, 2, np.where(worst == 1, 1, 0)).astype(np.int8)
    drawdown = statuses[:, METRICS.index("max_drawdown")] == 2
    returns = (statuses[:, _RETURN_RULES] == 2).any(axis=1)
    out[drawdown & returns] = 3
    return out


# ---------------------------------------------------------------------------------------------- statistics

def sharpe_variance(sr: FloatArray | float, n: FloatArray | float, skew: FloatArray | float,
                    kurtosis: FloatArray | float) -> FloatArray:
    """Variance of a per-period Sharpe estimate over ``n`` returns (Mertens; kurtosis not excess):
    ``(1 - skew SR + (kurtosis - 1) / 4 SR^2) / (n - 1)``."""
    sr = np.asarray(sr, np.float64)
    spread = 1.0 - np.asarray(skew) * sr + (np.asarray(kurtosis) - 1.0) / 4.0 * sr**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.maximum(spread, 1e-12) / (np.asarray(n, np.float64) - 1.0), dtype=np.float64)


def probabilistic_sharpe_ratio(sr: FloatArray | float, sr_benchmark: FloatArray | float, n: FloatArray | float,
                               skew: FloatArray | float, kurtosis: FloatArray | float,
                               benchmark_variance: FloatArray | float = 0.0) -> FloatArray:
    """PSR of per-period Sharpe ``sr`` over ``n`` returns against ``sr_benchmark``:
    ``Phi((SR - SR*) / sqrt(var(SR) + benchmark_variance))``; ``benchmark_variance`` 0 is the paper's PSR
    (SR* known exactly); the book passes the backtest estimate's own variance (see :class:`DriftConfig`)."""
    sr, sr_b = np.asarray(sr, np.float64), np.asarray(sr_benchmark, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = (sr - sr_b) / np.sqrt(sharpe_variance(sr, n, skew, kurtosis) + np.asarray(benchmark_variance))
    return np.asarray(special.ndtr(score), dtype=np.float64)


def page_hinkley(z: Sequence[float] | FloatArray, delta: float = _DEFAULTS.ph_delta,
                 clip: float = _DEFAULTS.ph_clip) -> FloatArray:
    """The one-sided (fall of the mean) Page-Hinkley statistic after each of the normalised returns ``z``."""
    m = np.cumsum(np.clip(np.asarray(z, np.float64), -clip, clip) + delta)
    return np.asarray(np.maximum(np.maximum.accumulate(m), 0.0) - m, dtype=np.float64)


def _search(table: FloatArray, rows: IntArray, x: FloatArray, *, right: bool) -> IntArray:
    """np.searchsorted of each ``x`` in its own row of ``table`` (rows sorted, padded with +inf)."""
    lo = np.zeros(x.size, np.int64)
    hi = np.full(x.size, table.shape[1], np.int64)
    last = table.shape[1] - 1
    for _ in range(max(1, int(table.shape[1]).bit_length())):
        active = lo < hi
        mid = (lo + hi) // 2
        value = table[rows, np.minimum(mid, last)]
        go = value <= x if right else value < x
        lo = np.where(active & go, mid + 1, lo)
        hi = np.where(active & ~go, mid, hi)
    return lo


# ---------------------------------------------------------------------------------------------- the book

class DriftBook:
    """Online drift state of many deployments; see the module docstring.

    ``add_trades`` feeds closed trades (per-trade profit ratios, durations in minutes), ``observe`` the
    figures that come from the equity and the fills (max drawdown, slippage, annualised Sharpe);
    ``evaluate_arrays`` gives every rule for every deployment as arrays, ``evaluate`` as findings.
    """

    def __init__(self, deployments: Sequence[str], baselines: Sequence[Baseline],
                 config: DriftConfig | None = None) -> None:
        if len(deployments) != len(baselines):
            raise InvalidInput(f"drift book: {len(deployments)} deployments but {len(baselines)} baselines")
        self.config = config or DriftConfig()
        self.ids = list(deployments)
        self.row = {d: i for i, d in enumerate(self.ids)}
        if len(self.row) != len(self.ids):
            raise InvalidInput("drift book: deployment ids must be unique")
        size = len(self.ids)
        self.baselines = tuple(baselines)
        b = self.baselines
        self.has_sample = np.array([x.has_sample for x in b], dtype=bool)
        self.mu = np.array([x.mean or 0.0 for x in b])
        self.sd = np.array([x.std or 1.0 for x in b])
        self.sr_bt = np.array([np.nan if x.trade_sharpe is None else x.trade_sharpe for x in b])
        self.sr_bt_var = np.array([float(sharpe_variance(x.trade_sharpe or 0.0, len(x.returns), x.skew or 0.0,
                                                         x.kurtosis or 3.0)) if x.returns else np.nan for x in b])
        self.sharpe_bt = np.array([x.sharpe for x in b])
        self.dd_bt = np.array([x.max_drawdown for x in b])
        self.wr_bt = np.array([x.win_rate for x in b])
        self.dur_bt = np.array([x.avg_trade_duration_min for x in b])
        self.wr_m = np.array([float(len(x.returns)) if x.returns else float(x.trades) for x in b])
        self.budget = np.array([x.slippage_budget_bps for x in b])
        # KS: each backtest sample's distinct values (padded +inf) and its CDF at them (padded 1)
        uniques = [np.unique(np.asarray(x.returns)) if x.returns else np.empty(0) for x in b]
        width = max((u.size for u in uniques), default=0)
        self.ks_values = np.full((size, max(width, 1)), np.inf)
        self.ks_cdf = np.ones((size, width + 1))
        self.ks_m = np.array([len(x.returns) if x.returns else 0 for x in b], dtype=np.float64)
        for i, (u, x) in enumerate(zip(uniques, b, strict=True)):
            if u.size:
                self.ks_values[i, : u.size] = u
                sample = np.asarray(x.returns)
                self.ks_cdf[i, : u.size + 1] = np.concatenate(([0.0], np.searchsorted(np.sort(sample), u, "right")
                                                               / sample.size))
        self.ks_counts = np.zeros((size, 2 * width + 1), dtype=np.int32)
        self._ks_rows: dict[int, list[float]] = {}  # rows of ks_values as lists, for the few-trades path
        # running state
        self.n = np.zeros(size, np.int64)
        self.sums = np.zeros((4, size))  # sum z, z^2, z^3, z^4
        self.wins = np.zeros(size, np.int64)
        self.dur_n = np.zeros(size, np.int64)
        self.dur_sum = np.zeros(size)
        self.dur_sq = np.zeros(size)
        self.ph_m = np.zeros(size)
        self.ph_max = np.zeros(size)
        self.ph_warn_at = np.full(size, -1, np.int64)
        self.ph_critical_at = np.full(size, -1, np.int64)
        self.live_drawdown = np.full(size, np.nan)
        self.live_sharpe = np.full(size, np.nan)
        self.slippage_mean = np.full(size, np.nan)
        self.fills = np.zeros(size, np.int64)

    @property
    def nbytes(self) -> int:
        """Memory of the arrays (baselines' tuples not included)."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    # ------------------------------------------------------------------------------------------ updates

    def add_trades(self, rows: Sequence[int] | IntArray, returns: Sequence[float] | FloatArray,
                   durations_min: Sequence[float] | FloatArray | None = None) -> None:
        """Closed trades, in closing order within each deployment: its row, profit ratio, minutes held."""
        rows_in = np.asarray(rows, np.int64)
        r_in = np.asarray(returns, np.float64)
        if rows_in.shape != r_in.shape or rows_in.ndim != 1:
            raise InvalidInput("drift book: rows and returns must be 1-d arrays of one length")
        if rows_in.size == 0:
            return
        if rows_in.min() < 0 or rows_in.max() >= len(self.ids) or not np.all(np.isfinite(r_in)):
            raise InvalidInput("drift book: a row is out of range or a return is not finite")
        if rows_in.size <= SMALL_BATCH:  # the loop's usual batch: a bar's closed trades
            self._add_few(rows_in.tolist(), r_in.tolist(),
                          None if durations_min is None else np.asarray(durations_min, np.float64).tolist())
            return
        order = np.argsort(rows_in, kind="stable")
        rows_s, r = rows_in[order], r_in[order]
        size = len(self.ids)
        z = (r - self.mu[rows_s]) / self.sd[rows_s]
        power = z.copy()
        for p in range(4):
            self.sums[p] += np.bincount(rows_s, weights=power, minlength=size)
            power *= z
        self.wins += np.bincount(rows_s, weights=r > 0, minlength=size).astype(np.int64)
        if durations_min is not None:
            d = np.asarray(durations_min, np.float64)[order]
            ok = np.isfinite(d)
            self.dur_n += np.bincount(rows_s[ok], minlength=size)
            self.dur_sum += np.bincount(rows_s[ok], weights=d[ok], minlength=size)
            self.dur_sq += np.bincount(rows_s[ok], weights=d[ok] ** 2, minlength=size)
        self._page_hinkley(rows_s, z)
        self.n += np.bincount(rows_s, minlength=size)
        cells = _search(self.ks_values, rows_s, r, right=False) + _search(self.ks_values, rows_s, r, right=True)
        np.add.at(self.ks_counts, (rows_s, cells), 1)

    def _add_few(self, rows: list[int], returns: list[float], durations: list[float] | None) -> None:
        """:meth:`add_trades` for a few trades, row by row in plain floats: the same operations in the same order as
        the vectorised path (sums within a row from 0.0 then added, as ``bincount`` does; powers as repeated
        products; Page-Hinkley's cumulative sum added to the running m), so the state is the same to the bit."""
        c = self.config
        by_row: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            by_row.setdefault(row, []).append(i)
        for row in sorted(by_row):
            mu, sd = float(self.mu[row]), float(self.sd[row])
            acc = [0.0, 0.0, 0.0, 0.0]
            wins = 0
            d_n, d_sum, d_sq = 0, 0.0, 0.0
            n0 = int(self.n[row])
            ph_m, ph_max = float(self.ph_m[row]), float(self.ph_max[row])
            cum, running = 0.0, -math.inf
            warn_at, critical_at = int(self.ph_warn_at[row]), int(self.ph_critical_at[row])
            values = self._ks_row(row)
            for k, i in enumerate(by_row[row]):
                r = returns[i]
                z = (r - mu) / sd
                power = z
                for p in range(4):
                    acc[p] += power
                    power *= z
                wins += r > 0
                if durations is not None and math.isfinite(durations[i]):
                    d_n += 1
                    d_sum += durations[i]
                    d_sq += durations[i] * durations[i]
                step = min(max(z, -c.ph_clip), c.ph_clip) + c.ph_delta
                cum = step if k == 0 else cum + step
                m = ph_m + cum
                running = max(running, m)
                stat = max(ph_max, running) - m
                trade_no = n0 + 1 + k
                if trade_no >= c.ph_min_trades:
                    if warn_at < 0 and stat > c.ph_warn:
                        warn_at = trade_no
                    if critical_at < 0 and stat > c.ph_critical:
                        critical_at = trade_no
                self.ks_counts[row, bisect.bisect_left(values, r) + bisect.bisect_right(values, r)] += 1
            for p in range(4):
                self.sums[p, row] += acc[p]
            self.wins[row] += wins
            if durations is not None:
                self.dur_n[row] += d_n
                self.dur_sum[row] += d_sum
                self.dur_sq[row] += d_sq
            self.ph_m[row] = ph_m + cum
            self.ph_max[row] = max(ph_max, running)
            self.ph_warn_at[row], self.ph_critical_at[row] = warn_at, critical_at
            self.n[row] += len(by_row[row])

    def _ks_row(self, row: int) -> list[float]:
        """Row ``row`` of the KS table as a list (for :mod:`bisect`), made once."""
        values = self._ks_rows.get(row)
        if values is None:
            values = self._ks_rows[row] = self.ks_values[row].tolist()
        return values

    def _page_hinkley(self, rows_s: IntArray, z: FloatArray) -> None:
        c = self.config
        touched, starts, counts = np.unique(rows_s, return_index=True, return_counts=True)
        group = np.repeat(np.arange(touched.size), counts)
        pos = np.arange(rows_s.size) - np.repeat(starts, counts)
        inc = np.zeros((touched.size, int(counts.max())))
        inc[group, pos] = np.clip(z, -c.ph_clip, c.ph_clip) + c.ph_delta
        valid = np.zeros(inc.shape, dtype=bool)
        valid[group, pos] = True
        m = self.ph_m[touched, None] + np.cumsum(inc, axis=1)
        peak = np.maximum(self.ph_max[touched, None], np.maximum.accumulate(m, axis=1))
        stat = peak - m
        trade_no = self.n[touched, None] + 1 + np.arange(inc.shape[1])[None, :]
        eligible = valid & (trade_no >= c.ph_min_trades)
        for level, at in ((c.ph_warn, self.ph_warn_at), (c.ph_critical, self.ph_critical_at)):
            hit = eligible & (stat > level)
            first = hit.any(axis=1) & (at[touched] < 0)
            at[touched[first]] = trade_no[first, np.argmax(hit[first], axis=1)]
        self.ph_m[touched] = m[:, -1]
        self.ph_max[touched] = peak[:, -1]

    def observe(self, rows: Sequence[int] | IntArray, *, max_drawdown: Sequence[float] | FloatArray | None = None,
                slippage_bps_mean: Sequence[float] | FloatArray | None = None,
                fills: Sequence[int] | IntArray | None = None,
                sharpe: Sequence[float] | FloatArray | None = None) -> None:
        """The latest figures from the equity series and the fills (e.g. :class:`LiveMetrics`'), replacing
        the previous ones: max drawdown since deployment, mean slippage over ``fills`` fills, and the
        annualised Sharpe (used only for deployments whose baseline has no trade-return sample)."""
        idx = np.asarray(rows, np.int64)
        for values, target in ((max_drawdown, self.live_drawdown), (slippage_bps_mean, self.slippage_mean),
                               (sharpe, self.live_sharpe)):
            if values is not None:
                target[idx] = np.asarray(values, np.float64)
        if fills is not None:
            self.fills[idx] = np.asarray(fills, np.int64)

    # ------------------------------------------------------------------------------------------ evaluation

    def evaluate_arrays(self, rows: Sequence[int] | IntArray | None = None) -> dict[str, Any]:
        """Every rule for ``rows`` (default all) as arrays, columns in METRICS order.

        Keys: ``rows``, ``status`` (int8: 0 ok, 1 warn, 2 critical), ``verdict`` (int8 into VERDICTS),
        ``backtest``, ``live``, ``drift``, ``p_value`` (float, NaN where none), ``min_sample_met`` (bool),
        ``n`` (int), and ``ph_warn_at`` / ``ph_critical_at`` (first alarm's trade number, -1 none).
        """
        c = self.config
        idx = np.arange(len(self.ids)) if rows is None else np.asarray(rows, np.int64)
        if idx.size <= SMALL_ROWS:  # the loop's usual question: the deployments a bar's trades closed in
            return self._evaluate_few(idx)
        k = len(METRICS)
        shape = (idx.size, k)
        backtest, live, drift, p_value = (np.full(shape, np.nan) for _ in range(4))
        level = np.zeros(shape, np.int8)
        met = np.zeros(shape, bool)
        n = self.n[idx].astype(np.float64)
        sample = self.has_sample[idx]
        col = {m: i for i, m in enumerate(METRICS)}
        with np.errstate(divide="ignore", invalid="ignore"):
            s1, s2, s3, s4 = (self.sums[p, idx] / n for p in range(4))
            var = np.maximum(s2 - s1**2, 0.0)
            m3 = s3 - 3 * s1 * s2 + 2 * s1**3
            m4 = s4 - 4 * s1 * s3 + 6 * s1**2 * s2 - 3 * s1**4
            mu, sd = self.mu[idx], self.sd[idx]
            sr_live = (mu + sd * s1) / (sd * np.sqrt(var))
            skew, kurt = m3 / var**1.5, m4 / var**2
            bt_var = self.sr_bt_var[idx] if c.psr_benchmark_error else 0.0
            psr = probabilistic_sharpe_ratio(sr_live, self.sr_bt[idx], n, skew, kurt, bt_var)
            enough = n >= c.min_trades
            evidence = np.where(psr < c.critical_alpha, 2, np.where(psr < c.confirm_alpha, 1, 0))

            # sharpe: per-trade with a sample, else the annualised figures (no evidence: capped at warn)
            j = col["sharpe"]
            backtest[:, j] = np.where(sample, self.sr_bt[idx], self.sharpe_bt[idx])
            live[:, j] = np.where(sample, sr_live, self.live_sharpe[idx])
            drift[:, j] = (live[:, j] - backtest[:, j]) / np.abs(backtest[:, j])
            p_value[:, j] = np.where(sample, psr, np.nan)
            size = np.where(drift[:, j] <= -c.sharpe_critical, 2, np.where(drift[:, j] <= -c.sharpe_warn, 1, 0))
            met[:, j] = enough & np.isfinite(live[:, j])
            level[:, j] = np.where(met[:, j], np.minimum(size, np.where(sample, evidence, 1)), 0)

            j = col["max_drawdown"]
            backtest[:, j], live[:, j] = self.dd_bt[idx], self.live_drawdown[idx]
            drift[:, j] = live[:, j] / backtest[:, j] - 1.0
            met[:, j] = np.isfinite(live[:, j])
            level[:, j] = np.where(live[:, j] > backtest[:, j] * c.drawdown_critical_multiple, 2,
                                   np.where(live[:, j] > backtest[:, j] * c.drawdown_warn_multiple, 1, 0))

            j = col["win_rate"]
            wins = self.wins[idx]
            backtest[:, j], live[:, j] = self.wr_bt[idx], wins / n
            drift[:, j] = live[:, j] / backtest[:, j] - 1.0
            p_bt = self.wr_bt[idx]
            spread = p_bt * (1 - p_bt) * (1 / n + np.where(self.wr_m[idx] > 0, 1 / self.wr_m[idx], 0.0))
            p_value[:, j] = special.ndtr((live[:, j] + 0.5 / n - p_bt) / np.sqrt(spread))
            met[:, j] = enough
            level[:, j] = enough & (drift[:, j] < -c.win_rate_warn) & (p_value[:, j] < c.confirm_alpha)

            j = col["avg_trade_duration"]
            dn = self.dur_n[idx].astype(np.float64)
            mean_d = self.dur_sum[idx] / dn
            sd_d = np.sqrt(np.maximum(self.dur_sq[idx] / dn - mean_d**2, 0.0) * dn / np.maximum(dn - 1, 1))
            backtest[:, j], live[:, j] = self.dur_bt[idx], mean_d
            drift[:, j] = mean_d / backtest[:, j] - 1.0
            p_value[:, j] = 2 * special.ndtr(-(np.abs(mean_d - backtest[:, j]) / (sd_d / np.sqrt(dn))))
            met[:, j] = dn >= c.min_trades
            level[:, j] = met[:, j] & (np.abs(drift[:, j]) > c.duration_warn) & (p_value[:, j] < c.confirm_alpha)

            j = col["slippage_bps"]
            backtest[:, j], live[:, j] = self.budget[idx], self.slippage_mean[idx]
            drift[:, j] = live[:, j] / backtest[:, j] - 1.0
            met[:, j] = (self.fills[idx] >= c.min_fills) & np.isfinite(live[:, j])
            level[:, j] = met[:, j] & (live[:, j] > backtest[:, j] * c.slippage_warn_multiple)

            j = col["page_hinkley"]
            stat = self.ph_max[idx] - self.ph_m[idx]
            backtest[:, j], live[:, j], drift[:, j] = 0.0, np.where(sample, s1, np.nan), np.where(sample, stat, np.nan)
            met[:, j] = sample & (n >= c.ph_min_trades)
            level[:, j] = np.where(met[:, j], np.where(stat > c.ph_critical, 2, np.where(stat > c.ph_warn, 1, 0)), 0)

            j = col["psr"]
            backtest[:, j] = self.sr_bt[idx]
            live[:, j] = np.where(sample, sr_live, np.nan)
            drift[:, j] = live[:, j] - backtest[:, j]
            p_value[:, j] = np.where(sample, psr, np.nan)
            met[:, j] = sample & enough
            level[:, j] = np.where(met[:, j], np.where(psr < c.psr_critical, 2, np.where(psr < c.psr_warn, 1, 0)), 0)

            j = col["ks"]
            d_stat = self._ks_statistic(idx)
            m = self.ks_m[idx]
            p_value[:, j] = special.kolmogorov(d_stat * np.sqrt(n * m / (n + m)))
            live[:, j] = drift[:, j] = np.where(sample, d_stat, np.nan)
            met[:, j] = sample & (n >= c.ks_min_trades)
            level[:, j] = met[:, j] & (p_value[:, j] < c.ks_alpha)
        return {"rows": idx, "status": level, "verdict": verdict_of(level), "backtest": backtest, "live": live,
                "drift": drift, "p_value": p_value, "min_sample_met": met, "n": self.n[idx],
                "ph_warn_at": self.ph_warn_at[idx], "ph_critical_at": self.ph_critical_at[idx]}

    def _evaluate_few(self, idx: IntArray) -> dict[str, Any]:
        """:meth:`evaluate_arrays` for a few rows, row by row in plain floats: the same operations in the same order
        (IEEE division by zero and NaN where numpy gives them, ``x * x`` for numpy's ``x ** 2``, the same ``ndtr``
        and ``kolmogorov``), so every figure is the same to the bit; answered as the same arrays."""
        c = self.config
        k = len(METRICS)
        col = {m: i for i, m in enumerate(METRICS)}
        cells = {name: [[math.nan] * k for _ in range(idx.size)] for name in ("backtest", "live", "drift", "p_value")}
        level = [[0] * k for _ in range(idx.size)]
        met = [[False] * k for _ in range(idx.size)]
        d_stats = self._ks_statistic(idx).tolist() if idx.size else []
        nan = math.nan
        for i, row in enumerate(idx.tolist()):
            bt, lv, dr, pv, lev, ok = (cells["backtest"][i], cells["live"][i], cells["drift"][i], cells["p_value"][i],
                                       level[i], met[i])
            n = float(self.n[row])
            sample = bool(self.has_sample[row])
            s1, s2, s3, s4 = (_div(float(self.sums[p, row]), n) for p in range(4))
            var = _max(s2 - s1 * s1, 0.0)
            m3 = s3 - 3 * s1 * s2 + 2 * s1**3
            m4 = s4 - 4 * s1 * s3 + 6 * (s1 * s1) * s2 - 3 * s1**4
            mu, sd = float(self.mu[row]), float(self.sd[row])
            sr_live = _div(mu + sd * s1, sd * _sqrt(var))
            skew, kurt = _div(m3, _pow(var, 1.5)), _div(m4, var * var)
            sr_bt = float(self.sr_bt[row])
            bt_var = float(self.sr_bt_var[row]) if c.psr_benchmark_error else 0.0
            spread_sr = 1.0 - skew * sr_live + (kurt - 1.0) / 4.0 * (sr_live * sr_live)
            var_sr = _div(_max(spread_sr, 1e-12), n - 1.0)
            psr = float(special.ndtr(_div(sr_live - sr_bt, _sqrt(var_sr + bt_var))))
            enough = n >= c.min_trades
            evidence = 2 if psr < c.critical_alpha else (1 if psr < c.confirm_alpha else 0)

            j = col["sharpe"]
            bt[j] = sr_bt if sample else float(self.sharpe_bt[row])
            lv[j] = sr_live if sample else float(self.live_sharpe[row])
            dr[j] = _div(lv[j] - bt[j], abs(bt[j]))
            pv[j] = psr if sample else nan
            size = 2 if dr[j] <= -c.sharpe_critical else (1 if dr[j] <= -c.sharpe_warn else 0)
            ok[j] = enough and math.isfinite(lv[j])
            lev[j] = min(size, evidence if sample else 1) if ok[j] else 0

            j = col["max_drawdown"]
            bt[j], lv[j] = float(self.dd_bt[row]), float(self.live_drawdown[row])
            dr[j] = _div(lv[j], bt[j]) - 1.0
            ok[j] = math.isfinite(lv[j])
            lev[j] = (2 if lv[j] > bt[j] * c.drawdown_critical_multiple else
                      1 if lv[j] > bt[j] * c.drawdown_warn_multiple else 0)

            j = col["win_rate"]
            p_bt = float(self.wr_bt[row])
            bt[j], lv[j] = p_bt, _div(float(self.wins[row]), n)
            dr[j] = _div(lv[j], bt[j]) - 1.0
            wr_m = float(self.wr_m[row])
            spread = p_bt * (1 - p_bt) * (_div(1, n) + (_div(1, wr_m) if wr_m > 0 else 0.0))
            pv[j] = float(special.ndtr(_div(lv[j] + _div(0.5, n) - p_bt, _sqrt(spread))))
            ok[j] = enough
            lev[j] = int(enough and dr[j] < -c.win_rate_warn and pv[j] < c.confirm_alpha)

            j = col["avg_trade_duration"]
            dn = float(self.dur_n[row])
            mean_d = _div(float(self.dur_sum[row]), dn)
            sd_d = _sqrt(_max(_div(float(self.dur_sq[row]), dn) - mean_d * mean_d, 0.0) * dn / _max(dn - 1, 1))
            bt[j], lv[j] = float(self.dur_bt[row]), mean_d
            dr[j] = _div(mean_d, bt[j]) - 1.0
            pv[j] = 2 * float(special.ndtr(-_div(abs(mean_d - bt[j]), _div(sd_d, _sqrt(dn)))))
            ok[j] = dn >= c.min_trades
            lev[j] = int(ok[j] and abs(dr[j]) > c.duration_warn and pv[j] < c.confirm_alpha)

            j = col["slippage_bps"]
            bt[j], lv[j] = float(self.budget[row]), float(self.slippage_mean[row])
            dr[j] = _div(lv[j], bt[j]) - 1.0
            ok[j] = bool(self.fills[row] >= c.min_fills) and math.isfinite(lv[j])
            lev[j] = int(ok[j] and lv[j] > bt[j] * c.slippage_warn_multiple)

            j = col["page_hinkley"]
            stat = float(self.ph_max[row]) - float(self.ph_m[row])
            bt[j], lv[j], dr[j] = 0.0, s1 if sample else nan, stat if sample else nan
            ok[j] = sample and n >= c.ph_min_trades
            lev[j] = (2 if stat > c.ph_critical else 1 if stat > c.ph_warn else 0) if ok[j] else 0

            j = col["psr"]
            bt[j] = sr_bt
            lv[j] = sr_live if sample else nan
            dr[j] = lv[j] - bt[j]
            pv[j] = psr if sample else nan
            ok[j] = sample and enough
            lev[j] = (2 if psr < c.psr_critical else 1 if psr < c.psr_warn else 0) if ok[j] else 0

            j = col["ks"]
            d_stat = d_stats[i]
            m = float(self.ks_m[row])
            pv[j] = float(special.kolmogorov(d_stat * _sqrt(_div(n * m, n + m))))
            lv[j] = dr[j] = d_stat if sample else nan
            ok[j] = sample and n >= c.ks_min_trades
            lev[j] = int(ok[j] and pv[j] < c.ks_alpha)
        status = np.array(level, np.int8).reshape(idx.size, k)
        out: dict[str, Any] = {"rows": idx, "status": status, "verdict": verdict_of(status)}
        out.update({name: np.array(v, np.float64).reshape(idx.size, k) for name, v in cells.items()})
        out.update({"min_sample_met": np.array(met, bool).reshape(idx.size, k), "n": self.n[idx],
                    "ph_warn_at": self.ph_warn_at[idx], "ph_critical_at": self.ph_critical_at[idx]})
        return out

    def _ks_statistic(self, idx: IntArray) -> FloatArray:
        """sup |F_live - F_bt| from the histogram: cell 2k holds values in (u_k, u_k+1), cell 2k-1 those = u_k."""
        counts = self.ks_counts[idx]
        n = np.maximum(counts.sum(axis=1, dtype=np.int64), 1).astype(np.float64)[:, None]
        cum = np.cumsum(counts, axis=1, dtype=np.int64) / n
        cdf = self.ks_cdf[idx]
        above = (cum[:, 0::2] - cdf).max(axis=1)  # just before each u_k+1: F_bt = G_k / m
        below = (cdf[:, 1:] - cum[:, 1::2]).max(axis=1, initial=0.0)  # at u_k, equal values included
        return np.asarray(np.maximum(above, below), dtype=np.float64)

    def evaluate(self, rows: Sequence[int] | IntArray | None = None) -> list[DriftAssessment]:
        """Findings and verdict per deployment (the arrays of :meth:`evaluate_arrays` as records)."""
        a = self.evaluate_arrays(rows)
        out = []
        for i, row in enumerate(a["rows"].tolist()):
            found = tuple(self.finding(a, i, j) for j in range(len(METRICS)))
            out.append(DriftAssessment(self.ids[row], VERDICTS[a["verdict"][i]], found))
        return out

    def finding(self, a: dict[str, Any], i: int, j: int) -> Finding:
        """The record of one cell of :meth:`evaluate_arrays`' answer ``a``: row ``i``, rule ``METRICS[j]``."""
        row, metric = int(a["rows"][i]), METRICS[j]
        return Finding(metric, _num(a["backtest"][i, j]), _num(a["live"][i, j]), _num(a["drift"][i, j]),
                       STATUSES[a["status"][i, j]],
                       self._rule(metric, int(a["ph_warn_at"][i]), int(a["ph_critical_at"][i]), row),
                       bool(a["min_sample_met"][i, j]), _num(a["p_value"][i, j]),
                       int(self.fills[row] if metric == "slippage_bps" else self.n[row]))

    def _rule(self, metric: str, warn_at: int, critical_at: int, row: int) -> str:
        c = self.config
        if metric in ("page_hinkley", "psr", "ks") and not self.has_sample[row]:
            return f"{metric}: no backtest trade-return sample"
        rules = {
            "sharpe": (f"per-trade Sharpe shortfall > {c.sharpe_warn:.0%} warn / > {c.sharpe_critical:.0%} critical, "
                       f"confirmed by PSR < {c.confirm_alpha} / < {c.critical_alpha}; n >= {c.min_trades}")
            if self.has_sample[row] else
            (f"annualised Sharpe shortfall > {c.sharpe_warn:.0%} warn (no sample to confirm: never critical); "
             f"n >= {c.min_trades}"),
            "max_drawdown": f"live > {c.drawdown_warn_multiple}x backtest warn / > "
                            f"{c.drawdown_critical_multiple}x critical; no minimum sample",
            "win_rate": f"down > {c.win_rate_warn:.0%} relative and binomial p < {c.confirm_alpha} warn; "
                        f"n >= {c.min_trades}",
            "avg_trade_duration": f"changed > {c.duration_warn:.0%} and z-test p < {c.confirm_alpha} warn; "
                                  f"n >= {c.min_trades}",
            "slippage_bps": f"mean > {c.slippage_warn_multiple}x budget warn; fills >= {c.min_fills}",
            "page_hinkley": f"PH(z + {c.ph_delta}, z clipped +-{c.ph_clip}) > {c.ph_warn} warn / > {c.ph_critical} "
                            f"critical; n >= {c.ph_min_trades}; first warn at trade {warn_at}, "
                            f"first critical at trade {critical_at} (-1: none)",
            "psr": f"PSR vs backtest per-trade Sharpe < {c.psr_warn} warn / < {c.psr_critical} critical; "
                   f"n >= {c.min_trades}",
            "ks": f"two-sample KS p < {c.ks_alpha} warn; n >= {c.ks_min_trades}",
        }
        return rules[metric]


def _div(a: float, b: float) -> float:
    """``a / b`` as numpy divides floats: by zero, an infinity with the signs' sign, or NaN for 0 / 0 and NaN."""
    if b != 0 or math.isnan(b):
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _sqrt(x: float) -> float:
    """``np.sqrt`` of one float: NaN below zero."""
    return math.sqrt(x) if x >= 0 or math.isnan(x) else math.nan


def _max(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN if either is."""
    return a if math.isnan(a) or a >= b else b


def _pow(x: float, e: float) -> float:
    """``np.power`` of one float (C ``pow``): NaN for a negative base with a fractional exponent."""
    try:
        value = x**e
    except ZeroDivisionError:
        return math.inf
    return value if isinstance(value, float) else math.nan


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def evaluate_drift(baseline: Baseline, returns: Sequence[float], durations_min: Sequence[float] | None = None, *,
                   max_drawdown: float | None = None, slippage_bps_mean: float | None = None, fills: int = 0,
                   sharpe: float | None = None, config: DriftConfig | None = None,
                   deployment: str = "deployment") -> DriftAssessment:
    """One deployment's drift from scratch (a one-row :class:`DriftBook`)."""
    book = DriftBook([deployment], [baseline], config)
    book.add_trades(np.zeros(len(returns), np.int64), returns, durations_min)
    nan = float("nan")
    book.observe([0], max_drawdown=[nan if max_drawdown is None else max_drawdown],
                 slippage_bps_mean=[nan if slippage_bps_mean is None else slippage_bps_mean], fills=[fills],
                 sharpe=[nan if sharpe is None else sharpe])
    return book.evaluate()[0]
