"""The indicator registry: which TA-Lib functions a bundle may declare, and how they are computed.

A bundle declares indicators by name, e.g. ``rsi: {fn: RSI, period: 14}``. Each registry entry
fixes the allowed parameters (type, bounds, default) and the *output names* an expression can use:

==========  ==========================================  =========================================
fn          parameters (default)                         outputs for an indicator named ``x``
==========  ==========================================  =========================================
EMA, SMA    period (required), source (close)            ``x``
RSI         period (14), source (close)                  ``x``
ATR, ADX,   period (14)                                  ``x``
CCI, MFI
OBV         none                                         ``x``
MACD        fast (12), slow (26), signal (9)             ``x`` (macd line), ``x_signal``, ``x_hist``
BBANDS      period (20), stddev (2.0)                    ``x_upper``, ``x_middle``, ``x_lower``
STOCH       fastk (14), slowk (3), slowd (3)             ``x_k``, ``x_d``
==========  ==========================================  =========================================

``source`` is an OHLCV column. Moving-average types inside MACD/BBANDS/STOCH are TA-Lib's
defaults (EMA for MACD, SMA for BBANDS and STOCH). :func:`talib_call` describes the exact TA-Lib
call for an indicator, so generated strategies can compute precisely what
:func:`compute_indicators` computes here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

from execdesk.errors import InvalidInput
from execdesk.strategy._issues import MISSING, issues_error

ParamValue = int | float | str
_SOURCES = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class ParamDef:
    """One parameter of a registry entry; ``default`` None means required."""

    kind: type[int] | type[float] | type[str]
    default: ParamValue | None
    low: float | None = None
    high: float | None = None
    talib: tuple[str, ...] = ()  # the TA-Lib keyword(s) it feeds; () for ``source``

    def describe(self) -> str:
        """What a valid value looks like, for error messages."""
        if self.kind is str:
            return "one of " + ", ".join(_SOURCES)
        noun = "an integer" if self.kind is int else "a number"
        return f"{noun} in [{self.low}, {self.high}]"

    def check(self, value: object) -> ParamValue | None:
        """The value normalised, or None when it is not acceptable."""
        if isinstance(value, bool):  # bool is an int subclass; never a valid parameter
            return None
        if self.kind is str:
            return value if isinstance(value, str) and value in _SOURCES else None
        if self.kind is int:
            if not isinstance(value, int):
                return None
            num: float = value
        elif isinstance(value, int | float) and np.isfinite(value):
            num = float(value)
        else:
            return None
        if (self.low is not None and num < self.low) or (self.high is not None and num > self.high):
            return None
        return value if self.kind is int else float(num)


@dataclass(frozen=True, slots=True)
class IndicatorDef:
    """A registry entry: parameters, OHLCV inputs and output-name suffixes ("" = the name)."""

    fn: str
    params: Mapping[str, ParamDef]
    inputs: tuple[str, ...]
    suffixes: tuple[str, ...] = ("",)
    extra_kwargs: Mapping[str, ParamValue] | None = None  # fixed TA-Lib keywords


def _period(default: int | None, low: int = 2) -> ParamDef:
    return ParamDef(int, default, low, 1000, ("timeperiod",))


_SOURCE = ParamDef(str, "close")
_HLC = ("high", "low", "close")

#: fn -> registry entry.
REGISTRY: Mapping[str, IndicatorDef] = {
    "EMA": IndicatorDef("EMA", {"period": _period(None), "source": _SOURCE}, ("close",)),
    "SMA": IndicatorDef("SMA", {"period": _period(None), "source": _SOURCE}, ("close",)),
    "RSI": IndicatorDef("RSI", {"period": _period(14), "source": _SOURCE}, ("close",)),
    "ATR": IndicatorDef("ATR", {"period": _period(14, low=1)}, _HLC),
    "ADX": IndicatorDef("ADX", {"period": _period(14)}, _HLC),
    "CCI": IndicatorDef("CCI", {"period": _period(14)}, _HLC),
    "MFI": IndicatorDef("MFI", {"period": _period(14)}, (*_HLC, "volume")),
    "OBV": IndicatorDef("OBV", {}, ("close", "volume")),
    "MACD": IndicatorDef(
        "MACD",
        {
            "fast": ParamDef(int, 12, 2, 1000, ("fastperiod",)),
            "slow": ParamDef(int, 26, 2, 1000, ("slowperiod",)),
            "signal": ParamDef(int, 9, 1, 1000, ("signalperiod",)),
        },
        ("close",),
        ("", "_signal", "_hist"),
    ),
    "BBANDS": IndicatorDef(
        "BBANDS",
        {
            "period": _period(20),
            "stddev": ParamDef(float, 2.0, 0.1, 10.0, ("nbdevup", "nbdevdn")),
        },
        ("close",),
        ("_upper", "_middle", "_lower"),
        {"matype": 0},
    ),
    "STOCH": IndicatorDef(
        "STOCH",
        {
            "fastk": ParamDef(int, 14, 1, 1000, ("fastk_period",)),
            "slowk": ParamDef(int, 3, 1, 1000, ("slowk_period",)),
            "slowd": ParamDef(int, 3, 1, 1000, ("slowd_period",)),
        },
        _HLC,
        ("_k", "_d"),
        {"slowk_matype": 0, "slowd_matype": 0},
    ),
}


class IndicatorSpec(BaseModel):
    """A declared indicator: ``fn`` and its parameters, normalised with defaults filled in.

    Written flat in a bundle (``{fn: EMA, period: 12}``) and dumped the same way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fn: str
    params: dict[str, ParamValue]

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, IndicatorSpec):
            return {"fn": data.fn, "params": dict(data.params)}
        if not isinstance(data, Mapping):
            raise issues_error([("", data, "a mapping like {fn: EMA, period: 12}")])
        return _normalise(data)

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        return {"fn": self.fn, **self.params}

    @property
    def definition(self) -> IndicatorDef:
        """The registry entry for ``fn``."""
        return REGISTRY[self.fn]


