"""Tests of execdesk.domain.state: the fold of events into the desk's state (hand-computed accounting)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from execdesk.domain.events import Event, EventKind, canonical_json
from execdesk.domain.state import DeskState
from execdesk.domain.types import ORDER_TRANSITIONS, OrderStatus, TradingState
from execdesk.errors import LedgerError

DEP = "dep-1"
PAIR = "BTC/USDT"
D = Decimal


# ---------------------------------------------------------------- event builders
def configured(capital: str = "10000", quote: str = "USDT") -> Event:
    return Event(1, EventKind.DESK_CONFIGURED, {"config": {"name": "test"}, "identity": {"desk": "test"},
                                                "quote": quote, "capital": D(capital)})


def deployment(dep: str = DEP, capital: str = "10000") -> Event:
    return Event(2, EventKind.DEPLOYMENT_CREATED, {
        "deployment_id": dep, "strategy_id": "STR-001", "name": "ema_cross", "version": 1, "bundle_hash": "ab" * 32,
        "timeframe": "1h", "pairs": [PAIR], "allocation": D("1"), "capital": D(capital)}, dep)


def submitted(coid: str, side: str, qty: str, time: int = 10, dep: str = DEP, pair: str = PAIR) -> Event:
    return Event(time, EventKind.ORDER_SUBMITTED, {
        "client_order_id": coid, "deployment_id": dep, "pair": pair, "side": side,
        "direction": "LONG" if side == "BUY" else "SHORT", "type": "MARKET", "qty": D(qty),
        "reason": "entry_signal", "signal_time": time - 1, "ref_price": D("100")}, dep)


def filled(coid: str, qty: str, price: str, fee: str = "0", time: int = 11, fill_id: str | None = None) -> Event:
    return Event(time, EventKind.ORDER_FILLED, {
        "client_order_id": coid, "fill_id": fill_id or f"{coid}-1", "qty": D(qty), "price": D(price),
        "fee": D(fee)}, DEP)


def trade(coid: str, side: str, qty: str, price: str, fee: str = "0", time: int = 10) -> list[Event]:
    """An order submitted at ``time`` and filled whole at ``time + 1``."""
    return [submitted(coid, side, qty, time), filled(coid, qty, price, fee, time + 1)]


def fold(*groups: Event | list[Event]) -> DeskState:
    events: list[Event] = []
    for g in groups:
        events.extend(g if isinstance(g, list) else [g])
    return DeskState.from_events(events)


def as_read_back(event: Event) -> Event:
    """The event as the ledger gives it back: the payload through canonical JSON (Decimals as strings)."""
    payload: dict[str, Any] = json.loads(canonical_json(event.payload))
    return Event(event.time, event.kind, payload, event.deployment_id, event.seq)


# ---------------------------------------------------------------- long positions
def test_apply_when_long_opened_then_cash_position_and_avg_price_follow_the_fill() -> None:
    # Arrange / Act: buy 10 @ 100, fee 1
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100", "1"))

    # Assert: cash 10000 - 10*100 - 1 = 8999
    assert s.cash() == D("8999")
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert (pos.qty, pos.avg_price, pos.fees, pos.realized_pnl, pos.opened_at) == (D(10), D(100), D(1), D(0), 11)
    assert s.deployments[DEP].trades == 0
    assert len(s.open_positions()) == 1


def test_apply_when_long_added_to_then_avg_price_is_qty_weighted() -> None:
    # Arrange / Act: buy 10 @ 100 (fee 1), then 10 @ 110 (fee 1.1)
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100", "1"),
             trade("o2", "BUY", "10", "110", "1.1", time=20))

    # Assert: avg (10*100 + 10*110) / 20 = 105; cash 8999 - 1100 - 1.1 = 7897.9
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.qty == D(20)
    assert pos.avg_price == D(105)
    assert pos.opened_at == 11  # adding does not move the opening time
    assert s.cash() == D("7897.9")
    assert pos.fees == D("2.1")


def test_apply_when_long_partially_closed_then_realised_pnl_booked_and_avg_price_kept() -> None:
    # Arrange / Act: 20 held at avg 105 (as above), sell 5 @ 120 fee 0.6
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100", "1"),
             trade("o2", "BUY", "10", "110", "1.1", time=20), trade("o3", "SELL", "5", "120", "0.6", time=30))

    # Assert: realised 5 * (120 - 105) = 75; cash 7897.9 + 600 - 0.6 = 8497.3
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.qty == D(15)
    assert pos.avg_price == D(105)
    assert pos.realized_pnl == D(75)
    assert s.deployments[DEP].realized_pnl == D(75)
    assert s.cash() == D("8497.3")
    assert s.deployments[DEP].trades == 0  # the round trip is still in progress


def test_apply_when_long_fully_closed_at_a_profit_then_one_winning_trade() -> None:
    # Arrange / Act: ... then sell the remaining 15 @ 110, fee 1.65
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100", "1"),
             trade("o2", "BUY", "10", "110", "1.1", time=20), trade("o3", "SELL", "5", "120", "0.6", time=30),
             trade("o4", "SELL", "15", "110", "1.65", time=40))

    # Assert: realised 75 + 15 * (110 - 105) = 150; fees 1 + 1.1 + 0.6 + 1.65 = 4.35;
    # cash 10000 + 150 - 4.35 = 10145.65; the trip made 150 - 4.35 > 0: a win
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.qty == 0
    assert pos.avg_price == 0
    assert pos.realized_pnl == D(150)
    assert pos.fees == D("4.35")
    dep = s.deployments[DEP]
    assert (dep.realized_pnl, dep.fees, dep.trades, dep.wins) == (D(150), D("4.35"), 1, 1)
    assert s.cash() == D("10145.65")
    assert s.open_positions() == []


def test_apply_when_second_trip_loses_then_trades_two_wins_one() -> None:
    # Arrange / Act: a winning trip (buy 1 @ 100, sell @ 110), then a losing one (buy 1 @ 100, sell @ 90)
    s = fold(configured(), deployment(), trade("o1", "BUY", "1", "100"), trade("o2", "SELL", "1", "110", time=20),
             trade("o3", "BUY", "1", "100", time=30), trade("o4", "SELL", "1", "90", time=40))

    # Assert: realised +10 - 10 = 0; cash back to 10000
    dep = s.deployments[DEP]
    assert (dep.trades, dep.wins, dep.realized_pnl) == (2, 1, D(0))
    assert s.cash() == D(10000)
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.opened_at == 31  # the second trip reopened the position


# ---------------------------------------------------------------- fees
def test_apply_when_gross_profit_smaller_than_fees_then_trip_is_not_a_win() -> None:
    # Arrange / Act: buy 10 @ 100 fee 1, sell 10 @ 100.1 fee 1
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100", "1"),
             trade("o2", "SELL", "10", "100.1", "1", time=20))

    # Assert: realised 10 * 0.1 = 1 but fees 2: the trip lost 1; cash 10000 + 1 - 2 = 9999
    dep = s.deployments[DEP]
    assert dep.realized_pnl == D(1)
    assert dep.fees == D(2)
    assert (dep.trades, dep.wins) == (1, 0)
    assert s.cash() == D(9999)


def test_apply_when_fill_pays_fee_then_cash_drops_by_notional_plus_fee() -> None:
    # Arrange / Act: buy 2 @ 50 with fee 0.1
    s = fold(configured("1000"), deployment(), trade("o1", "BUY", "2", "50", "0.1"))

    # Assert: 1000 - 2*50 - 0.1 = 899.9
    assert s.cash() == D("899.9")
    assert s.deployments[DEP].fees == D("0.1")


# ---------------------------------------------------------------- short positions
def test_apply_when_short_opened_then_qty_negative_and_cash_credited() -> None:
    # Arrange / Act: sell 10 @ 100, fee 1
    s = fold(configured(), deployment(), trade("o1", "SELL", "10", "100", "1"))

    # Assert: cash 10000 + 1000 - 1 = 10999; position -10 @ 100
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert (pos.qty, pos.avg_price) == (D(-10), D(100))
    assert s.cash() == D(10999)


def test_apply_when_short_covered_lower_then_profit_and_winning_trade() -> None:
    # Arrange / Act: sell 10 @ 100 fee 1, buy back 10 @ 90 fee 0.9
    s = fold(configured(), deployment(), trade("o1", "SELL", "10", "100", "1"),
             trade("o2", "BUY", "10", "90", "0.9", time=20))

    # Assert: realised 10 * (100 - 90) = 100; cash 10999 - 900 - 0.9 = 10098.1 = 10000 + 100 - 1.9
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.qty == 0
    assert pos.realized_pnl == D(100)
    dep = s.deployments[DEP]
    assert (dep.trades, dep.wins, dep.realized_pnl, dep.fees) == (1, 1, D(100), D("1.9"))
    assert s.cash() == D("10098.1")


def test_apply_when_short_covered_higher_then_loss() -> None:
    # Arrange / Act: sell 4 @ 50, cover 4 @ 55
    s = fold(configured(), deployment(), trade("o1", "SELL", "4", "50"), trade("o2", "BUY", "4", "55", time=20))

    # Assert: realised 4 * (50 - 55) = -20
    dep = s.deployments[DEP]
    assert (dep.realized_pnl, dep.trades, dep.wins) == (D(-20), 1, 0)
    assert s.cash() == D(9980)


# ---------------------------------------------------------------- flip through zero
def test_apply_when_long_flipped_through_zero_then_short_remainder_at_fill_price() -> None:
    # Arrange / Act: long 10 @ 100, then sell 15 @ 110 at time 21
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100"), trade("o2", "SELL", "15", "110", time=20))

    # Assert: the 10 long close for 10 * (110 - 100) = 100; 5 remain short, opened at 110 at time 21;
    # cash 10000 - 1000 + 1650 = 10650
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert (pos.qty, pos.avg_price, pos.opened_at) == (D(-5), D(110), 21)
    assert pos.realized_pnl == D(100)
    assert s.cash() == D(10650)


def test_apply_when_flip_closes_a_winning_long_then_that_trip_counts_as_a_trade() -> None:
    # Arrange / Act: long 10 @ 100, sell 15 @ 110 (flip), then cover the short 5 @ 120 (a loss)
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100"), trade("o2", "SELL", "15", "110", time=20),
             trade("o3", "BUY", "5", "120", time=30))

    # Assert: trip 1 (long) +100 -> win; trip 2 (short 5 from 110 to 120) -50 -> loss
    dep = s.deployments[DEP]
    assert dep.realized_pnl == D(50)
    assert (dep.trades, dep.wins) == (2, 1)
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.qty == 0


def test_apply_when_flip_fill_pays_a_fee_then_fee_is_shared_pro_rata_between_trips() -> None:
    # Arrange / Act: long 10 @ 100 (no fee); sell 20 @ 100.5 fee 2 (flip to short 10); cover 10 @ 100 (no fee)
    s = fold(configured(), deployment(), trade("o1", "BUY", "10", "100"),
             trade("o2", "SELL", "20", "100.5", "2", time=20), trade("o3", "BUY", "10", "100", time=30))

    # Assert: trip 1: +10 * 0.5 = 5 less half the flip fee (10/20 * 2 = 1) -> +4, a win;
    # trip 2: +10 * 0.5 = 5 less the other half (1) -> +4, a win. Deployment fees 2, realised 10.
    dep = s.deployments[DEP]
    assert (dep.trades, dep.wins) == (2, 2)
    assert (dep.realized_pnl, dep.fees) == (D(10), D(2))
    assert s.cash() == D(10008)  # 10000 + 10 - 2


# ---------------------------------------------------------------- duplicates and orders
def test_apply_when_same_fill_id_reported_twice_then_counted_once() -> None:
    # Arrange
    events = [configured(), deployment(), submitted("o1", "BUY", "10"), filled("o1", "10", "100", "1")]

    # Act: the venue reports the same fill again
    s = DeskState.from_events([*events, filled("o1", "10", "100", "1")])

    # Assert: one fill, 10 held, cash 10000 - 1000 - 1
    assert len(s.fills) == 1
    pos = s.position(DEP, PAIR)
    assert pos is not None
    assert pos.qty == D(10)
    assert s.cash() == D(8999)
    assert s.orders["o1"].filled_qty == D(10)


def test_apply_when_order_filled_in_two_parts_then_partially_filled_then_filled_with_avg_price() -> None:
    # Arrange
    s = fold(configured(), deployment(), submitted("o1", "BUY", "10"))
    assert s.orders["o1"].status is OrderStatus.NEW  # recorded before the venue hears of it

    # Act 1: 4 @ 100
    s.apply(filled("o1", "4", "100", fill_id="f1", time=11))

    # Assert 1
    order = s.orders["o1"]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert (order.filled_qty, order.avg_price, order.updated_at) == (D(4), D(100), 11)
    assert order in s.open_orders()

    # Act 2: 6 @ 110
    s.apply(filled("o1", "6", "110", fill_id="f2", time=12))

    # Assert 2: avg (4*100 + 6*110) / 10 = 106
    assert order.status is OrderStatus.FILLED
    assert (order.filled_qty, order.avg_price, order.updated_at) == (D(10), D(106), 12)
    assert s.open_orders() == []


def test_apply_when_order_canceled_or_rejected_then_status_closed() -> None:
    # Arrange
    s = fold(configured(), deployment(), submitted("o1", "BUY", "1"), submitted("o2", "BUY", "1", time=20))

    # Act
    s.apply(Event(30, EventKind.ORDER_CANCELED, {"client_order_id": "o1", "reason": "test"}, DEP))
    s.apply(Event(31, EventKind.ORDER_REJECTED, {"client_order_id": "o2", "reason": "test"}, DEP))

    # Assert
    assert s.orders["o1"].status is OrderStatus.CANCELED
    assert s.orders["o2"].status is OrderStatus.REJECTED
    assert s.orders["o2"].updated_at == 31
    assert s.open_orders() == []


# ---------------------------------------------------------------- states, progress, fold
def test_apply_when_trading_and_deployment_state_change_then_recorded_with_reason() -> None:
    # Arrange
    s = fold(configured(), deployment())

    # Act
    s.apply(Event(5, EventKind.TRADING_STATE_CHANGED, {"to": "REDUCING", "reason": "drawdown 10%"}))
    s.apply(Event(6, EventKind.DEPLOYMENT_STATE_CHANGED, {"deployment_id": DEP, "to": "HALTED", "reason": "dd"}, DEP))

    # Assert
    assert (s.trading_state, s.trading_reason) == (TradingState.REDUCING, "drawdown 10%")
    assert (s.deployments[DEP].state, s.deployments[DEP].state_reason) == (TradingState.HALTED, "dd")


def test_apply_when_run_progresses_and_completes_then_bars_and_completed_follow() -> None:
    # Arrange
    s = fold(configured())

    # Act / Assert
    s.apply(Event(5, EventKind.RUN_STARTED, {"from_bar": 0, "bars": 10}))
    assert s.completed is False
    s.apply(Event(6, EventKind.RUN_PROGRESS, {"bar_time": 3600, "bars_done": 2}))
    assert (s.last_bar_time, s.bars_done) == (3600, 2)
    s.apply(Event(7, EventKind.RUN_COMPLETED, {}))
    assert s.completed is True


def test_apply_when_event_has_seq_then_last_seq_is_the_highest_seen() -> None:
    # Arrange
    s = DeskState()

    # Act: an alert (no handler) still advances last_seq
    s.apply(Event(1, EventKind.ALERT_RAISED, {"msg": "x"}, seq=7))
    s.apply(Event(1, EventKind.ALERT_RAISED, {"msg": "y"}, seq=3))

    # Assert
    assert s.last_seq == 7


def _history() -> list[Event]:
    raw = [configured(), deployment(), *trade("o1", "BUY", "10", "100", "1"),
           *trade("o2", "BUY", "10", "110", "1.1", time=20), *trade("o3", "SELL", "25", "120", "3", time=30),
           Event(40, EventKind.TRADING_STATE_CHANGED, {"to": "REDUCING", "reason": "dd"}),
           *trade("o4", "BUY", "5", "100", "0.5", time=50), Event(60, EventKind.RUN_PROGRESS,
                                                                 {"bar_time": 60, "bars_done": 6})]
    return [Event(e.time, e.kind, e.payload, e.deployment_id, i + 1) for i, e in enumerate(raw)]


def test_from_events_when_compared_with_incremental_apply_then_equal() -> None:
    # Arrange
    events = _history()
    incremental = DeskState()

    # Act
    for e in events:
        incremental.apply(e)
    incremental.dirty.clear()
    folded = DeskState.from_events(events)

    # Assert
    assert folded == incremental
    assert folded.last_seq == len(events)
    assert folded.dirty == set()


def test_from_events_when_payloads_read_back_as_json_strings_then_same_state() -> None:
    # Arrange: the same history as the ledger returns it (Decimals as strings)
    events = _history()

    # Act
    in_memory = DeskState.from_events(events)
    read_back = DeskState.from_events(as_read_back(e) for e in events)

    # Assert: 10@100 + 10@110 -> avg 105; sell 25 @ 120 -> realised 20*15 = 300, short 5 @ 120;
    # buy 5 @ 100 covers it: +5*20 = 100 -> realised 400
    assert read_back == in_memory
    assert in_memory.deployments[DEP].realized_pnl == D(400)


# ---------------------------------------------------------------- the order state machine
def accepted(coid: str, time: int = 10) -> Event:
    return Event(time, EventKind.ORDER_ACCEPTED, {"client_order_id": coid, "venue_order_id": "v-1"}, DEP)


def ended(kind: EventKind, coid: str, reason: str = "why", time: int = 12) -> Event:
    return Event(time, kind, {"client_order_id": coid, "reason": reason}, DEP)


def test_apply_when_order_recorded_then_new_and_acknowledged_then_submitted_with_venue_id() -> None:
    s = fold(configured(), deployment(), submitted("o1", "BUY", "1"))
    assert s.orders["o1"].status is OrderStatus.NEW
    s.apply(accepted("o1"))
    assert (s.orders["o1"].status, s.orders["o1"].venue_order_id) == (OrderStatus.SUBMITTED, "v-1")


def test_apply_when_fill_reported_before_the_acknowledgement_then_filled_and_ack_changes_nothing() -> None:
    s = fold(configured(), deployment(), submitted("o1", "BUY", "1"), filled("o1", "1", "100"), accepted("o1"))
    assert s.orders["o1"].status is OrderStatus.FILLED
    assert s.orders["o1"].venue_order_id == "v-1"


@pytest.mark.parametrize("kind", [EventKind.ORDER_CANCELED, EventKind.ORDER_REJECTED, EventKind.ORDER_EXPIRED])
def test_apply_when_filled_order_then_ended_again_then_ledger_error_names_both_states(kind: EventKind) -> None:
    s = fold(configured(), deployment(), submitted("o1", "BUY", "1"), filled("o1", "1", "100"))
    with pytest.raises(LedgerError, match=r"order o1 cannot go from FILLED to"):
        s.apply(ended(kind, "o1"))


def test_apply_when_rejected_after_a_partial_fill_then_ledger_error() -> None:
    s = fold(configured(), deployment(), submitted("o1", "BUY", "2"), accepted("o1"), filled("o1", "1", "100"))
    with pytest.raises(LedgerError, match="PARTIALLY_FILLED to REJECTED"):
        s.apply(ended(EventKind.ORDER_REJECTED, "o1"))


def test_apply_when_fills_exceed_the_order_then_ledger_error() -> None:
    s = fold(configured(), deployment(), submitted("o1", "BUY", "1"), filled("o1", "0.6", "100", fill_id="f1"))
    with pytest.raises(LedgerError, match=r"add up to 1\.2, more than its 1"):
        s.apply(filled("o1", "0.6", "100", fill_id="f2"))


def test_apply_when_a_fill_made_before_the_cancel_is_reported_after_it_then_it_counts_and_status_stays() -> None:
    # Arrange: cancelled with nothing filled, as far as the desk knew; the venue had filled 0.4 of it
    s = fold(configured(), deployment(), submitted("o1", "BUY", "1"), accepted("o1"),
             ended(EventKind.ORDER_CANCELED, "o1", "circuit breaker"))

    # Act
    s.apply(filled("o1", "0.4", "100", time=13))

    # Assert: the execution happened, so it is booked; the order stays cancelled
    assert (s.orders["o1"].status, s.orders["o1"].filled_qty) == (OrderStatus.CANCELED, Decimal("0.4"))
    assert s.positions[(DEP, PAIR)].qty == Decimal("0.4")
    assert s.orders["o1"].status_reason == "circuit breaker"


def test_order_transitions_when_listed_then_ends_are_final_and_new_can_reach_everything() -> None:
    ends = [OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED]
    assert all(not ORDER_TRANSITIONS[s] for s in ends)
    assert ORDER_TRANSITIONS[OrderStatus.NEW] == frozenset(OrderStatus) - {OrderStatus.NEW}
    assert not OrderStatus.PARTIALLY_FILLED.can_become(OrderStatus.REJECTED)
    assert OrderStatus.SUBMITTED.can_become(OrderStatus.EXPIRED)
