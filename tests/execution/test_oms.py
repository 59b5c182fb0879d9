"""Tests of execdesk.execution.oms.OrderManager: record before the venue, idempotent submits, fills once."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execdesk.domain.events import EventKind
from execdesk.domain.types import (
    ClientOrderId,
    Direction,
    IntentReason,
    OrderIntent,
    OrderStatus,
    Side,
    TradingState,
    client_order_id,
)
from execdesk.execution.oms import OrderManager
from execdesk.retry import RetryPolicy
from execdesk.risk.config import RiskConfig
from execdesk.risk.pretrade import Context, PreTrade, Verdict
from execdesk.store.ledger import Ledger
from execdesk.store.projections import all_projection_rows
from execdesk.venues.base import OrderRejected, VenueFill, VenueOrder, VenueUnavailable
from execdesk.venues.paper import PaperVenue, PaperVenueConfig
from tests.kit import desk_ledger

D = Decimal
DEP = "dep-1"
PAIR = "BTC/USDT"
H = 3600
T_SIGNAL = 1_700_006_400


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = desk_ledger(tmp_path / "home", DEP, [PAIR], D(10000))
    yield led
    led.close(flush=False)


def intent(reason: IntentReason = IntentReason.ENTRY_SIGNAL, side: Side = Side.BUY, signal_time: int = T_SIGNAL,
           qty: Decimal | None = None) -> OrderIntent:
    return OrderIntent(DEP, PAIR, side, Direction.LONG, reason, signal_time, D(100), qty)


def approved(qty: str = "2") -> Verdict:
    return Verdict(True, "approved", "within limits", D(qty))


class RemoteVenue:
    """A venue outside the process (embedded=False) that notes what the ledger held when it was called."""

    name = "remote"
    embedded = False

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.inner = PaperVenue("USDT", D(10000), PaperVenueConfig(fee_bps=0, slippage_bps=0))
        self.on_disk_at_submit: list[list[str]] = []

    def submit(self, order: VenueOrder) -> VenueOrder:
        flushed = [e.payload["client_order_id"] for e in self.ledger.events(kinds={EventKind.ORDER_SUBMITTED})]
        self.on_disk_at_submit.append(flushed)
        return self.inner.submit(order)

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        return self.inner.cancel(client_order_id)

    def order(self, client_order_id: ClientOrderId) -> VenueOrder | None:
        return self.inner.order(client_order_id)

    def open_orders(self) -> list[VenueOrder]:
        return self.inner.open_orders()

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        return self.inner.fills_since(cursor)

    def balances(self) -> dict[str, Decimal]:
        return self.inner.balances()

    def positions(self) -> dict[str, Decimal]:
        return self.inner.positions()


class RepeatingVenue(RemoteVenue):
    """A venue that ignores the cursor and reports every fill again (and each one twice)."""

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        fills, _ = self.inner.fills_since(0)
        return [f for f in fills for _ in range(2)], 0


def kinds(ledger: Ledger) -> list[EventKind]:
    ledger.flush()
    return [e.kind for e in ledger.events()]


# ---------------------------------------------------------------- submit
def test_submit_when_approved_then_order_recorded_but_venue_has_nothing_until_send(ledger: Ledger) -> None:
    # Arrange
    venue = PaperVenue("USDT", D(10000))
    oms = OrderManager(ledger, venue)

    # Act
    coid = oms.submit(intent(), approved(), T_SIGNAL + H)

    # Assert
    expected = client_order_id(DEP, PAIR, T_SIGNAL, "entry_signal", "BUY")
    assert coid == expected
    order = ledger.state.orders[expected]
    assert (order.status, order.qty, order.side, order.reason) == (OrderStatus.NEW, D(2), "BUY", "entry_signal")
    assert venue.open_orders() == []

    # Act 2
    oms.send()

    # Assert 2: the venue has it; an embedded venue's acknowledgement is not recorded (it is rebuilt from
    # the ledger and accepts synchronously): the order stays NEW until it fills (see the remote venue test)
    assert [o.client_order_id for o in venue.open_orders()] == [expected]
    assert venue.open_orders()[0].submitted_at == T_SIGNAL + H
    assert ledger.state.orders[expected].status is OrderStatus.NEW


def test_send_when_venue_is_remote_then_order_submitted_event_on_disk_before_the_venue_call(ledger: Ledger) -> None:
    # Arrange
    venue = RemoteVenue(ledger)
    oms = OrderManager(ledger, venue)
    coid = oms.submit(intent(), approved(), T_SIGNAL + H)

    # Act
    oms.send()

    # Assert: when the venue heard of the order, the ledger on disk already held it; its
    # acknowledgement is recorded after the call (and flushed before the next one), with the venue's id
    assert venue.on_disk_at_submit == [[coid]]
    assert ledger.state.orders[coid].status is OrderStatus.SUBMITTED
    assert ledger.state.orders[coid].venue_order_id == "paper-1"
    assert ledger.pending == 1  # the acknowledgement, flushed with the next batch


def test_submit_when_same_intent_again_then_none_and_nothing_recorded(ledger: Ledger) -> None:
    # Arrange
    venue = PaperVenue("USDT", D(10000))
    oms = OrderManager(ledger, venue)
    first = oms.submit(intent(), approved(), T_SIGNAL + H)
    oms.send()
    seq = ledger.state.last_seq

    # Act: the same (deployment, pair, signal bar, reason, side), even with another size or time
    again = oms.submit(intent(), approved("5"), T_SIGNAL + 2 * H)
    oms.send()

    # Assert
    assert first is not None
    assert again is None
    assert ledger.state.last_seq == seq
    assert oms.submitted == 1
    assert len(venue.open_orders()) == 1


def test_submit_when_intent_differs_in_reason_side_or_bar_then_new_orders(ledger: Ledger) -> None:
    # Arrange
    oms = OrderManager(ledger, PaperVenue("USDT", D(10000)))

    # Act
    ids = [oms.submit(intent(), approved(), 1),
           oms.submit(intent(signal_time=T_SIGNAL + H), approved(), 2),
           oms.submit(intent(IntentReason.STOPLOSS, Side.SELL, qty=D(2)), approved(), 3),
           oms.submit(intent(IntentReason.ROI, Side.SELL, qty=D(2)), approved(), 4)]

    # Assert
    assert None not in ids
    assert len(set(ids)) == 4
    assert oms.submitted == 4


def test_submit_when_ledger_reopened_then_known_intent_still_refused(ledger: Ledger, tmp_path: Path) -> None:
    # Arrange: submitted and flushed before a restart
    oms = OrderManager(ledger, PaperVenue("USDT", D(10000)))
    oms.submit(intent(), approved(), T_SIGNAL + H)
    ledger.flush()
    reopened = Ledger.for_home(tmp_path / "home")

    # Act
    try:
        again = OrderManager(reopened, PaperVenue("USDT", D(10000))).submit(intent(), approved(), T_SIGNAL + H)
    finally:
        reopened.close(flush=False)

    # Assert
    assert again is None


# ---------------------------------------------------------------- fills
def test_collect_fills_when_venue_fills_then_recorded_once_with_slippage(ledger: Ledger) -> None:
    # Arrange: fee 10 bps, slippage 5 bps
    venue = PaperVenue("USDT", D(10000))
    oms = OrderManager(ledger, venue)
    coid = oms.submit(intent(), approved(), T_SIGNAL + H)
    oms.send()
    venue.on_bar_open(PAIR, T_SIGNAL + H, 100.0)

    # Act
    fills = oms.collect_fills()

    # Assert: price 100.05, fee 2 x 100.05 x 0.001 = 0.2001; slippage (100.05 - 100) / 100 x 1e4 = 5 bps
    assert [f.fill_id for f in fills] == [f"{coid}-1"]
    order = ledger.state.orders[str(coid)]
    assert (order.status, order.filled_qty, order.avg_price) == (OrderStatus.FILLED, D(2), D("100.05"))
    assert ledger.state.cash() == D("9799.6999")
    ledger.flush()
    filled = list(ledger.events(kinds={EventKind.ORDER_FILLED}))
    assert len(filled) == 1
    assert filled[0].payload["slippage_bps"] == "5.00"


def test_collect_fills_when_called_again_or_cursor_reset_then_nothing_new(ledger: Ledger) -> None:
    # Arrange
    venue = PaperVenue("USDT", D(10000))
    oms = OrderManager(ledger, venue)
    oms.submit(intent(), approved(), T_SIGNAL + H)
    oms.send()
    venue.on_bar_open(PAIR, T_SIGNAL + H, 100.0)
    oms.collect_fills()

    # Act
    again = oms.collect_fills()
    oms.reset_cursor()
    after_reset = oms.collect_fills()

    # Assert
    assert again == []
    assert after_reset == []
    assert kinds(ledger).count(EventKind.ORDER_FILLED) == 1


def test_collect_fills_when_venue_repeats_fills_then_each_recorded_once(ledger: Ledger) -> None:
    # Arrange: the venue reports every fill twice per call, and again on every call
    venue = RepeatingVenue(ledger)
    oms = OrderManager(ledger, venue)
    oms.submit(intent(), approved(), T_SIGNAL + H)
    oms.send()
    venue.inner.on_bar_open(PAIR, T_SIGNAL + H, 100.0)

    # Act
    first = oms.collect_fills()
    second = oms.collect_fills()

    # Assert: no fee, no slippage -> cash 10000 - 200
    assert len(first) == 1
    assert second == []
    assert kinds(ledger).count(EventKind.ORDER_FILLED) == 1
    assert ledger.state.cash() == D(9800)


# ---------------------------------------------------------------- deny and cancel
def test_deny_when_called_then_order_denied_recorded_with_the_verdict(ledger: Ledger) -> None:
    # Arrange: a desk that is REDUCING denies the entry
    pretrade = PreTrade(RiskConfig(), [DEP], [PAIR], D("0.001"), 10_000.0)
    pretrade.rebuild(ledger.state, {PAIR: 100.0}, T_SIGNAL)
    verdict = pretrade.decide(intent(), Context(TradingState.REDUCING, TradingState.ACTIVE, 10_000.0, 10_000.0, 0.05))
    oms = OrderManager(ledger, PaperVenue("USDT", D(10000)))

    # Act
    oms.deny(intent(), verdict, T_SIGNAL + H)
    ledger.flush()

    # Assert
    (denied,) = list(ledger.events(kinds={EventKind.ORDER_DENIED}))
    assert denied.deployment_id == DEP
    assert denied.payload["verdict"] == verdict.as_dict()
    assert denied.payload["verdict"]["rule"] == "trading_state"
    assert (denied.payload["reason"], denied.payload["side"], denied.payload["ref_price"]) == ("entry_signal", "BUY",
                                                                                               "100")
    assert oms.denied == 1
    assert ledger.state.orders == {}


def test_cancel_open_when_orders_open_then_canceled_at_venue_recorded_and_never_sent(ledger: Ledger) -> None:
    # Arrange: one order at the venue, one still in the outbox
    venue = PaperVenue("USDT", D(10000))
    oms = OrderManager(ledger, venue)
    sent = oms.submit(intent(), approved(), T_SIGNAL + H)
    oms.send()
    queued = oms.submit(intent(signal_time=T_SIGNAL + H), approved(), T_SIGNAL + 2 * H)

    # Act
    count = oms.cancel_open(T_SIGNAL + 2 * H, "deployment halted")
    oms.send()

    # Assert
    assert count == 2
    assert venue.open_orders() == []
    assert venue.on_bar_open(PAIR, T_SIGNAL + 2 * H, 100.0) == []
    assert {ledger.state.orders[str(c)].status for c in (sent, queued)} == {OrderStatus.CANCELED}
    assert kinds(ledger).count(EventKind.ORDER_CANCELED) == 2


def test_cancel_open_when_deployment_given_then_other_deployments_untouched(ledger: Ledger) -> None:
    # Arrange
    oms = OrderManager(ledger, PaperVenue("USDT", D(10000)))
    oms.submit(intent(), approved(), T_SIGNAL + H)

    # Act
    count = oms.cancel_open(T_SIGNAL + H, "other", deployment_id="dep-2")

    # Assert
    assert count == 0
    assert len(ledger.state.open_orders()) == 1


# ---------------------------------------------------------------- bad input at the venue: recorded, not half-written
@pytest.mark.parametrize(("config", "pairs", "qty", "code"), [
    ({}, ["ETH/USDT"], "2", "unknown_symbol"),
    ({"qty_step": 0.1}, None, "2.05", "precision"),
    ({"min_notional": 1000.0}, None, "2", "min_notional"),
    ({}, None, "200", "insufficient_balance"),
])
def test_send_when_venue_refuses_the_order_then_rejected_with_its_code_and_nothing_else_changes(
        ledger: Ledger, config: dict[str, float], pairs: list[str] | None, qty: str, code: str) -> None:
    # Arrange: cash 10,000; a buy at 100 of 200 costs 20,000
    venue = PaperVenue("USDT", D(10000), PaperVenueConfig(**config), pairs=pairs)  # type: ignore[arg-type]
    oms = OrderManager(ledger, venue)
    coid = oms.submit(intent(), approved(qty), T_SIGNAL + H)

    # Act
    oms.send(T_SIGNAL + H)

    # Assert
    rec = ledger.state.orders[coid or ""]
    assert rec.status is OrderStatus.REJECTED
    assert (rec.status_reason or "").startswith(f"{code}: ")
    assert oms.stats.rejected == 1
    assert venue.order(ClientOrderId(coid or "")) is None
    assert (ledger.state.cash(), ledger.state.open_order_ids, venue.balances()["USDT"]) == (D(10000), {}, D(10000))
    ledger.flush()
    assert ledger.read_projections() == all_projection_rows(ledger.rebuild_state())


def test_send_when_one_order_rejected_then_the_others_in_the_batch_still_go(ledger: Ledger) -> None:
    venue = PaperVenue("USDT", D(10000), PaperVenueConfig(min_notional=150.0))
    oms = OrderManager(ledger, venue)
    small = oms.submit(intent(), approved("1"), T_SIGNAL + H)  # 100 < 150: refused
    big = oms.submit(intent(signal_time=T_SIGNAL + H), approved("2"), T_SIGNAL + H)
    oms.send(T_SIGNAL + H)
    assert ledger.state.orders[small or ""].status is OrderStatus.REJECTED
    assert ledger.state.orders[big or ""].status is OrderStatus.NEW
    assert venue.order(ClientOrderId(big or "")) is not None


class BatchVenue(PaperVenue):
    """The paper venue, counting its calls; ``lost``: how many batches' answers are lost (the batch was placed)."""

    def __init__(self, lost: int = 0, **config: Any) -> None:
        super().__init__("USDT", D(10000), PaperVenueConfig(**config))
        self.calls: list[tuple[str, int]] = []
        self.lost = lost

    def submit(self, order: VenueOrder) -> VenueOrder:
        self.calls.append(("submit", 1))
        return super().submit(order)

    def submit_many(self, orders: Iterable[VenueOrder]) -> list[VenueOrder | OrderRejected]:
        orders = list(orders)
        self.calls.append(("submit_many", len(orders)))
        answers = super().submit_many(orders)
        if self.lost:
            self.lost -= 1
            raise VenueUnavailable("batch", "timed out waiting for the answer")
        return answers


