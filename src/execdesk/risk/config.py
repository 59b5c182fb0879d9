"""The risk manager's configuration: typed, frozen, validated up front.

Loaded from the desk config's ``risk:`` section; a bad value is refused naming its key
(``risk.portfolio_drawdown.reduce``...). Every default is stated on its field below and in
docs/DESK_CONFIG.md.
"""

from __future__ import annotations

from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, model_validator

from execdesk.domain.marks import LADDER_STEPS

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DrawdownLadder(BaseModel):
    """Four steps on drawdown from the peak (equity including unrealised P&L); each fires once.

    alert 0.10 — a WARNING, and new positions are sized at ``alert_size_multiplier`` (0.5: halved);
    reduce 0.15 — REDUCING: no new positions, only orders that reduce; the stops of open positions are
      tightened to ``reduce_stop_multiplier`` (0.5) of their distance from the entry price;
    trim 0.20 — ``trim_fraction`` (0.5: half) of every position is closed;
    kill 0.25 — everything is closed; HALTED until re-armed by hand (for the portfolio: the circuit
      breaker's protocol).

    A step set to ``null`` is skipped; the levels that are set must increase. Steps only tighten:
    once reached, a step holds (sizes stay cut, stops tight) until a human re-arms it.
    """

    model_config = _STRICT
    alert: float | None = Field(0.10, gt=0, lt=1)
    reduce: float | None = Field(0.15, gt=0, lt=1)
    trim: float | None = Field(0.20, gt=0, lt=1)
    kill: float | None = Field(0.25, gt=0, lt=1)
    alert_size_multiplier: float = Field(0.5, gt=0, le=1)
    reduce_stop_multiplier: float = Field(0.5, gt=0, le=1)
    trim_fraction: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _levels_increase(self) -> DrawdownLadder:
        levels = [(name, getattr(self, name)) for name in LADDER_STEPS if getattr(self, name) is not None]
        for (lo_name, lo), (hi_name, hi) in pairwise(levels):
            if lo >= hi:
                raise ValueError(f"{lo_name} ({lo}) must be below {hi_name} ({hi}): the ladder tightens as "
                                 "drawdown deepens")
        return self

    def levels(self) -> list[tuple[int, str, float]]:
        """(step number, step name, drawdown) of the steps that are set, mildest first."""
        return [(i, name, float(getattr(self, name))) for i, name in enumerate(LADDER_STEPS, start=1)
                if getattr(self, name) is not None]

    def step_at(self, drawdown: float) -> int:
        """The step a drawdown reaches (0: none). Never decreases as ``drawdown`` grows."""
        step = 0
        for i, _name, level in self.levels():
            if drawdown >= level:
                step = i
        return step

    def size_multiplier(self, step: int) -> float:
        """What new positions are sized at, once ``step`` is reached."""
        return self.alert_size_multiplier if step >= 1 else 1.0

    def stop_multiplier(self, step: int) -> float:
        """The fraction of their distance that stops keep, once ``step`` is reached."""
        return self.reduce_stop_multiplier if step >= 2 else 1.0


