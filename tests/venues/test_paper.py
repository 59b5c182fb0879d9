"""Tests of execdesk.venues.paper: market, limit and stop fills against bars (slippage, impact, fees,
volume caps, latency), refusals, idempotence, restore from the ledger, the SQLite store, determinism."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side
from execdesk.errors import InvalidInput
from execdesk.venues.base import OrderRejected, Venue, VenueFill, VenueOrder
from execdesk.venues.paper import PaperVenue, PaperVenueConfig

D = Decimal
H = 3600
PAIR = "BTC/USDT"
ETH = "ETH/USDT"
C = ClientOrderId


def order(coid: str, side: Side, qty: str, submitted_at: int = H, pair: str = PAIR,
          ref_price: str | None = None) -> VenueOrder:
    return VenueOrder(C(coid), pair, side, OrderType.MARKET, D(qty), submitted_at,
                      ref_price=None if ref_price is None else D(ref_price))


def limit(coid: str, side: Side, qty: str, price: str, submitted_at: int = H, pair: str = PAIR) -> VenueOrder:
    return VenueOrder(C(coid), pair, side, OrderType.LIMIT, D(qty), submitted_at, price=D(price))


def stop(coid: str, side: Side, qty: str, stop_price: str, submitted_at: int = H, pair: str = PAIR) -> VenueOrder:
    return VenueOrder(C(coid), pair, side, OrderType.STOP_MARKET, D(qty), submitted_at, stop_price=D(stop_price))


def venue(cash: str = "10000", *, pairs: set[str] | None = None, bar_seconds: int = 0, store: Path | None = None,
          **settings_: Any) -> PaperVenue:
    """A USDT paper venue; ``settings_`` are PaperVenueConfig fields (defaults: fee 10, slippage 5, impact 20,
    max_volume_share 0.25)."""
    return PaperVenue("USDT", D(cash), PaperVenueConfig(**settings_), pairs=pairs, bar_seconds=bar_seconds,
                      store=store)


def bare(cash: str = "10000", **settings_: Any) -> PaperVenue:
    """No fee, slippage, impact or volume cap unless given: one effect at a time."""
    base: dict[str, Any] = {"fee_bps": 0, "slippage_bps": 0, "impact_bps": 0, "max_volume_share": None}
    return venue(cash, **{**base, **settings_})


def known(v: PaperVenue, coid: str) -> VenueOrder:
    """The venue's view of an order it must know."""
    o = v.order(C(coid))
    assert o is not None, coid
    return o


def rejected(v: PaperVenue, o: VenueOrder) -> OrderRejected:
    """Submit ``o``, expect a refusal, and check the venue kept nothing of it."""
    with pytest.raises(OrderRejected) as info:
        v.submit(o)
    assert v.order(o.client_order_id) is None
    assert o.client_order_id not in [x.client_order_id for x in v.open_orders()]
    return info.value


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


@pytest.mark.parametrize(
    "bad",
    [order("z0", Side.BUY, "0"), order("z1", Side.SELL, "-1"),
     VenueOrder(C("l1"), PAIR, Side.BUY, OrderType.LIMIT, D(1), H),
     VenueOrder(C("s1"), PAIR, Side.SELL, OrderType.STOP_MARKET, D(1), H)],
    ids=["qty_zero", "qty_negative", "limit_without_price", "stop_without_stop_price"],
)
def test_submit_when_order_malformed_then_rejected_invalid_order_and_nothing_stored(bad: VenueOrder) -> None:
    # Arrange
    v = venue()

    # Act
    error = rejected(v, bad)

    # Assert
    assert error.code == "invalid_order"
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
        Event(H, EventKind.ORDER_ACCEPTED, {"client_order_id": "o1"}, dep),
        Event(H, EventKind.ORDER_FILLED, {"client_order_id": "o1", "fill_id": "o1-1", "qty": D(2), "price": D(100),
                                          "fee": D("0.2")}, dep),
        Event(2 * H, EventKind.ORDER_SUBMITTED, {**base, "client_order_id": "o2", "side": "SELL", "qty": D(1),
                                                 "reason": "roi"}, dep),
        Event(2 * H, EventKind.ORDER_ACCEPTED, {"client_order_id": "o2"}, dep),
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
def test_config_when_out_of_range_then_invalid_input_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
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


def test_restore_when_order_recorded_but_never_acknowledged_then_not_at_the_venue() -> None:
    # Arrange: o3 is in the ledger (ORDER_SUBMITTED: NEW) without an ORDER_ACCEPTED: the desk died before
    # the venue heard of it, so reconciliation will send it again
    state = _state_with_history()
    state.apply(Event(2 * H, EventKind.ORDER_SUBMITTED,
                      {"deployment_id": "dep-1", "pair": PAIR, "direction": "LONG", "type": "MARKET", "signal_time": 0,
                       "ref_price": D(100), "reason": "entry_signal", "client_order_id": "o3", "side": "BUY",
                       "qty": D(1)}, "dep-1"))
    v = venue(cash="0")

    # Act
    v.restore(state)

    # Assert: only the acknowledged o2 rests; a resubmitted o3 is a fresh order
    assert state.orders["o3"].status is OrderStatus.NEW
    assert v.order(C("o3")) is None
    assert [o.client_order_id for o in v.open_orders()] == ["o2"]
    assert v.submit(order("o3", Side.BUY, "1", submitted_at=2 * H)).status is OrderStatus.SUBMITTED


