"""Read and write candle files in a Freqtrade ``datadir``.

Files are named and laid out exactly as Freqtrade's data handlers name and lay them out
(``freqtrade.data.history.datahandlers``), so a datadir written here feeds ``freqtrade backtesting``
unchanged, and data downloaded by Freqtrade loads here:

* name: the pair with ``/ . @ $ + :`` and spaces replaced by ``_``, then ``-<timeframe>``, then
  ``-<candle_type>`` unless spot, then the format's extension: ``BTC/USDT`` 1h feather is
  ``BTC_USDT-1h.feather``; ``XRP/USDT:USDT`` 5m futures is ``futures/XRP_USDT_USDT-5m-futures.feather``
  (every non-spot candle type lives in the ``futures`` sub-folder).
* feather / parquet: a table with the columns ``date`` (UTC timestamps), ``open``, ``high``, ``low``,
  ``close``, ``volume``; feather is lz4-compressed at level 9 like Freqtrade's.
* json: a list of ``[epoch_ms, open, high, low, close, volume]`` rows, written by pandas'
  ``to_json(orient="values")`` like Freqtrade's. That writer rounds floats to 10 decimal places, so
  json files are lossy beyond that, in Freqtrade too. jsongz is the same, gzipped (``.json.gz``).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
from pyarrow import ArrowException

from execdesk.data.candles import CANDLE_COLUMNS, VALUE_COLUMNS, CandleError, validate_candles
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.errors import InvalidInput

# Search order of load_pair(fmt=None): Freqtrade's default format first.
FORMATS: Final[tuple[str, ...]] = ("feather", "parquet", "json", "jsongz")
_EXTENSIONS: Final[dict[str, str]] = {
    "feather": "feather",
    "parquet": "parquet",
    "json": "json",
    "jsongz": "json.gz",
}
# Freqtrade's OHLCV candle types (funding_rate and open_interest have other columns: not candles).
CANDLE_TYPES: Final[tuple[str, ...]] = ("spot", "futures", "mark", "index", "premiumIndex")
_PAIR_SEPARATORS: Final[tuple[str, ...]] = ("/", " ", ".", "@", "$", "+", ":")


def _check_format(fmt: str) -> str:
    if fmt not in _EXTENSIONS:
        raise InvalidInput(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return _EXTENSIONS[fmt]


def _check_candle_type(candle_type: str) -> None:
    if candle_type not in CANDLE_TYPES:
        raise InvalidInput(f"unknown candle type {candle_type!r}; expected one of {', '.join(CANDLE_TYPES)}")


def pair_to_filename(pair: str, timeframe: str, fmt: str = "feather", candle_type: str = "spot") -> str:
    """Freqtrade's file name for ``pair`` candles (without the ``futures/`` folder of non-spot data).

    >>> pair_to_filename("BTC/USDT", "1h")
    'BTC_USDT-1h.feather'
    >>> pair_to_filename("XRP/USDT:USDT", "5m", candle_type="futures")
    'XRP_USDT_USDT-5m-futures.feather'
    """
    if not isinstance(pair, str) or not pair.strip():
        raise InvalidInput(f"pair must be a non-empty string, got {pair!r}")
    timeframe_to_seconds(timeframe)
    extension = _check_format(fmt)
    _check_candle_type(candle_type)
    stem = pair
    for separator in _PAIR_SEPARATORS:
        stem = stem.replace(separator, "_")
    suffix = "" if candle_type == "spot" else f"-{candle_type}"
    return f"{stem}-{timeframe}{suffix}.{extension}"


def pair_path(datadir: Path, pair: str, timeframe: str, fmt: str = "feather", candle_type: str = "spot") -> Path:
    """Full path of the ``pair`` file in ``datadir``, including Freqtrade's ``futures`` sub-folder."""
    name = pair_to_filename(pair, timeframe, fmt, candle_type)
    folder = Path(datadir) if candle_type == "spot" else Path(datadir) / "futures"
    return folder / name


def _normalise(raw: pd.DataFrame, pair: str, path: Path) -> pd.DataFrame:
    """Bring a frame read from disk to the canonical layout (ms UTC dates, float64 values)."""
    if set(CANDLE_COLUMNS).issubset(raw.columns):
        frame = raw.loc[:, list(CANDLE_COLUMNS)].reset_index(drop=True)
    elif raw.shape[1] == len(CANDLE_COLUMNS):
        # Like Freqtrade: a table of the right width but other names is taken positionally.
        frame = raw.set_axis(list(CANDLE_COLUMNS), axis=1).reset_index(drop=True)
    else:
        missing = [name for name in CANDLE_COLUMNS if name not in raw.columns]
        raise CandleError(pair, None, f"{path}: missing columns: {', '.join(missing)}")
    date = frame["date"]
    if pd.api.types.is_integer_dtype(date.dtype):
        # Epoch milliseconds, as in Freqtrade's json files.
        frame["date"] = pd.to_datetime(date, unit="ms", utc=True)
    if isinstance(frame["date"].dtype, pd.DatetimeTZDtype):
        frame["date"] = frame["date"].dt.as_unit("ms")
    for name in VALUE_COLUMNS:
        if pd.api.types.is_numeric_dtype(frame[name].dtype) and not pd.api.types.is_bool_dtype(frame[name].dtype):
            frame[name] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return frame