class StagingConfig(BaseModel):
    """Staged allocation: a new deployment earns its full allocation period by period.

    enabled true;
    steps (0.10, 0.50, 1.00) — fractions of the target allocation, in order;
    period_days 7 — length of an out-of-sample evaluation period;
    fall_back_after 2 — losing periods in a row that send the deployment back;
    fall_back_to 0.50 — the step it falls back to, if it stands above;
    remove_after 3 — losing periods in a row after which its removal is proposed to the lead.
    """

    model_config = _STRICT
    enabled: bool = True
    steps: tuple[float, ...] = (0.10, 0.50, 1.00)
    period_days: int = Field(7, ge=1, le=3650)
    fall_back_after: int = Field(2, ge=1)
    fall_back_to: float = 0.50
    remove_after: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> StagingConfig:
        if not self.steps or any(not 0 < s <= 1 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise ValueError(f"steps: got {list(self.steps)}; expected increasing fractions in (0, 1]")
        if self.fall_back_to not in self.steps:
            raise ValueError(f"fall_back_to: got {self.fall_back_to}; expected one of the steps {list(self.steps)}")
        if self.fall_back_after > self.remove_after:
            raise ValueError(f"fall_back_after ({self.fall_back_after}) must be <= remove_after "
                             f"({self.remove_after})")
        return self

    @property
    def first(self) -> float:
        return self.steps[0] if self.enabled else 1.0


class AssessmentSection(BaseModel):
    """The pre-deployment assessment's limits (see :class:`execdesk.risk.assessment.AssessmentLimits`,
    whose defaults these are): the risk gate of ``execdesk deploy`` assesses every new deployment with them."""

    model_config = _STRICT

    max_deployed_fraction: float = Field(0.60, gt=0, le=1.0)
    max_correlated_exposure: float = Field(0.30, gt=0, le=10.0)
    max_pairwise_correlation: float = Field(0.30, ge=-1.0, le=1.0)
    correlation_threshold: float = Field(0.7, gt=0, le=1.0)
    max_worst_case_drawdown: float = Field(0.25, gt=0, le=1.0)
    bootstrap_paths: int = Field(2000, ge=100, le=1_000_000)
    seed: int = Field(0, ge=0)
    min_overlap_days: int = Field(20, ge=2, le=10_000)


class RiskConfig(BaseModel):
    """Limits the risk manager enforces. Fractions are of equity (portfolio or deployment).

    Sizing:
      risk_per_trade 0.01 — fixed-fractional sizing risks 1% of the deployment's equity per trade,
        measured to the strategy's stoploss;
      max_position_fraction 0.25 — no single position above 25% of its deployment's equity.
    Pre-trade (every order; see :mod:`execdesk.risk.fastpath`):
      max_order_notional null — optional absolute cap per order, in the quote currency;
      max_open_positions 50;
      max_gross_exposure 1.0 — the sum of all positions' notional at most 100% of portfolio equity;
      correlation_groups {} — named groups of pairs that move together (e.g. ``{alts: [SOL/USDT,
        AVAX/USDT]}``); a pair in no group is in no correlated cap;
      max_correlated_exposure 0.30 — same-direction exposure to one group at most 30% of portfolio equity;
      throttle_count 10 / throttle_window_s 60 — at most 10 orders per deployment per rolling 60 s
        (exits are never throttled);
      price_band 0.05 — an order's price within 5% of the pair's last price.
    Drawdown (see :class:`DrawdownLadder`):
      portfolio_drawdown — the ladder on portfolio equity: 10% alert / 15% reduce / 20% trim / 25% kill;
      deployment_drawdown — the same ladder on each deployment's own equity (its capital plus its P&L);
        a strategy entry in the desk config may set its own (``drawdown:``).
    Staged allocation: ``staging`` (see :class:`StagingConfig`).
    Pre-deployment assessment: ``assessment`` (see :class:`AssessmentSection`).
    """

    model_config = _STRICT

    risk_per_trade: float = Field(0.01, gt=0, le=0.2)
    max_position_fraction: float = Field(0.25, gt=0, le=1.0)
    max_order_notional: float | None = Field(None, gt=0)
    max_gross_exposure: float = Field(1.0, gt=0, le=10.0)
    max_open_positions: int = Field(50, ge=1, le=100_000)
    correlation_groups: dict[str, list[str]] = Field(default_factory=dict)
    max_correlated_exposure: float = Field(0.30, gt=0, le=10.0)
    throttle_count: int = Field(10, ge=1, le=1_000_000)
    throttle_window_s: float = Field(60.0, gt=0, le=86_400 * 7)
    price_band: float = Field(0.05, gt=0, le=1.0)
    portfolio_drawdown: DrawdownLadder = Field(default_factory=DrawdownLadder)
    deployment_drawdown: DrawdownLadder = Field(default_factory=DrawdownLadder)
    staging: StagingConfig = Field(default_factory=StagingConfig)
    assessment: AssessmentSection = Field(default_factory=AssessmentSection)

    @model_validator(mode="after")
    def _groups_disjoint(self) -> RiskConfig:
        seen: dict[str, str] = {}
        for group, pairs in self.correlation_groups.items():
            for pair in pairs:
                if pair in seen:
                    raise ValueError(f"correlation_groups: {pair} is in both {seen[pair]!r} and {group!r}; "
                                     "a pair belongs to one group")
                seen[pair] = group
        return self

    def group_of(self) -> dict[str, str]:
        """pair -> its correlation group's name."""
        return {pair: group for group, pairs in self.correlation_groups.items() for pair in pairs}