def test_restore_when_stop_order_partly_filled_then_it_keeps_filling_at_the_next_open() -> None:
    # Arrange: a sell stop at 90 for 2 was triggered and filled 1 before the restart; the stop only fills once
    # triggered, so the venue must treat it as triggered (a market order) after restore
    state = _state_with_history()
    state.apply(Event(2 * H, EventKind.ORDER_SUBMITTED,
                      {"deployment_id": "dep-1", "pair": PAIR, "direction": "LONG", "type": "STOP_MARKET",
                       "signal_time": 0, "ref_price": D(95), "reason": "stoploss", "client_order_id": "s1",
                       "side": "SELL", "qty": D(2), "stop_price": D(90)}, "dep-1"))
    state.apply(Event(2 * H, EventKind.ORDER_ACCEPTED, {"client_order_id": "s1"}, "dep-1"))
    state.apply(Event(2 * H, EventKind.ORDER_FILLED, {"client_order_id": "s1", "fill_id": "s1-1", "qty": D(1),
                                                      "price": D(90), "fee": D(0)}, "dep-1"))
    v = bare(cash="0")
    v.restore(state)

    # Act: the next bar stays above the stop (low 99 > 90)
    fills = v.on_bar(PAIR, 3 * H, 100, 101, 99, 100, 0)

    # Assert: o2 (sell 1) and the stop's remaining 1, both at the open 100
    assert [(f.fill_id, f.qty, f.price) for f in fills] == [("o2-1", D(1), D(100)), ("s1-2", D(1), D(100))]


# ---------------------------------------------------------------- market orders: slippage, impact, fees
def test_on_bar_when_market_buy_takes_a_tenth_of_the_volume_then_slippage_plus_impact_and_taker_fee() -> None:
    # Arrange: slippage 5 bps, impact 20 bps, taker fee 10 bps, no volume cap
    v = venue(fee_bps=10, slippage_bps=5, impact_bps=20, max_volume_share=1)
    v.submit(order("b1", Side.BUY, "10"))

    # Act: bar open 100, volume 100
    (fill,) = v.on_bar(PAIR, H, 100, 102, 99, 101, 100)

    # Assert: share 10 / 100 = 0.1 -> 5 + 20 x 0.1 = 7 bps -> 100 x 1.0007 = 100.07;
    # fee 10 x 100.07 x 0.001 = 1.0007; cash 10000 - 1000.7 - 1.0007 = 8998.2993
    assert fill.price == D("100.07")
    assert fill.fee == D("1.0007")
    assert fill.liquidity == "taker"
    assert v.balances() == {"USDT": D("8998.2993")}


def test_on_bar_when_market_sell_takes_a_fifth_of_the_volume_then_price_moves_down_by_slippage_plus_impact() -> None:
    # Arrange: slippage 5 bps, impact 20 bps, fee 10 bps
    v = venue(fee_bps=10, slippage_bps=5, impact_bps=20, max_volume_share=1)
    v.submit(order("s1", Side.SELL, "10"))

    # Act: bar open 200, volume 50
    (fill,) = v.on_bar(PAIR, H, 200, 201, 198, 199, 50)

    # Assert: share 10 / 50 = 0.2 -> 5 + 4 = 9 bps -> 200 x 0.9991 = 199.82; fee 1998.2 x 0.001 = 1.9982;
    # cash 10000 + 1998.2 - 1.9982 = 11996.2018
    assert fill.price == D("199.82")
    assert fill.fee == D("1.9982")
    assert v.balances() == {"USDT": D("11996.2018")}
    assert v.positions() == {PAIR: D(-10)}


def test_on_bar_open_when_no_volume_known_then_no_impact_and_no_volume_cap() -> None:
    # Arrange: impact 20 bps and a 25 % cap configured, but the bar has no volume
    v = venue(cash="1000000", fee_bps=0, slippage_bps=5, impact_bps=20, max_volume_share=0.25)
    v.submit(order("b1", Side.BUY, "500"))

    # Act
    (fill,) = v.on_bar_open(PAIR, H, 100.0)

    # Assert: the whole 500 at 100 x 1.0005 = 100.05 (slippage only)
    assert (fill.qty, fill.price) == (D(500), D("100.05"))
    assert known(v, "b1").status is OrderStatus.FILLED


# ---------------------------------------------------------------- volume cap: partial fills
def test_on_bar_when_order_exceeds_the_volume_share_then_fills_the_share_and_stays_partially_filled() -> None:
    # Arrange: at most 25 % of a bar's volume
    v = bare(max_volume_share=0.25)
    v.submit(order("b1", Side.BUY, "40"))

    # Act: volume 100 -> budget 25
    fills = v.on_bar(PAIR, H, 100, 100, 100, 100, 100)

    # Assert
    assert [(f.fill_id, f.qty) for f in fills] == [("b1-1", D(25))]
    assert known(v, "b1").status is OrderStatus.PARTIALLY_FILLED
    assert known(v, "b1").filled_qty == D(25)
    assert [o.client_order_id for o in v.open_orders()] == ["b1"]


def test_on_bar_when_partially_filled_order_meets_the_next_bar_then_the_rest_fills_under_the_next_fill_id() -> None:
    # Arrange: 40 of which 25 filled in the first bar
    v = bare(max_volume_share=0.25)
    v.submit(order("b1", Side.BUY, "40"))
    v.on_bar(PAIR, H, 100, 100, 100, 100, 100)

    # Act: budget again 25; 15 remain
    fills = v.on_bar(PAIR, 2 * H, 101, 101, 101, 101, 100)

    # Assert: cash 10000 - 25 x 100 - 15 x 101 = 5985
    assert [(f.fill_id, f.qty, f.price) for f in fills] == [("b1-2", D(15), D(101))]
    assert known(v, "b1").status is OrderStatus.FILLED
    assert v.open_orders() == []
    assert v.balances() == {"USDT": D(5985)}


def test_on_bar_when_several_orders_of_the_pair_then_they_share_the_budget_in_submission_order() -> None:
    # Arrange: a buy then a sell of 20 each; budget 0.25 x 100 = 25
    v = bare(max_volume_share=0.25)
    v.submit(order("a", Side.BUY, "20"))
    v.submit(order("b", Side.SELL, "20"))

    # Act
    fills = v.on_bar(PAIR, H, 100, 100, 100, 100, 100)

    # Assert: a takes 20, b the remaining 5 (sides share one budget)
    assert [(f.client_order_id, f.qty) for f in fills] == [("a", D(20)), ("b", D(5))]


