"""Test kit: checks shared by the desk and demo tests."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from execdesk.domain.state import DeskState


def replay_fills(state: DeskState, capital: Decimal) -> tuple[dict[tuple[str, str], Decimal], Decimal]:
    """Positions (per deployment and pair) and cash recomputed from the recorded fills alone."""
    positions: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cash = capital
    for fill in state.fills.values():
        sign = 1 if fill.side == "BUY" else -1
        positions[(fill.deployment_id, fill.pair)] += sign * fill.qty
        cash -= sign * fill.qty * fill.price + fill.fee
    return positions, cash
