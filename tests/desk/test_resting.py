"""Resting orders as the loop sees them, on plain inputs: the first bar that can fill one (so quiet bars are still
skipped), and the stop a position wants (none while flat, paused, halted, or while another exit is on its way)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from execdesk.data.feed import PairTrack
from execdesk.desk.resting import stop_wanted, trigger_bar
from execdesk.domain.state import DeploymentRecord, DeskState, OrderRecord, PositionRecord
from execdesk.domain.types import ClientOrderId, OrderType, Side, TradingState
from execdesk.venues.base import VenueOrder

LOW = np.array([99.0, 98.0, np.nan, 96.0, 94.0, 97.0])
HIGH = np.array([101.0, 102.0, np.nan, 104.0, 101.0, 106.0])
TIMES = np.arange(6, dtype=np.int64) * 3600


def _track() -> PairTrack:
    has_bar = ~np.isnan(LOW)
    bars = np.flatnonzero(has_bar)
    nxt = np.searchsorted(bars, np.arange(6), side="right")
    next_bar = np.where(nxt < len(bars), bars[np.minimum(nxt, len(bars) - 1)], 6)
    opens = np.where(has_bar, 100.0, np.nan)
    return PairTrack("BTC/USDT", 0, opens, np.full(6, 100.0), has_bar, next_bar.astype(np.int64), pd.DataFrame(),
                     HIGH, LOW, np.where(has_bar, 10.0, 0.0))


def _order(kind: OrderType, side: Side, level: str, filled: str = "0", submitted_at: int = 0) -> VenueOrder:
    price = Decimal(level) if kind is OrderType.LIMIT else None
    stop = Decimal(level) if kind is OrderType.STOP_MARKET else None
    return VenueOrder(ClientOrderId("c"), "BTC/USDT", side, kind, Decimal(1), submitted_at, filled_qty=Decimal(filled),
                      price=price, stop_price=stop)


@pytest.mark.parametrize(("kind", "side", "level", "cur", "expected"), [
    (OrderType.STOP_MARKET, Side.SELL, "96", 0, 3),  # the first low at or under the stop (bar 2 has no bar)
    (OrderType.STOP_MARKET, Side.SELL, "95", 0, 4),
    (OrderType.STOP_MARKET, Side.SELL, "90", 0, 6),  # never: the end of the data
    (OrderType.STOP_MARKET, Side.BUY, "104", 0, 3),  # a buy stop: the first high at or over it
    (OrderType.LIMIT, Side.SELL, "105", 0, 5),  # a sell limit: the first high at or over it
    (OrderType.LIMIT, Side.BUY, "97", 1, 3),  # a buy limit: the first low at or under it, after cur
    (OrderType.MARKET, Side.BUY, "0", 1, 3),  # a market order: the pair's next bar
    (OrderType.MARKET, Side.BUY, "0", -1, 0),
], ids=["sell-stop", "sell-stop-later", "sell-stop-never", "buy-stop", "sell-limit", "buy-limit", "market",
        "market-first-bar"])
def test_trigger_bar_when_an_order_rests_then_the_first_bar_whose_range_reaches_it(
        kind: OrderType, side: Side, level: str, cur: int, expected: int) -> None:
    order = _order(kind, side, level) if kind is not OrderType.MARKET else VenueOrder(
        ClientOrderId("c"), "BTC/USDT", side, kind, Decimal(1), 0)
    assert trigger_bar(order, _track(), TIMES, cur, None) == expected


def test_trigger_bar_when_a_stop_is_partly_filled_then_the_next_bar() -> None:
    assert trigger_bar(_order(OrderType.STOP_MARKET, Side.SELL, "90", filled="0.5"), _track(), TIMES, 0, None) == 1


def test_trigger_bar_when_a_limit_expires_first_then_its_expiry_bar() -> None:
    order = _order(OrderType.LIMIT, Side.SELL, "105", submitted_at=0)
    assert trigger_bar(order, _track(), TIMES, 0, 2 * 3600) == 3  # due at bar 2, which has no bar: the next one
    assert trigger_bar(order, _track(), TIMES, 0, 3600) == 1


def _state(qty: str = "2", dep_state: TradingState = TradingState.ACTIVE, reason: str = "deployed",
           orders: tuple[tuple[str, str], ...] = ()) -> DeskState:
    state = DeskState()
    state.deployments["D"] = DeploymentRecord("D", "S", "s", 1, "h", "1h", ["BTC/USDT"], Decimal("0.5"),
                                              Decimal(1000), 0, state=dep_state, state_reason=reason)
    state.positions[("D", "BTC/USDT")] = PositionRecord("D", "BTC/USDT", Decimal(qty), Decimal(100))
    for coid, kind in orders:
        state.orders[coid] = OrderRecord(coid, "D", "BTC/USDT", "SELL", "LONG", kind, Decimal(qty), "x", 0,
                                         Decimal(100), 0)
        state.open_orders_by_key.setdefault(("D", "BTC/USDT"), {})[coid] = None
    return state


def test_stop_wanted_when_long_then_a_sell_stop_for_the_whole_position() -> None:
    want, why = stop_wanted(_state("2"), "D", "BTC/USDT")
    assert want is not None
    assert (want.side, want.qty, why) == (Side.SELL, Decimal(2), "")
    short, _ = stop_wanted(_state("-3"), "D", "BTC/USDT")
    assert short is not None
    assert (short.side, short.qty) == (Side.BUY, Decimal(3))


@pytest.mark.parametrize(("state", "why"), [
    (_state("0"), "the position is closed"),
    (_state(dep_state=TradingState.HALTED, reason="deployment_halt"), "the deployment is HALTED"),
    (_state(dep_state=TradingState.REDUCING, reason="paused"), "the deployment is paused (paused)"),
    (_state(orders=(("exit", "MARKET"),)), "another order of the position is open"),
], ids=["flat", "halted", "paused", "exit-on-its-way"])
def test_stop_wanted_when_no_stop_should_rest_then_none_and_why(state: DeskState, why: str) -> None:
    assert stop_wanted(state, "D", "BTC/USDT") == (None, why)


def test_stop_wanted_when_only_a_stop_is_open_then_it_is_still_wanted() -> None:
    want, _ = stop_wanted(_state(orders=(("stop", "STOP_MARKET"),)), "D", "BTC/USDT")
    assert want is not None


def test_stop_wanted_when_the_desk_is_halted_then_none() -> None:
    state = _state()
    state.trading_state = TradingState.HALTED
    assert stop_wanted(state, "D", "BTC/USDT") == (None, "the desk is HALTED")