def test_on_bar_when_other_pair_has_orders_then_its_volume_budget_is_separate() -> None:
    # Arrange: 20 of BTC and 20 of ETH, each on its own 100-volume bar
    v = bare(max_volume_share=0.25)
    v.submit(order("a", Side.BUY, "20"))
    v.submit(order("e", Side.BUY, "20", pair=ETH))

    # Act
    btc = v.on_bar(PAIR, H, 100, 100, 100, 100, 100)
    eth = v.on_bar(ETH, H, 10, 10, 10, 10, 100)

    # Assert: each fills in full (20 <= 25)
    assert [f.qty for f in btc + eth] == [D(20), D(20)]


def test_on_bar_when_volume_is_zero_then_no_cap() -> None:
    # Arrange
    v = bare(max_volume_share=0.25)
    v.submit(order("b1", Side.BUY, "40"))

    # Act
    fills = v.on_bar(PAIR, H, 100, 100, 100, 100, 0)

    # Assert
    assert [f.qty for f in fills] == [D(40)]


# ---------------------------------------------------------------- limit orders
def test_on_bar_when_limit_buy_is_marketable_at_the_open_then_fills_at_the_open_as_taker_without_slippage() -> None:
    # Arrange: taker 10 bps, maker 2 bps, slippage 5 bps; buy 2 with a limit of 105
    v = venue(fee_bps=10, maker_fee_bps=2, slippage_bps=5)
    v.submit(limit("l1", Side.BUY, "2", "105"))

    # Act: the bar opens at 100, below the limit
    (fill,) = v.on_bar(PAIR, H, 100, 106, 99, 104, 100)

    # Assert: 100 (no slippage); fee 200 x 0.001 = 0.2 (taker)
    assert (fill.price, fill.fee, fill.liquidity) == (D(100), D("0.2"), "taker")


def test_on_bar_when_bar_trades_down_to_a_resting_limit_buy_then_fills_at_the_limit_with_maker_fee() -> None:
    # Arrange: taker 10 bps, maker 2 bps; buy 2 at 95
    v = venue(fee_bps=10, maker_fee_bps=2, slippage_bps=5)
    v.submit(limit("l1", Side.BUY, "2", "95"))

    # Act: open 100, low 94
    (fill,) = v.on_bar(PAIR, H, 100, 101, 94, 97, 100)

    # Assert: 95; fee 190 x 0.0002 = 0.038; cash 10000 - 190 - 0.038 = 9809.962
    assert (fill.price, fill.fee, fill.liquidity) == (D(95), D("0.038"), "maker")
    assert v.balances() == {"USDT": D("9809.962")}


def test_on_bar_when_maker_fee_not_set_then_resting_fill_pays_the_taker_rate() -> None:
    # Arrange: fee 10 bps, maker_fee_bps unset
    v = venue(fee_bps=10)
    v.submit(limit("l1", Side.BUY, "2", "95"))

    # Act
    (fill,) = v.on_bar(PAIR, H, 100, 101, 94, 97, 100)

    # Assert: 190 x 0.001 = 0.19, still a maker fill
    assert (fill.fee, fill.liquidity) == (D("0.19"), "maker")


def test_on_bar_when_limit_buy_not_touched_then_no_fill_and_it_stays_open() -> None:
    # Arrange
    v = venue()
    v.submit(limit("l1", Side.BUY, "2", "95"))

    # Act: low 96 > 95
    fills = v.on_bar(PAIR, H, 100, 101, 96, 97, 100)

    # Assert
    assert fills == []
    assert [(o.client_order_id, o.status) for o in v.open_orders()] == [("l1", OrderStatus.SUBMITTED)]


def test_on_bar_when_bar_trades_up_to_a_resting_limit_sell_then_fills_at_the_limit_as_maker() -> None:
    # Arrange: sell 2 at 105, maker 2 bps
    v = venue(fee_bps=10, maker_fee_bps=2)
    v.submit(limit("l1", Side.SELL, "2", "105"))

    # Act: open 100, high 106
    (fill,) = v.on_bar(PAIR, H, 100, 106, 99, 104, 100)

    # Assert: 105; fee 210 x 0.0002 = 0.042; cash 10000 + 210 - 0.042 = 10209.958
    assert (fill.price, fill.fee, fill.liquidity) == (D(105), D("0.042"), "maker")
    assert v.balances() == {"USDT": D("10209.958")}


def test_on_bar_when_limit_sell_is_marketable_at_the_open_then_fills_at_the_open_as_taker() -> None:
    # Arrange: sell 2 at 95
    v = venue(fee_bps=10, maker_fee_bps=2, slippage_bps=5)
    v.submit(limit("l1", Side.SELL, "2", "95"))

    # Act: opens at 100, above the limit
    (fill,) = v.on_bar(PAIR, H, 100, 101, 99, 100, 100)

    # Assert: 100 (better than the limit, no slippage); fee 200 x 0.001 = 0.2
    assert (fill.price, fill.fee, fill.liquidity) == (D(100), D("0.2"), "taker")


def test_on_bar_when_limit_older_than_its_ttl_then_expired_with_a_reason_and_no_fill() -> None:
    # Arrange: good for one hour; submitted at H, not touched in the bar at H
    v = venue(limit_ttl_s=3600)
    v.submit(limit("l1", Side.BUY, "2", "95"))
    v.on_bar(PAIR, H, 100, 101, 96, 97, 100)

    # Act: the bar at 2H opens when the hour is up (H + 3600)
    fills = v.on_bar(PAIR, 2 * H, 97, 98, 96, 97, 100)

    # Assert
    expired = known(v, "l1")
    assert fills == []
    assert expired.status is OrderStatus.EXPIRED
    assert "3600" in (expired.reason or "")
    assert (expired.filled_qty, v.open_orders(), v.fills_since(0)[0]) == (D(0), [], [])


# ---------------------------------------------------------------- stop-market orders
def test_on_bar_when_bar_trades_down_through_a_sell_stop_then_fills_at_the_stop_minus_slippage() -> None:
    # Arrange: sell 1 at stop 90; slippage 5 bps, fee 10 bps, no impact
    v = venue(fee_bps=10, slippage_bps=5, impact_bps=0)
    v.submit(stop("s1", Side.SELL, "1", "90"))

    # Act: open 95, low 89
    (fill,) = v.on_bar(PAIR, H, 95, 96, 89, 92, 100)

    # Assert: 90 x 0.9995 = 89.955; fee 0.089955 (taker)
    assert (fill.price, fill.fee, fill.liquidity) == (D("89.955"), D("0.089955"), "taker")


