"""Tests of execdesk.risk.sizing.fixed_fractional (worked examples) and RiskConfig validation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from execdesk.risk.config import RiskConfig
from execdesk.risk.sizing import fixed_fractional

D = Decimal


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


def test_size_result_as_dict_when_called_then_json_safe_strings() -> None:
    # Act
    out = fixed_fractional(D(10000), 0.01, D(100), 0.05, 0.10).as_dict()

    # Assert
    assert out["qty"] == "10.000000000000"
    assert out["notional"] == "1000.000000000000"
    assert out["caps_applied"] == ["max_position_fraction: 2000.00 -> 1000.00"]


# ---------------------------------------------------------------- RiskConfig
def test_risk_config_when_defaults_then_documented_values() -> None:
    # Act
    cfg = RiskConfig()

    # Assert
    assert (cfg.risk_per_trade, cfg.max_position_fraction, cfg.max_gross_exposure) == (0.01, 0.25, 1.0)
    assert (cfg.portfolio_halt_drawdown, cfg.portfolio_close_drawdown) == (0.10, 0.20)
    assert (cfg.deployment_halt_drawdown, cfg.deployment_close_drawdown) == (0.10, 0.15)
    assert cfg.max_order_notional is None


@pytest.mark.parametrize("halt", [0.20, 0.25])
def test_risk_config_when_portfolio_halt_not_below_close_then_error_names_both_keys(halt: float) -> None:
    # Act / Assert
    with pytest.raises(ValidationError) as info:
        RiskConfig(portfolio_halt_drawdown=halt, portfolio_close_drawdown=0.20)
    message = str(info.value)
    assert "portfolio_halt_drawdown" in message
    assert "portfolio_close_drawdown" in message
    assert "must be below" in message


def test_risk_config_when_deployment_halt_not_below_close_then_error_names_both_keys() -> None:
    # Act / Assert
    with pytest.raises(ValidationError, match=r"deployment_halt_drawdown \(0\.15\) must be below "
                                              r"deployment_close_drawdown \(0\.15\)"):
        RiskConfig(deployment_halt_drawdown=0.15, deployment_close_drawdown=0.15)


@pytest.mark.parametrize("kwargs", [{"risk_per_trade": 0}, {"risk_per_trade": 0.5}, {"max_position_fraction": 1.5},
                                    {"unknown_key": 1}, {"max_open_positions": 0}])
def test_risk_config_when_field_out_of_bounds_or_unknown_then_validation_error(kwargs: dict[str, float]) -> None:
    # Act / Assert
    with pytest.raises(ValidationError, match=next(iter(kwargs))):
        RiskConfig(**kwargs)


def test_risk_config_when_built_then_frozen() -> None:
    # Arrange
    cfg = RiskConfig()

    # Act / Assert
    with pytest.raises(ValidationError, match="frozen"):
        cfg.risk_per_trade = 0.02  # type: ignore[misc]
