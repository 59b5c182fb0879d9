"""The order manager: from an approved intent to a recorded fill, never twice.

* The client order id derives from (deployment, pair, signal bar, reason, side): re-deriving an
  intent after a retry or a restart gives the same id, and an id the ledger already holds is not
  submitted again.
* The intent is recorded (``order.submitted``) and flushed to the ledger *before* the venue hears of
  it (:meth:`OrderManager.send`), so a crash can lose a venue call but never an order the venue has.
  An embedded venue (the paper venue, rebuilt from the ledger on restart) dies with the process, so
  for it the ledger is flushed in batches of :data:`EMBEDDED_FLUSH_EVERY` events instead.
* Fills come back from the venue by cursor and are recorded once each (by fill id).
"""

from __future__ import annotations

from decimal import Decimal

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import ClientOrderId, OrderIntent, OrderType, client_order_id
from execdesk.risk.pretrade import Verdict
from execdesk.store.ledger import Ledger
from execdesk.venues.base import Venue, VenueFill, VenueOrder

#: events buffered before a flush when the venue is embedded (see module docstring)
EMBEDDED_FLUSH_EVERY = 5000


class OrderManager:
    """Owns the order lifecycle between the risk manager and one venue."""

    def __init__(self, ledger: Ledger, venue: Venue) -> None:
        self.ledger = ledger
        self.venue = venue
        self._outbox: list[VenueOrder] = []
        self._cursor = 0
        self.submitted = 0
        self.denied = 0

    def submit(self, intent: OrderIntent, verdict: Verdict, time: int) -> ClientOrderId | None:
        """Record an approved intent as an order and queue it for the venue; None if already known."""
        coid = client_order_id(intent.deployment_id, intent.pair, intent.signal_time, intent.reason.value,
                               intent.side.value)
        if coid in self.ledger.state.orders:
            return None
        self.ledger.record(Event(time, EventKind.ORDER_SUBMITTED, {
            "client_order_id": coid, "deployment_id": intent.deployment_id, "pair": intent.pair,
            "side": intent.side, "direction": intent.direction, "type": OrderType.MARKET, "qty": verdict.qty,
            "reason": intent.reason, "signal_time": intent.signal_time, "ref_price": intent.ref_price,
            "verdict": verdict.as_dict(),
            **({"backtest_price": intent.backtest_price} if intent.backtest_price is not None else {}),
        }, intent.deployment_id))
        self._outbox.append(VenueOrder(coid, intent.pair, intent.side, OrderType.MARKET, verdict.qty, time))
        self.submitted += 1
        return coid

    def deny(self, intent: OrderIntent, verdict: Verdict, time: int) -> None:
        """Record a risk denial: the intent, the rule and its numbers."""
        self.ledger.record(Event(time, EventKind.ORDER_DENIED, {
            "deployment_id": intent.deployment_id, "pair": intent.pair, "side": intent.side,
            "direction": intent.direction, "reason": intent.reason, "signal_time": intent.signal_time,
            "ref_price": intent.ref_price, "verdict": verdict.as_dict(),
        }, intent.deployment_id))
        self.denied += 1

    def cancel_open(self, time: int, reason: str, deployment_id: str | None = None) -> int:
        """Cancel every open order (of one deployment, or all); record each cancel."""
        count = 0
        for order in list(self.ledger.state.open_orders()):
            if deployment_id is not None and order.deployment_id != deployment_id:
                continue
            self.venue.cancel(ClientOrderId(order.client_order_id))
            self._outbox = [o for o in self._outbox if o.client_order_id != order.client_order_id]
            self.ledger.record(Event(time, EventKind.ORDER_CANCELED,
                                     {"client_order_id": order.client_order_id, "reason": reason},
                                     order.deployment_id))
            count += 1
        return count

    def send(self) -> None:
        """Flush the ledger, then hand the queued orders to the venue."""
        if not self.venue.embedded or self.ledger.pending >= EMBEDDED_FLUSH_EVERY:
            self.ledger.flush()
        outbox, self._outbox = self._outbox, []
        for order in outbox:
            self.venue.submit(order)

    def collect_fills(self) -> list[VenueFill]:
        """Record the venue's new fills (each fill id once) and return them."""
        fills, self._cursor = self.venue.fills_since(self._cursor)
        new: list[VenueFill] = []
        for f in fills:
            if f.fill_id in self.ledger.state.fills:  # known, or repeated within this batch (recorded just now)
                continue
            new.append(f)
            order = self.ledger.state.orders[f.client_order_id]
            self.ledger.record(Event(f.time, EventKind.ORDER_FILLED, {
                "client_order_id": f.client_order_id, "fill_id": f.fill_id, "qty": f.qty, "price": f.price,
                "fee": f.fee, "slippage_bps": _slippage_bps(f, order.ref_price),
            }, order.deployment_id))
        return new

    def reset_cursor(self) -> None:
        self._cursor = 0


def _slippage_bps(fill: VenueFill, ref_price: Decimal) -> str:
    """Adverse move of the fill from the price the strategy saw, in basis points (positive = worse)."""
    if ref_price <= 0:
        return "0"
    move = (fill.price - ref_price) / ref_price * fill.side.sign * 10000
    return f"{move:.2f}"