def test_on_bar_when_bar_opens_below_a_sell_stop_then_fills_at_the_open_minus_slippage() -> None:
    # Arrange
    v = venue(fee_bps=0, slippage_bps=5, impact_bps=0)
    v.submit(stop("s1", Side.SELL, "1", "90"))

    # Act: a gap down: open 85
    (fill,) = v.on_bar(PAIR, H, 85, 86, 80, 82, 100)

    # Assert: 85 x 0.9995 = 84.9575
    assert fill.price == D("84.9575")


def test_on_bar_when_sell_stop_not_reached_then_no_fill_and_it_stays_open() -> None:
    # Arrange
    v = venue()
    v.submit(stop("s1", Side.SELL, "1", "90"))

    # Act: low 91 > 90
    fills = v.on_bar(PAIR, H, 95, 96, 91, 92, 100)

    # Assert
    assert fills == []
    assert [o.client_order_id for o in v.open_orders()] == ["s1"]


def test_on_bar_when_bar_trades_up_through_a_buy_stop_then_fills_at_the_stop_plus_slippage() -> None:
    # Arrange: buy 1 at stop 110
    v = venue(fee_bps=0, slippage_bps=5, impact_bps=0)
    v.submit(stop("b1", Side.BUY, "1", "110"))

    # Act: open 105, high 111
    (fill,) = v.on_bar(PAIR, H, 105, 111, 104, 108, 100)

    # Assert: 110 x 1.0005 = 110.055
    assert fill.price == D("110.055")


def test_on_bar_when_bar_opens_above_a_buy_stop_then_fills_at_the_open_plus_slippage() -> None:
    # Arrange
    v = venue(fee_bps=0, slippage_bps=5, impact_bps=0)
    v.submit(stop("b1", Side.BUY, "1", "110"))

    # Act: a gap up: open 112
    (fill,) = v.on_bar(PAIR, H, 112, 113, 111, 112, 100)

    # Assert: 112 x 1.0005 = 112.056
    assert fill.price == D("112.056")


def test_on_bar_when_triggered_stop_partially_filled_then_the_rest_fills_at_the_next_open_like_a_market_order() -> None:
    # Arrange: sell 40 at stop 90; 25 % of volume; slippage 5 bps, no impact, no fee
    v = venue(fee_bps=0, slippage_bps=5, impact_bps=0, max_volume_share=0.25)
    v.submit(stop("s1", Side.SELL, "40", "90"))
    first = v.on_bar(PAIR, H, 95, 96, 85, 88, 100)

    # Act: the next bar is back above the stop (low 99)
    second = v.on_bar(PAIR, 2 * H, 100, 101, 99, 100, 100)

    # Assert: 25 at 90 x 0.9995 = 89.955, then 15 at the open 100 x 0.9995 = 99.95
    assert [(f.qty, f.price) for f in first] == [(D(25), D("89.955"))]
    assert [(f.fill_id, f.qty, f.price) for f in second] == [("s1-2", D(15), D("99.95"))]
    assert known(v, "s1").status is OrderStatus.FILLED


# ---------------------------------------------------------------- latency
def test_on_bar_when_latency_lands_inside_the_bar_then_fills_in_it_at_the_arrival_time() -> None:
    # Arrange: hourly bars, 2 s latency; sent at H, arrives at H + 2, inside the bar [H, 2H)
    v = venue(bar_seconds=3600, latency_ms=2000)
    v.submit(order("b1", Side.BUY, "1", submitted_at=H))

    # Act
    (fill,) = v.on_bar_open(PAIR, H, 100.0)

    # Assert
    assert fill.time == H + 2


def test_on_bar_when_arrival_is_after_the_bar_end_then_waits_for_the_next_bar() -> None:
    # Arrange: sent at 2H - 1, arrives at 2H + 1, after the bar [H, 2H)
    v = venue(bar_seconds=3600, latency_ms=2000)
    v.submit(order("b1", Side.BUY, "1", submitted_at=2 * H - 1))

    # Act
    at_h = v.on_bar_open(PAIR, H, 100.0)
    at_2h = v.on_bar_open(PAIR, 2 * H, 101.0)

    # Assert
    assert at_h == []
    assert [f.time for f in at_2h] == [2 * H + 1]


def test_on_bar_when_bar_length_unknown_and_latency_then_the_order_waits_for_the_next_bar() -> None:
    # Arrange: bar_seconds 0: a bar is only its open instant; arrival H + 2 is after it
    v = venue(latency_ms=2000)
    v.submit(order("b1", Side.BUY, "1", submitted_at=H))

    # Act
    at_h = v.on_bar_open(PAIR, H, 100.0)
    at_2h = v.on_bar_open(PAIR, 2 * H, 101.0)

    # Assert
    assert at_h == []
    assert [f.time for f in at_2h] == [2 * H]


def _delay_s(seed: int, coid: str, latency_ms: int = 0, jitter_ms: int = 100_000_000) -> int:
    """Seconds from sending ``coid`` at 0 to its fill, in one long bar (the fill time is the arrival)."""
    v = venue(bar_seconds=10**6, latency_ms=latency_ms, latency_jitter_ms=jitter_ms, seed=seed)
    v.submit(order(coid, Side.BUY, "1", submitted_at=0))
    (fill,) = v.on_bar_open(PAIR, 0, 100.0)
    return fill.time


def test_submit_when_latency_jitter_then_the_same_seed_and_id_give_the_same_arrival() -> None:
    # Act
    first, second = _delay_s(7, "abc"), _delay_s(7, "abc")

    # Assert
    assert first == second


def test_submit_when_latency_jitter_then_other_ids_or_seeds_give_other_arrivals() -> None:
    # Act: jitter up to 100000 s, so a coincidence is negligible
    base, other_id, other_seed = _delay_s(7, "abc"), _delay_s(7, "abd"), _delay_s(8, "abc")

    # Assert
    assert base != other_id
    assert base != other_seed