def test_send_when_the_venue_takes_a_batch_then_one_call_and_each_answer_recorded_in_order(ledger: Ledger) -> None:
    # Arrange: three orders, the first below the venue's minimum notional
    venue = BatchVenue(min_notional=150.0)
    oms = OrderManager(ledger, venue)
    small = oms.submit(intent(), approved("1"), T_SIGNAL + H)
    coids = [oms.submit(intent(signal_time=T_SIGNAL + k * H), approved("2"), T_SIGNAL + H) for k in (1, 2)]

    # Act
    oms.send(T_SIGNAL + H)

    # Assert: one call for the three; the refused one REJECTED, the others with the venue (NEW: embedded)
    assert venue.calls == [("submit_many", 3)]
    assert ledger.state.orders[small or ""].status is OrderStatus.REJECTED
    assert [ledger.state.orders[c or ""].status for c in coids] == [OrderStatus.NEW, OrderStatus.NEW]
    assert [o.client_order_id for o in venue.open_orders()] == coids
    assert (oms.stats.rejected, oms.stats.submitted) == (1, 3)


def test_send_when_a_batchs_answer_is_lost_then_it_stays_queued_whole_and_the_next_send_places_nothing_twice(
        ledger: Ledger) -> None:
    # Arrange: the answer to the first batch lost after its one attempt (placed at the venue all the same)
    venue = BatchVenue(lost=1)
    oms = OrderManager(ledger, venue, RetryPolicy(attempts=1))
    coids = [oms.submit(intent(signal_time=T_SIGNAL + k * H), approved("2"), T_SIGNAL + H) for k in (0, 1)]

    # Act
    oms.send(T_SIGNAL + H)
    queued = list(oms._outbox)
    oms.send(T_SIGNAL + H)

    # Assert: both queued after the loss, then sent again as one batch; the venue holds each once
    assert queued == coids
    assert venue.calls == [("submit_many", 2), ("submit_many", 2)]
    assert not oms._outbox
    assert oms.stats.venue_errors == 1
    assert [o.client_order_id for o in venue.open_orders()] == coids


def test_cancel_when_the_order_is_still_queued_then_canceled_before_it_was_sent_and_never_sent(
        ledger: Ledger) -> None:
    venue = BatchVenue()
    oms = OrderManager(ledger, venue)
    first = oms.submit(intent(), approved("2"), T_SIGNAL + H)
    second = oms.submit(intent(signal_time=T_SIGNAL + H), approved("2"), T_SIGNAL + H)
    assert oms.cancel(first or "", "changed its mind", T_SIGNAL + H) == 1
    oms.send(T_SIGNAL + H)
    assert ledger.state.orders[first or ""].status_reason == "changed its mind (before it was sent)"
    assert venue.calls == [("submit_many", 1)]
    assert [o.client_order_id for o in venue.open_orders()] == [second]
