"""Market data: candle frames and their validation, timeframes, Freqtrade datadir files, and the
seeded generator of realistic candles the demo and the tests run on."""

from execdesk.data.candles import (
    CANDLE_COLUMNS,
    OHLCV,
    CandleError,
    fill_gaps,
    to_arrays,
    validate_candles,
)
from execdesk.data.datadir import (
    CANDLE_TYPES,
    FORMATS,
    load_pair,
    pair_path,
    pair_to_filename,
    write_pair,
)
from execdesk.data.generator import (
    MARKET_VOL,
    PairProfile,
    RegimeKind,
    RegimeSpan,
    Shock,
    generate_market,
    generate_pair,
)
from execdesk.data.timeframes import (
    TIMEFRAMES,
    ceil_epoch,
    floor_epoch,
    infer_timeframe,
    resample,
    timeframe_to_seconds,
)

__all__ = [
    "CANDLE_COLUMNS",
    "CANDLE_TYPES",
    "FORMATS",
    "MARKET_VOL",
    "OHLCV",
    "TIMEFRAMES",
    "CandleError",
    "PairProfile",
    "RegimeKind",
    "RegimeSpan",
    "Shock",
    "ceil_epoch",
    "fill_gaps",
    "floor_epoch",
    "generate_market",
    "generate_pair",
    "infer_timeframe",
    "load_pair",
    "pair_path",
    "pair_to_filename",
    "resample",
    "timeframe_to_seconds",
    "to_arrays",
    "validate_candles",
    "write_pair",
]
