"""Tests of execdesk.risk.sizing: worked examples and properties."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execdesk.risk.sizing import (
    atr_from_candles,
    fixed_fractional,
    fixed_fractional_figures,
    fixed_fractional_result,
    fixed_fractional_risk,
    float_repr,
    kelly,
    kelly_from_validation,
    payoff_from_validation,
    volatility_target,
)

D = Decimal
EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "execdesk" / "examples" / "bundles" / "trend_ema_cross.yaml"


def test_fixed_fractional_when_textbook_example_then_notional_2000_qty_20() -> None:
    # Act: equity 10,000, risk 1%, stop 5%, price 100, position cap 25%
    size = fixed_fractional(D(10000), 0.01, D(100), 0.05, 0.25)

    # Assert: notional = 10,000 x 0.01 / 0.05 = 2,000 (below the cap 2,500); qty = 2,000 / 100 = 20
    assert size.notional == D(2000)
    assert size.qty == D(20)
    assert size.caps_applied == []
    assert size.method == "fixed_fractional"
    assert "qty = notional / price 100 = 20" in size.formula
    assert size.inputs["equity"] == "10000"


def test_fixed_fractional_when_raw_notional_above_position_cap_then_capped_and_named() -> None:
    # Act: same inputs, position cap 10%
    size = fixed_fractional(D(10000), 0.01, D(100), 0.05, 0.10)

    # Assert: raw 2,000 > cap 10,000 x 0.10 = 1,000 -> qty 10
    assert size.notional == D(1000)
    assert size.qty == D(10)
    assert size.caps_applied == ["max_position_fraction: 2000.00 -> 1000.00"]
    assert "capped to 1000.00" in size.formula


def test_fixed_fractional_when_tight_stop_then_capped_at_position_fraction() -> None:
    # Act: stop 1% -> raw 10,000 x 0.01 / 0.01 = 10,000 > cap 2,500
    size = fixed_fractional(D(10000), 0.01, D(250), 0.01, 0.25)

    # Assert: qty 2,500 / 250 = 10
    assert (size.notional, size.qty) == (D(2500), D(10))
    assert len(size.caps_applied) == 1


def test_fixed_fractional_when_price_not_round_then_qty_to_12_places() -> None:
    # Act: notional 2,000 at price 3 -> qty 666.666666666667 (12 dp, half-even)
    size = fixed_fractional(D(10000), 0.01, D(3), 0.05, 0.25)

    # Assert
    assert size.qty == D("666.666666666667")
    assert size.notional == D("2000.000000000001")  # qty x price, re-rounded


@pytest.mark.parametrize(("equity", "price", "stop"), [(D(0), D(100), 0.05), (D(-5), D(100), 0.05),
                                                        (D(10000), D(0), 0.05), (D(10000), D(100), 0.0)])
def test_fixed_fractional_when_non_positive_input_then_zero_size_with_no_size_cap(
        equity: Decimal, price: Decimal, stop: float) -> None:
    # Act
    size = fixed_fractional(equity, 0.01, price, stop, 0.25)

    # Assert
    assert (size.qty, size.notional) == (D(0), D(0))
    assert size.caps_applied == ["no_size"]


def test_fixed_fractional_figures_when_capped_then_raw_cap_qty_notional_in_decimal() -> None:
    # Act: equity 10,000, risk 1%, stop 2%, price 300, position cap 25%
    figures = fixed_fractional_figures(D(10000), 0.01, D(300), 0.02, 0.25)

    # Assert: raw 5,000 above the cap 2,500; qty = 2,500 / 300 to 12 places; notional = qty x price to 12 places
    assert figures == (D(5000), D("2500.00"), D("8.333333333333"), D("2499.999999999900"))
    assert fixed_fractional_figures(D(0), 0.01, D(300), 0.02, 0.25) is None


@settings(max_examples=300, deadline=None)
@given(equity=st.decimals(D("-10"), D("1e9"), places=8), risk=st.floats(0.0001, 0.5),
       price=st.decimals(D("-1"), D("1e6"), places=8),
       stop=st.one_of(st.floats(1e-6, 2.0), st.sampled_from([0.0, -0.1])), cap=st.floats(0.01, 1.0))
def test_fixed_fractional_figures_when_any_input_then_the_size_fixed_fractional_records(
        equity: Decimal, risk: float, price: Decimal, stop: float, cap: float) -> None:
    # Act
    figures = fixed_fractional_figures(equity, risk, price, stop, cap)
    size = fixed_fractional(equity, risk, price, stop, cap)

    # Assert: the order path's figures are the recorded size's, and put in words they are the same record
    if figures is None:
        assert (size.qty, size.notional, size.caps_applied) == (D(0), D(0), ["no_size"])
    else:
        assert (figures[2], figures[3]) == (size.qty, size.notional)
    assert fixed_fractional_result(equity, risk, price, stop, cap, figures) == size


def test_fixed_fractional_risk_when_method_then_the_risk_it_sizes_at_or_none() -> None:
    assert fixed_fractional_risk(None, 0.01) == 0.01
    assert fixed_fractional_risk(_sizing(method="fixed_fractional", risk_per_trade=0.02), 0.01) == 0.02
    assert fixed_fractional_risk(_sizing(method="fixed_fractional"), 0.01) == 0.01
    assert fixed_fractional_risk(_sizing(method="kelly", fraction=0.5, cap=0.2), 0.01) is None


def test_float_repr_when_memoised_then_repr_whatever_came_before() -> None:
    # Arrange: the keys a memo could mix up: 0.0 and -0.0 (equal), 1 and 1.0 (equal), NaN (never equal)
    values: list[Any] = [0.0, -0.0, 1, 1.0, True, math.nan, -math.inf, 0.05, np.float64(0.05), 1e-300, 0.1 + 0.2]

    # Act: twice over, each order
    for seq in (values, values[::-1], values):
        texts = [float_repr(v) for v in seq]

        # Assert
        assert texts == [repr(v) for v in seq]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20))
def test_float_repr_when_any_floats_then_their_repr(values: list[float]) -> None:
    assert [float_repr(v) for v in values + values] == [repr(v) for v in values + values]


def test_size_result_as_dict_when_called_then_json_safe_strings() -> None:
    # Act
    out = fixed_fractional(D(10000), 0.01, D(100), 0.05, 0.10).as_dict()

    # Assert
    assert out["qty"] == "10.000000000000"
    assert out["notional"] == "1000.000000000000"
    assert out["caps_applied"] == ["max_position_fraction: 2000.00 -> 1000.00"]


# ---------------------------------------------------------------- kelly
def test_kelly_when_textbook_example_then_half_kelly_notional_1250() -> None:
    # Act: W 0.55, R 1.5, half Kelly, equity 10,000, price 100
    size = kelly(D(10000), 0.55, 1.5, D(100))

    # Assert: f* = 0.55 - 0.45 / 1.5 = 0.25; f = 0.25 x 0.5 = 0.125 (below cap 0.25);
    # notional = 10,000 x 0.125 = 1,250 (below 25% = 2,500); qty = 1,250 / 100 = 12.5
    assert (size.notional, size.qty) == (D(1250), D("12.5"))
    assert size.caps_applied == []
    assert size.method == "kelly"
    assert "f* = W 0.55 - (1 - 0.55) / R 1.5 = 0.250000" in size.formula
    assert "notional = equity 10000.00 x 0.125000 = 1250.00" in size.formula
    assert size.inputs == {"equity": "10000", "win_rate": "0.55", "payoff_ratio": "1.5", "price": "100",
                           "fraction": "0.5", "cap": "0.25", "max_position_fraction": "0.25"}


def test_kelly_when_no_edge_then_zero_with_reason() -> None:
    # Act: f* = 0.4 - 0.6 / 1.0 = -0.2
    size = kelly(D(10000), 0.4, 1.0, D(100))

    # Assert
    assert (size.qty, size.notional) == (D(0), D(0))
    assert size.caps_applied == ["no_edge"]
    assert "= -0.200000 <= 0 (no edge)" in size.formula


def test_kelly_when_full_kelly_above_cap_then_kelly_cap_then_position_cap_both_named() -> None:
    # Act: W 0.9, R 9 -> f* = 0.9 - 0.1 / 9 = 0.888889; full Kelly; Kelly cap 0.25; position cap 0.10
    size = kelly(D(10000), 0.9, 9.0, D(100), fraction=1.0, cap=0.25, max_position_fraction=0.10)

    # Assert: 0.888889 -> 0.25 -> notional 2,500 -> position cap 1,000 -> qty 10
    assert (size.notional, size.qty) == (D(1000), D(10))
    assert size.caps_applied == ["kelly_cap: 0.888889 -> 0.25", "max_position_fraction: 2500.00 -> 1000.00"]


@pytest.mark.parametrize(("equity", "win_rate", "payoff", "price"), [
    (D(0), 0.6, 2.0, D(100)), (D(10000), math.nan, 2.0, D(100)), (D(10000), 0.6, math.nan, D(100)),
    (D(10000), 0.6, -1.0, D(100)), (D(10000), 1.5, 2.0, D(100)), (D(10000), 0.6, 2.0, D(0)),
    (D("NaN"), 0.6, 2.0, D(100)), (D(10000), 0.6, 0.0, D(100))])
def test_kelly_when_invalid_input_then_clean_zero_size(equity: Decimal, win_rate: float, payoff: float,
                                                      price: Decimal) -> None:
    # Act
    size = kelly(equity, win_rate, payoff, price)

    # Assert
    assert (size.qty, size.notional) == (D(0), D(0))
    assert size.caps_applied == ["no_size"]


def test_kelly_when_payoff_infinite_then_f_star_is_win_rate() -> None:
    # Act: no losses -> R = inf -> f* = W = 0.3; half -> 0.15 -> notional 1,500
    size = kelly(D(10000), 0.3, math.inf, D(100))

    # Assert
    assert size.notional == D(1500)


def _report(**kwargs: Any) -> Any:
    base: dict[str, Any] = {"win_rate": 0.5, "profit_factor": 1.5, "returns": None}
    return SimpleNamespace(**{**base, **kwargs})


def test_payoff_from_validation_when_no_returns_then_from_profit_factor() -> None:
    # Act: PF 1.5, W 0.6 -> R = 1.5 x 0.4 / 0.6 = 1.0
    estimate = payoff_from_validation(_report(win_rate=0.6, profit_factor=1.5))

    # Assert
    assert estimate.source == "profit_factor"
    assert estimate.payoff_ratio == pytest.approx(1.0)
    assert estimate.win_rate == 0.6


def test_payoff_from_validation_when_returns_given_then_preferred_over_profit_factor() -> None:
    # Act: returns +0.04, +0.02, -0.01, -0.02, 0.0 -> W = 2/5 = 0.4; mean win 0.03, mean loss 0.015 -> R = 2
    estimate = payoff_from_validation(_report(win_rate=0.9, profit_factor=9.0,
                                              returns=(0.04, 0.02, -0.01, -0.02, 0.0)))

    # Assert
    assert estimate.source == "returns"
    assert estimate.win_rate == pytest.approx(0.4)
    assert estimate.payoff_ratio == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs", [{"win_rate": 0.0}, {"win_rate": 1.0}, {"profit_factor": 0.0},
                                    {"returns": (-0.01, -0.02)}])
def test_payoff_from_validation_when_undefined_then_nan_and_kelly_sizes_zero(kwargs: dict[str, Any]) -> None:
    # Act
    estimate = payoff_from_validation(_report(**kwargs))
    size = kelly(D(10000), estimate.win_rate, estimate.payoff_ratio, D(100))

    # Assert
    assert math.isnan(estimate.payoff_ratio)
    assert size.notional == D(0)


def test_kelly_from_validation_when_returns_then_inputs_name_the_source() -> None:
    # Act: W 0.4, R 2 -> f* = 0.4 - 0.6 / 2 = 0.1; half -> 0.05 -> notional 500, qty 5
    size = kelly_from_validation(D(10000), _report(returns=(0.04, 0.02, -0.01, -0.02, 0.0)), D(100))

    # Assert
    assert (size.notional, size.qty) == (D(500), D(5))
    assert size.inputs["payoff_source"] == "returns"
    assert "R = mean win 0.030000 / mean loss 0.015000 = 2.000000" in size.inputs["payoff_formula"]


# ---------------------------------------------------------------- volatility target / ATR
def test_volatility_target_when_textbook_example_then_qty_20() -> None:
    # Act: equity 10,000, target 1%, ATR 2.5, 2 ATRs, price 100
    size = volatility_target(D(10000), D(100), 2.5, 0.01)

    # Assert: qty = 10,000 x 0.01 / (2.5 x 2) = 100 / 5 = 20; notional 2,000 (below cap 2,500)
    assert (size.qty, size.notional) == (D(20), D(2000))
    assert size.caps_applied == []
    assert "qty = equity 10000.00 x target 0.01 / (atr 2.5 x 2) = 100.00 / 5.00 = 20.000000" in size.formula


def test_volatility_target_when_low_volatility_then_position_cap() -> None:
    # Act: ATR 0.5 -> qty 100 / 1 = 100 -> notional 10,000 > cap 2,500 -> qty 25
    size = volatility_target(D(10000), D(100), 0.5, 0.01)

    # Assert
    assert (size.qty, size.notional) == (D(25), D(2500))
    assert size.caps_applied == ["max_position_fraction: 10000.00 -> 2500.00"]


@pytest.mark.parametrize(("price", "atr", "target"), [(D(100), 0.0, 0.01), (D(100), math.nan, 0.01),
                                                      (D(100), -1.0, 0.01), (D(0), 2.0, 0.01),
                                                      (D(100), 2.0, math.inf), (D(100), 2.0, -0.01)])
def test_volatility_target_when_invalid_input_then_clean_zero(price: Decimal, atr: float, target: float) -> None:
    # Act
    size = volatility_target(D(10000), price, atr, target)

    # Assert
    assert (size.qty, size.notional, size.caps_applied) == (D(0), D(0), ["no_size"])


def test_atr_from_candles_when_hand_computed_then_wilder_last_value() -> None:
    # Arrange: true ranges of candles 1..3: max(12-9, |12-9|, |9-9|) = 3; max(13-11, 2, 0) = 2;
    # max(12-9, |12-12|, |9-12|) = 3. ATR(2): seed (3 + 2) / 2 = 2.5; then (2.5 x 1 + 3) / 2 = 2.75
    high, low, close = [10.0, 12.0, 13.0, 12.0], [8.0, 9.0, 11.0, 9.0], [9.0, 11.0, 12.0, 10.0]

    # Act / Assert
    assert atr_from_candles(high, low, close, period=2) == pytest.approx(2.75)


def test_atr_from_candles_when_too_few_candles_then_nan() -> None:
    # Act / Assert
    assert math.isnan(atr_from_candles([1.0, 2.0], [0.5, 1.0], [1.0, 1.5], period=14))


# ---------------------------------------------------------------- properties
_sane = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)
_any = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, math.nan]))


@settings(max_examples=300, deadline=None)
@given(equity=st.one_of(_sane, _any), win_rate=st.one_of(st.floats(0, 1), _any), payoff=st.one_of(_sane, _any),
       price=st.one_of(_sane, _any), fraction=st.floats(0.01, 1.0), cap=st.floats(0.01, 1.0),
       mpf=st.floats(0.001, 1.0))
def test_kelly_property_when_any_inputs_then_non_negative_and_within_position_cap(
        equity: float, win_rate: float, payoff: float, price: float, fraction: float, cap: float, mpf: float) -> None:
    # Act
    size = kelly(Decimal(repr(equity)), win_rate, payoff, Decimal(repr(price)), fraction, cap, mpf)

    # Assert
    assert size.qty >= 0
    assert size.notional >= 0
    if size.notional > 0:
        assert size.notional <= Decimal(repr(equity)) * Decimal(repr(mpf))
        assert size.notional <= Decimal(repr(equity)) * Decimal(repr(cap))


@settings(max_examples=300, deadline=None)
@given(equity=st.one_of(_sane, _any), price=st.one_of(_sane, _any), atr=st.one_of(_sane, _any),
       target=st.one_of(st.floats(1e-4, 0.2), _any), multiple=st.floats(0.1, 10.0), mpf=st.floats(0.001, 1.0))
def test_volatility_target_property_when_any_inputs_then_non_negative_and_within_position_cap(
        equity: float, price: float, atr: float, target: float, multiple: float, mpf: float) -> None:
    # Act
    size = volatility_target(Decimal(repr(equity)), Decimal(repr(price)), atr, target, multiple, mpf)

    # Assert
    assert size.qty >= 0
    assert size.notional >= 0
    if size.notional > 0:
        assert size.notional <= Decimal(repr(equity)) * Decimal(repr(mpf))


# ------------------------------------------------------------------------------ entry_size: the bundle's method
def _sizing(**settings: Any) -> Any:
    from execdesk.strategy.bundle import Sizing

    return Sizing.model_validate(settings)


def test_entry_size_when_no_sizing_or_fixed_fractional_then_the_stop_formula_at_the_desks_or_its_own_risk() -> None:
    from execdesk.risk.sizing import entry_size

    desk = entry_size(None, D(10_000), D(100), 0.05, 0.01, 0.5)
    own = entry_size(_sizing(method="fixed_fractional", risk_per_trade=0.02), D(10_000), D(100), 0.05, 0.01, 0.5)
    default = entry_size(_sizing(method="fixed_fractional"), D(10_000), D(100), 0.05, 0.01, 0.5)

    assert (desk.method, desk.notional) == ("fixed_fractional", D(2000))  # 10,000 x 0.01 / 0.05
    assert own.notional == D(4000)  # its own 2%
    assert default.notional == desk.notional


def test_entry_size_when_kelly_then_its_fraction_and_cap_from_the_validation_report() -> None:
    from execdesk.risk.sizing import entry_size

    report = SimpleNamespace(returns=[0.02, 0.02, 0.02, -0.01], win_rate=0.75, profit_factor=6.0)
    size = entry_size(_sizing(method="kelly", fraction=0.5, cap=0.2), D(10_000), D(100), 0.05, 0.01, 0.5,
                      validation=report)  # type: ignore[arg-type]

    # W = 0.75, R = 0.02 / 0.01 = 2: f* = 0.75 - 0.25 / 2 = 0.625; x 0.5 = 0.3125 > cap 0.2
    assert size.method == "kelly"
    assert size.notional == D(2000)
    assert "f* = W 0.75 - (1 - 0.75) / R 2 = 0.625000" in size.formula
    assert size.caps_applied == ["kelly_cap: 0.312500 -> 0.2"]
    assert size.inputs["payoff_source"] == "returns"


def test_entry_size_when_volatility_target_then_against_the_atr_and_zero_with_the_reason_before_one_exists() -> None:
    from execdesk.risk.sizing import entry_size

    sizing = _sizing(method="volatility_target", target_risk=0.01, atr_multiple=2.0, atr_period=10)
    size = entry_size(sizing, D(10_000), D(100), 0.05, 0.01, 0.5, atr=2.5)
    early = entry_size(sizing, D(10_000), D(100), 0.05, 0.01, 0.5, atr=math.nan)

    assert (size.method, size.qty) == ("volatility_target", D(20))  # 10,000 x 0.01 / (2.5 x 2) = 20 units
    assert size.inputs["atr_period"] == "10"
    assert (early.qty, early.caps_applied) == (D(0), ["no_size"])
    assert "non-finite input" in early.formula


def test_atr_series_when_given_candles_then_talibs_atr_at_each_and_nan_before_the_period() -> None:
    from execdesk.risk.sizing import atr_series

    high = [10.0 + i % 3 for i in range(30)]
    low = [8.0 + i % 3 for i in range(30)]
    close = [9.0 + i % 3 for i in range(30)]
    series = atr_series(high, low, close, 14)  # type: ignore[arg-type]

    assert math.isnan(series[13])
    assert series[-1] == pytest.approx(atr_from_candles(high, low, close, 14))
    assert np.isnan(atr_series(high[:5], low[:5], close[:5], 14)).all()  # type: ignore[arg-type]


def test_sizing_when_a_setting_of_another_method_then_refused_naming_the_methods_own() -> None:
    from execdesk.errors import SpecError
    from execdesk.strategy import load_bundle, validate_bundle

    base = load_bundle(EXAMPLE).to_canonical_dict()
    with pytest.raises(SpecError, match=r"sizing.atr_period: got 3; expected a setting of kelly \(fraction, cap\)"):
        validate_bundle({**base, "sizing": {"method": "kelly", "atr_period": 3}})
    with pytest.raises(SpecError, match=r"sizing\.method"):
        validate_bundle({**base, "sizing": {"method": "martingale"}})
    kelly_bundle = validate_bundle({**base, "sizing": {"method": "kelly"}})
    assert kelly_bundle.bundle_hash != load_bundle(EXAMPLE).bundle_hash
    assert "sizing" not in load_bundle(EXAMPLE).to_canonical_dict()  # absent: the old bundles' hashes hold
