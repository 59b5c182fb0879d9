"""Tests of compute_signals: agreement with TA-Lib + qtpylib formulas, warm-up, sides, caching."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

import execdesk.strategy.bundle as bundle_module
from execdesk.errors import InvalidInput
from execdesk.strategy import Signals, compute_signals, load_bundle, validate_bundle

from .conftest import EXAMPLE_FILES, EXAMPLES, make_ohlcv


def qtpylib_crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sa, sb = pd.Series(a), pd.Series(b)
    return np.array((sa > sb) & (sa.shift(1) <= sb.shift(1)))


def test_compute_signals_when_trend_example_then_matches_talib_and_qtpylib(ohlcv: dict[str, np.ndarray]) -> None:
    bundle = load_bundle(EXAMPLES / "trend_ema_cross.yaml")
    close = ohlcv["close"]
    fast, slow = talib.EMA(close, timeperiod=12), talib.EMA(close, timeperiod=26)
    rsi = talib.RSI(close, timeperiod=14)
    entry = qtpylib_crossed_above(fast, slow) & (rsi < 70)
    exit_ = qtpylib_crossed_above(slow, fast) | (rsi > 80)
    entry[: bundle.startup_candles] = False
    exit_[: bundle.startup_candles] = False
    signals = compute_signals(bundle, ohlcv)
    np.testing.assert_array_equal(signals.entry_long, entry)
    np.testing.assert_array_equal(signals.exit_long, exit_)
    assert signals.entry_long.any()
    assert signals.exit_long.any()


def test_compute_signals_when_breakout_example_then_matches_pandas_channel(ohlcv: dict[str, np.ndarray]) -> None:
    bundle = load_bundle(EXAMPLES / "breakout_4h.yaml")
    frame = pd.DataFrame(ohlcv)
    entry = np.array(frame["close"] > frame["high"].rolling(20).max().shift(1))
    entry[: bundle.startup_candles] = False
    np.testing.assert_array_equal(compute_signals(bundle, ohlcv).entry_long, entry)


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_compute_signals_when_example_then_bool_arrays_and_quiet_warmup(
    name: str, ohlcv: dict[str, np.ndarray]
) -> None:
    bundle = load_bundle(EXAMPLES / name)
    signals = compute_signals(bundle, ohlcv)
    for values in (signals.entry_long, signals.exit_long, signals.entry_short, signals.exit_short):
        assert values.dtype == np.bool_
        assert values.shape == ohlcv["close"].shape
        assert not values[: bundle.startup_candles].any()
    assert len(signals) == len(ohlcv["close"])
    assert not signals.entry_short.any()  # the examples are long-only


def _always(valid: dict[str, Any]) -> dict[str, Any]:
    valid["indicators"] = {"slow": {"fn": "EMA", "period": 50}}
    valid["entry"] = {"long": "close > 0", "short": "close < 0"}
    valid["exit"] = {"long": "volume > 0"}
    return valid


def test_compute_signals_when_condition_always_true_then_first_startup_candles_never_signal(
    valid: dict[str, Any], ohlcv: dict[str, np.ndarray]
) -> None:
    bundle = validate_bundle(_always(valid))
    assert bundle.startup_candles == 49
    signals = compute_signals(bundle, ohlcv)
    assert not signals.entry_long[:49].any()
    assert signals.entry_long[49:].all()
    assert signals.exit_long[49:].all()


def test_compute_signals_when_side_missing_then_all_false(valid: dict[str, Any], ohlcv: dict[str, np.ndarray]) -> None:
    signals = compute_signals(validate_bundle(_always(valid)), ohlcv)
    assert isinstance(signals, Signals)
    assert not signals.entry_short.any()  # close < 0 never holds
    assert not signals.exit_short.any()  # not declared
    assert signals.exit_short.dtype == np.bool_


def test_compute_signals_when_short_side_declared_then_evaluated(
    valid: dict[str, Any], ohlcv: dict[str, np.ndarray]
) -> None:
    valid["entry"]["short"] = "crossed_below(ema_fast, ema_slow)"
    valid["exit"]["short"] = "crossed_above(ema_fast, ema_slow)"
    signals = compute_signals(validate_bundle(valid), ohlcv)
    assert signals.entry_short.any()
    assert signals.exit_short.any()
    assert not (signals.entry_short & signals.entry_long).any()


def test_compute_signals_when_fewer_candles_than_warmup_then_no_signal(valid: dict[str, Any]) -> None:
    signals = compute_signals(validate_bundle(_always(valid)), make_ohlcv(10))
    assert len(signals) == 10
    assert not signals.entry_long.any()


def test_compute_signals_when_column_missing_then_invalid_input(
    valid: dict[str, Any], ohlcv: dict[str, np.ndarray]
) -> None:
    del ohlcv["volume"]
    with pytest.raises(InvalidInput, match="volume"):
        compute_signals(validate_bundle(valid), ohlcv)


def test_compute_signals_when_ragged_columns_then_invalid_input(
    valid: dict[str, Any], ohlcv: dict[str, np.ndarray]
) -> None:
    ohlcv["high"] = ohlcv["high"][:-1]
    with pytest.raises(InvalidInput, match="equal length"):
        compute_signals(validate_bundle(valid), ohlcv)


def test_compute_signals_when_called_repeatedly_then_expressions_parsed_once(
    valid: dict[str, Any], ohlcv: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = validate_bundle(valid)
    calls: list[str] = []
    original = bundle_module.parse_expression

    def counting(text: str, names: Any, **kwargs: Any) -> Any:
        calls.append(text)
        return original(text, names, **kwargs)

    monkeypatch.setattr(bundle_module, "parse_expression", counting)
    first = compute_signals(bundle, ohlcv)
    second = compute_signals(bundle, ohlcv)
    assert len(calls) == 2  # entry.long and exit.long, once each
    np.testing.assert_array_equal(first.entry_long, second.entry_long)


def test_compute_signals_when_100k_candles_then_completes(ohlcv: dict[str, np.ndarray]) -> None:
    big = make_ohlcv(100_000, seed=1)
    signals = compute_signals(load_bundle(EXAMPLES / "momentum_macd.yaml"), big)
    assert len(signals) == 100_000
