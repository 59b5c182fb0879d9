"""Tests of execdesk.risk.drawdown: exact equity from the ledger's state and breach confirmation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO, Breach
from execdesk.domain.state import DeskState
from execdesk.risk.drawdown import confirm_breach, fresh_equity

D = Decimal
BTC, ETH = "BTC/USDT", "ETH/USDT"


def _order(coid: str, dep: str, pair: str, side: str, qty: str, price: str, fee: str = "0") -> list[Event]:
    return [
        Event(10, EventKind.ORDER_SUBMITTED, {
            "client_order_id": coid, "deployment_id": dep, "pair": pair, "side": side, "direction": "LONG",
            "type": "MARKET", "qty": D(qty), "reason": "entry_signal", "signal_time": 0, "ref_price": D(price)}, dep),
        Event(11, EventKind.ORDER_FILLED, {"client_order_id": coid, "fill_id": f"{coid}-1", "qty": D(qty),
                                           "price": D(price), "fee": D(fee)}, dep),
    ]


def _deployment(dep: str, capital: str) -> Event:
    return Event(2, EventKind.DEPLOYMENT_CREATED, {
        "deployment_id": dep, "strategy_id": dep, "name": dep, "version": 1, "bundle_hash": "0", "timeframe": "1h",
        "pairs": [BTC, ETH], "allocation": D("0.5"), "capital": D(capital)}, dep)


@pytest.fixture
def state() -> DeskState:
    """Desk 20,000; dep a (10,000) is long 10 BTC @ 100 (fee 1) and closed ETH 5 @ 20 -> 22 (+10);
    dep b (10,000) is long 4 ETH @ 50. Cash 20,000 - 1,000 - 1 - 100 + 110 - 200 = 18,809."""
    return DeskState.from_events([
        Event(1, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT", "capital": D(20000)}),
        _deployment("a", "10000"), _deployment("b", "10000"),
        *_order("a1", "a", BTC, "BUY", "10", "100", "1"),
        *_order("a2", "a", ETH, "BUY", "5", "20"), *_order("a3", "a", ETH, "SELL", "5", "22"),
        *_order("b1", "b", ETH, "BUY", "4", "50"),
    ])


def breach(scope: str, limit: float, peak: float, level: str = "halt") -> Breach:
    # the monitor's float figures: confirm_breach recomputes equity and drawdown itself
    return Breach(scope, level, limit, drawdown=0.0, equity=0.0, peak=peak)


def test_fresh_equity_when_portfolio_then_cash_plus_positions_at_closes(state: DeskState) -> None:
    # Act: BTC 80, ETH 40
    equity = fresh_equity(state, {BTC: 80.0, ETH: 40.0}, PORTFOLIO)

    # Assert: 18,809 + 10 x 80 + 4 x 40 = 19,769
    assert state.cash() == D(18809)
    assert equity == D(19769)


def test_fresh_equity_when_deployment_then_capital_plus_realised_less_fees_plus_unrealised(state: DeskState) -> None:
    # Act
    a = fresh_equity(state, {BTC: 80.0, ETH: 40.0}, "a")
    b = fresh_equity(state, {BTC: 80.0, ETH: 40.0}, "b")

    # Assert: a = 10,000 + 10 - 1 + 10 x (80 - 100) = 9,809; b = 10,000 + 4 x (40 - 50) = 9,960
    assert a == D(9809)
    assert b == D(9960)


def test_confirm_breach_when_portfolio_drawdown_reaches_limit_then_confirmed_with_numbers(state: DeskState) -> None:
    # Act: the monitor saw a peak of 22,000 and a 10% limit
    conf = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach(PORTFOLIO, 0.10, 22000.0))

    # Assert: drawdown 1 - 19,769 / 22,000 = 0.101409...
    assert conf.confirmed
    assert (conf.scope, conf.level) == (PORTFOLIO, "halt")
    assert conf.equity == D(19769)
    assert conf.peak == D(22000)
    assert conf.drawdown == 1 - D(19769) / D(22000)
    assert f"{conf.drawdown:.6f}" == "0.101409"
    assert conf.limit == D("0.1")


def test_confirm_breach_when_fresh_equity_above_the_limit_then_rejected(state: DeskState) -> None:
    # Act: peak 21,000 -> drawdown 1 - 19,769 / 21,000 = 0.0586 < 0.10
    conf = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach(PORTFOLIO, 0.10, 21000.0))

    # Assert
    assert not conf.confirmed
    assert f"{conf.drawdown:.4f}" == "0.0586"


def test_confirm_breach_when_equity_above_the_monitors_peak_then_peak_is_equity_and_rejected(
        state: DeskState) -> None:
    # Act: BTC rallied to 200: equity 18,809 + 2,000 + 160 = 20,969 > the stale peak 20,000
    conf = confirm_breach(state, {BTC: 200.0, ETH: 40.0}, breach(PORTFOLIO, 0.10, 20000.0))

    # Assert
    assert conf.peak == D(20969)
    assert conf.drawdown == 0
    assert not conf.confirmed


def test_confirm_breach_when_deployment_scope_then_uses_deployment_equity(state: DeskState) -> None:
    # Act: dep a: 9,809 from a peak of 11,000 -> 1 - 9,809 / 11,000 = 0.10827 >= 0.10; dep b: 9,960 from 10,500
    # -> 0.0514 < 0.10
    a = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach("a", 0.10, 11000.0, level="close"))
    b = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach("b", 0.10, 10500.0))

    # Assert
    assert a.confirmed
    assert (a.scope, a.level, a.equity) == ("a", "close", D(9809))
    assert not b.confirmed
    assert b.equity == D(9960)


def test_confirm_breach_when_drawdown_a_hair_below_limit_then_confirmed_within_tolerance(state: DeskState) -> None:
    # Arrange: limit equal to the exact drawdown plus 5e-10 (the monitor's floats differ in the last digits)
    exact = 1 - D(19769) / D(22000)
    limit = float(exact + D("5e-10"))

    # Act
    conf = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach(PORTFOLIO, limit, 22000.0))

    # Assert
    assert conf.confirmed


def test_confirm_breach_when_drawdown_clearly_below_limit_then_not_confirmed(state: DeskState) -> None:
    # Arrange: limit above the exact drawdown by 1e-6 (far beyond the 1e-9 tolerance)
    exact = 1 - D(19769) / D(22000)
    limit = float(exact + D("1e-6"))

    # Act
    conf = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach(PORTFOLIO, limit, 22000.0))

    # Assert
    assert not conf.confirmed


def test_breach_confirmation_as_dict_when_called_then_six_decimal_strings(state: DeskState) -> None:
    # Act
    out = confirm_breach(state, {BTC: 80.0, ETH: 40.0}, breach(PORTFOLIO, 0.10, 22000.0)).as_dict()

    # Assert
    assert out == {"confirmed": True, "scope": PORTFOLIO, "level": "halt", "equity": "19769.000000",
                   "peak": "22000.000000", "drawdown": "0.101409", "limit": "0.100000000000"}
