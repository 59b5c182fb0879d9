"""The venue contract: what the order executor needs from any place that fills orders.

Every call is idempotent under the client order id: submitting an id the venue already knows
returns the existing order instead of placing a second one.

Errors a venue raises fall in two kinds, and the order manager treats them differently:

* :class:`VenueUnavailable` (a :class:`~execdesk.errors.TemporaryError`): a timeout, a rate limit
  (HTTP 429), a dropped connection, an exchange briefly down. The outcome of the call is unknown;
  the order manager retries with backoff, and because ids are idempotent a retried submit never
  places a second order.
* :class:`OrderRejected`: the venue answered and said no — unknown symbol, amount below the minimum,
  wrong precision, insufficient balance, an answer that makes no sense. Retrying would not help;
  the order is recorded as REJECTED with the venue's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side
from execdesk.errors import ExecdeskError, TemporaryError


class VenueUnavailable(TemporaryError):
    """The venue could not be reached or asked us to slow down; the call's outcome is unknown."""

    def __init__(self, venue: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue
        self.retry_after = retry_after


class OrderRejected(ExecdeskError):
    """The venue refused the order (or answered with something unusable); retrying will not help.

    ``code`` is a short machine-readable reason (``unknown_symbol``, ``min_amount``, ``min_notional``,
    ``precision``, ``insufficient_balance``, ``bad_response``, ``unsupported``...).
    """

    def __init__(self, venue: str, code: str, message: str) -> None:
        super().__init__(f"{venue}: {code}: {message}")
        self.venue = venue
        self.code = code
        self.reason = message


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as a venue holds it. ``price`` is a limit order's limit, ``stop_price`` a stop order's
    trigger; both None for a market order. ``venue_order_id`` is the venue's own id, once it has one.
    ``ref_price`` is the last price the desk saw: a venue may use it to check a market order's notional
    and cost before placing it."""

    client_order_id: ClientOrderId
    pair: str
    side: Side
    type: OrderType
    qty: Decimal
    submitted_at: int
    status: OrderStatus = OrderStatus.SUBMITTED
    filled_qty: Decimal = Decimal(0)
    price: Decimal | None = None
    stop_price: Decimal | None = None
    venue_order_id: str | None = None
    reason: str | None = None  # why it was rejected, cancelled or expired, in the venue's words
    ref_price: Decimal | None = None  # the price the desk saw when it decided (not sent; for pre-checks)


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution. ``fill_id`` is unique per venue (the exchange's trade id): fills are
    de-duplicated by it. ``liquidity`` is "taker" or "maker"."""

    fill_id: str
    client_order_id: ClientOrderId
    pair: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    time: int
    liquidity: str = "taker"


@dataclass(frozen=True, slots=True)
class Quote:
    """The top of a pair's book as a venue quoted it: the best bid and ask, and when the venue says it was so
    (epoch seconds; None when it does not say)."""

    pair: str
    bid: Decimal
    ask: Decimal
    time: int | None = None

    @property
    def spread_bps(self) -> float:
        """``(ask - bid) / mid`` in basis points (0 for a book without two sides)."""
        mid = (self.bid + self.ask) / 2
        return float((self.ask - self.bid) / mid * 10_000) if self.bid > 0 and self.ask > 0 else 0.0


@runtime_checkable
class Venue(Protocol):
    """Submit, cancel, and read back orders, fills, balances and positions."""

    name: str

    @property
    def embedded(self) -> bool:
        """True for a venue inside the desk's process whose state is rebuilt from the ledger (the paper
        venue in replay): a crash loses it together with unflushed ledger rows, so the order manager may
        batch ledger writes across its calls. False for anything outside: the ledger is flushed before
        each call. (A class attribute ``embedded = False`` satisfies it.)"""
        ...

    def submit(self, order: VenueOrder) -> VenueOrder:
        """Place ``order``; an already-known client order id returns the known order unchanged.

        Raises :class:`VenueUnavailable` (outcome unknown: retry) or :class:`OrderRejected`.
        """
        ...

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        """Cancel an open order; False if it is unknown or no longer open."""
        ...

    def order(self, client_order_id: ClientOrderId) -> VenueOrder | None:
        """The venue's view of one order (None: the venue never saw it)."""
        ...

    def open_orders(self) -> list[VenueOrder]:
        ...

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        """Fills after ``cursor`` (0 = from the start) and the cursor to pass next time."""
        ...

    def balances(self) -> dict[str, Decimal]:
        ...

    def positions(self) -> dict[str, Decimal]:
        """Net base-asset quantity per pair (negative = short)."""
        ...
