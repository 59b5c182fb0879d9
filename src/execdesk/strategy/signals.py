"""Entry and exit signals of a bundle over a candle series, computed with numpy and TA-Lib.

This is the reference computation the desk's own backtests and checks use; the generated
Freqtrade strategy renders the same conditions (``Expr.render_python``) over the same TA-Lib
calls (``indicators.talib_call``), so both agree bar for bar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from execdesk.errors import InvalidInput
from execdesk.strategy.bundle import StrategyBundle
from execdesk.strategy.expr import OHLCV, as_signal, evaluate
from execdesk.strategy.indicators import compute_indicators

Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class Signals:
    """Per-bar signals; a side the bundle does not declare is an all-False array."""

    entry_long: Bools
    exit_long: Bools
    entry_short: Bools
    exit_short: Bools

    def __len__(self) -> int:
        return int(self.entry_long.shape[0])


def compute_signals(bundle: StrategyBundle, ohlcv: Mapping[str, NDArray[Any]]) -> Signals:
    """Evaluate the bundle's conditions over ``ohlcv`` (keys open, high, low, close, volume).

    The first ``bundle.startup_candles`` bars never signal: indicators are still warming up there
    and Freqtrade would not trade them either.
    """
    candles = _candles(ohlcv)
    length = candles["close"].shape[0]
    series: dict[str, NDArray[Any]] = {**candles, **compute_indicators(bundle.indicators, candles)}
    warmup = min(bundle.startup_candles, length)
    out: dict[str, Bools] = {}
    for group in ("entry", "exit"):
        for side in ("long", "short"):
            expr = bundle.expressions.get(f"{group}.{side}")  # parsed once per bundle, cached
            if expr is None:
                out[f"{group}_{side}"] = np.zeros(length, dtype=np.bool_)
                continue
            signal = np.array(as_signal(evaluate(expr, series)), dtype=np.bool_)
            signal[:warmup] = False
            out[f"{group}_{side}"] = signal
    return Signals(**out)


def _candles(ohlcv: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[np.float64]]:
    missing = [c for c in OHLCV if c not in ohlcv]
    if missing:
        raise InvalidInput(f"ohlcv is missing column(s): {', '.join(missing)}")
    candles = {c: np.ascontiguousarray(ohlcv[c], dtype=np.float64) for c in OHLCV}
    lengths = {c: a.shape for c, a in candles.items()}
    if any(len(shape) != 1 for shape in lengths.values()) or len(set(lengths.values())) != 1:
        raise InvalidInput(f"ohlcv columns must be 1-D and of equal length, got shapes {lengths}")
    return candles