def test_submit_when_latency_jitter_then_arrival_stays_within_latency_plus_jitter() -> None:
    # Act: latency 1 s, jitter up to 5 s -> arrival 1..6 s after sending (milliseconds rounded up)
    delays = [_delay_s(3, f"o{i}", latency_ms=1000, jitter_ms=5000) for i in range(40)]

    # Assert: within bounds, and the jitter does vary
    assert all(1 <= d <= 6 for d in delays)
    assert len(set(delays)) > 1


# ---------------------------------------------------------------- refusals
def test_submit_when_pair_not_listed_then_rejected_unknown_symbol() -> None:
    # Arrange
    v = venue(pairs={PAIR})

    # Act
    error = rejected(v, order("e1", Side.BUY, "1", pair=ETH))

    # Assert
    assert error.code == "unknown_symbol"


def test_submit_when_qty_not_on_the_step_then_rejected_precision() -> None:
    # Arrange: step 0.01
    v = venue(qty_step=0.01)

    # Act
    error = rejected(v, order("b1", Side.BUY, "0.015"))

    # Assert
    assert error.code == "precision"


def test_submit_when_qty_on_the_step_then_accepted() -> None:
    # Arrange
    v = venue(qty_step=0.01)

    # Act
    accepted = v.submit(order("b1", Side.BUY, "0.02"))

    # Assert
    assert accepted.status is OrderStatus.SUBMITTED


@pytest.mark.parametrize(
    "small",
    [limit("l1", Side.BUY, "1", "10"), stop("s1", Side.SELL, "1", "10"),
     order("m1", Side.BUY, "1", ref_price="10")],
    ids=["limit_price", "stop_price", "ref_price"],
)
def test_submit_when_notional_below_the_minimum_then_rejected_min_notional(small: VenueOrder) -> None:
    # Arrange: minimum 50; each order is 1 x 10 = 10
    v = venue(min_notional=50)

    # Act
    error = rejected(v, small)

    # Assert
    assert error.code == "min_notional"


def test_submit_when_market_order_without_ref_price_then_the_last_close_prices_it_for_min_notional() -> None:
    # Arrange: the last BTC bar closed at 10
    v = venue(min_notional=50)
    v.on_bar(PAIR, H, 12, 12, 9, 10, 100)

    # Act: 1 x 10 = 10 < 50
    error = rejected(v, order("m1", Side.BUY, "1", submitted_at=2 * H))

    # Assert
    assert error.code == "min_notional"


def test_submit_when_no_price_known_at_all_then_accepted_unchecked() -> None:
    # Arrange: a minimum, but no bar seen and no ref_price
    v = venue(min_notional=50)

    # Act
    accepted = v.submit(order("m1", Side.BUY, "0.001"))

    # Assert
    assert accepted.status is OrderStatus.SUBMITTED


def test_submit_when_buy_notional_plus_fee_exceeds_cash_then_rejected_insufficient_balance() -> None:
    # Arrange: cash 1000, fee 10 bps
    v = venue(cash="1000", fee_bps=10)

    # Act: 10 x 100 x 1.001 = 1001 > 1000
    error = rejected(v, order("b1", Side.BUY, "10", ref_price="100"))

    # Assert
    assert error.code == "insufficient_balance"


def test_submit_when_buy_notional_plus_fee_fits_the_cash_then_accepted() -> None:
    # Arrange
    v = venue(cash="1000", fee_bps=10)

    # Act: 9.99 x 100 x 1.001 = 999.999 <= 1000
    accepted = v.submit(order("b1", Side.BUY, "9.99", ref_price="100"))

    # Assert
    assert accepted.status is OrderStatus.SUBMITTED


def test_submit_when_open_buys_hold_the_cash_then_rejected_insufficient_balance() -> None:
    # Arrange: a resting buy of 5 at 100 holds 5 x 100 x 1.001 = 500.5 of the 1000
    v = venue(cash="1000", fee_bps=10)
    v.submit(limit("l1", Side.BUY, "5", "100"))

    # Act: another 500.5 -> 1001 > 1000
    error = rejected(v, order("b2", Side.BUY, "5", ref_price="100"))

    # Assert
    assert error.code == "insufficient_balance"


def test_submit_when_holding_buy_is_cancelled_then_its_cash_is_free_again() -> None:
    # Arrange
    v = venue(cash="1000", fee_bps=10)
    v.submit(limit("l1", Side.BUY, "5", "100"))
    v.cancel(C("l1"))

    # Act
    accepted = v.submit(order("b2", Side.BUY, "5", ref_price="100"))

    # Assert
    assert accepted.status is OrderStatus.SUBMITTED


def test_submit_when_sell_larger_than_cash_then_accepted_as_a_short() -> None:
    # Arrange: sells are not checked against cash (the venue allows shorts)
    v = venue(cash="1000")

    # Act
    accepted = v.submit(order("s1", Side.SELL, "100", ref_price="100"))

    # Assert
    assert accepted.status is OrderStatus.SUBMITTED


def test_submit_when_previously_rejected_id_comes_again_then_it_is_judged_afresh() -> None:
    # Arrange: refused for cash, then the cash limit no longer binds (a smaller qty under the same id)
    v = venue(cash="1000", fee_bps=10)
    rejected(v, order("b1", Side.BUY, "10", ref_price="100"))

    # Act
    accepted = v.submit(order("b1", Side.BUY, "1", ref_price="100"))

    # Assert
    assert (accepted.status, accepted.qty) == (OrderStatus.SUBMITTED, D(1))


# ---------------------------------------------------------------- idempotence and queries
def test_order_when_known_then_the_venue_view_follows_its_fills() -> None:
    # Arrange
    v = bare()
    v.submit(order("b1", Side.BUY, "2"))
    submitted = known(v, "b1")

    # Act
    v.on_bar_open(PAIR, H, 100.0)
    filled = known(v, "b1")

    # Assert
    assert (submitted.status, submitted.filled_qty, submitted.venue_order_id) == (OrderStatus.SUBMITTED, D(0),
                                                                                  "paper-1")
    assert (filled.status, filled.filled_qty) == (OrderStatus.FILLED, D(2))


