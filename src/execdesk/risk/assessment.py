"""Portfolio assessment of a candidate deployment: pure functions over numbers (no ledger, no I/O).

:func:`assess` checks a :class:`Candidate` against a :class:`PortfolioSnapshot` under
:class:`AssessmentLimits` and an asset return-correlation matrix. Fractions are of portfolio equity;
exposures are signed notionals in the quote currency (long > 0, short < 0); the candidate's expected
exposure is the one at its requested allocation and scales linearly with the allocation.

Rules (each reported as name, value, limit, passed):

* ``deployed_fraction`` = (sum of live allocations + candidate allocation) / equity
  <= ``max_deployed_fraction``. Largest allocation: ``max_deployed_fraction x equity - live``.
* ``correlated_exposure``: E_b is the net signed exposure to asset b of the live deployments plus the
  candidate. For each asset a the candidate trades, with direction s = sign(candidate exposure to a),
  the cluster C(a) = {a} plus every b with ``asset_correlation[a][b] >= correlation_threshold``;
  correlated(a) = sum over b in C(a) of max(0, s x E_b) / equity (the same-direction exposure).
  Value: the largest correlated(a) <= ``max_correlated_exposure``. Assets missing from the matrix
  correlate only with themselves.
* ``pairwise_correlation``: Pearson correlation of the candidate's daily returns with each live
  deployment's, on the days both hold a return (NaN dropped); its sample size ``n`` is that number of
  days, its ``window`` their first and last day, its ``source`` how the series were made. The series
  are the :class:`SameDates` given (the candidate and every live deployment over one common window:
  :func:`execdesk.lead.deploy.assess_bundle` backtests them all on the same candles), else the
  candidate's and the deployments' own ``returns``. Fewer than ``min_overlap_days`` (20) days is
  "insufficient overlap", a constant series "undefined", a deployment without a series "unavailable"
  (with its reason): none is a pass. Value: the largest measured correlation, <=
  ``max_pairwise_correlation``.
* ``worst_case_drawdown`` = max(historical, worst_case_p99) <= ``max_worst_case_drawdown``, where

  - the portfolio's daily return is sum(allocation_i x r_i(t)) / equity on the union of dates (a
    deployment without a return that day contributes 0; idle cash earns 0), the candidate adds
    allocation x r_c(t) / equity; ``historical`` is the max drawdown of the compounded combined curve
    (peak starts at 1);
  - the bootstrap resamples the candidate's per-trade returns with replacement (``bootstrap_paths``
    paths of as many trades as it has, ``numpy.random.default_rng(seed)``) and compounds each path at
    the allocation's risk: equity x (1 + w x stake_fraction x r) per trade, w = allocation / equity;
    ``bootstrap_p95``/``p99`` are the 95th/99th percentiles (linear interpolation) of the paths' max
    drawdowns;
  - ``worst_case_pXX = min(1, portfolio historical drawdown (without the candidate) + bootstrap_pXX)``:
    the candidate's bad run assumed to land on the portfolio's worst drawdown.

Verdict: REJECTED when a measured correlation exceeds ``max_pairwise_correlation`` (a smaller
allocation does not change a correlation) or when no positive allocation satisfies the deployed,
correlated and worst-case caps; APPROVED when every rule passes; otherwise CONDITIONAL with the
conditions: ``allocation <= X`` (X the largest allocation up to the requested one that satisfies the
three caps, by bisection keeping a feasible lower bound, floored to cents), ``stoploss tighter than Y``
when the worst case fails and is driven by the stop (at least half of the losing trades lost at least
90% of the stop distance; Y the loosest stop that passes at the requested allocation, found by
clipping the trade returns at -Y — optimistic: a tighter stop also cuts trades that later recovered),
and a review of every correlation that could not be measured (and of a candidate without per-trade
returns, whose bootstrap is counted as 0). The conditions are typed (:data:`Condition`):
:class:`AllocationCap`, :class:`StoplossCap` and :class:`StatedRisk`, each rendering its text
(``str(condition)`` or ``condition.text``), which is what the assessment's files show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TypeAlias

import numpy as np
import pandas as pd
import yaml

#: Bisection steps for the largest allocation / loosest stop: precision requested x 2**-50.
_BISECTION_STEPS = 50
#: A losing trade "hit the stop" when it lost at least this share of the stop distance.
_STOP_HIT_SHARE = 0.9
#: The worst case is "driven by the stop" when at least this share of losing trades hit it.
_STOP_DRIVEN_SHARE = 0.5


def _daily(series: pd.Series) -> pd.Series:
    """A return series re-indexed by naive UTC midnight dates (duplicates compounded)."""
    index = pd.DatetimeIndex(series.index)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    out = pd.Series(series.to_numpy(dtype=np.float64), index=index.normalize())
    if not out.index.is_unique:
        out = (1.0 + out).groupby(level=0).prod() - 1.0
    return out.sort_index()


@dataclass(frozen=True)
class LiveDeployment:
    """A live deployment: capital, signed notional by base asset, daily returns (indexed by UTC date)."""

    id: str
    allocated: float
    exposure: Mapping[str, float]
    returns: pd.Series


@dataclass(frozen=True)
class PortfolioSnapshot:
    equity: float
    deployments: tuple[LiveDeployment, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.equity) and self.equity > 0):
            raise ValueError(f"equity must be a positive number, got {self.equity!r}")


@dataclass(frozen=True)
class Candidate:
    """A deployment to assess. ``exposure`` is its expected signed notional by base asset at
    ``allocation``; ``returns`` its daily returns (e.g. the validation backtest's); ``trade_returns`` its
    per-trade returns (profit ratios, for the bootstrap); ``stoploss`` the stop distance as a positive
    fraction (0.05 for a 5% stop); ``stake_fraction`` the share of the allocation each trade risks."""

    id: str
    allocation: float
    exposure: Mapping[str, float]
    returns: pd.Series
    trade_returns: tuple[float, ...]
    stoploss: float
    stake_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.allocation) and self.allocation > 0):
            raise ValueError(f"allocation must be a positive number, got {self.allocation!r}")
        if not 0 < self.stoploss <= 1:
            raise ValueError(f"stoploss must be a fraction in (0, 1], got {self.stoploss!r}")
        if not 0 < self.stake_fraction <= 1:
            raise ValueError(f"stake_fraction must be in (0, 1], got {self.stake_fraction!r}")


@dataclass(frozen=True)
class AssessmentLimits:
    """Limits of :func:`assess`. Defaults:

    max_deployed_fraction 0.60 — at most 60% of equity allocated to deployments (candidate included);
    max_correlated_exposure 0.30 — same-direction exposure to one cluster of correlated assets at most
      30% of equity;
    max_pairwise_correlation 0.30 — the candidate's daily returns correlate at most 0.30 with any live
      deployment's;
    correlation_threshold 0.7 — assets whose returns correlate at or above it form a cluster;
    max_worst_case_drawdown 0.25 — worst-case portfolio drawdown (see the module docstring) at most 25%;
    bootstrap_paths 2000 and seed 0 — the bootstrap of the candidate's trades;
    min_overlap_days 20 — fewer common days leave a correlation unmeasured.
    """

    max_deployed_fraction: float = 0.60
    max_correlated_exposure: float = 0.30
    max_pairwise_correlation: float = 0.30
    correlation_threshold: float = 0.7
    max_worst_case_drawdown: float = 0.25
    bootstrap_paths: int = 2000
    seed: int = 0
    min_overlap_days: int = 20


class Verdict(StrEnum):
    APPROVED = "APPROVED"
    CONDITIONAL = "CONDITIONAL"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class Rule:
    name: str
    value: float
    limit: float
    passed: bool
    detail: str = ""


#: The source of a correlation measured on the candidate's and the deployment's own ``returns`` (no SameDates).
GIVEN_RETURNS = "the candidate's and the deployment's daily returns as given, on their common days"


@dataclass(frozen=True)
class SameDates:
    """What the pairwise correlations are measured on: the candidate's daily returns and each live deployment's
    over one common window of days (``start``..``end``, both included), each deployment's series with how it
    was made (``sources``), or why none could be made (``unavailable``: its correlation is then unmeasured,
    status "unavailable"). A live deployment in neither mapping is not compared (one being closed for good, say)."""

    candidate: pd.Series
    start: date
    end: date
    deployments: Mapping[str, pd.Series] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before its start {self.start}")


@dataclass(frozen=True)
class PairCorrelation:
    """The candidate's daily-return correlation with one live deployment: ``n`` the days both series hold a
    return (the sample size), ``window`` the first and last of them (the stated window when there are none),
    ``source`` how the series were made, ``reason`` why the correlation is unmeasured (empty when measured)."""

    deployment_id: str
    correlation: float  # NaN when unmeasured
    n: int
    status: str  # "ok", "above limit", "insufficient overlap", "undefined", "unavailable"
    passed: bool
    window: tuple[date, date] | None = None
    source: str = ""
    reason: str = ""

    @property
    def common_days(self) -> int:
        """``n`` by its former name."""
        return self.n

    @property
    def window_text(self) -> str:
        return f"{self.window[0]}..{self.window[1]}" if self.window is not None else "no days"


@dataclass(frozen=True)
class ClusterExposure:
    asset: str
    direction: int
    members: tuple[str, ...]
    exposure: float  # same-direction notional
    fraction: float  # of equity


@dataclass(frozen=True)
class WorstCase:
    portfolio_historical_drawdown: float
    combined_historical_drawdown: float
    bootstrap_p95: float
    bootstrap_p99: float
    worst_case_p95: float
    worst_case_p99: float
    paths: int
    seed: int
    trades: int
    stop_hit_share: float  # of losing trades
    stop_driven: bool


@dataclass(frozen=True)
class AllocationCap:
    """``allocation <= X``: the largest allocation the three caps allow, in the quote currency (floored to
    cents; the text shows it to 2 decimals)."""

    max_allocation: float

    @property
    def text(self) -> str:
        return f"allocation <= {self.max_allocation:.2f}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class StoplossCap:
    """``stoploss tighter than Y``: the loosest stop distance (a positive fraction) that passes the worst case
    at the requested allocation, an alternative to the allocation cut; ``current`` the candidate's stop.
    ``loosest`` is kept as its text shows it (rounded to 4 decimals), the value a gate applies."""

    loosest: float
    current: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "loosest", float(f"{self.loosest:.4f}"))

    @property
    def text(self) -> str:
        return (f"stoploss tighter than {self.loosest:.4f} (now {self.current:g}; "
                f"alternative to the allocation cut for worst_case_drawdown)")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class StatedRisk:
    """A risk only stated, for review (nothing to apply): an unmeasured correlation, no per-trade returns."""

    text: str

    def __str__(self) -> str:
        return self.text


#: A condition of a CONDITIONAL assessment.
Condition: TypeAlias = AllocationCap | StoplossCap | StatedRisk


@dataclass(frozen=True)
class Assessment:
    candidate_id: str
    verdict: Verdict
    requested_allocation: float
    max_allocation: float  # the largest allocation <= requested satisfying the three caps (0 if none)
    allocation_limits: dict[str, float]  # per cap: the largest allocation <= requested it allows
    rules: tuple[Rule, ...]
    correlations: tuple[PairCorrelation, ...]
    clusters: tuple[ClusterExposure, ...]
    worst_case: WorstCase
    conditions: tuple[Condition, ...] = ()  # their text: str(condition)
    reasons: tuple[str, ...] = ()
    limits: AssessmentLimits = field(default_factory=AssessmentLimits)

    def rule(self, name: str) -> Rule:
        return next(r for r in self.rules if r.name == name)

    def as_dict(self) -> dict[str, object]:
        """JSON-safe: NaN and infinities become None, enums their value."""
        return {
            "candidate_id": self.candidate_id,
            "verdict": self.verdict.value,
            "requested_allocation": _num(self.requested_allocation),
            "max_allocation": _num(self.max_allocation),
            "allocation_limits": {k: _num(v) for k, v in self.allocation_limits.items()},
            "rules": [{"name": r.name, "value": _num(r.value), "limit": _num(r.limit), "passed": r.passed,
                       "detail": r.detail} for r in self.rules],
            "correlations": [{"deployment_id": c.deployment_id, "correlation": _num(c.correlation), "n": c.n,
                              "window": None if c.window is None else {"start": c.window[0].isoformat(),
                                                                       "end": c.window[1].isoformat()},
                              "source": c.source, "status": c.status, "passed": c.passed, "reason": c.reason}
                             for c in self.correlations],
            "clusters": [{"asset": c.asset, "direction": c.direction, "members": list(c.members),
                          "exposure": _num(c.exposure), "fraction": _num(c.fraction)} for c in self.clusters],
            "worst_case": {k: (_num(v) if isinstance(v, float) else v) for k, v in vars(self.worst_case).items()},
            "conditions": [c.text for c in self.conditions],
            "reasons": list(self.reasons),
            "limits": {k: (_num(v) if isinstance(v, float) else v) for k, v in vars(self.limits).items()},
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.as_dict(), sort_keys=False, width=100)


def _num(value: float) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


# ------------------------------------------------------------------------------------------------ helpers
def max_drawdown(returns: np.ndarray) -> float:
    """Max drawdown of the curve prod(1 + r), the peak starting at 1 (0 for no returns)."""
    if returns.size == 0:
        return 0.0
    curve = np.maximum(np.cumprod(1.0 + returns), 0.0)
    peak = np.maximum(np.maximum.accumulate(curve), 1.0)
    return float(np.max(1.0 - curve / peak))


def _path_drawdowns(samples: np.ndarray, weight: float) -> np.ndarray:
    """Max drawdown of each row's compounded curve prod(1 + weight x r), peak starting at 1."""
    if samples.shape[1] == 0:
        return np.zeros(samples.shape[0])
    curve = np.maximum(np.cumprod(1.0 + weight * samples, axis=1), 0.0)
    peak = np.maximum(np.maximum.accumulate(curve, axis=1), 1.0)
    return np.asarray(np.max(1.0 - curve / peak, axis=1))


def _largest(feasible: Callable[[float], bool], hi: float) -> float:
    """The largest x in [0, hi] with feasible(x), by bisection keeping a feasible lower bound
    (0 when even 0 is infeasible; hi when hi is feasible)."""
    if feasible(hi):
        return hi
    if not feasible(0.0):
        return 0.0
    lo = 0.0
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if feasible(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _floor(value: float, digits: int) -> float:
    scale = 10.0**digits
    return math.floor(value * scale + 1e-6) / scale


def daily_correlations(candidate: pd.Series, others: Sequence[pd.Series]
                       ) -> list[tuple[float, int, tuple[date, date] | None]]:
    """Pearson correlation of ``candidate``'s daily returns with each of ``others``' on the days both hold a finite
    return (dates taken as UTC days, two returns of one day compounded): per series its value (NaN with fewer than
    two such days or a constant series), the number of those days ``n`` and their first and last day (None
    when there are none)."""
    if not others:
        return []
    cand = _daily(candidate)
    frame = pd.concat([_daily(o) for o in others], axis=1, keys=range(len(others)), sort=True)
    x = frame.reindex(cand.index).to_numpy(dtype=np.float64)
    c = cand.to_numpy(dtype=np.float64)[:, None]
    mask = np.isfinite(x) & np.isfinite(c)
    n = mask.sum(axis=0)
    safe_n = np.maximum(n, 1)
    mean_x = np.where(mask, x, 0.0).sum(axis=0) / safe_n
    mean_c = np.where(mask, c, 0.0).sum(axis=0) / safe_n
    dx = np.where(mask, x - mean_x, 0.0)
    dc = np.where(mask, c - mean_c, 0.0)
    var = (dx * dx).sum(axis=0) * (dc * dc).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (dx * dc).sum(axis=0) / np.sqrt(var)
    days = cand.index
    out: list[tuple[float, int, tuple[date, date] | None]] = []
    for i in range(len(others)):
        rows = np.flatnonzero(mask[:, i])
        span = (days[rows[0]].date(), days[rows[-1]].date()) if rows.size else None
        value = float(np.clip(corr[i], -1.0, 1.0)) if n[i] >= 2 and var[i] > 0 and math.isfinite(corr[i]) \
            else math.nan
        out.append((value, int(n[i]), span))
    return out


def _in_window(series: pd.Series, same: SameDates) -> pd.Series:
    daily = _daily(series)
    return daily[(daily.index >= pd.Timestamp(same.start)) & (daily.index <= pd.Timestamp(same.end))]


def _correlations(portfolio: PortfolioSnapshot, candidate: Candidate, limits: AssessmentLimits,
                  same: SameDates | None) -> tuple[PairCorrelation, ...]:
    deployments = portfolio.deployments
    if not deployments:
        return ()
    stated: tuple[date, date] | None = None
    if same is None:
        cand = candidate.returns
        series: dict[str, pd.Series] = {d.id: d.returns for d in deployments}
        sources = {d.id: GIVEN_RETURNS for d in deployments}
    else:
        stated = (same.start, same.end)
        cand = _in_window(same.candidate, same)
        series = {d.id: _in_window(same.deployments[d.id], same) for d in deployments if d.id in same.deployments}
        sources = {d.id: same.sources.get(d.id, "") for d in deployments}
    measured = dict(zip(series, daily_correlations(cand, list(series.values())), strict=True))
    out = []
    for d in deployments:
        if d.id not in measured:
            if same is not None and d.id in same.unavailable:
                out.append(PairCorrelation(d.id, math.nan, 0, "unavailable", False, stated, sources[d.id],
                                           same.unavailable[d.id]))
            continue
        value, days, span = measured[d.id]
        window = span or stated
        if days < limits.min_overlap_days:
            out.append(PairCorrelation(d.id, math.nan, days, "insufficient overlap", False, window, sources[d.id],
                                       f"{days} days hold both returns, fewer than {limits.min_overlap_days}"))
        elif not math.isfinite(value):
            out.append(PairCorrelation(d.id, math.nan, days, "undefined", False, window, sources[d.id],
                                       "a constant series (no trade, or no change, over those days)"))
        else:
            above = value > limits.max_pairwise_correlation
            out.append(PairCorrelation(d.id, value, days, "above limit" if above else "ok", not above, window,
                                       sources[d.id]))
    return tuple(out)


class _Exposure:
    """Correlated same-direction exposure as a function of the candidate's allocation."""

    def __init__(self, portfolio: PortfolioSnapshot, candidate: Candidate, limits: AssessmentLimits,
                 asset_correlation: pd.DataFrame) -> None:
        live: dict[str, float] = {}
        for d in portfolio.deployments:
            for asset, notional in d.exposure.items():
                live[asset] = live.get(asset, 0.0) + float(notional)
        self.equity = portfolio.equity
        self.clusters: list[tuple[str, int, tuple[str, ...]]] = []
        assets = sorted(set(live) | set(candidate.exposure))
        index = {a: i for i, a in enumerate(assets)}
        self.live = np.array([live.get(a, 0.0) for a in assets])
        self.per_capital = np.array([float(candidate.exposure.get(a, 0.0)) / candidate.allocation for a in assets])
        known = set(asset_correlation.index) & set(asset_correlation.columns)
        rows = []
        for asset, notional in sorted(candidate.exposure.items()):
            if notional == 0 or not math.isfinite(notional):
                continue
            members = {asset}
            if asset in known:
                row = asset_correlation.loc[asset]
                members |= {b for b in assets if b in known and float(row[b]) >= limits.correlation_threshold}
            ordered = tuple(sorted(members))
            direction = 1 if notional > 0 else -1
            self.clusters.append((asset, direction, ordered))
            mask = np.zeros(len(assets))
            mask[[index[m] for m in ordered]] = direction
            rows.append(mask)
        self.signs = np.array(rows).reshape(len(rows), len(assets))

    def per_cluster(self, allocation: float) -> np.ndarray:
        net = self.live + allocation * self.per_capital
        return np.asarray(np.maximum(self.signs * net, 0.0).sum(axis=1))

    def fraction(self, allocation: float) -> float:
        values = self.per_cluster(allocation)
        return float(values.max()) / self.equity if values.size else 0.0


class _Drawdowns:
    """Historical and bootstrap drawdowns as functions of the allocation (and of a tighter stop)."""

    def __init__(self, portfolio: PortfolioSnapshot, candidate: Candidate, limits: AssessmentLimits) -> None:
        self.equity = portfolio.equity
        self.stake = candidate.stake_fraction
        cand = _daily(candidate.returns).fillna(0.0)
        if portfolio.deployments:
            frame = pd.concat([_daily(d.returns) for d in portfolio.deployments], axis=1,
                              keys=range(len(portfolio.deployments)))
            weights = np.array([d.allocated for d in portfolio.deployments]) / portfolio.equity
            live = pd.Series(np.nan_to_num(frame.to_numpy(dtype=np.float64)) @ weights, index=frame.index)
        else:
            live = pd.Series(dtype=np.float64)
        union = live.index.union(cand.index)
        self.live = live.reindex(union, fill_value=0.0).to_numpy(dtype=np.float64)
        self.cand = cand.reindex(union, fill_value=0.0).to_numpy(dtype=np.float64)
        self.portfolio_dd = max_drawdown(self.live)
        trades = np.asarray(candidate.trade_returns, dtype=np.float64)
        trades = trades[np.isfinite(trades)]
        self.trades = trades
        rng = np.random.default_rng(limits.seed)
        self.idx = rng.integers(0, trades.size, size=(limits.bootstrap_paths, trades.size)) if trades.size \
            else np.zeros((limits.bootstrap_paths, 0), dtype=np.int64)
        self.samples = trades[self.idx]
        losses = trades[trades < 0]
        self.stop_hit_share = float((losses <= -_STOP_HIT_SHARE * candidate.stoploss).mean()) if losses.size \
            else 0.0

    def historical(self, allocation: float) -> float:
        return max_drawdown(self.live + allocation / self.equity * self.cand)

    def bootstrap(self, allocation: float, stop: float | None = None) -> tuple[float, float]:
        samples = self.samples if stop is None else np.maximum(self.samples, -stop)
        dd = _path_drawdowns(samples, allocation / self.equity * self.stake)
        p95, p99 = np.percentile(dd, [95, 99]) if dd.size else (0.0, 0.0)
        return float(p95), float(p99)

    def worst(self, allocation: float, stop: float | None = None) -> float:
        return max(self.historical(allocation), min(1.0, self.portfolio_dd + self.bootstrap(allocation, stop)[1]))


# ------------------------------------------------------------------------------------------------ assess
def assess(portfolio: PortfolioSnapshot, candidate: Candidate, limits: AssessmentLimits,
           asset_correlation: pd.DataFrame, same_dates: SameDates | None = None) -> Assessment:
    """Assess ``candidate`` against ``portfolio``; see the module docstring for every rule and formula.
    ``same_dates``: the series the pairwise correlations are measured on (None: the candidate's and the live
    deployments' own ``returns``)."""
    equity, requested = portfolio.equity, candidate.allocation
    live_capital = float(sum(d.allocated for d in portfolio.deployments))

    # deployed capital
    deployed = (live_capital + requested) / equity
    deployed_rule = Rule("deployed_fraction", deployed, limits.max_deployed_fraction,
                         deployed <= limits.max_deployed_fraction,
                         f"(live {live_capital:.2f} + candidate {requested:.2f}) / equity {equity:.2f} "
                         f"= {deployed:.6f}")
    deployed_max = min(requested, max(0.0, limits.max_deployed_fraction * equity - live_capital))

    # correlated exposure
    exposure = _Exposure(portfolio, candidate, limits, asset_correlation)
    per_cluster = exposure.per_cluster(requested)
    clusters = tuple(ClusterExposure(a, s, m, float(v), float(v) / equity)
                     for (a, s, m), v in zip(exposure.clusters, per_cluster, strict=True))
    correlated = exposure.fraction(requested)
    worst_cluster = max(clusters, key=lambda c: c.exposure, default=None)
    correlated_rule = Rule(
        "correlated_exposure", correlated, limits.max_correlated_exposure,
        correlated <= limits.max_correlated_exposure,
        "no candidate exposure" if worst_cluster is None else
        f"{'long' if worst_cluster.direction > 0 else 'short'} {'+'.join(worst_cluster.members)} "
        f"{worst_cluster.exposure:.2f} / equity {equity:.2f} = {correlated:.6f}")

    def correlated_ok(x: float) -> bool:
        return exposure.fraction(x) <= limits.max_correlated_exposure

    # pairwise correlation
    correlations = _correlations(portfolio, candidate, limits, same_dates)
    measured = [c for c in correlations if math.isfinite(c.correlation)]
    unmeasured = [c for c in correlations if not math.isfinite(c.correlation)]
    top = max(measured, key=lambda c: c.correlation, default=None)
    pair_rule = Rule(
        "pairwise_correlation", top.correlation if top else math.nan, limits.max_pairwise_correlation,
        all(c.passed for c in correlations),
        (f"max with {top.deployment_id} over {top.n} days ({top.window_text})" if top else
         "no live deployment measured")
        + (f"; {len(unmeasured)} unmeasured" if unmeasured else ""))

    # worst case
    drawdowns = _Drawdowns(portfolio, candidate, limits)
    historical = drawdowns.historical(requested)
    p95, p99 = drawdowns.bootstrap(requested)
    wc95, wc99 = min(1.0, drawdowns.portfolio_dd + p95), min(1.0, drawdowns.portfolio_dd + p99)
    worst = max(historical, wc99)
    worst_rule = Rule(
        "worst_case_drawdown", worst, limits.max_worst_case_drawdown, worst <= limits.max_worst_case_drawdown,
        f"max(historical {historical:.6f}, portfolio {drawdowns.portfolio_dd:.6f} + bootstrap p99 {p99:.6f})")
    stop_driven = drawdowns.stop_hit_share >= _STOP_DRIVEN_SHARE
    worst_case = WorstCase(drawdowns.portfolio_dd, historical, p95, p99, wc95, wc99, limits.bootstrap_paths,
                           limits.seed, int(drawdowns.trades.size), drawdowns.stop_hit_share, stop_driven)

    def worst_ok(x: float) -> bool:
        return drawdowns.worst(x) <= limits.max_worst_case_drawdown

    # the largest allocation satisfying the three caps
    caps_pass = deployed_rule.passed and correlated_rule.passed and worst_rule.passed
    allocation_limits = {
        "deployed_fraction": deployed_max,
        "correlated_exposure": requested if correlated_rule.passed else _largest(correlated_ok, requested),
        "worst_case_drawdown": requested if worst_rule.passed else _largest(worst_ok, requested)}
    max_allocation = min(allocation_limits.values())
    if not caps_pass and max_allocation > 0:
        def all_ok(x: float) -> bool:
            return (live_capital + x) / equity <= limits.max_deployed_fraction and correlated_ok(x) and worst_ok(x)
        max_allocation = _largest(all_ok, max_allocation)

    rules = (deployed_rule, correlated_rule, pair_rule, worst_rule)
    conditions: list[Condition] = []
    reasons: list[str] = [f"{r.name} {r.value:.6f} > limit {r.limit}" for r in rules
                          if not r.passed and math.isfinite(r.value) and r.value > r.limit]
    above = [c for c in correlations if c.status == "above limit"]
    offered = _floor(max_allocation, 2)
    if above:
        verdict = Verdict.REJECTED
        reasons.extend(f"daily returns correlate {c.correlation:.4f} with live deployment {c.deployment_id} "
                       f"over {c.n} days {c.window_text} (limit {limits.max_pairwise_correlation})" for c in above)
    elif not caps_pass and offered <= 0:
        verdict = Verdict.REJECTED
        reasons.append("no positive allocation satisfies the deployed, correlated and worst-case caps")
    elif caps_pass and not unmeasured and drawdowns.trades.size:
        verdict = Verdict.APPROVED
    else:
        verdict = Verdict.CONDITIONAL
        if not caps_pass:
            conditions.append(AllocationCap(offered))
        if not worst_rule.passed and stop_driven and historical <= limits.max_worst_case_drawdown:
            loosest = _floor(_largest(lambda y: drawdowns.worst(requested, y) <= limits.max_worst_case_drawdown,
                                      candidate.stoploss), 4)
            if 0 < loosest < candidate.stoploss:
                conditions.append(StoplossCap(loosest, candidate.stoploss))
        conditions.extend(StatedRisk(f"correlation with {c.deployment_id} unmeasured ("
                                     + (f"unavailable: {c.reason}" if c.status == "unavailable" else
                                        f"{c.status}, {c.n} common days") + "): review before deploying")
                          for c in unmeasured)
        if not drawdowns.trades.size:
            conditions.append(StatedRisk("no per-trade returns: the bootstrap worst case is unmeasured (counted "
                                         "as 0); review before deploying"))
    return Assessment(candidate.id, verdict, requested, max_allocation if not caps_pass else requested,
                      allocation_limits, rules, correlations, clusters, worst_case, tuple(conditions),
                      tuple(reasons), limits)
