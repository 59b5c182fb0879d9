"""Tests of execdesk.venues.paper: fills at the next open with slippage and fees, idempotence, restore."""

from __future__ import annotations

from decimal import Decimal

import pytest

from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side
from execdesk.errors import InvalidInput
from execdesk.venues.base import Venue, VenueOrder
from execdesk.venues.paper import PaperVenue, PaperVenueConfig

D = Decimal
H = 3600
PAIR = "BTC/USDT"


def order(coid: str, side: Side, qty: str, submitted_at: int = H, pair: str = PAIR) -> VenueOrder:
    return VenueOrder(ClientOrderId(coid), pair, side, OrderType.MARKET, D(qty), submitted_at)


def venue(cash: str = "10000", fee_bps: float = 10.0, slippage_bps: float = 5.0) -> PaperVenue:
    return PaperVenue("USDT", D(cash), PaperVenueConfig(fee_bps=fee_bps, slippage_bps=slippage_bps))


def test_paper_venue_when_built_then_satisfies_venue_protocol() -> None:
    # Act / Assert
    assert isinstance(venue(), Venue)


def test_on_bar_open_when_buy_pending_then_fills_at_open_plus_slippage_with_fee() -> None:
    # Arrange: fee 10 bps, slippage 5 bps
    v = venue()
    v.submit(order("b1", Side.BUY, "2"))

    # Act
    (fill,) = v.on_bar_open(PAIR, H, 100.0)

    # Assert: price 100 * (1 + 0.0005) = 100.05; fee 2 * 100.05 * 10 / 1e4 = 0.2001;
    # cash 10000 - 200.1 - 0.2001 = 9799.6999
    assert fill.price == D("100.05")
    assert fill.fee == D("0.2001")
    assert (fill.qty, fill.side, fill.time, fill.fill_id) == (D(2), Side.BUY, H, "b1-1")
    assert v.balances() == {"USDT": D("9799.6999")}
    assert v.positions() == {PAIR: D(2)}
    assert v.open_orders() == []


def test_on_bar_open_when_sell_pending_then_fills_at_open_minus_slippage_with_fee() -> None:
    # Arrange: fee 20 bps, slippage 10 bps
    v = venue(fee_bps=20, slippage_bps=10)
    v.submit(order("s1", Side.SELL, "3"))

    # Act
    (fill,) = v.on_bar_open(PAIR, H, 200.0)

    # Assert: price 200 * (1 - 0.001) = 199.8; fee 3 * 199.8 * 20 / 1e4 = 1.1988;
    # cash 10000 + 599.4 - 1.1988 = 10598.2012; short 3
    assert fill.price == D("199.8")
    assert fill.fee == D("1.1988")
    assert v.balances() == {"USDT": D("10598.2012")}
    assert v.positions() == {PAIR: D(-3)}


def test_on_bar_open_when_no_fee_no_slippage_then_exact_open() -> None:
    # Arrange
    v = venue(fee_bps=0, slippage_bps=0)
    v.submit(order("b1", Side.BUY, "0.5"))

    # Act
    (fill,) = v.on_bar_open(PAIR, H, 123.45)

    # Assert
    assert (fill.price, fill.fee) == (D("123.45"), D(0))
    assert v.balances()["USDT"] == D("9938.275")  # 10000 - 0.5 * 123.45


def test_on_bar_open_when_order_submitted_after_that_bar_opened_then_waits_for_the_next_bar() -> None:
    # Arrange: submitted at H + 1, after the bar opening at H
    v = venue()
    v.submit(order("b1", Side.BUY, "1", submitted_at=H + 1))

    # Act
    at_h = v.on_bar_open(PAIR, H, 100.0)
    at_2h = v.on_bar_open(PAIR, 2 * H, 101.0)

    # Assert: 101 * 1.0005 = 101.0505
    assert at_h == []
    assert [f.price for f in at_2h] == [D("101.0505")]
    assert [f.time for f in at_2h] == [2 * H]


def test_on_bar_open_when_order_submitted_exactly_at_the_open_then_fills_there() -> None:
    # Arrange: the loop submits at the close of bar g, which is the open of bar g + 1
    v = venue()
    v.submit(order("b1", Side.BUY, "1", submitted_at=H))

    # Act / Assert
    assert len(v.on_bar_open(PAIR, H, 100.0)) == 1