def test_order_when_unknown_then_none() -> None:
    # Act / Assert
    assert venue().order(C("nope")) is None


def test_on_bar_when_same_bar_seen_again_then_nothing_changes() -> None:
    # Arrange: a fill at the bar H; then a new order waits
    v = bare()
    v.submit(order("a", Side.BUY, "1"))
    v.on_bar(PAIR, H, 100, 101, 99, 100, 0)
    v.submit(order("b", Side.BUY, "1"))
    before = (v.balances(), v.positions(), v.open_orders(), v.fills_since(0))

    # Act: the same bar, then an earlier one
    same = v.on_bar(PAIR, H, 100, 101, 99, 100, 0)
    earlier = v.on_bar(PAIR, 0, 90, 91, 89, 90, 0)

    # Assert: b still waits for the next new bar
    assert (same, earlier) == ([], [])
    assert (v.balances(), v.positions(), v.open_orders(), v.fills_since(0)) == before


def test_on_bar_when_a_bar_of_another_pair_at_an_earlier_time_then_it_is_new_for_that_pair() -> None:
    # Arrange: BTC has seen the bar at 2H
    v = bare()
    v.on_bar(PAIR, 2 * H, 100, 100, 100, 100, 0)
    v.submit(order("e", Side.BUY, "1", pair=ETH))

    # Act: ETH's bar at H
    fills = v.on_bar(ETH, H, 10, 10, 10, 10, 0)

    # Assert
    assert [f.client_order_id for f in fills] == ["e"]


# ---------------------------------------------------------------- the SQLite store
STORE_SETTINGS: dict[str, Any] = {"fee_bps": 10, "slippage_bps": 5, "impact_bps": 20, "max_volume_share": 0.25}


def _trade(v: PaperVenue) -> None:
    """Orders of every kind and one bar at H: m1 fills 25 of 40 (budget 0.25 x 100), m2 gets nothing left,
    l1 rests (low 95 > 90), s1 is triggered (low 95 <= 96) but finds no budget, c1 is cancelled."""
    v.submit(order("m1", Side.BUY, "40"))
    v.submit(order("m2", Side.BUY, "10"))
    v.submit(limit("l1", Side.BUY, "1", "90"))
    v.submit(stop("s1", Side.SELL, "30", "96"))
    v.submit(limit("c1", Side.SELL, "1", "200"))
    v.cancel(C("c1"))
    v.on_bar(PAIR, H, 100, 101, 95, 98, 100)


def _book(v: PaperVenue) -> tuple[Any, ...]:
    return (v.balances(), v.positions(), v.open_orders(), [v.order(C(c)) for c in ("m1", "m2", "l1", "s1", "c1")],
            v.fills_since(0))


