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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from execdesk.risk.config import StagingConfig

if TYPE_CHECKING:
    import pandas as pd

#: a period return smaller than this is no change (float noise in marked equity)
FLAT = 1e-9

__all__ = ["StageDecision", "StagedDeployment", "StagingConfig", "due_decision", "next_stage", "period_returns",
           "stage_allocation"]


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
    import pandas as pd

    daily = equity.sort_index()
    out: list[tuple[datetime, float]] = []
    for start in range(0, len(daily) - period_days, period_days):
        first, last = float(daily.iloc[start]), float(daily.iloc[start + period_days])
        end = pd.Timestamp(daily.index[start + period_days]).to_pydatetime()
        out.append((end, last / first - 1.0 if first > 0 else 0.0))
    return out


def next_stage(step: int, streak: int, period_end: datetime, ret: float, config: StagingConfig
               ) -> tuple[int, int, StageDecision]:
    """One period's decision: from (step index, losing streak) and the period's return to the next ones."""
    cfg = config
    before = cfg.steps[step]
    if abs(ret) < FLAT:  # no trade, no mark-to-market change (to float noise): no evidence either way
        return step, streak, StageDecision(period_end, ret, streak, before, before, "hold",
                                           f"period return 0: nothing to judge; {streak} losing period(s) in a row")
    if ret > 0:
        streak = 0
        if step + 1 < len(cfg.steps):
            step += 1
            action, reason = "promote", f"period return {ret:+.4%} > 0: up to {cfg.steps[step]:.0%}"
        else:
            action, reason = "hold", f"period return {ret:+.4%} > 0: already at {before:.0%}"
    else:
        streak += 1
        if streak == cfg.remove_after:
            action = "propose_removal"
            reason = f"{streak} losing periods in a row (= {cfg.remove_after}): removal proposed to the lead"
        elif streak > cfg.remove_after:
            action = "hold"
            reason = f"period return {ret:+.4%} <= 0: {streak} losing periods in a row; removal already proposed"
        elif streak >= cfg.fall_back_after and before > cfg.fall_back_to:
            step = cfg.steps.index(cfg.fall_back_to)
            action = "fall_back"
            reason = f"{streak} losing periods in a row (>= {cfg.fall_back_after}): back to {cfg.fall_back_to:.0%}"
        else:
            action, reason = "hold", f"period return {ret:+.4%} <= 0: {streak} losing period(s) in a row"
    return step, streak, StageDecision(period_end, ret, streak, before, cfg.steps[step], action, reason)


def stage_allocation(periods: Sequence[tuple[datetime, float]], config: StagingConfig | None = None
                     ) -> list[StageDecision]:
    """One decision per judged period, starting from the first step."""
    cfg = config or StagingConfig()
    step, streak = 0, 0
    decisions: list[StageDecision] = []
    for end, ret in periods:
        step, streak, decision = next_stage(step, streak, end, ret, cfg)
        decisions.append(decision)
    return decisions


@dataclass(frozen=True, slots=True)
class StagedDeployment:
    """What the staging decision reads of a deployment: its step and streak, the period it is in (its start
    and the equity then), and whether it still trades."""

    deployment_id: str
    step: int
    streak: int
    since: int | None
    anchor: float
    halted: bool


def due_decision(dep: StagedDeployment, equities: Mapping[str, float], t: int, config: StagingConfig
                 ) -> dict[str, object] | None:
    """The staging decision due for ``dep`` at time ``t`` (an equity snapshot's), as a ``risk.allocation_staged``
    payload: when its period has ended by then and the snapshot holds its equity (the period's return against
    its anchor equity; the next period starts at ``t``). None when nothing is due or staging is off."""
    if not config.enabled:
        return None
    if (dep.since is None or t < dep.since + config.period_days * 86_400 or dep.deployment_id not in equities
            or dep.halted):
        return None
    equity = equities[dep.deployment_id]
    ret = equity / dep.anchor - 1.0 if dep.anchor > 0 else 0.0
    step, _streak, decision = next_stage(dep.step, dep.streak, datetime.fromtimestamp(t, UTC), ret, config)
    return {"deployment_id": dep.deployment_id, **decision.as_dict(), "step": step, "period_from": dep.since,
            "period_to": t, "equity": round(equity, 6), "anchor_equity": round(dep.anchor, 6),
            "next_period_from": t, "by": "risk"}