def _read_json_rows(path: Path, pair: str, zipped: bool) -> pd.DataFrame:
    opener = gzip.open if zipped else open
    with opener(path, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list):
        raise CandleError(pair, None, f"{path}: expected a JSON list of [epoch_ms, o, h, l, c, v] rows")
    if not rows:
        return pd.DataFrame({name: np.empty(0) for name in CANDLE_COLUMNS}).astype({"date": np.int64})
    try:
        # null (how pandas writes NaN) becomes NaN here, and validation then names the candle.
        values = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise CandleError(pair, None, f"{path}: rows are not all lists of numbers") from None
    if values.ndim != 2 or values.shape[1] != len(CANDLE_COLUMNS):
        raise CandleError(pair, None, f"{path}: expected rows of 6 values [epoch_ms, o, h, l, c, v]")
    if not np.isfinite(values[:, 0]).all():
        raise CandleError(pair, None, f"{path}: a row has no valid epoch_ms timestamp")
    frame = pd.DataFrame(values, columns=list(CANDLE_COLUMNS))
    # epoch ms fit a float64 exactly (< 2**53), so this cast is lossless.
    frame["date"] = values[:, 0].astype(np.int64)
    return frame


def _read(path: Path, fmt: str, pair: str) -> pd.DataFrame:
    try:
        if fmt == "feather":
            return pd.read_feather(path)
        if fmt == "parquet":
            return pd.read_parquet(path)
        return _read_json_rows(path, pair, zipped=fmt == "jsongz")
    except CandleError:
        raise
    except (OSError, ValueError, EOFError, ArrowException) as exc:
        # json.JSONDecodeError and pyarrow's ArrowInvalid are ValueErrors; gzip errors OSErrors.
        raise InvalidInput(f"cannot read {fmt} candle file {path}: {exc}") from exc


def load_pair(
    datadir: Path, pair: str, timeframe: str, fmt: str | None = None, candle_type: str = "spot"
) -> pd.DataFrame:
    """Load the ``pair`` candles of ``timeframe`` from a Freqtrade datadir as a validated frame.

    With ``fmt`` None the formats are tried in the order of :data:`FORMATS` and the first file that
    exists is read. The result has ``datetime64[ms, UTC]`` dates and float64 values, and has passed
    :func:`validate_candles`. Raises :class:`InvalidInput` naming every path looked for when no
    file exists, and :class:`CandleError` (an InvalidInput) when the file holds bad candles.
    """
    formats = FORMATS if fmt is None else (fmt,)
    candidates = [(f, pair_path(datadir, pair, timeframe, f, candle_type)) for f in formats]
    for found_fmt, path in candidates:
        if path.is_file():
            frame = _normalise(_read(path, found_fmt, pair), pair, path)
            validate_candles(frame, pair)
            return frame
    looked = ", ".join(str(path) for _, path in candidates)
    raise InvalidInput(f"no {timeframe} {candle_type} candle file for {pair}; looked for {looked}")


def write_pair(
    datadir: Path,
    pair: str,
    timeframe: str,
    df: pd.DataFrame,
    fmt: str = "feather",
    candle_type: str = "spot",
) -> Path:
    """Write validated ``df`` as Freqtrade's data handler for ``fmt`` would, and return the path.

    Creates the datadir (and its ``futures`` folder) when missing and replaces an existing file.
    Only the six candle columns are written, in Freqtrade's order, with the index dropped.
    Raises :class:`CandleError` for a malformed frame (nothing is written then).
    """
    validate_candles(df, pair)
    path = pair_path(datadir, pair, timeframe, fmt, candle_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = df.reset_index(drop=True).loc[:, list(CANDLE_COLUMNS)]
    if fmt == "feather":
        frame.to_feather(path, compression_level=9, compression="lz4")
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame = frame.copy()
        frame["date"] = frame["date"].dt.as_unit("ms").astype("int64")
        frame.to_json(path, orient="values", compression="gzip" if fmt == "jsongz" else None)
    return path