def test_store_when_reopened_then_the_book_is_as_left(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "v.sqlite"
    v = venue(store=path, **STORE_SETTINGS)
    _trade(v)
    left = _book(v)
    v.close()

    # Act: the cash given to a reopened venue is ignored: the store's book wins
    reopened = venue(cash="1", store=path, **STORE_SETTINGS)

    # Assert: balances, positions, open orders (in submission order), every order and every fill
    assert _book(reopened) == left
    assert [o.client_order_id for o in reopened.open_orders()] == ["m1", "m2", "l1", "s1"]


def test_store_when_reopened_then_a_replayed_bar_changes_nothing(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "v.sqlite"
    v = venue(store=path, **STORE_SETTINGS)
    _trade(v)
    v.close()
    reopened = venue(store=path, **STORE_SETTINGS)
    left = _book(reopened)

    # Act: a restarted desk replays the bar at H
    fills = reopened.on_bar(PAIR, H, 100, 101, 95, 98, 100)

    # Assert
    assert fills == []
    assert _book(reopened) == left


def test_store_when_reopened_then_later_bars_fill_as_if_the_venue_never_stopped(tmp_path: Path) -> None:
    # Arrange: the same trading on a venue that stays up
    path = tmp_path / "v.sqlite"
    v = venue(store=path, **STORE_SETTINGS)
    _trade(v)
    v.close()
    reopened = venue(store=path, **STORE_SETTINGS)
    twin = venue(**STORE_SETTINGS)
    _trade(twin)

    # Act: at 2H m1's last 15 and m2's 10 share the budget 25 in submission order; at 3H (volume 1000, above
    # the stop 96) the triggered s1 fills at the open like a market order
    later = [(w.on_bar(PAIR, 2 * H, 99, 100, 97, 99, 100), w.on_bar(PAIR, 3 * H, 99, 100, 98, 99, 1000))
             for w in (reopened, twin)]

    # Assert
    assert later[0] == later[1]
    assert [(f.fill_id, f.qty) for f in later[0][0]] == [("m1-2", D(15)), ("m2-1", D(10))]
    assert [(f.fill_id, f.qty) for f in later[0][1]] == [("s1-1", D(30))]
    assert _book(reopened) == _book(twin)


def test_store_when_reopened_then_new_orders_continue_the_venue_order_ids(tmp_path: Path) -> None:
    # Arrange: five orders were accepted before (paper-1 .. paper-5)
    path = tmp_path / "v.sqlite"
    v = venue(store=path, **STORE_SETTINGS)
    _trade(v)
    v.close()
    reopened = venue(store=path, **STORE_SETTINGS)

    # Act
    accepted = reopened.submit(order("n1", Side.BUY, "1", submitted_at=2 * H))

    # Assert
    assert accepted.venue_order_id == "paper-6"


def test_embedded_when_no_store_then_true() -> None:
    # Act / Assert
    assert venue().embedded is True


def test_embedded_when_store_then_false(tmp_path: Path) -> None:
    # Act / Assert
    assert venue(store=tmp_path / "v.sqlite").embedded is False


def test_store_when_opened_with_another_quote_then_invalid_input_naming_both(tmp_path: Path) -> None:
    # Arrange: a USDT book
    path = tmp_path / "v.sqlite"
    venue(store=path).close()

    # Act / Assert
    with pytest.raises(InvalidInput, match=r"book is in USDT, not EUR"):
        PaperVenue("EUR", D(1000), store=path)


def test_restore_when_venue_has_a_store_then_nothing_changes(tmp_path: Path) -> None:
    # Arrange
    v = venue(store=tmp_path / "v.sqlite", **STORE_SETTINGS)
    _trade(v)
    left = _book(v)

    # Act: the ledger's state is another book entirely
    v.restore(_state_with_history())

    # Assert
    assert _book(v) == left


# ---------------------------------------------------------------- determinism and bookkeeping
SIM_SETTINGS: dict[str, Any] = {"fee_bps": 10, "maker_fee_bps": 2, "slippage_bps": 5, "impact_bps": 20,
                                "max_volume_share": 0.25, "latency_ms": 500, "latency_jitter_ms": 3000,
                                "limit_ttl_s": 7200}

# (open, close, extra above, extra below, volume) of one bar
_bar = st.tuples(st.integers(50, 150), st.integers(50, 150), st.integers(0, 10), st.integers(0, 10),
                 st.integers(0, 200))
# (pair, side, type, qty in hundredths, price offset in % of the last close)
_order = st.tuples(st.sampled_from([PAIR, ETH]), st.sampled_from(list(Side)), st.sampled_from(list(OrderType)),
                   st.integers(1, 3000), st.integers(-15, 15))
# each step: orders sent at the step's time, then the bar of one pair that opens then
_steps = st.lists(st.tuples(st.lists(_order, max_size=3), st.sampled_from([PAIR, ETH]), _bar), min_size=1,
                  max_size=10)

Step = tuple[list[tuple[str, Side, OrderType, int, int]], str, tuple[int, int, int, int, int]]


def _simulate(steps: list[Step], seed: int) -> tuple[PaperVenue, list[VenueOrder], list[VenueFill]]:
    v = venue(cash="10000000", bar_seconds=H, seed=seed, **SIM_SETTINGS)
    last = {PAIR: D(100), ETH: D(100)}
    sent: list[VenueOrder] = []
    fills: list[VenueFill] = []
    for i, (orders, bar_pair, (open_, close, up, down, volume)) in enumerate(steps):
        t = (i + 1) * H
        for j, (pair, side, kind, hundredths, offset) in enumerate(orders):
            level = last[pair] * (100 + offset) / 100
            o = VenueOrder(C(f"o{i}-{j}"), pair, side, kind, D(hundredths) / 100, t,
                           price=level if kind is OrderType.LIMIT else None,
                           stop_price=level if kind is OrderType.STOP_MARKET else None)
            sent.append(v.submit(o))
        fills += v.on_bar(bar_pair, t, open_, max(open_, close) + up, min(open_, close) - down, close, volume)
        last[bar_pair] = D(close)
    return v, sent, fills


@settings(max_examples=60, deadline=None)
@given(steps=_steps, seed=st.integers(0, 3))
def test_on_bar_when_same_orders_bars_and_seed_then_two_venues_fill_identically(steps: list[Step], seed: int) -> None:
    # Act
    first, second = _simulate(steps, seed), _simulate(steps, seed)

    # Assert
    assert first[2] == second[2]
    assert _book(first[0]) == _book(second[0])


@settings(max_examples=60, deadline=None)
@given(steps=_steps, seed=st.integers(0, 3))
def test_on_bar_when_random_orders_and_bars_then_cash_positions_and_filled_qty_add_up(steps: list[Step],
                                                                                      seed: int) -> None:
    # Act
    v, sent, fills = _simulate(steps, seed)

    # Assert: cash moved by -sum(sign x qty x price) - fees; positions are the signed sums of the fills;
    # each order's filled_qty is the sum of its fills and never more than its qty
    flow = sum((f.side.sign * f.qty * f.price + f.fee for f in fills), D(0))
    assert v.balances()["USDT"] == D(10000000) - flow
    net: dict[str, Decimal] = defaultdict(Decimal)
    per_order: dict[str, Decimal] = defaultdict(Decimal)
    for f in fills:
        net[f.pair] += f.side.sign * f.qty
        per_order[f.client_order_id] += f.qty
    assert v.positions() == {p: q for p, q in net.items() if q != 0}
    assert fills == v.fills_since(0)[0]
    for o in sent:
        now = v.order(o.client_order_id)
        assert now is not None
        assert now.filled_qty == per_order[o.client_order_id] <= now.qty


@settings(max_examples=60, deadline=None)
@given(steps=_steps, seed=st.integers(0, 3))
def test_on_bar_when_random_limit_orders_fill_then_never_worse_than_the_limit(steps: list[Step], seed: int) -> None:
    # Act
    v, _, fills = _simulate(steps, seed)

    # Assert: a buy pays at most its limit, a sell gets at least its limit
    for f in fills:
        o = v.order(f.client_order_id)
        assert o is not None
        if o.type is OrderType.LIMIT:
            assert o.price is not None
            assert (f.price <= o.price) if f.side is Side.BUY else (f.price >= o.price)


# ---------------------------------------------------------------- trades
def test_on_trade_when_trades_print_then_orders_fill_against_them_within_their_size() -> None:
    # Arrange: a buy of 3 arrives at H; max_volume_share 0.5; trades of 2 @ 100 and 4 @ 101 at H+10, H+20
    v = PaperVenue("USDT", D(10000), PaperVenueConfig(fee_bps=0, slippage_bps=0, impact_bps=0, max_volume_share=0.5))
    v.submit(order("t1", Side.BUY, "3"))

    # Act
    first = v.on_trade(PAIR, H + 10, 100.0, 2.0)
    second = v.on_trade(PAIR, H + 20, 101.0, 4.0)

    # Assert: half of 2 = 1 at 100, then the remaining 2 of half of 4 at 101
    assert [(f.qty, f.price, f.time) for f in first + second] == [(D(1), D(100), H + 10), (D(2), D(101), H + 20)]
    assert v.balances()["USDT"] == D(10000) - 100 - 202


def test_on_trade_when_order_arrives_after_the_trade_then_it_waits_for_a_later_one() -> None:
    v = PaperVenue("USDT", D(10000), PaperVenueConfig(latency_ms=5000, fee_bps=0, slippage_bps=0, impact_bps=0),
                   bar_seconds=H)
    v.submit(order("t1", Side.BUY, "1"))  # arrives at H + 5
    assert v.on_trade(PAIR, H + 2, 100.0, 10.0) == []
    (fill,) = v.on_trade(PAIR, H + 6, 100.5, 10.0)
    assert (fill.time, fill.price) == (H + 6, D("100.5"))


def test_on_trade_when_limit_resting_then_a_trade_at_its_price_fills_it_as_maker() -> None:
    v = PaperVenue("USDT", D(10000), PaperVenueConfig(fee_bps=10, maker_fee_bps=2))
    v.submit(VenueOrder(ClientOrderId("l1"), PAIR, Side.BUY, OrderType.LIMIT, D(1), H, price=D(99)))
    assert v.on_trade(PAIR, H + 1, 99.5, 5.0) == []
    (fill,) = v.on_trade(PAIR, H + 2, 99.0, 5.0)
    # a trade at the limit meets the resting order: filled at the limit, maker fee 2 bps
    assert (fill.price, fill.liquidity, fill.fee) == (D(99), "maker", D("0.0198"))


# ---------------------------------------------------------------- the quoted spread (the monitor's, in a replay)
def test_quoted_spread_when_a_bar_ranges_four_times_the_usual_then_four_times_the_spread() -> None:
    # Arrange: 200 bars opening at 100 and ranging 1% (99.5-100.5); bar 180 ranges 4%, bar 190 only 0.1%
    import numpy as np

    from execdesk.venues.paper import quoted_spread_bps

    open_ = np.full(200, 100.0)
    high, low = open_ + 0.5, open_ - 0.5
    high[180], low[180] = 102.0, 98.0
    high[190], low[190] = 100.05, 99.95

    # Act
    spread = quoted_spread_bps(open_, high, low, slippage_bps=5.0)

    # Assert: 2 x 5 bps at the typical range; x4 in the wide bar; the floor (a quarter) in the narrow one; the wide
    # bar does not move the median of the week before the next bars
    assert spread[0] == 10.0  # no bar before it: its own range is the typical one
    assert spread[179] == 10.0
    assert spread[180] == 40.0
    assert spread[181] == 10.0
    assert spread[190] == 2.5


def test_quoted_spreads_when_asked_of_the_venue_then_the_model_at_its_slippage_and_the_same_every_time() -> None:
    import numpy as np

    venue = PaperVenue("USDT", D(10_000), PaperVenueConfig(slippage_bps=7.0))
    rng = np.random.default_rng(3)
    open_ = 100 + rng.normal(0, 1, 300).cumsum()
    high, low = open_ + rng.uniform(0.1, 1.0, 300), open_ - rng.uniform(0.1, 1.0, 300)

    first = venue.quoted_spreads(open_, high, low)

    assert first[0] == 14.0  # 2 x 7 bps
    assert np.array_equal(first, venue.quoted_spreads(open_, high, low))  # deterministic
    assert (first >= 14.0 * 0.25).all()


# ---------------------------------------------------------------- batches and bars of one pair
def test_submit_many_when_a_batch_then_one_answer_per_order_in_order_as_submit_gives_them() -> None:
    # Arrange: cash 10,000; a buy of 200 at 100 costs 20,000 (refused); the same orders to a venue one by one
    batch, single = bare(), bare()
    orders = [order("a", Side.BUY, "10", ref_price="100"), order("big", Side.BUY, "200", ref_price="100"),
              order("b", Side.SELL, "1", pair=ETH, ref_price="10"), order("a", Side.BUY, "10", ref_price="100")]

    # Act
    answers = batch.submit_many(orders)

    # Assert: accepted, refused in its place (not raised), accepted, the known order again; as submit answers
    assert [type(a) for a in answers] == [VenueOrder, OrderRejected, VenueOrder, VenueOrder]
    refusal = answers[1]
    assert isinstance(refusal, OrderRejected)
    assert refusal.code == "insufficient_balance"
    assert answers[3] is answers[0]
    one_by_one: list[Any] = []
    for o in orders:
        try:
            one_by_one.append(single.submit(o))
        except OrderRejected as exc:
            one_by_one.append(exc.code)
    assert [a if isinstance(a, VenueOrder) else a.code for a in answers] == one_by_one
    assert batch.open_orders() == single.open_orders()
    assert [o.venue_order_id for o in batch.open_orders()] == ["paper-1", "paper-2"]
    assert batch.pending_pairs() == {PAIR, ETH}


def test_submit_many_when_the_book_persists_then_a_reopened_venue_holds_the_batch(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "v.sqlite"
    v = venue(store=path, **STORE_SETTINGS)

    # Act
    v.submit_many([order("m1", Side.BUY, "1", ref_price="100"), order("m2", Side.SELL, "1", pair=ETH)])
    v.close()

    # Assert
    reopened = venue(store=path, **STORE_SETTINGS)
    assert [(o.client_order_id, o.status) for o in reopened.open_orders()] == [
        ("m1", OrderStatus.SUBMITTED), ("m2", OrderStatus.SUBMITTED)]


def test_on_bar_when_orders_of_several_pairs_rest_then_a_bar_meets_only_its_pairs_in_submission_order() -> None:
    # Arrange: market orders on BTC and ETH, interleaved
    v = bare()
    for coid, pair in [("b1", PAIR), ("e1", ETH), ("b2", PAIR), ("e2", ETH)]:
        v.submit(order(coid, Side.BUY, "1", pair=pair))

    # Act
    fills = v.on_bar(PAIR, H, 100.0, 101.0, 99.0, 100.0, 1e6)

    # Assert: BTC's two filled in their order; ETH's still open, in theirs
    assert [f.client_order_id for f in fills] == ["b1", "b2"]
    assert [o.client_order_id for o in v.open_orders()] == ["e1", "e2"]
    assert v.pending_pairs() == {ETH}

    # Act 2: ETH's bar; then nothing is pending
    assert [f.client_order_id for f in v.on_bar(ETH, H, 10.0, 10.0, 10.0, 10.0, 1e6)] == ["e1", "e2"]
    assert (v.open_orders(), v.pending_pairs(), v.has_pending()) == ([], set(), False)
