"""The venue contract: what the order executor needs from any place that fills orders.

Every call is idempotent under the client order id: submitting an id the venue already knows
returns the existing order instead of placing a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side


@dataclass(frozen=True, slots=True)
class VenueOrder:
    client_order_id: ClientOrderId
    pair: str
    side: Side
    type: OrderType
    qty: Decimal
    submitted_at: int
    status: OrderStatus = OrderStatus.SUBMITTED
    filled_qty: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class VenueFill:
    fill_id: str
    client_order_id: ClientOrderId
    pair: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    time: int


@runtime_checkable
class Venue(Protocol):
    """Submit, cancel, and read back orders, fills, balances and positions."""

    name: str
    #: True for a venue inside the desk's process whose state is rebuilt from the ledger (the paper
    #: venue): a crash loses it together with unflushed ledger rows, so the order manager may batch
    #: ledger writes across its calls. False for anything outside: the ledger is flushed before each call.
    embedded: bool

    def submit(self, order: VenueOrder) -> VenueOrder:
        """Place ``order``; an already-known client order id returns the known order unchanged."""
        ...

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        """Cancel an open order; False if it is unknown or no longer open."""
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