def test_on_bar_open_when_other_pair_opens_then_order_keeps_waiting() -> None:
    # Arrange
    v = venue()
    v.submit(order("b1", Side.BUY, "1"))

    # Act
    fills = v.on_bar_open("ETH/USDT", H, 10.0)

    # Assert
    assert fills == []
    assert v.has_pending()
    assert v.pending_pairs() == {PAIR}


def test_submit_when_same_client_order_id_again_then_known_order_returned_and_one_fill() -> None:
    # Arrange
    v = venue()
    first = v.submit(order("b1", Side.BUY, "1"))

    # Act: a retry with the same id (even with another qty) is the same order
    again = v.submit(order("b1", Side.BUY, "5"))
    fills = v.on_bar_open(PAIR, H, 100.0)
    after_fill = v.submit(order("b1", Side.BUY, "1"))

    # Assert
    assert again is first
    assert len(fills) == 1
    assert fills[0].qty == D(1)
    assert after_fill.status is OrderStatus.FILLED
    assert v.on_bar_open(PAIR, 2 * H, 100.0) == []
    assert v.fills_since(0)[1] == 1


def test_submit_when_qty_not_positive_or_type_not_market_then_invalid_input() -> None:
    # Arrange
    v = venue()
    limit = VenueOrder(ClientOrderId("l1"), PAIR, Side.BUY, OrderType.LIMIT, D(1), H)

    # Act / Assert
    with pytest.raises(InvalidInput, match="qty 0"):
        v.submit(order("z1", Side.BUY, "0"))
    with pytest.raises(InvalidInput, match="MARKET only"):
        v.submit(limit)
    assert v.open_orders() == []


def test_cancel_when_order_pending_then_true_and_never_fills() -> None:
    # Arrange
    v = venue()
    v.submit(order("b1", Side.BUY, "1"))

    # Act
    canceled = v.cancel(ClientOrderId("b1"))
    fills = v.on_bar_open(PAIR, H, 100.0)

    # Assert
    assert canceled is True
    assert fills == []
    assert v.open_orders() == []
    assert v.balances() == {"USDT": D(10000)}
    assert v.submit(order("b1", Side.BUY, "1")).status is OrderStatus.CANCELED  # not resurrected


def test_cancel_when_unknown_canceled_or_filled_then_false() -> None:
    # Arrange
    v = venue()
    v.submit(order("c1", Side.BUY, "1"))
    v.cancel(ClientOrderId("c1"))
    v.submit(order("f1", Side.BUY, "1"))
    v.on_bar_open(PAIR, H, 100.0)

    # Act / Assert
    assert v.cancel(ClientOrderId("nope")) is False
    assert v.cancel(ClientOrderId("c1")) is False
    assert v.cancel(ClientOrderId("f1")) is False


def test_fills_since_when_cursor_advanced_then_only_new_fills() -> None:
    # Arrange
    v = venue()
    v.submit(order("b1", Side.BUY, "1"))
    v.on_bar_open(PAIR, H, 100.0)
    first, cursor = v.fills_since(0)
    v.submit(order("b2", Side.BUY, "1", submitted_at=2 * H))
    v.on_bar_open(PAIR, 2 * H, 100.0)

    # Act
    second, cursor2 = v.fills_since(cursor)

    # Assert
    assert [f.fill_id for f in first] == ["b1-1"]
    assert [f.fill_id for f in second] == ["b2-1"]
    assert (cursor, cursor2) == (1, 2)


def test_positions_when_several_fills_then_net_per_pair_and_flat_pairs_omitted() -> None:
    # Arrange: no fee, no slippage
    v = venue(fee_bps=0, slippage_bps=0)
    v.submit(order("a1", Side.BUY, "2"))
    v.submit(order("e1", Side.SELL, "3", pair="ETH/USDT"))
    v.submit(order("x1", Side.BUY, "1", pair="XRP/USDT"))

    # Act
    v.on_bar_open(PAIR, H, 100.0)
    v.on_bar_open("ETH/USDT", H, 10.0)
    v.on_bar_open("XRP/USDT", H, 1.0)
    v.submit(order("a2", Side.SELL, "0.5", submitted_at=2 * H))
    v.submit(order("x2", Side.SELL, "1", submitted_at=2 * H, pair="XRP/USDT"))
    v.on_bar_open(PAIR, 2 * H, 110.0)
    v.on_bar_open("XRP/USDT", 2 * H, 2.0)

    # Assert: cash 10000 - 200 + 30 - 1 + 55 + 2 = 9886; XRP is flat
    assert v.positions() == {PAIR: D("1.5"), "ETH/USDT": D(-3)}
    assert v.balances() == {"USDT": D(9886)}