def _normalise(data: Mapping[Any, Any]) -> dict[str, Any]:
    known = ", ".join(REGISTRY)
    raw_fn = data.get("fn", MISSING)
    if raw_fn is MISSING:
        raise issues_error([("fn", MISSING, f"a required field: one of {known}")])
    fn = raw_fn.upper() if isinstance(raw_fn, str) else ""
    if fn not in REGISTRY:
        raise issues_error([("fn", raw_fn, f"one of {known}")])
    definition = REGISTRY[fn]
    issues: list[tuple[str, object, str]] = []
    allowed = ", ".join(definition.params) or "none"
    for key, value in data.items():
        if key != "fn" and key not in definition.params:
            issues.append((str(key), value, f"no such parameter for {fn} (allowed: {allowed})"))
    params: dict[str, ParamValue] = {}
    for pname, pdef in definition.params.items():
        value = data.get(pname, MISSING)
        if value is MISSING:
            if pdef.default is None:
                issues.append((pname, MISSING, f"a required parameter of {fn}: {pdef.describe()}"))
                continue
            value = pdef.default
        checked = pdef.check(value)
        if checked is None:
            issues.append((pname, value, pdef.describe()))
        else:
            params[pname] = checked
    fast, slow = params.get("fast"), params.get("slow")
    if fn == "MACD" and isinstance(fast, int) and isinstance(slow, int) and fast >= slow:
        issues.append(("slow", slow, f"an integer greater than fast ({fast})"))
    if issues:
        raise issues_error(issues)
    return {"fn": fn, "params": params}


def output_names(name: str, spec: IndicatorSpec) -> list[str]:
    """The series names an indicator called ``name`` provides to expressions."""
    return [name + suffix for suffix in spec.definition.suffixes]


@dataclass(frozen=True, slots=True)
class TalibCall:
    """``getattr(talib, function)(*(ohlcv[c] for c in inputs), **kwargs)``; results -> outputs."""

    function: str
    inputs: tuple[str, ...]
    kwargs: Mapping[str, ParamValue]
    outputs: tuple[str, ...]


def talib_call(name: str, spec: IndicatorSpec) -> TalibCall:
    """The TA-Lib call computing indicator ``name`` (used here and by code generators)."""
    definition = spec.definition
    kwargs: dict[str, ParamValue] = dict(definition.extra_kwargs or {})
    inputs = definition.inputs
    for pname, pdef in definition.params.items():
        value = spec.params[pname]
        if pname == "source":
            inputs = (str(value),)
        for keyword in pdef.talib:
            kwargs[keyword] = value
    return TalibCall(definition.fn, inputs, kwargs, tuple(output_names(name, spec)))


def lookback(spec: IndicatorSpec) -> int:
    """Bars TA-Lib needs before the first non-NaN value of ``spec``."""
    kwargs = talib_call("_", spec).kwargs
    return _lookback(spec.fn, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=1024)
def _lookback(fn: str, kwargs: tuple[tuple[str, ParamValue], ...]) -> int:
    params = dict(kwargs)
    try:
        from talib import abstract

        function = abstract.Function(fn)  # type: ignore[attr-defined]  # untyped in talib's stubs
        function.set_parameters(**params)
        return int(function.lookback)
    except Exception:  # no abstract API in this TA-Lib build: fall back to TA-Lib's formulas
        return _lookback_formula(fn, params)


def _lookback_formula(fn: str, p: Mapping[str, Any]) -> int:
    if fn in ("EMA", "SMA", "CCI"):
        return int(p["timeperiod"]) - 1
    if fn in ("RSI", "ATR", "MFI"):
        return int(p["timeperiod"])
    if fn == "ADX":
        return 2 * int(p["timeperiod"]) - 1
    if fn == "MACD":
        return int(p["slowperiod"]) + int(p["signalperiod"]) - 2
    if fn == "BBANDS":
        return int(p["timeperiod"]) - 1
    if fn == "STOCH":
        return int(p["fastk_period"]) + int(p["slowk_period"]) + int(p["slowd_period"]) - 3
    return 0  # OBV


def compute_indicators(
    indicators: Mapping[str, IndicatorSpec], ohlcv: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[np.float64]]:
    """Every output of every indicator: float64 arrays as long as the candles, NaN in warm-up."""
    columns: dict[str, NDArray[np.float64]] = {}
    length: int | None = None
    for column in _SOURCES:
        if column not in ohlcv:
            continue
        arr = np.ascontiguousarray(ohlcv[column], dtype=np.float64)
        if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
            raise InvalidInput(f"ohlcv column {column!r} must be 1-D with the same length as the others")
        length = arr.shape[0]
        columns[column] = arr
    # Imported here: talib pulls in pandas (~0.2 s), which loading and validating bundles (and the
    # CLI's start-up) should not pay for.
    import talib

    out: dict[str, NDArray[np.float64]] = {}
    for name, spec in indicators.items():
        call = talib_call(name, spec)
        missing = [c for c in call.inputs if c not in columns]
        if missing:
            raise InvalidInput(f"indicator {name!r} needs ohlcv column(s) {', '.join(missing)}")
        result = getattr(talib, call.function)(*(columns[c] for c in call.inputs), **call.kwargs)
        results = result if isinstance(result, tuple) else (result,)
        for output, values in zip(call.outputs, results, strict=True):
            out[output] = np.asarray(values, dtype=np.float64)
    return out
