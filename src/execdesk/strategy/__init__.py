"""Strategy bundles, their expression language, indicators and signals.

* :mod:`~execdesk.strategy.bundle`: the bundle models, :func:`load_bundle` and :func:`intake`;
* :mod:`~execdesk.strategy.expr`: the whitelisted condition language (parse, render, evaluate);
* :mod:`~execdesk.strategy.indicators`: the TA-Lib indicator registry;
* :mod:`~execdesk.strategy.signals`: entry/exit signals of a bundle over candles.
"""

from execdesk.strategy.bundle import (
    RESERVED_NAMES,
    TIMEFRAMES,
    IntakeResult,
    Period,
    SideExpressions,
    StrategyBundle,
    TrailingStop,
    ValidationReport,
    intake,
    is_bundle_folder,
    load_bundle,
    validate_bundle,
)
from execdesk.strategy.expr import (
    FUNCTIONS,
    OHLCV,
    Expr,
    ExpressionError,
    as_signal,
    evaluate,
    parse_expression,
)
from execdesk.strategy.indicators import (
    REGISTRY,
    IndicatorSpec,
    TalibCall,
    compute_indicators,
    lookback,
    output_names,
    talib_call,
)
from execdesk.strategy.signals import Signals, compute_signals

__all__ = [
    "FUNCTIONS",
    "OHLCV",
    "REGISTRY",
    "RESERVED_NAMES",
    "TIMEFRAMES",
    "Expr",
    "ExpressionError",
    "IndicatorSpec",
    "IntakeResult",
    "Period",
    "SideExpressions",
    "Signals",
    "StrategyBundle",
    "TalibCall",
    "TrailingStop",
    "ValidationReport",
    "as_signal",
    "compute_indicators",
    "compute_signals",
    "evaluate",
    "intake",
    "is_bundle_folder",
    "load_bundle",
    "lookback",
    "output_names",
    "parse_expression",
    "talib_call",
    "validate_bundle",
]
