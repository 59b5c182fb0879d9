"""Staged allocation: a new deployment earns its full allocation period by period.

A deployment starts at the first step of its target allocation (10% by default) and moves one step
up (50%, then 100%) after each out-of-sample period that made money. Losing periods in a row count
against it: after ``fall_back_after`` (2) it falls back to ``fall_back_to`` (50%) if it stood above,
and after ``remove_after`` (3) its removal is proposed to the lead (the risk manager never removes
a deployment itself). A profitable period resets the streak. Each period's decision is a record with
the numbers that made it.

Pure functions over numbers: the desk feeds them the deployment's equity (from the ledger's daily
snapshots) and records the decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from execdesk.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class StagingConfig:
    """Staged allocation settings.

    steps: fractions of the target allocation, in order (default 0.10, 0.50, 1.00);
    period_days: length of an evaluation period (default 7);
    fall_back_after: losing periods in a row that send the deployment back (default 2);
    fall_back_to: the step it falls back to, if it stands above (default 0.50);
    remove_after: losing periods in a row after which removal is proposed (default 3).
    """

    steps: tuple[float, ...] = (0.10, 0.50, 1.00)
    period_days: int = 7
    fall_back_after: int = 2
    fall_back_to: float = 0.50
    remove_after: int = 3

    def __post_init__(self) -> None:
        if not self.steps or any(not 0 < s <= 1 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise InvalidInput(f"staging.steps: got {self.steps}; expected increasing fractions in (0, 1]")
        if self.fall_back_to not in self.steps:
            raise InvalidInput(f"staging.fall_back_to: got {self.fall_back_to}; expected one of the steps "
                               f"{self.steps}")
        if self.period_days < 1:
            raise InvalidInput(f"staging.period_days: got {self.period_days}; expected a whole number >= 1")
        if not 1 <= self.fall_back_after <= self.remove_after:
            raise InvalidInput(f"staging.fall_back_after ({self.fall_back_after}) must be >= 1 and <= "
                               f"staging.remove_after ({self.remove_after})")


@dataclass(frozen=True, slots=True)
class StageDecision:
    period_end: datetime
    period_return: float
    losing_streak: int
    fraction_before: float
    fraction_after: float
    action: str  # "promote", "hold", "fall_back" or "propose_removal"
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"period_end": self.period_end.isoformat(), "period_return": round(self.period_return, 8),
                "losing_streak": self.losing_streak, "fraction_before": self.fraction_before,
                "fraction_after": self.fraction_after, "action": self.action, "reason": self.reason}


def period_returns(equity: pd.Series, period_days: int) -> list[tuple[datetime, float]]:
    """Returns of whole ``period_days`` periods of a daily equity series (UTC dates as index); a
    trailing partial period is not judged yet."""
    daily = equity.sort_index()
    out: list[tuple[datetime, float]] = []
    for start in range(0, len(daily) - period_days, period_days):
        first, last = float(daily.iloc[start]), float(daily.iloc[start + period_days])
        end = pd.Timestamp(daily.index[start + period_days]).to_pydatetime()
        out.append((end, last / first - 1.0 if first > 0 else 0.0))
    return out


def stage_allocation(periods: Sequence[tuple[datetime, float]], config: StagingConfig | None = None
                     ) -> list[StageDecision]:
    """One decision per judged period, starting from the first step."""
    cfg = config or StagingConfig()
    step, streak = 0, 0
    decisions: list[StageDecision] = []
    for end, ret in periods:
        before = cfg.steps[step]
        if ret > 0:
            streak = 0
            if step + 1 < len(cfg.steps):
                step += 1
                action, reason = "promote", f"period return {ret:+.4%} > 0: up to {cfg.steps[step]:.0%}"
            else:
                action, reason = "hold", f"period return {ret:+.4%} > 0: already at {before:.0%}"
        else:
            streak += 1
            if streak >= cfg.remove_after:
                action = "propose_removal"
                reason = f"{streak} losing periods in a row (>= {cfg.remove_after}): removal proposed to the lead"
            elif streak >= cfg.fall_back_after and before > cfg.fall_back_to:
                step = cfg.steps.index(cfg.fall_back_to)
                action = "fall_back"
                reason = f"{streak} losing periods in a row (>= {cfg.fall_back_after}): back to {cfg.fall_back_to:.0%}"
            else:
                action, reason = "hold", f"period return {ret:+.4%} <= 0: {streak} losing period(s) in a row"
        decisions.append(StageDecision(end, ret, streak, before, cfg.steps[step], action, reason))
    return decisions
