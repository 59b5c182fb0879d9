"""Equity and drawdown, portfolio-wide and per deployment, marked to market on every bar.

Between two bars at which anything trades, holdings are constant, so the monitor evaluates a whole
stretch of bars at once with numpy: equity paths, running peaks, drawdowns, and the first bar (if
any) at which a drawdown reaches an armed limit. It only observes: what to do about a breach is the
risk manager's and the lead's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

PORTFOLIO = "portfolio"
FloatArray = npt.NDArray[np.float64]


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
    """Peaks and worst drawdowns so far; part of every progress event so a restart resumes them."""

    peak: dict[str, float] = field(default_factory=dict)
    max_drawdown: dict[str, float] = field(default_factory=dict)
    last_equity: dict[str, float] = field(default_factory=dict)

    def as_payload(self) -> dict[str, dict[str, float]]:
        return {name: {k: round(v, 6) for k, v in sorted(getattr(self, name).items())}
                for name in ("peak", "max_drawdown", "last_equity")}

    @classmethod
    def from_payload(cls, payload: dict[str, dict[str, float]]) -> Watermarks:
        return cls(**{name: {k: float(v) for k, v in payload.get(name, {}).items()}
                      for name in ("peak", "max_drawdown", "last_equity")})


class Monitor:
    """Marks holdings to market over stretches of grid bars (see module docstring)."""

    def __init__(self, close_matrix: FloatArray, snapshot_mask: npt.NDArray[np.bool_]) -> None:
        self.close = close_matrix
        self.snapshot_mask = snapshot_mask
        self.marks = Watermarks()

    def advance(self, h: Holdings, a: int, b: int, limits: Sequence[Limit]
                ) -> tuple[int | None, list[Breach], list[Snapshot]]:
        """Evaluate bars ``a..b`` (inclusive). Stops at the first bar where an armed limit is reached.

        Returns (that bar or None, the breaches at it, snapshots of the bars evaluated). Watermarks
        take in every bar evaluated, the breaching bar included.
        """
        paths = {PORTFOLIO: self._path(h.cash, h.portfolio, a, b, relative=False)}
        for dep, base in h.deployment_base.items():
            paths[dep] = self._path(base, h.deployment_holdings.get(dep, ()), a, b, relative=True)
        peaks: dict[str, FloatArray] = {}
        dds: dict[str, FloatArray] = {}
        for scope, eq in paths.items():
            prev = self.marks.peak.get(scope, float(eq[0]))
            peaks[scope] = np.maximum(np.maximum.accumulate(eq), prev)
            dds[scope] = 1.0 - eq / peaks[scope]
        stop = len(paths[PORTFOLIO])
        for lim in limits:
            dd = dds.get(lim.scope)
            if dd is not None:
                hit = dd >= lim.drawdown
                if hit.any():
                    stop = min(stop, int(np.argmax(hit)) + 1)
        end = stop - 1  # offset of the last bar evaluated
        breaches = [Breach(lim.scope, lim.level, lim.drawdown, float(dds[lim.scope][end]),
                           float(paths[lim.scope][end]), float(peaks[lim.scope][end]))
                    for lim in limits if lim.scope in dds and dds[lim.scope][end] >= lim.drawdown]
        for scope in paths:
            self.marks.peak[scope] = float(peaks[scope][end])
            self.marks.max_drawdown[scope] = max(self.marks.max_drawdown.get(scope, 0.0),
                                                 float(dds[scope][: end + 1].max()))
            self.marks.last_equity[scope] = float(paths[scope][end])
        snaps = [Snapshot(a + int(i), float(paths[PORTFOLIO][i]), float(dds[PORTFOLIO][i]),
                          {d: (float(paths[d][i]), float(dds[d][i])) for d in paths if d != PORTFOLIO})
                 for i in np.flatnonzero(self.snapshot_mask[a: a + end + 1])]
        return (a + end if breaches else None), breaches, snaps

    def _path(self, base: float, holdings: Sequence[Holding], a: int, b: int, relative: bool) -> FloatArray:
        eq = np.full(b - a + 1, base, dtype=np.float64)
        for hold in holdings:
            prices = self.close[hold.row, a: b + 1]
            eq += hold.qty * (prices - hold.avg_price) if relative else hold.qty * prices
        return eq