def _state_with_history() -> DeskState:
    dep, pair = "dep-1", PAIR
    base = {"deployment_id": dep, "pair": pair, "direction": "LONG", "type": "MARKET", "signal_time": 0,
            "ref_price": D(100), "reason": "entry_signal"}
    return DeskState.from_events([
        Event(1, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT", "capital": D(1000)}),
        Event(2, EventKind.DEPLOYMENT_CREATED, {"deployment_id": dep, "strategy_id": "S", "name": "s", "version": 1,
                                                "bundle_hash": "0", "timeframe": "1h", "pairs": [pair],
                                                "allocation": D(1), "capital": D(1000)}, dep),
        Event(H, EventKind.ORDER_SUBMITTED, {**base, "client_order_id": "o1", "side": "BUY", "qty": D(2)}, dep),
        Event(H, EventKind.ORDER_FILLED, {"client_order_id": "o1", "fill_id": "o1-1", "qty": D(2), "price": D(100),
                                          "fee": D("0.2")}, dep),
        Event(2 * H, EventKind.ORDER_SUBMITTED, {**base, "client_order_id": "o2", "side": "SELL", "qty": D(1),
                                                 "reason": "roi"}, dep),
    ])


def test_restore_when_given_desk_state_then_cash_positions_and_resting_orders_taken() -> None:
    # Arrange: the ledger holds cash 1000 - 200 - 0.2 = 799.8, 2 BTC, and a resting sell of 1
    state = _state_with_history()
    v = venue(cash="0")

    # Act
    v.restore(state)

    # Assert
    assert v.balances() == {"USDT": D("799.8")}
    assert v.positions() == {PAIR: D(2)}
    assert [o.client_order_id for o in v.open_orders()] == ["o2"]
    assert v.open_orders()[0].side is Side.SELL


def test_restore_when_resting_order_then_it_fills_at_the_next_open_and_known_ids_stay_idempotent() -> None:
    # Arrange
    v = venue(cash="0", fee_bps=0, slippage_bps=0)
    v.restore(_state_with_history())

    # Act
    fills = v.on_bar_open(PAIR, 3 * H, 120.0)
    resubmitted = v.submit(order("o1", Side.BUY, "2"))

    # Assert: 799.8 + 120 = 919.8; o1 was already filled before the restart
    assert [(f.client_order_id, f.price) for f in fills] == [("o2", D(120))]
    assert v.balances() == {"USDT": D("919.8")}
    assert v.positions() == {PAIR: D(1)}
    assert resubmitted.status is OrderStatus.FILLED
    assert v.open_orders() == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"fee_bps": -1}, "venue.fee_bps"), ({"slippage_bps": 1001}, "venue.slippage_bps"),
     ({"fee_bps": float("nan")}, "venue.fee_bps")],
)
def test_config_when_out_of_range_then_invalid_input_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    # Act / Assert
    with pytest.raises(InvalidInput, match=field):
        PaperVenueConfig(**kwargs)


def test_config_when_fee_bps_negative_then_message_says_got_and_expected() -> None:
    # Act / Assert
    with pytest.raises(InvalidInput, match=r"venue\.fee_bps: got -1; expected .*\[0, 1000\]"):
        PaperVenueConfig(fee_bps=-1)


def test_restore_when_order_partly_filled_then_its_next_fill_gets_a_new_fill_id() -> None:
    # Arrange: o2 (sell 1) has a fill of 0.4 in the ledger; the venue fills the rest after a restart
    state = _state_with_history()
    state.apply(Event(2 * H, EventKind.ORDER_FILLED, {"client_order_id": "o2", "fill_id": "o2-1", "qty": D("0.4"),
                                                      "price": D(110), "fee": D(0)}, "dep-1"))
    v = venue(cash="0", fee_bps=0, slippage_bps=0)
    v.restore(state)

    # Act
    fills = v.on_bar_open(PAIR, 3 * H, 120.0)

    # Assert: the remaining 0.6, under an id the ledger does not hold yet
    assert [(f.fill_id, f.qty) for f in fills] == [("o2-2", D("0.6"))]
    assert fills[0].fill_id not in state.fills
