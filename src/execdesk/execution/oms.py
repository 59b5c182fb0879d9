"""The order manager: from an approved intent to a recorded fill, never twice, never lost.

* The client order id derives from (deployment, pair, signal bar, reason, side): re-deriving an
  intent after a retry or a restart gives the same id, and an id the ledger already holds is not
  submitted again. Venues are idempotent under it (a resubmitted id returns the known order).
* The intent is recorded first (``order.submitted``: status NEW) and the ledger flushed *before* the
  venue hears of it (:meth:`OrderManager.send`), so a crash can lose a venue call but never an order
  the venue has. An embedded venue (the paper venue in replay, rebuilt from the ledger on restart)
  dies with the process, so for it the ledger is flushed in batches of :data:`EMBEDDED_FLUSH_EVERY`
  events instead.
* The venue's answer moves the order through the state machine (:data:`~execdesk.domain.types.
  ORDER_TRANSITIONS`): ``order.accepted`` (SUBMITTED; from venues outside the desk's process — an
  embedded venue accepts synchronously and is rebuilt from the ledger, so its orders go from NEW
  straight to their fills or end), ``order.filled`` (PARTIALLY_FILLED, FILLED), ``order.canceled``,
  ``order.rejected`` (with the venue's reason), ``order.expired``.
* Temporary venue errors (timeouts, rate limits, disconnects) are retried with exponential backoff and
  jitter (:class:`~execdesk.retry.RetryPolicy`); what still fails stays queued and is tried
  again at the next send (a submit whose outcome is unknown is safe to repeat: ids are idempotent). A
  rejection is final and recorded.
* Fills come back from the venue by cursor and are recorded once each (by fill id); a fill for an
  order the ledger does not know is not booked but flagged.
* :meth:`OrderManager.reconcile` (on start and after a reconnect) compares the ledger with the venue —
  fills, orders, positions, balances — adopts what the venue did that the ledger missed, resubmits or
  cancels what never reached it, cancels or flags orders the desk did not place, and reports the
  mismatches it cannot resolve (the lead stops those deployments). It is one ``venue.reconciled`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar

from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import OrderRecord
from execdesk.domain.types import ClientOrderId, OrderIntent, OrderStatus, OrderType, Side, client_order_id
from execdesk.errors import TemporaryError
from execdesk.retry import RetryPolicy
from execdesk.risk.pretrade import Verdict
from execdesk.store.ledger import Ledger
from execdesk.venues.base import OrderRejected, Venue, VenueFill, VenueOrder

#: events buffered before a flush when the venue is embedded (see module docstring)
EMBEDDED_FLUSH_EVERY = 5000
T = TypeVar("T")
_ENDED = {OrderStatus.CANCELED: EventKind.ORDER_CANCELED, OrderStatus.REJECTED: EventKind.ORDER_REJECTED,
          OrderStatus.EXPIRED: EventKind.ORDER_EXPIRED}


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """What reconciliation does with what it finds.

    unsent ["resubmit"] — an order the ledger holds as NEW that the venue never saw (the desk stopped
      between recording it and sending it): send it now ("resubmit") or cancel it ("cancel");
    foreign ["cancel"] — an open order at the venue that the ledger does not know: cancel it, or only
      flag it ("flag");
    tolerance ["0.000000000001"] — quantity and cash differences up to this are rounding, not mismatch.
    """

    unsent: Literal["resubmit", "cancel"] = "resubmit"
    foreign: Literal["cancel", "flag"] = "cancel"
    tolerance: Decimal = Decimal("1e-12")


@dataclass(slots=True)
class ReconcileReport:
    adopted_fills: list[str] = field(default_factory=list)
    foreign_fills: list[str] = field(default_factory=list)
    resubmitted: list[str] = field(default_factory=list)
    cancelled_unsent: list[str] = field(default_factory=list)
    ended: list[dict[str, str]] = field(default_factory=list)  # orders the venue ended that the ledger had open
    foreign_orders: list[dict[str, str]] = field(default_factory=list)
    position_mismatches: list[dict[str, str]] = field(default_factory=list)
    cash_mismatch: dict[str, str] | None = None
    venue_unavailable: str | None = None

    @property
    def clean(self) -> bool:
        return not (self.position_mismatches or self.cash_mismatch or self.venue_unavailable or self.foreign_fills)

    def as_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "adopted_fills": self.adopted_fills, "foreign_fills": self.foreign_fills,
                "resubmitted": self.resubmitted, "cancelled_unsent": self.cancelled_unsent, "ended": self.ended,
                "foreign_orders": self.foreign_orders, "position_mismatches": self.position_mismatches,
                "cash_mismatch": self.cash_mismatch, "venue_unavailable": self.venue_unavailable}


@dataclass(slots=True)
class OmsStats:
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0
    denied: int = 0
    venue_errors: int = 0  # calls that still failed after their retries
    duplicate_fills: int = 0
    foreign_fills: int = 0


class OrderManager:
    """Owns the order lifecycle between the risk manager and one venue."""

    def __init__(self, ledger: Ledger, venue: Venue, retry: RetryPolicy | None = None) -> None:
        self.ledger = ledger
        self.venue = venue
        self.retry = retry or RetryPolicy()
        self.stats = OmsStats()
        self._outbox: dict[str, VenueOrder] = {}  # orders recorded, not yet with the venue: by id, in order
        self._cancels: dict[str, str] = {}  # cancels the venue has not confirmed yet: coid -> reason
        self._uncertain: set[str] = set()  # queued orders whose last submit may have reached the venue
        self._cursor = 0

    @property
    def submitted(self) -> int:
        return self.stats.submitted

    @property
    def denied(self) -> int:
        return self.stats.denied

    # ---------------------------------------------------------------- orders in
    def submit(self, intent: OrderIntent, verdict: Verdict, time: int, order_type: OrderType = OrderType.MARKET,
               price: Decimal | None = None, stop_price: Decimal | None = None) -> ClientOrderId | None:
        """Record an approved intent as an order (NEW) and queue it for the venue; None if already known."""
        coid = client_order_id(intent.deployment_id, intent.pair, intent.signal_time, intent.reason.value,
                               intent.side.value)
        if coid in self.ledger.state.orders:
            return None
        self.ledger.record(Event(time, EventKind.ORDER_SUBMITTED, {
            "client_order_id": coid, "deployment_id": intent.deployment_id, "pair": intent.pair,
            "side": intent.side, "direction": intent.direction, "type": order_type, "qty": verdict.qty,
            "reason": intent.reason, "signal_time": intent.signal_time, "ref_price": intent.ref_price,
            "verdict": verdict.as_dict(),
            **({"price": price} if price is not None else {}),
            **({"stop_price": stop_price} if stop_price is not None else {}),
            **({"backtest_price": intent.backtest_price} if intent.backtest_price is not None else {}),
        }, intent.deployment_id))
        self._outbox[coid] = VenueOrder(coid, intent.pair, intent.side, order_type, verdict.qty, time, price=price,
                                        stop_price=stop_price, ref_price=intent.ref_price)
        self.stats.submitted += 1
        return coid

    def deny(self, intent: OrderIntent, verdict: Verdict, time: int) -> None:
        """Record a risk denial: the intent, the rule and its numbers."""
        self.ledger.record(Event(time, EventKind.ORDER_DENIED, {
            "deployment_id": intent.deployment_id, "pair": intent.pair, "side": intent.side,
            "direction": intent.direction, "reason": intent.reason, "signal_time": intent.signal_time,
            "ref_price": intent.ref_price, "verdict": verdict.as_dict(),
        }, intent.deployment_id))
        self.stats.denied += 1

    def send(self, time: int | None = None) -> None:
        """Flush the ledger, then hand the queued orders (and unconfirmed cancels) to the venue: one call for them
        all when the venue takes a batch (``submit_many``, see :meth:`_send_batch`), else one call per order."""
        if not self.venue.embedded or self.ledger.pending >= EMBEDDED_FLUSH_EVERY:
            self.ledger.flush()
        for coid, reason in list(self._cancels.items()):
            self._cancel_one(coid, reason, time)
        outbox, self._outbox = self._outbox, {}
        orders = self.ledger.state.orders
        # (an order settled meanwhile, cancelled before it was sent, is not sent)
        due = [o for o in outbox.values() if orders[o.client_order_id].status is OrderStatus.NEW]
        if not due:
            return
        if getattr(self.venue, "submit_many", None) is not None:
            self._send_batch(due, time)
            return
        for order in due:
            try:
                ack = self._call(lambda o=order: self.venue.submit(o))  # type: ignore[misc]
            except OrderRejected as exc:
                self._rejected(order, exc, time)
                continue
            except TemporaryError:
                self._requeue(order)
                continue
            self._uncertain.discard(order.client_order_id)
            self._acknowledge(ack, time or order.submitted_at)

    def _send_batch(self, orders: list[VenueOrder], time: int | None) -> None:
        """``orders`` to a venue that takes a batch: one call (retried whole: every id is idempotent), then each
        answer recorded in the orders' order, as :meth:`send` records one order's — a refusal ``order.rejected``,
        an acknowledgement as :meth:`_acknowledge` says. A batch whose outcome is unknown stays queued whole."""
        submit_many = self.venue.submit_many  # type: ignore[attr-defined]
        try:
            answers = self._call(lambda: submit_many(orders))
        except TemporaryError:
            for order in orders:
                self._requeue(order)
            return
        for order, answer in zip(orders, answers, strict=True):
            if isinstance(answer, OrderRejected):
                self._rejected(order, answer, time)
                continue
            self._uncertain.discard(order.client_order_id)
            self._acknowledge(answer, time or order.submitted_at)

    def _rejected(self, order: VenueOrder, exc: OrderRejected, time: int | None) -> None:
        self._record_end(order.client_order_id, OrderStatus.REJECTED, f"{exc.code}: {exc.reason}",
                         time or order.submitted_at)
        self.stats.rejected += 1

    def _requeue(self, order: VenueOrder) -> None:
        """The venue's answer was lost: the order stays queued (resending the same id is safe)."""
        self._outbox[order.client_order_id] = order
        self._uncertain.add(order.client_order_id)

    def _acknowledge(self, ack: VenueOrder, time: int) -> None:
        rec = self.ledger.state.orders[ack.client_order_id]
        if ack.status in _ENDED:  # the venue refused or ended it on arrival
            if rec.status.is_open:
                self._record_end(ack.client_order_id, ack.status, ack.reason or "ended by the venue", time)
            return
        if rec.status is OrderStatus.NEW and not self.venue.embedded:
            # (an embedded venue accepts synchronously inside the desk's process and is rebuilt from the
            # ledger: its acknowledgement is no news; its orders go NEW -> fills or an end)
            self.ledger.record(Event(time, EventKind.ORDER_ACCEPTED, {
                "client_order_id": ack.client_order_id, "venue": self.venue.name,
                **({"venue_order_id": ack.venue_order_id} if ack.venue_order_id else {})}, rec.deployment_id))
            self.stats.accepted += 1

    def _record_end(self, coid: str, status: OrderStatus, reason: str, time: int) -> None:
        rec = self.ledger.state.orders[coid]
        self.ledger.record(Event(time, _ENDED[status], {"client_order_id": coid, "reason": reason},
                                 rec.deployment_id))

    # ---------------------------------------------------------------- cancels
    def cancel_open(self, time: int, reason: str, deployment_id: str | None = None, entries_only: bool = False) -> int:
        """Cancel every open order (of one deployment, or all; only entries with ``entries_only``); record each
        cancel the venue confirms.

        A cancel the venue could not be reached for stays pending and is retried at each :meth:`send`.
        """
        count = 0
        for order in list(self.ledger.state.open_orders()):
            if deployment_id is not None and order.deployment_id != deployment_id:
                continue
            if entries_only and order.reason != "entry_signal":
                continue
            count += self._cancel_one(order.client_order_id, reason, time)
        return count

    def cancel(self, coid: str, reason: str, time: int) -> int:
        """Cancel one open order; 1 when the cancel (or the order's end at the venue) is recorded (see
        :meth:`cancel_open`)."""
        return self._cancel_one(coid, reason, time)

    def _cancel_one(self, coid: str, reason: str, time: int | None) -> int:
        rec = self.ledger.state.orders[coid]
        self._cancels.pop(coid, None)
        if not rec.status.is_open:
            return 0
        at = rec.updated_at if time is None else time
        queued = self._outbox.pop(coid, None) is not None
        if queued and coid not in self._uncertain:  # never sent: nothing to ask the venue
            self._record_end(coid, OrderStatus.CANCELED, f"{reason} (before it was sent)", at)
            return 1
        # sent, or perhaps sent (a submit whose answer was lost): only the venue can say
        try:
            done = self._call(lambda: self.venue.cancel(ClientOrderId(coid)))
            if done:
                self._record_end(coid, OrderStatus.CANCELED, reason, at)
                return 1
            seen = self._call(lambda: self.venue.order(ClientOrderId(coid)))
        except TemporaryError:
            self._cancels[coid] = reason
            return 0
        self._uncertain.discard(coid)
        if seen is None:  # the venue never had it
            self._record_end(coid, OrderStatus.CANCELED, f"{reason} (unknown at the venue)", at)
            return 1
        if seen.status in _ENDED:
            self._record_end(coid, seen.status, seen.reason or f"{seen.status.value.lower()} at the venue", at)
            return 1
        return 0  # filled at the venue: the fills arrive by collect_fills

    # ---------------------------------------------------------------- fills and venue-side ends
    def collect_fills(self) -> list[VenueFill]:
        """Record the venue's new fills (each fill id once) and return them."""
        try:
            fills, cursor = self._call(lambda: self.venue.fills_since(self._cursor))
        except TemporaryError:
            return []
        self._cursor = cursor
        return self._book(fills)

    def _book(self, fills: list[VenueFill], adopted: bool = False) -> list[VenueFill]:
        state = self.ledger.state
        new: list[VenueFill] = []
        for f in fills:
            if f.fill_id in state.fills:  # known, or repeated within this batch (recorded just now)
                self.stats.duplicate_fills += 1
                continue
            order = state.orders.get(f.client_order_id)
            if order is None or order.side != f.side.value or order.pair != f.pair:
                self.stats.foreign_fills += 1
                continue
            if order.filled_qty + f.qty > order.qty:
                self.stats.foreign_fills += 1  # more than the order: not ours to book
                continue
            new.append(f)
            self.ledger.record(Event(f.time, EventKind.ORDER_FILLED, {
                "client_order_id": f.client_order_id, "fill_id": f.fill_id, "qty": f.qty, "price": f.price,
                "fee": f.fee, "liquidity": f.liquidity, **_quality(f, order),
                **({"adopted": True} if adopted else {}),
            }, order.deployment_id))
        return new

    def poll_orders(self, time: int, only_resting: bool = True) -> int:
        """Record the ends the venue gave open orders on its own (expired, cancelled, rejected)."""
        count = 0
        for rec in list(self.ledger.state.open_orders()):
            if only_resting and rec.type == OrderType.MARKET:
                continue
            try:
                seen = self._call(lambda c=rec.client_order_id: self.venue.order(ClientOrderId(c)))  # type: ignore[misc]
            except TemporaryError:
                return count
            if seen is not None and seen.status in _ENDED:
                self._record_end(rec.client_order_id, seen.status, seen.reason or "ended by the venue", time)
                count += 1
        return count

    def reset_cursor(self) -> None:
        self._cursor = 0

    # ---------------------------------------------------------------- reconciliation
    def reconcile(self, time: int, policy: ReconcilePolicy | None = None) -> ReconcileReport:
        """Ledger against venue; adopt, resubmit, cancel or flag (see module docstring). Records one event."""
        pol = policy or ReconcilePolicy()
        report = ReconcileReport()
        self.ledger.flush()
        try:
            self._reconcile(time, pol, report)
        except TemporaryError as exc:
            report.venue_unavailable = str(exc)
        self.ledger.record(Event(time, EventKind.RECONCILED, {"venue": self.venue.name, "policy": {
            "unsent": pol.unsent, "foreign": pol.foreign, "tolerance": pol.tolerance}, **report.as_dict()}))
        self.ledger.flush()
        return report

    def _reconcile(self, time: int, pol: ReconcilePolicy, report: ReconcileReport) -> None:
        state = self.ledger.state
        # 1. fills the venue made that the ledger missed
        fills, self._cursor = self._call(lambda: self.venue.fills_since(0))
        foreign_before = self.stats.foreign_fills
        if not self.venue.embedded:  # orders the venue accepted while the ledger was not told: accepted first, in
            # the order they were sent (as an uninterrupted run records them), then their fills
            for rec in [o for o in state.open_orders() if o.status is OrderStatus.NEW]:
                seen = self._call(lambda c=rec.client_order_id: self.venue.order(ClientOrderId(c)))  # type: ignore[misc]
                if seen is not None and seen.status not in _ENDED:
                    self._acknowledge(seen, time)
        report.adopted_fills = [f.fill_id for f in self._book(fills, adopted=True)]
        if self.stats.foreign_fills > foreign_before:
            report.foreign_fills = [f.fill_id for f in fills if f.fill_id not in state.fills]
        # 2. the ledger's open orders as the venue sees them
        for rec in list(state.open_orders()):
            coid = ClientOrderId(rec.client_order_id)
            seen = self._call(lambda c=coid: self.venue.order(c))  # type: ignore[misc]
            if seen is None:
                if rec.status is not OrderStatus.NEW:
                    report.ended.append({"client_order_id": coid, "venue": "unknown", "ledger": rec.status.value})
                    self._record_end(coid, OrderStatus.CANCELED, "reconciliation: unknown at the venue", time)
                elif pol.unsent == "resubmit":
                    if coid not in self._outbox:
                        self._outbox[coid] = _venue_order(rec)
                    report.resubmitted.append(coid)
                else:
                    self._record_end(coid, OrderStatus.CANCELED, "reconciliation: never sent", time)
                    report.cancelled_unsent.append(coid)
            elif seen.status in _ENDED:
                report.ended.append({"client_order_id": coid, "venue": seen.status.value, "ledger": rec.status.value})
                self._record_end(coid, seen.status, f"reconciliation: {seen.reason or 'ended at the venue'}", time)
            else:
                self._acknowledge(seen, time)
        # 3. orders at the venue that the desk did not place
        for seen in self._call(self.venue.open_orders):
            if seen.client_order_id in state.orders:
                continue
            entry = {"client_order_id": seen.client_order_id, "pair": seen.pair, "side": seen.side.value,
                     "qty": str(seen.qty), "action": "cancelled" if pol.foreign == "cancel" else "flagged"}
            if pol.foreign == "cancel":
                self._call(lambda c=seen.client_order_id: self.venue.cancel(c))  # type: ignore[misc]
            report.foreign_orders.append(entry)
        self.send(time)  # resubmissions go out now, after the ledger is flushed
        # 4. positions and cash
        held: dict[str, Decimal] = {}
        for pos in state.open_positions():
            held[pos.pair] = held.get(pos.pair, Decimal(0)) + pos.qty
        venue_positions = self._call(self.venue.positions)
        for pair in sorted(set(held) | set(venue_positions)):
            ours, theirs = held.get(pair, Decimal(0)), venue_positions.get(pair, Decimal(0))
            if abs(ours - theirs) > pol.tolerance:
                deployments = sorted({p.deployment_id for p in state.open_positions() if p.pair == pair}
                                     | {d.id for d in state.deployments.values() if pair in d.pairs})
                report.position_mismatches.append({"pair": pair, "ledger": str(ours), "venue": str(theirs),
                                                   "deployments": ",".join(deployments)})
        if self.venue.embedded or getattr(self.venue, "name", "") == "paper":
            cash = self._call(self.venue.balances).get(state.quote, Decimal(0))
            if abs(cash - state.cash()) > pol.tolerance:
                report.cash_mismatch = {"ledger": str(state.cash()), "venue": str(cash)}

    # ---------------------------------------------------------------- plumbing
    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return self.retry.call(fn)
        except TemporaryError:
            self.stats.venue_errors += 1
            raise


def _venue_order(rec: OrderRecord) -> VenueOrder:
    return VenueOrder(ClientOrderId(rec.client_order_id), rec.pair, Side(rec.side), OrderType(rec.type), rec.qty,
                      rec.created_at, price=rec.price, stop_price=rec.stop_price, ref_price=rec.ref_price)


def _quality(fill: VenueFill, order: OrderRecord) -> dict[str, str]:
    """Execution quality of one fill: adverse move from the price the desk saw (a stop's: its stop, the price it
    was meant to fill at) and from the backtest's assumed fill, in basis points (positive = worse), and the time
    from the order to the fill."""
    seen = order.stop_price if order.stop_price is not None else order.ref_price
    out = {"slippage_bps": _bps(fill.price, seen, fill.side), "latency_s": str(fill.time - order.created_at)}
    if order.backtest_price is not None:
        out["backtest_slippage_bps"] = _bps(fill.price, order.backtest_price, fill.side)
    return out


def _bps(price: Decimal, ref: Decimal, side: Side) -> str:
    if ref <= 0:
        return "0"
    return f"{(price - ref) / ref * side.sign * 10000:.2f}"
