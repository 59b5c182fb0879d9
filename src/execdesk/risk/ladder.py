"""The drawdown ladders as pure functions: which limits are armed, which steps a breach crosses, what each
step does and what it sizes and stops at (see :class:`~execdesk.risk.config.DrawdownLadder` for the steps).

Inputs are plain values (the ladders, the current steps and states, the monitor's breaches); outputs are
plain values the desk records and acts on. Nothing here reads a clock, the ledger or the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from execdesk.domain.marks import LADDER_STEPS, PORTFOLIO, Breach, Limit
from execdesk.domain.types import TradingState
from execdesk.risk.config import DrawdownLadder

#: the kill step's number: the ladder's last step (for the portfolio: the circuit breaker)
KILL = len(LADDER_STEPS)
#: step name -> step number (1: alert ... 4: kill)
STEP = {name: i for i, name in enumerate(LADDER_STEPS, start=1)}
#: the deployment states whose reason stops its ladder: it is being closed by its own kill or a removal
LADDER_STOPPED_REASONS = ("drawdown_kill", "drift_remove")
CIRCUIT_BREAKER = "circuit_breaker"


@dataclass(frozen=True, slots=True)
class LadderStep:
    """One step a breach crosses: its number, name and drawdown level."""

    step: int
    name: str
    level: float


@dataclass(frozen=True, slots=True)
class ScopeSteps:
    """The state of one scope's ladder, for :func:`armed_limits`: ``state``/``reason`` its trading state."""

    scope: str
    state: TradingState
    reason: str
    step: int


def crossed(ladder: DrawdownLadder, current: int, level: str) -> list[LadderStep]:
    """The steps above ``current`` up to ``level`` (the breach's), mildest first."""
    reached = STEP[level]
    return [LadderStep(step, name, lvl) for step, name, lvl in ladder.levels() if current < step <= reached]


def deepest(breaches: Iterable[Breach]) -> dict[str, Breach]:
    """Per scope, the breach of the deepest step (the first of equals)."""
    out: dict[str, Breach] = {}
    for b in breaches:
        if b.scope not in out or STEP[b.level] > STEP[out[b.scope].level]:
            out[b.scope] = b
    return out


def armed_limits(portfolio_ladder: DrawdownLadder, desk: ScopeSteps, deployments: Iterable[ScopeSteps],
                 ladder_of: Callable[[str], DrawdownLadder]) -> list[Limit]:
    """The drawdown steps that can still fire: none once the desk is HALTED or its circuit breaker tripped;
    above each scope's current step otherwise (a deployment HALTED, or closing by its own kill or a removal,
    has none)."""
    if desk.state is TradingState.HALTED or desk.reason == CIRCUIT_BREAKER:
        return []
    limits = [Limit(PORTFOLIO, name, level) for step, name, level in portfolio_ladder.levels() if step > desk.step]
    for dep in deployments:
        if dep.state is TradingState.HALTED or dep.reason in LADDER_STOPPED_REASONS:
            continue
        limits.extend(Limit(dep.scope, name, level) for step, name, level in ladder_of(dep.scope).levels()
                      if step > dep.step)
    return limits


def size_multiplier(portfolio_ladder: DrawdownLadder, portfolio_step: int, ladder: DrawdownLadder, step: int
                    ) -> float:
    """What a deployment's new positions are sized at: the stricter of the portfolio's and its own ladder."""
    return min(portfolio_ladder.size_multiplier(portfolio_step), ladder.size_multiplier(step))


def stop_multiplier(portfolio_ladder: DrawdownLadder, portfolio_step: int, ladder: DrawdownLadder, step: int
                    ) -> float:
    """The fraction of their distance a deployment's stops keep: the stricter of the two ladders."""
    return min(portfolio_ladder.stop_multiplier(portfolio_step), ladder.stop_multiplier(step))


def step_action(ladder: DrawdownLadder, name: str, portfolio: bool) -> str:
    """What the step does, in words (recorded in ``risk.ladder_stepped``)."""
    if name == "alert":
        return f"new positions sized x {ladder.alert_size_multiplier}"
    if name == "reduce":
        return f"REDUCING: no new positions; stops tightened to x {ladder.reduce_stop_multiplier}"
    if name == "trim":
        return (f"close {ladder.trim_fraction:.0%} of every position" if portfolio
                else f"close {ladder.trim_fraction:.0%} of each of its positions")
    return "close everything; HALTED once flat, until re-armed by hand"


def step_payload(scope: str | None, step: LadderStep, evidence: Mapping[str, object], action: str
                 ) -> dict[str, object]:
    """The ``risk.ladder_stepped`` payload of a step taken (``scope`` None: the portfolio)."""
    return {"scope": scope or PORTFOLIO, "step": step.step, "level": step.name, "evidence": dict(evidence),
            "action": action, "by": "risk"}
