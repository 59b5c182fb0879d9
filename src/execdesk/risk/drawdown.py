"""The risk manager's confirmation of a drawdown breach, on fresh equity from the ledger.

The monitor's figures are floats marked over a stretch of bars; before the lead acts on a breach,
the risk manager recomputes equity exactly (Decimal cash and positions from the ledger, marked at
the breaching bar's closes) and confirms or rejects it, with its numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from execdesk.domain.marks import PORTFOLIO, Breach
from execdesk.domain.state import DeskState
from execdesk.domain.types import dec


@dataclass(frozen=True, slots=True)
class BreachConfirmation:
    confirmed: bool
    scope: str
    level: str
    equity: Decimal
    peak: Decimal
    drawdown: Decimal
    limit: Decimal

    def as_dict(self) -> dict[str, object]:
        return {"confirmed": self.confirmed, "scope": self.scope, "level": self.level,
                "equity": f"{self.equity:.6f}", "peak": f"{self.peak:.6f}", "drawdown": f"{self.drawdown:.6f}",
                "limit": str(self.limit)}


def fresh_equity(state: DeskState, closes: Mapping[str, float], scope: str) -> Decimal:
    """Portfolio equity (cash + positions at ``closes``) or one deployment's (capital + P&L)."""
    if scope == PORTFOLIO:
        return state.cash() + sum((p.qty * dec(closes[p.pair]) for p in state.open_positions()), Decimal(0))
    dep = state.deployments[scope]
    unrealised = sum((p.qty * (dec(closes[p.pair]) - p.avg_price) for p in state.open_positions()
                      if p.deployment_id == scope), Decimal(0))
    return dep.capital + dep.realized_pnl - dep.fees + unrealised


def confirm_breach(state: DeskState, closes: Mapping[str, float], breach: Breach) -> BreachConfirmation:
    equity = fresh_equity(state, closes, breach.scope)
    peak = max(dec(breach.peak), equity)
    drawdown = (1 - equity / peak) if peak > 0 else Decimal(0)
    limit = dec(breach.limit)
    # a hair of tolerance: the monitor's float marks and the exact Decimal ones differ in the last digits
    return BreachConfirmation(drawdown >= limit - Decimal("1e-9"), breach.scope, breach.level, equity, peak,
                              drawdown, limit)
