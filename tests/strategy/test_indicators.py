"""Tests of the indicator registry: parameter validation, naming, lookbacks, TA-Lib equivalence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import talib
from pydantic import ValidationError

from execdesk.errors import InvalidInput
from execdesk.strategy import REGISTRY, IndicatorSpec, compute_indicators, lookback, output_names, talib_call
from execdesk.strategy.indicators import _lookback_formula

from .conftest import make_ohlcv

OHLCV = make_ohlcv(600, seed=42)
C, H, L, V = OHLCV["close"], OHLCV["high"], OHLCV["low"], OHLCV["volume"]


def spec(**data: Any) -> IndicatorSpec:
    return IndicatorSpec.model_validate(data)


def issues(data: object) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationError) as info:
        IndicatorSpec.model_validate(data)
    return [tuple(row) for err in info.value.errors() for row in err["ctx"]["execdesk_issues"]]


KNOWN: list[tuple[dict[str, Any], dict[str, np.ndarray]]] = [
    ({"fn": "EMA", "period": 12}, {"x": talib.EMA(C, timeperiod=12)}),
    ({"fn": "EMA", "period": 5, "source": "high"}, {"x": talib.EMA(H, timeperiod=5)}),
    ({"fn": "SMA", "period": 20}, {"x": talib.SMA(C, timeperiod=20)}),
    ({"fn": "RSI"}, {"x": talib.RSI(C, timeperiod=14)}),
    ({"fn": "RSI", "period": 7, "source": "open"}, {"x": talib.RSI(OHLCV["open"], timeperiod=7)}),
    ({"fn": "ATR", "period": 10}, {"x": talib.ATR(H, L, C, timeperiod=10)}),
    ({"fn": "ADX"}, {"x": talib.ADX(H, L, C, timeperiod=14)}),
    ({"fn": "CCI", "period": 20}, {"x": talib.CCI(H, L, C, timeperiod=20)}),
    ({"fn": "MFI"}, {"x": talib.MFI(H, L, C, V, timeperiod=14)}),
    ({"fn": "OBV"}, {"x": talib.OBV(C, V)}),
    (
        {"fn": "MACD"},
        dict(
            zip(("x", "x_signal", "x_hist"), talib.MACD(C, fastperiod=12, slowperiod=26, signalperiod=9), strict=True)
        ),
    ),
    (
        {"fn": "BBANDS", "period": 20, "stddev": 2.5},
        dict(
            zip(
                ("x_upper", "x_middle", "x_lower"),
                talib.BBANDS(C, timeperiod=20, nbdevup=2.5, nbdevdn=2.5, matype=talib.MA_Type.SMA),
                strict=True,
            )
        ),
    ),
    (
        {"fn": "STOCH", "fastk": 5},
        dict(zip(("x_k", "x_d"), talib.STOCH(H, L, C, fastk_period=5, slowk_period=3, slowd_period=3), strict=True)),
    ),
]


@pytest.mark.parametrize(("data", "expected"), KNOWN, ids=[f"{d['fn']}-{i}" for i, (d, _) in enumerate(KNOWN)])
def test_compute_indicators_when_registry_fn_then_equals_talib_called_directly(
    data: dict[str, Any], expected: dict[str, np.ndarray]
) -> None:
    got = compute_indicators({"x": spec(**data)}, OHLCV)
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert got[name].dtype == np.float64
        assert got[name].shape == C.shape
        np.testing.assert_array_equal(got[name], values)


@pytest.mark.parametrize(("data", "_"), KNOWN, ids=[f"{d['fn']}-{i}" for i, (d, _) in enumerate(KNOWN)])
def test_lookback_when_computed_then_equals_leading_nan_count(data: dict[str, Any], _: object) -> None:
    indicator = spec(**data)
    got = compute_indicators({"x": indicator}, OHLCV)
    leading = max(int(np.argmax(~np.isnan(values))) for values in got.values())
    assert lookback(indicator) == leading


@pytest.mark.parametrize(("data", "_"), KNOWN, ids=[f"{d['fn']}-{i}" for i, (d, _) in enumerate(KNOWN)])
def test_lookback_formula_when_no_abstract_api_then_agrees_with_talib(data: dict[str, Any], _: object) -> None:
    indicator = spec(**data)
    assert _lookback_formula(indicator.fn, talib_call("x", indicator).kwargs) == lookback(indicator)


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"fn": "EMA", "period": 3}, ["ind"]),
        ({"fn": "MACD"}, ["ind", "ind_signal", "ind_hist"]),
        ({"fn": "BBANDS"}, ["ind_upper", "ind_middle", "ind_lower"]),
        ({"fn": "STOCH"}, ["ind_k", "ind_d"]),
    ],
)
def test_output_names_when_multi_output_then_documented_suffixes(data: dict[str, Any], names: list[str]) -> None:
    assert output_names("ind", spec(**data)) == names


def test_spec_when_defaults_omitted_then_filled_and_fn_uppercased() -> None:
    macd = spec(fn="macd")
    assert macd.fn == "MACD"
    assert macd.params == {"fast": 12, "slow": 26, "signal": 9}
    assert spec(fn="BBANDS", stddev=2).params == {"period": 20, "stddev": 2.0}


def test_spec_when_dumped_then_flat_and_round_trips() -> None:
    rsi = spec(fn="RSI", period=9)
    assert rsi.model_dump() == {"fn": "RSI", "period": 9, "source": "close"}
    assert IndicatorSpec.model_validate(rsi.model_dump()) == rsi


def test_spec_when_unknown_fn_then_issue_lists_known_functions() -> None:
    ((path, value, expected),) = issues({"fn": "RSX", "period": 14})
    assert (path, value) == ("fn", "'RSX'")
    for fn in REGISTRY:
        assert fn in expected


def test_spec_when_fn_missing_then_issue_names_fn() -> None:
    assert issues({"period": 3})[0][:2] == ("fn", "(missing)")


@pytest.mark.parametrize(
    ("data", "path", "value"),
    [
        ({"fn": "EMA"}, "period", "(missing)"),
        ({"fn": "EMA", "period": 1}, "period", "1"),
        ({"fn": "EMA", "period": 100_000}, "period", "100000"),
        ({"fn": "EMA", "period": "12"}, "period", "'12'"),
        ({"fn": "EMA", "period": 12.0}, "period", "12.0"),
        ({"fn": "EMA", "period": True}, "period", "True"),
        ({"fn": "EMA", "period": 12, "source": "hl2"}, "source", "'hl2'"),
        ({"fn": "EMA", "period": 12, "lenght": 3}, "lenght", "3"),
        ({"fn": "OBV", "period": 3}, "period", "3"),
        ({"fn": "BBANDS", "stddev": float("nan")}, "stddev", "nan"),
        ({"fn": "BBANDS", "stddev": 0}, "stddev", "0"),
        ({"fn": "MACD", "fast": 30, "slow": 20}, "slow", "20"),
        ({"fn": "STOCH", "slowd": None}, "slowd", "None"),
    ],
)
def test_spec_when_bad_parameter_then_issue_names_parameter_and_value(
    data: dict[str, Any], path: str, value: str
) -> None:
    found = issues(data)
    assert (path, value) in [(p, v) for p, v, _ in found]


def test_spec_when_not_a_mapping_then_issue() -> None:
    assert issues(12)[0][1] == "12"


def test_talib_call_when_source_given_then_input_column_follows() -> None:
    call = talib_call("e", spec(fn="EMA", period=5, source="low"))
    assert (call.function, call.inputs, dict(call.kwargs), call.outputs) == ("EMA", ("low",), {"timeperiod": 5}, ("e",))


def test_compute_indicators_when_column_missing_then_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="volume"):
        compute_indicators({"o": spec(fn="OBV")}, {"close": C})


def test_compute_indicators_when_ragged_columns_then_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="same length"):
        compute_indicators({"e": spec(fn="EMA", period=3)}, {"close": C, "high": H[:-1]})


def test_compute_indicators_when_shorter_than_lookback_then_all_nan() -> None:
    got = compute_indicators({"e": spec(fn="EMA", period=50)}, {"close": C[:10]})
    assert np.isnan(got["e"]).all()
