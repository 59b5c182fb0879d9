"""Tests of execdesk.risk.pretrade.check_order: worked examples of caps and denials, and a property."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execdesk.domain.types import Direction, IntentReason, OrderIntent, Side, TradingState
from execdesk.risk.config import RiskConfig
from execdesk.risk.pretrade import PretradeSnapshot, check_order

D = Decimal
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def entry(price: str = "100", side: Side = Side.BUY) -> OrderIntent:
    direction = Direction.LONG if side is Side.BUY else Direction.SHORT
    return OrderIntent("dep-1", "BTC/USDT", side, direction, IntentReason.ENTRY_SIGNAL, 1700000000, D(price))


def exit_(qty: str, reason: IntentReason = IntentReason.STOPLOSS) -> OrderIntent:
    return OrderIntent("dep-1", "BTC/USDT", Side.SELL, Direction.LONG, reason, 1700000000, D(100), D(qty))


def snap(**overrides: object) -> PretradeSnapshot:
    """Equity 10,000 everywhere, nothing deployed, 10,000 cash, 5% stop, 0.1% fee."""
    base = PretradeSnapshot(trading_state=ACTIVE, deployment_state=ACTIVE, portfolio_equity=D(10000),
                            deployment_equity=D(10000), gross_exposure=D(0), deployment_exposure=D(0),
                            cash=D(10000), open_positions=0, position_qty=D(0), stop_distance=0.05,
                            fee_rate=D("0.001"))
    return dataclasses.replace(base, **overrides)


# ---------------------------------------------------------------- entries: sizing and caps
def test_check_order_when_entry_within_every_limit_then_approved_qty_20() -> None:
    # Act: equity 10,000, risk 1%, stop 5%, price 100
    verdict = check_order(entry(), snap(), RiskConfig())

    # Assert: notional 10,000 x 0.01 / 0.05 = 2,000 -> qty 20
    assert verdict.approved
    assert (verdict.rule, verdict.qty) == ("approved", D(20))
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied == []
    assert verdict.numbers["notional"] == "2000.00"


def test_check_order_when_position_fraction_caps_then_named_in_caps() -> None:
    # Act: max_position_fraction 0.10 -> cap 1,000
    verdict = check_order(entry(), snap(), RiskConfig(max_position_fraction=0.10))

    # Assert: qty 1,000 / 100 = 10
    assert verdict.approved
    assert verdict.qty == D(10)
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied == ["max_position_fraction: 2000.00 -> 1000.00"]


def test_check_order_when_deployment_exposure_leaves_1000_then_qty_10_and_cap_named() -> None:
    # Act: the deployment already holds 9,000 of its 10,000 equity
    verdict = check_order(entry(), snap(deployment_exposure=D(9000), gross_exposure=D(9000)), RiskConfig())

    # Assert: room 10,000 - 9,000 = 1,000 -> qty 10
    assert verdict.approved
    assert verdict.qty == D(10)
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied == ["deployment_exposure: 2000.00 -> 1000.00"]


def test_check_order_when_gross_exposure_leaves_1500_then_qty_15_and_cap_named() -> None:
    # Act: portfolio holds 8,500 of 10,000 x max_gross_exposure 1.0 (other deployments)
    verdict = check_order(entry(), snap(gross_exposure=D(8500)), RiskConfig())

    # Assert: room 1,500 -> qty 15
    assert verdict.approved
    assert verdict.qty == D(15)
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied == ["gross_exposure: 2000.00 -> 1500.00"]


def test_check_order_when_cash_short_then_capped_to_cash_less_fee() -> None:
    # Act: 505 cash, fee 0.1%
    verdict = check_order(entry(), snap(cash=D(505)), RiskConfig())

    # Assert: room 505 / 1.001 = 504.4955044955...; qty = 5.044955044955 (12 places)
    assert verdict.approved
    assert verdict.qty == D("5.044955044955")
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied == ["free_cash: 2000.00 -> 504.50"]
    assert verdict.qty * D(100) * D("1.001") <= D(505)


def test_check_order_when_room_divides_unevenly_then_qty_rounded_down_to_stay_within_cash() -> None:
    # Act: cash 0.01, fee 3 bps, price 1 -> room 0.01 / 1.0003 = 0.00999700089973...
    verdict = check_order(entry("1"), snap(cash=D("0.01"), fee_rate=D("0.0003"), deployment_equity=D(1),
                                           portfolio_equity=D(1)), RiskConfig())

    # Assert: 0.009997000899 (rounded down; half-even would give ...900 and cost 0.01000000000027 > 0.01)
    assert verdict.approved
    assert verdict.qty == D("0.009997000899")
    assert verdict.qty * D("1.0003") <= D("0.01")


def test_check_order_when_max_order_notional_set_then_capped_first() -> None:
    # Act: absolute cap of 500 per order
    verdict = check_order(entry(), snap(), RiskConfig(max_order_notional=500))

    # Assert: qty 500 / 100 = 5
    assert verdict.qty == D(5)
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied == ["max_order_notional: 2000.00 -> 500.00"]


def test_check_order_when_several_limits_bind_then_each_named_in_order() -> None:
    # Act: position cap 1,500 (15%), deployment room 1,200, gross room 1,000, cash room 800 / 1.001
    verdict = check_order(entry(), snap(deployment_exposure=D(8800), gross_exposure=D(9000), cash=D(800)),
                          RiskConfig(max_position_fraction=0.15))

    # Assert: 2,000 -> 1,500 -> 1,200 -> 1,000 -> 799.20...
    assert verdict.approved
    assert verdict.sizing is not None
    assert [c.split(":")[0] for c in verdict.sizing.caps_applied] == [
        "max_position_fraction", "deployment_exposure", "gross_exposure", "free_cash"]
    assert verdict.qty == D("7.992007992007")  # 800 / 1.001 / 100 = 7.992007992007992..., rounded down


def test_check_order_when_room_below_a_hundredth_of_the_size_then_denied_by_the_binding_rule() -> None:
    # Act: 15 cash -> room 14.985 < 2,000 / 100 = 20
    verdict = check_order(entry(), snap(cash=D(15)), RiskConfig())

    # Assert
    assert not verdict.approved
    assert verdict.rule == "free_cash"
    assert verdict.qty == 0
    assert verdict.reason == "no room for a position of useful size"


def test_check_order_when_gross_exposure_already_above_limit_then_denied() -> None:
    # Act
    verdict = check_order(entry(), snap(gross_exposure=D(12000)), RiskConfig())

    # Assert
    assert not verdict.approved
    assert verdict.rule == "gross_exposure"
    assert verdict.sizing is not None
    assert verdict.sizing.caps_applied[-1] == "gross_exposure: 2000.00 -> 0.00"


def test_check_order_when_max_open_positions_reached_then_denied() -> None:
    # Act
    verdict = check_order(entry(), snap(open_positions=3), RiskConfig(max_open_positions=3))

    # Assert
    assert not verdict.approved
    assert verdict.rule == "max_open_positions"
    assert verdict.numbers == {"open_positions": "3", "limit": "3"}


# ---------------------------------------------------------------- trading states
@pytest.mark.parametrize(("portfolio", "deployment", "scope", "state"), [
    (HALTED, ACTIVE, "portfolio", "HALTED"), (REDUCING, ACTIVE, "portfolio", "REDUCING"),
    (ACTIVE, HALTED, "deployment", "HALTED"), (ACTIVE, REDUCING, "deployment", "REDUCING"),
])
def test_check_order_when_not_active_then_entry_denied_by_trading_state(
        portfolio: TradingState, deployment: TradingState, scope: str, state: str) -> None:
    # Act
    verdict = check_order(entry(), snap(trading_state=portfolio, deployment_state=deployment), RiskConfig())

    # Assert
    assert not verdict.approved
    assert verdict.rule == "trading_state"
    assert verdict.reason == f"{scope} is {state}: no new positions"
    assert verdict.qty == 0


def test_check_order_when_halted_then_exit_denied() -> None:
    # Act
    verdict = check_order(exit_("5"), snap(trading_state=HALTED, position_qty=D(5)), RiskConfig())

    # Assert
    assert not verdict.approved
    assert verdict.rule == "trading_state"
    assert "HALTED" in verdict.reason


@pytest.mark.parametrize("state", [REDUCING, ACTIVE])
def test_check_order_when_reducing_or_active_then_exit_within_position_approved(state: TradingState) -> None:
    # Act
    verdict = check_order(exit_("5", IntentReason.ROI), snap(trading_state=state, deployment_state=REDUCING,
                                                             position_qty=D(5)), RiskConfig())

    # Assert
    assert verdict.approved
    assert verdict.qty == D(5)
    assert verdict.reason == "reduces exposure"


def test_check_order_when_exit_of_short_position_then_abs_qty_compared() -> None:
    # Act: a short of -4 covered by 4
    verdict = check_order(exit_("4"), snap(position_qty=D(-4)), RiskConfig())

    # Assert
    assert verdict.approved
    assert verdict.qty == D(4)


def test_check_order_when_exit_above_position_then_denied_reduce_only() -> None:
    # Act
    verdict = check_order(exit_("6"), snap(position_qty=D(5)), RiskConfig())

    # Assert
    assert not verdict.approved
    assert verdict.rule == "reduce_only"
    assert verdict.reason == "exit of 6 exceeds the position 5"


@pytest.mark.parametrize(("qty", "held"), [("1", "0"), ("0", "5")])
def test_check_order_when_nothing_to_reduce_then_denied(qty: str, held: str) -> None:
    # Act
    verdict = check_order(exit_(qty), snap(position_qty=D(held)), RiskConfig())

    # Assert
    assert not verdict.approved
    assert (verdict.rule, verdict.reason) == ("reduce_only", "nothing to reduce")


def test_verdict_as_dict_when_sized_then_includes_sizing() -> None:
    # Act
    out = check_order(entry(), snap(), RiskConfig()).as_dict()

    # Assert
    assert out["approved"] is True
    assert out["qty"] == "20.000000000000"
    assert isinstance(out["sizing"], dict)
    assert out["sizing"]["method"] == "fixed_fractional"


# ---------------------------------------------------------------- property
money = st.decimals(min_value=D(0), max_value=D(1_000_000), places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None, database=None)
@given(
    portfolio_equity=st.decimals(min_value=D(1), max_value=D(1_000_000), places=2),
    deployment_equity=st.decimals(min_value=D(1), max_value=D(1_000_000), places=2),
    gross=money, dep_exposure=money, cash=money,
    price=st.decimals(min_value=D("0.0001"), max_value=D(100_000), places=4),
    stop=st.floats(min_value=0.001, max_value=0.5),
    fee_rate=st.decimals(min_value=D(0), max_value=D("0.01"), places=4),
    risk=st.floats(min_value=0.001, max_value=0.2),
    max_position=st.floats(min_value=0.01, max_value=1.0),
    # limits as a config file gives them (hundredths): dec() keeps 12 places, so 16-digit floats would round up
    max_gross=st.integers(min_value=10, max_value=300).map(lambda x: x / 100),
)
def test_check_order_when_entry_approved_then_gross_within_limit_and_cost_within_cash(
        portfolio_equity: Decimal, deployment_equity: Decimal, gross: Decimal, dep_exposure: Decimal, cash: Decimal,
        price: Decimal, stop: float, fee_rate: Decimal, risk: float, max_position: float, max_gross: float) -> None:
    # Arrange
    cfg = RiskConfig(risk_per_trade=risk, max_position_fraction=max_position, max_gross_exposure=max_gross)
    s = snap(portfolio_equity=portfolio_equity, deployment_equity=deployment_equity, gross_exposure=gross,
             deployment_exposure=dep_exposure, cash=cash, stop_distance=stop, fee_rate=fee_rate)

    # Act
    verdict = check_order(entry(str(price)), s, cfg)

    # Assert
    if verdict.approved:
        notional = verdict.qty * price
        assert verdict.qty > 0
        assert gross + notional <= portfolio_equity * D(repr(max_gross))
        assert notional * (1 + fee_rate) <= cash
        assert dep_exposure + notional <= deployment_equity
