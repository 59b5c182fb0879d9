"""Position sizing that shows its arithmetic.

Each method returns a :class:`SizeResult`: the size, the formula in words, the inputs, and every
cap that cut it. Sizes are never negative and never above the per-position cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from execdesk.domain.types import dec, dec_const


@dataclass(frozen=True, slots=True)
class SizeResult:
    qty: Decimal
    notional: Decimal
    method: str
    formula: str
    inputs: dict[str, str]
    caps_applied: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"qty": str(self.qty), "notional": str(self.notional), "method": self.method,
                "formula": self.formula, "inputs": self.inputs, "caps_applied": self.caps_applied}


def fixed_fractional(equity: Decimal, risk_fraction: float, price: Decimal, stop_distance: float,
                     max_position_fraction: float) -> SizeResult:
    """Risk ``risk_fraction`` of ``equity`` between entry and stop.

    notional = equity x risk_fraction / stop_distance, capped at equity x max_position_fraction;
    qty = notional / price. ``stop_distance`` is the fractional distance to the stop (0.05 for a 5%
    stoploss).
    """
    inputs = {"equity": str(equity), "risk_fraction": repr(risk_fraction), "price": str(price),
              "stop_distance": repr(stop_distance), "max_position_fraction": repr(max_position_fraction)}
    if equity <= 0 or price <= 0 or stop_distance <= 0:
        return SizeResult(Decimal(0), Decimal(0), "fixed_fractional", "non-positive equity, price or stop: size 0",
                          inputs, ["no_size"])
    raw = equity * dec_const(risk_fraction) / dec_const(stop_distance)
    cap = equity * dec_const(max_position_fraction)
    caps: list[str] = []
    notional = raw
    if raw > cap:
        notional = cap
        caps.append(f"max_position_fraction: {raw:.2f} -> {cap:.2f}")
    qty = dec(notional / price)
    formula = (f"notional = equity {equity:.2f} x risk {risk_fraction} / stop {stop_distance} = {raw:.2f}"
               f"{'; capped to ' + format(cap, '.2f') if caps else ''}; qty = notional / price {price} = {qty}")
    return SizeResult(qty, dec(qty * price), "fixed_fractional", formula, inputs, caps)
