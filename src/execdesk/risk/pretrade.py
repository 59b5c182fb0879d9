"""Pre-trade checks: the fast path every order intent passes through.

:func:`check_order` is a pure function of an intent and a :class:`PretradeSnapshot`; it sizes entries
(fixed fractional) and returns a :class:`Verdict` that names the rule, the reason and the numbers.
A denial is data, recorded by the caller as an ``order.denied`` event; nothing here raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from execdesk.domain.types import QUANTUM, OrderIntent, TradingState, dec, dec_const
from execdesk.risk.config import RiskConfig
from execdesk.risk.sizing import SizeResult, fixed_fractional


@dataclass(frozen=True, slots=True)
class PretradeSnapshot:
    """What the risk manager knows at the moment of the check (all money in the quote currency)."""

    trading_state: TradingState
    deployment_state: TradingState
    portfolio_equity: Decimal
    deployment_equity: Decimal
    gross_exposure: Decimal
    deployment_exposure: Decimal
    cash: Decimal
    open_positions: int
    position_qty: Decimal
    stop_distance: float
    fee_rate: Decimal


@dataclass(frozen=True, slots=True)
class Verdict:
    approved: bool
    rule: str
    reason: str
    qty: Decimal
    numbers: dict[str, str] = field(default_factory=dict)
    sizing: SizeResult | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"approved": self.approved, "rule": self.rule, "reason": self.reason,
                                  "qty": str(self.qty), "numbers": self.numbers}
        if self.sizing is not None:
            out["sizing"] = self.sizing.as_dict()
        return out


def _deny(rule: str, reason: str, **numbers: object) -> Verdict:
    return Verdict(False, rule, reason, Decimal(0), {k: str(v) for k, v in numbers.items()})


def check_order(intent: OrderIntent, snap: PretradeSnapshot, cfg: RiskConfig) -> Verdict:
    """Size (entries) and check one intent; the first failing rule denies it."""
    if intent.reduce_only:
        return _check_exit(intent, snap)
    for scope, state in (("portfolio", snap.trading_state), ("deployment", snap.deployment_state)):
        if state is not TradingState.ACTIVE:
            return _deny("trading_state", f"{scope} is {state.value}: no new positions", state=state.value)
    if snap.open_positions >= cfg.max_open_positions:
        return _deny("max_open_positions", f"{snap.open_positions} open >= limit {cfg.max_open_positions}",
                     open_positions=snap.open_positions, limit=cfg.max_open_positions)
    size = fixed_fractional(snap.deployment_equity, cfg.risk_per_trade, intent.ref_price, snap.stop_distance,
                            cfg.max_position_fraction)
    notional = size.notional
    caps = list(size.caps_applied)
    limits = {
        "max_order_notional": dec_const(cfg.max_order_notional) if cfg.max_order_notional else None,
        # a deployment trades its own equity, unlevered
        "deployment_exposure": snap.deployment_equity - snap.deployment_exposure,
        "gross_exposure": snap.portfolio_equity * dec_const(cfg.max_gross_exposure) - snap.gross_exposure,
        "free_cash": snap.cash / (1 + snap.fee_rate),
    }
    for rule, room in limits.items():
        if room is not None and notional > room:
            caps.append(f"{rule}: {notional:.2f} -> {max(room, Decimal(0)):.2f}")
            notional = max(room, Decimal(0))
    # rounded down: a qty rounded up could cost a hair more than the room (cash, exposure) it was cut to
    qty = (notional / intent.ref_price).quantize(QUANTUM, ROUND_DOWN) if intent.ref_price > 0 else Decimal(0)
    numbers = {"deployment_equity": f"{snap.deployment_equity:.2f}", "portfolio_equity": f"{snap.portfolio_equity:.2f}",
               "gross_exposure": f"{snap.gross_exposure:.2f}", "deployment_exposure": f"{snap.deployment_exposure:.2f}",
               "cash": f"{snap.cash:.2f}", "notional": f"{notional:.2f}"}
    sized = SizeResult(qty, dec(qty * intent.ref_price), size.method, size.formula, size.inputs, caps)
    # below a hundredth of the intended risk, the order is noise: deny rather than trade dust
    if qty <= 0 or notional < size.notional / 100:
        return Verdict(False, caps[-1].split(":")[0] if caps else "size", "no room for a position of useful size",
                       Decimal(0), numbers, sized)
    return Verdict(True, "approved", "within limits", qty, numbers, sized)


def _check_exit(intent: OrderIntent, snap: PretradeSnapshot) -> Verdict:
    if snap.trading_state is TradingState.HALTED:
        return _deny("trading_state", "portfolio is HALTED: nothing but cancels", state="HALTED")
    held = abs(snap.position_qty)
    qty = intent.qty or Decimal(0)
    if held == 0 or qty <= 0:
        return _deny("reduce_only", "nothing to reduce", position_qty=snap.position_qty)
    if qty > held:
        return _deny("reduce_only", f"exit of {qty} exceeds the position {held}", qty=qty, position_qty=held)
    return Verdict(True, "approved", "reduces exposure", qty, {"position_qty": str(held)})
