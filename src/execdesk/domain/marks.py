"""Marks: what the monitor measures and the risk manager and the lead read — holdings as floats, armed
drawdown limits, breaches, equity snapshots and the watermarks (peaks, worst drawdowns) a run carries in its
progress events. Plain data, no I/O: the monitor produces them, the risk manager and the lead take them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from execdesk.domain.events import Event, EventKind

#: the drawdown ladder's steps, in order of severity (step numbers 1..4; 0 is "no step reached")
LADDER_STEPS: tuple[str, ...] = ("alert", "reduce", "trim", "kill")


def step_name(step: int) -> str | None:
    """A ladder step by name (None: no step reached)."""
    return LADDER_STEPS[step - 1] if step > 0 else None

PORTFOLIO = "portfolio"


@dataclass(frozen=True, slots=True)
class Holding:
    row: int  # the pair's row in MarketView.close_matrix
    qty: float  # signed
    avg_price: float


@dataclass(frozen=True, slots=True)
class Holdings:
    """What is held, as floats for analytics: built from the ledger's state after every fill."""

    cash: float
    portfolio: tuple[Holding, ...]
    deployment_base: dict[str, float]  # capital + realised P&L - fees, per deployment
    deployment_holdings: dict[str, tuple[Holding, ...]]


@dataclass(frozen=True, slots=True)
class Limit:
    """An armed drawdown limit: ``scope`` is PORTFOLIO or a deployment id; ``level`` names the step."""

    scope: str
    level: str
    drawdown: float


@dataclass(frozen=True, slots=True)
class Breach:
    scope: str
    level: str
    limit: float
    drawdown: float
    equity: float
    peak: float

    def evidence(self) -> dict[str, Any]:
        return {"scope": self.scope, "level": self.level, "limit": self.limit, "drawdown": round(self.drawdown, 6),
                "equity": round(self.equity, 6), "peak": round(self.peak, 6)}


@dataclass(frozen=True, slots=True)
class Snapshot:
    g: int
    equity: float
    drawdown: float
    deployments: dict[str, tuple[float, float]]  # id -> (equity, drawdown)


@dataclass(slots=True)
class Watermarks:
    """Peaks and worst drawdowns so far, per scope, and the last equity seen.

    Progress events carry only what changed since the previous one (:meth:`take_changes`); folding
    them (:meth:`fold`) gives the watermarks as of the last one, which is how a restarted desk
    resumes them. ``last_equity`` is not carried: the next bar recomputes it.
    """

    peak: dict[str, float] = field(default_factory=dict)
    max_drawdown: dict[str, float] = field(default_factory=dict)
    last_equity: dict[str, float] = field(default_factory=dict)
    changed: set[tuple[str, str]] = field(default_factory=set)

    def set(self, name: str, scope: str, value: float) -> None:
        table: dict[str, float] = getattr(self, name)
        if table.get(scope) != value:
            table[scope] = value
            self.changed.add((name, scope))

    def take_changes(self) -> dict[str, dict[str, float]]:
        """The peaks and drawdowns changed since the last call, as an event payload."""
        out: dict[str, dict[str, float]] = {"peak": {}, "max_drawdown": {}}
        for name, scope in sorted(self.changed):
            out[name][scope] = getattr(self, name)[scope]
        self.changed.clear()
        return out

    def as_payload(self) -> dict[str, dict[str, float]]:
        """Everything, for the end of a run."""
        return {name: dict(sorted(getattr(self, name).items())) for name in ("peak", "max_drawdown", "last_equity")}

    @classmethod
    def fold(cls, payloads: Iterable[dict[str, dict[str, float]]]) -> Watermarks:
        marks = cls()
        for payload in payloads:
            for name in ("peak", "max_drawdown", "last_equity"):
                getattr(marks, name).update({k: float(v) for k, v in payload.get(name, {}).items()})
        return marks


#: events whose ``marks`` payload moves the watermarks (a re-arm resets the peak it re-arms from)
MARK_EVENTS = (EventKind.RUN_PROGRESS, EventKind.RUN_COMPLETED, EventKind.REARMED)


def fold_marks(events: Iterable[Event]) -> Watermarks:
    """Watermarks as of the last of ``events`` (progress and completion events, in order)."""
    return Watermarks.fold(e.payload.get("marks", {}) for e in events if e.kind in MARK_EVENTS)
