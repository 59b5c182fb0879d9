"""Position sizing that shows its arithmetic.

Each method returns a :class:`SizeResult`: the size, the formula in words, the inputs, and every
cap that cut it. Sizes are never negative and never above the per-position cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING

import numpy as np
import talib

from execdesk.domain.types import QUANTUM, dec_const

if TYPE_CHECKING:
    from execdesk.strategy.bundle import Sizing, ValidationReport


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
    figures = fixed_fractional_figures(equity, risk_fraction, price, stop_distance, max_position_fraction)
    return fixed_fractional_result(equity, risk_fraction, price, stop_distance, max_position_fraction, figures)


#: what :func:`fixed_fractional_figures` answers: (raw notional, cap, qty, notional), all Decimal
FixedFractionalFigures = tuple[Decimal, Decimal, Decimal, Decimal]


def fixed_fractional_figures(equity: Decimal, risk_fraction: float, price: Decimal, stop_distance: float,
                             max_position_fraction: float) -> FixedFractionalFigures | None:
    """:func:`fixed_fractional`'s arithmetic without its words: (raw notional, cap, qty, notional) — the notional
    of the size, ``qty x price`` rounded to QUANTUM, is ``fixed_fractional(...).notional`` — or None when the
    size is 0 (non-positive equity, price or stop). For the order path, which reads the notional and leaves the
    formula to :func:`fixed_fractional_result`, when (if) the size is recorded."""
    if equity <= 0 or price <= 0 or stop_distance <= 0:
        return None
    raw = equity * dec_const(risk_fraction) / dec_const(stop_distance)
    cap = equity * dec_const(max_position_fraction)
    # dec(...), inlined: to QUANTUM, half even (the rounding as a positional argument: a third of the call's cost)
    qty = ((cap if raw > cap else raw) / price).quantize(QUANTUM, ROUND_HALF_EVEN)
    return raw, cap, qty, (qty * price).quantize(QUANTUM, ROUND_HALF_EVEN)


def fixed_fractional_result(equity: Decimal, risk_fraction: float, price: Decimal, stop_distance: float,
                            max_position_fraction: float, figures: FixedFractionalFigures | None) -> SizeResult:
    """The :class:`SizeResult` of :func:`fixed_fractional` from its inputs and their ``figures``
    (:func:`fixed_fractional_figures`)."""
    formula, inputs, caps = fixed_fractional_words(equity, risk_fraction, price, stop_distance, max_position_fraction,
                                                   figures)
    if figures is None:
        return SizeResult(Decimal(0), Decimal(0), "fixed_fractional", formula, inputs, caps)
    return SizeResult(figures[2], figures[3], "fixed_fractional", formula, inputs, caps)


def fixed_fractional_words(equity: Decimal, risk_fraction: float, price: Decimal, stop_distance: float,
                           max_position_fraction: float, figures: FixedFractionalFigures | None
                           ) -> tuple[str, dict[str, str], list[str]]:
    """The words of :func:`fixed_fractional`'s result — (formula, inputs, caps applied) — from its inputs and their
    ``figures`` (:func:`fixed_fractional_figures`)."""
    risk, stop = float_repr(risk_fraction), float_repr(stop_distance)
    inputs = {"equity": str(equity), "risk_fraction": risk, "price": str(price), "stop_distance": stop,
              "max_position_fraction": float_repr(max_position_fraction)}
    if figures is None:
        return "non-positive equity, price or stop: size 0", inputs, ["no_size"]
    raw, cap, qty, _notional = figures
    caps: list[str] = []
    if raw > cap:
        caps.append(f"max_position_fraction: {raw:.2f} -> {cap:.2f}")
    if type(risk_fraction) is not float or type(stop_distance) is not float:  # (their str, as the f-string put them)
        risk, stop = str(risk_fraction), str(stop_distance)
    formula = (f"notional = equity {equity:.2f} x risk {risk} / stop {stop} = {raw:.2f}"
               f"{'; capped to ' + format(cap, '.2f') if caps else ''}; qty = notional / price {price} = {qty}")
    return formula, inputs, caps


_FLOAT_REPR: dict[float, str] = {}


def float_repr(x: float) -> str:
    """``repr(x)``, memoised for floats: the constants of a size (risk, stop, fractions) recur in every record, and
    the repr of a float is the costliest step of putting one in words. Not memoised: 0.0 and -0.0 (one key, two
    texts), anything not a float (an int 1 is the key of 1.0); at most 4,096 texts are kept."""
    if type(x) is not float or not x:
        return repr(x)
    text = _FLOAT_REPR.get(x)
    if text is None:
        text = repr(x)
        if len(_FLOAT_REPR) < 4096:
            _FLOAT_REPR[x] = text
    return text


# ------------------------------------------------------------------------------------------------
# Kelly and volatility-target sizing. Unlike fixed_fractional these accept any float input (NaN,
# infinities, negatives) and answer a clean zero size with the reason instead of raising; qty is
# rounded *down* to QUANTUM so that qty x price never exceeds the per-position cap.


def _finite(*values: float | Decimal) -> bool:
    return all(math.isfinite(float(v)) for v in values)


def _zero(method: str, reason: str, inputs: dict[str, str]) -> SizeResult:
    return SizeResult(Decimal(0), Decimal(0), method, f"{reason}: size 0", inputs, ["no_size"])


def _cap_notional(equity: Decimal, raw: Decimal, price: Decimal, max_position_fraction: float,
                  caps: list[str]) -> tuple[Decimal, Decimal, Decimal]:
    """(cap, qty, notional): ``raw`` notional cut to equity x max_position_fraction (rounded down to
    QUANTUM), qty = notional / price rounded down, notional = qty x price (never above the cap)."""
    cap = (equity * Decimal(repr(max_position_fraction))).quantize(QUANTUM, rounding=ROUND_DOWN)
    notional = raw
    if raw > cap:
        notional = cap
        caps.append(f"max_position_fraction: {raw:.2f} -> {cap:.2f}")
    qty = max(Decimal(0), (notional / price).quantize(QUANTUM, rounding=ROUND_DOWN))
    # rounded down too: rounding to nearest could lift it a hair above the cap it was cut to
    return cap, qty, (qty * price).quantize(QUANTUM, rounding=ROUND_DOWN)


def kelly(equity: Decimal, win_rate: float, payoff_ratio: float, price: Decimal, fraction: float = 0.5,
          cap: float = 0.25, max_position_fraction: float = 0.25) -> SizeResult:
    """Fractional, capped Kelly.

    f* = W - (1 - W) / R (W the win rate, R = average win / average loss); the position is
    notional = equity x min(f* x fraction, cap), then capped at equity x max_position_fraction;
    qty = notional / price. f* <= 0 (no edge) sizes 0 with the reason. ``R = inf`` (no losses)
    gives f* = W.
    """
    method = "kelly"
    inputs = {"equity": str(equity), "win_rate": repr(win_rate), "payoff_ratio": repr(payoff_ratio),
              "price": str(price), "fraction": repr(fraction), "cap": repr(cap),
              "max_position_fraction": repr(max_position_fraction)}
    if not _finite(equity, price, win_rate, fraction, cap, max_position_fraction) or math.isnan(payoff_ratio):
        return _zero(method, "non-finite input", inputs)
    if equity <= 0 or price <= 0 or fraction <= 0 or cap <= 0 or max_position_fraction <= 0:
        return _zero(method, "non-positive equity, price, fraction or cap", inputs)
    if not 0.0 <= win_rate <= 1.0 or payoff_ratio <= 0:
        return _zero(method, f"win rate {win_rate!r} outside [0, 1] or payoff ratio {payoff_ratio!r} <= 0", inputs)
    f_star = win_rate - (1.0 - win_rate) / payoff_ratio
    kelly_text = f"f* = W {win_rate:g} - (1 - {win_rate:g}) / R {payoff_ratio:g} = {f_star:.6f}"
    if f_star <= 0:
        return SizeResult(Decimal(0), Decimal(0), method, f"{kelly_text} <= 0 (no edge): size 0", inputs,
                          ["no_edge"])
    caps: list[str] = []
    f = f_star * fraction
    if f > cap:
        caps.append(f"kelly_cap: {f:.6f} -> {cap:g}")
        f = cap
    raw = equity * Decimal(repr(f))
    try:
        position_cap, qty, notional = _cap_notional(equity, raw, price, max_position_fraction, caps)
    except InvalidOperation:
        return _zero(method, "inputs beyond Decimal precision", inputs)
    formula = (f"{kelly_text}; f = f* x {fraction:g} = {f_star * fraction:.6f}"
               f"{f'; capped to {cap:g}' if f_star * fraction > cap else ''}; "
               f"notional = equity {equity:.2f} x {f:.6f} = {raw:.2f}"
               f"{f'; capped to {position_cap:.2f}' if raw > position_cap else ''}; "
               f"qty = notional / price {price} = {qty}")
    return SizeResult(qty, notional, method, formula, inputs, caps)


@dataclass(frozen=True, slots=True)
class PayoffEstimate:
    """Win rate and payoff ratio R (average win / average loss) of a validation report, with its source:
    ``"returns"`` (the per-trade returns) or ``"profit_factor"`` (R = PF x (1 - W) / W)."""

    win_rate: float
    payoff_ratio: float
    source: str
    formula: str


def payoff_from_validation(report: ValidationReport) -> PayoffEstimate:
    """The payoff ratio of a validation report, from its per-trade ``returns`` when given, else from
    ``profit_factor`` and ``win_rate``.

    From returns: W = wins / trades (Freqtrade's win rate: draws count as trades), R = mean of the
    positive returns / |mean of the negative returns| (inf without losses; NaN without wins, which
    :func:`kelly` sizes 0). From the profit factor: PF = W x avgwin / ((1 - W) x avgloss), so
    R = PF x (1 - W) / W; NaN when W is 0 or 1, or PF is 0 (Freqtrade reports 0 without losses, so
    PF 0 is ambiguous).
    """
    if report.returns:
        r = np.asarray(report.returns, dtype=np.float64)
        wins, losses = r[r > 0], r[r < 0]
        w = wins.size / r.size
        if wins.size == 0:
            payoff = math.nan
        elif losses.size == 0:
            payoff = math.inf
        else:
            payoff = float(wins.mean()) / abs(float(losses.mean()))
        return PayoffEstimate(w, payoff, "returns",
                              f"W = {wins.size}/{r.size} = {w:.6f}; R = mean win "
                              f"{float(wins.mean()) if wins.size else math.nan:.6f} / mean loss "
                              f"{abs(float(losses.mean())) if losses.size else math.nan:.6f} = {payoff:.6f}")
    w, pf = report.win_rate, report.profit_factor
    payoff = pf * (1.0 - w) / w if 0.0 < w < 1.0 and pf > 0 else math.nan
    return PayoffEstimate(w, payoff, "profit_factor",
                          f"R = PF {pf:g} x (1 - W {w:g}) / W {w:g} = {payoff:.6f}")


def kelly_from_validation(equity: Decimal, report: ValidationReport, price: Decimal, fraction: float = 0.5,
                          cap: float = 0.25, max_position_fraction: float = 0.25) -> SizeResult:
    """:func:`kelly` with W and R from :func:`payoff_from_validation`; the inputs name the source."""
    estimate = payoff_from_validation(report)
    size = kelly(equity, estimate.win_rate, estimate.payoff_ratio, price, fraction, cap, max_position_fraction)
    inputs = {**size.inputs, "payoff_source": estimate.source, "payoff_formula": estimate.formula}
    return replace(size, inputs=inputs)


def atr_from_candles(high: Sequence[float] | np.ndarray, low: Sequence[float] | np.ndarray,
                     close: Sequence[float] | np.ndarray, period: int = 14) -> float:
    """The last value of TA-Lib's ATR(period) (Wilder's smoothing); NaN with fewer than period + 1 candles."""
    if period < 1 or not len(high) == len(low) == len(close) or len(close) <= period:
        return math.nan
    return float(atr_series(high, low, close, period)[-1])


def atr_series(high: Sequence[float] | np.ndarray, low: Sequence[float] | np.ndarray,
               close: Sequence[float] | np.ndarray, period: int = 14) -> np.ndarray:
    """TA-Lib's ATR(period) at every candle (NaN until ``period`` candles have closed): a desk sizing by
    volatility reads the value of the last candle closed, computed once for the whole series."""
    h, lo, c = (np.ascontiguousarray(x, dtype=np.float64) for x in (high, low, close))
    if c.size <= period:
        return np.full(c.size, np.nan)
    return np.asarray(talib.ATR(h, lo, c, timeperiod=period), dtype=np.float64)


def volatility_target(equity: Decimal, price: Decimal, atr: float, target_risk_fraction: float,
                      atr_multiple: float = 2.0, max_position_fraction: float = 0.25) -> SizeResult:
    """Size so that a move of ``atr_multiple`` ATRs costs ``target_risk_fraction`` of equity.

    qty = equity x target / (atr x multiple); notional = qty x price, capped at equity x
    max_position_fraction (qty recomputed from the cap).
    """
    method = "volatility_target"
    inputs = {"equity": str(equity), "price": str(price), "atr": repr(atr),
              "target_risk_fraction": repr(target_risk_fraction), "atr_multiple": repr(atr_multiple),
              "max_position_fraction": repr(max_position_fraction)}
    if not _finite(equity, price, atr, target_risk_fraction, atr_multiple, max_position_fraction):
        return _zero(method, "non-finite input", inputs)
    if equity <= 0 or price <= 0 or atr <= 0 or target_risk_fraction <= 0 or atr_multiple <= 0 \
            or max_position_fraction <= 0:
        return _zero(method, "non-positive equity, price, atr, target, multiple or cap", inputs)
    risk = equity * Decimal(repr(target_risk_fraction))
    stop = Decimal(repr(atr)) * Decimal(repr(atr_multiple))
    raw_qty = risk / stop
    raw = raw_qty * price
    caps: list[str] = []
    try:
        position_cap, qty, notional = _cap_notional(equity, raw, price, max_position_fraction, caps)
    except InvalidOperation:
        return _zero(method, "inputs beyond Decimal precision", inputs)
    formula = (f"qty = equity {equity:.2f} x target {target_risk_fraction:g} / (atr {atr:g} x {atr_multiple:g}) "
               f"= {risk:.2f} / {stop:g} = {raw_qty:.6f}; notional = qty x price {price} = {raw:.2f}"
               f"{f'; capped to {position_cap:.2f}' if caps else ''}; qty = {qty}")
    return SizeResult(qty, notional, method, formula, inputs, caps)


def entry_size(sizing: Sizing | None, equity: Decimal, price: Decimal, stop_distance: float, risk_per_trade: float,
               max_position_fraction: float, validation: ValidationReport | None = None,
               atr: float | None = None) -> SizeResult:
    """An entry's size by the strategy's sizing method (the bundle's ``sizing``; None: fixed fractional at the desk's
    ``risk_per_trade``): fixed fractional against the stop, fractional Kelly from the validation report's win rate
    and payoff, or a volatility target against the pair's ATR (``atr``: the last one closed; None or NaN — too few
    candles yet — sizes 0 with the reason). Every method keeps the per-position cap."""
    risk = fixed_fractional_risk(sizing, risk_per_trade)
    if risk is not None:
        return fixed_fractional(equity, risk, price, stop_distance, max_position_fraction)
    assert sizing is not None
    if sizing.method == "kelly":
        if validation is None:
            return _zero("kelly", "no validation report to take the win rate and payoff from", {})
        return kelly_from_validation(equity, validation, price, float(sizing.setting("fraction")),
                                     float(sizing.setting("cap")), max_position_fraction)
    size = volatility_target(equity, price, math.nan if atr is None else atr, float(sizing.setting("target_risk")),
                             float(sizing.setting("atr_multiple")), max_position_fraction)
    return replace(size, inputs={**size.inputs, "atr_period": str(sizing.setting("atr_period"))})


def fixed_fractional_risk(sizing: Sizing | None, risk_per_trade: float) -> float | None:
    """The risk fraction :func:`entry_size` sizes at when the method is fixed fractional (the strategy's
    ``risk_per_trade``, else the desk's), None for another method."""
    if sizing is None:
        return risk_per_trade
    if sizing.method == "fixed_fractional":
        return float(sizing.setting("risk_per_trade") or risk_per_trade)
    return None
