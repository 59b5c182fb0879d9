"""The embedded paper venue: fills market orders against bars, with fees and slippage.

A market order submitted while bar *t* closes fills at the open of the pair's next bar, moved
against the trader by ``slippage_bps``, and pays ``fee_bps`` of its notional in the quote asset.
The venue is deterministic: the same orders and bars give the same fills.

Its book can be restored from the ledger's state (:meth:`PaperVenue.restore`), so a desk that
restarts on the same home carries on with the same balances, positions and resting orders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from execdesk.domain.state import DeskState
from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side, dec
from execdesk.errors import InvalidInput
from execdesk.venues.base import VenueFill, VenueOrder

BPS = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class PaperVenueConfig:
    """Paper venue settings.

    fee_bps: taker fee, in basis points of notional (default 10 = 0.1%, a common spot taker fee).
    slippage_bps: adverse move of every market fill from the bar's open (default 5).
    """

    fee_bps: float = 10.0
    slippage_bps: float = 5.0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps"):
            value = getattr(self, name)
            if not 0 <= value <= 1000:
                raise InvalidInput(f"venue.{name}: got {value}; expected a number of basis points in [0, 1000]")


class PaperVenue:
    """An in-process exchange for replay and paper trading (see module docstring)."""

    name = "paper"
    embedded = True

    def __init__(self, quote: str, cash: Decimal, config: PaperVenueConfig | None = None) -> None:
        self.quote = quote
        self.config = config or PaperVenueConfig()
        self._fee = dec(self.config.fee_bps) * BPS
        self._slip = dec(self.config.slippage_bps) * BPS
        self._cash = cash
        self._positions: dict[str, Decimal] = {}
        self._orders: dict[ClientOrderId, VenueOrder] = {}
        self._pending: list[ClientOrderId] = []
        self._fills: list[VenueFill] = []
        self._fill_count: dict[ClientOrderId, int] = {}  # fills per order, for unique fill ids

    # ---------------------------------------------------------------- Venue protocol
    def submit(self, order: VenueOrder) -> VenueOrder:
        known = self._orders.get(order.client_order_id)
        if known is not None:
            return known
        if order.type is not OrderType.MARKET:
            raise InvalidInput(f"paper venue: order type {order.type} is not supported yet (MARKET only)")
        if order.qty <= 0:
            raise InvalidInput(f"paper venue: order {order.client_order_id} has qty {order.qty}; expected > 0")
        self._orders[order.client_order_id] = order
        self._pending.append(order.client_order_id)
        return order

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        order = self._orders.get(client_order_id)
        if order is None or not order.status.is_open:
            return False
        self._orders[client_order_id] = replace(order, status=OrderStatus.CANCELED)
        self._pending.remove(client_order_id)
        return True

    def open_orders(self) -> list[VenueOrder]:
        return [self._orders[c] for c in self._pending]

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        return self._fills[cursor:], len(self._fills)

    def balances(self) -> dict[str, Decimal]:
        return {self.quote: self._cash}

    def positions(self) -> dict[str, Decimal]:
        return {p: q for p, q in self._positions.items() if q != 0}

    # ---------------------------------------------------------------- market data
    def has_pending(self) -> bool:
        return bool(self._pending)

    def pending_pairs(self) -> set[str]:
        return {self._orders[c].pair for c in self._pending}

    def on_bar_open(self, pair: str, time: int, open_price: float) -> list[VenueFill]:
        """The bar of ``pair`` opening at ``time``: resting market orders of that pair fill at its open."""
        done: list[VenueFill] = []
        still: list[ClientOrderId] = []
        price0 = dec(open_price)
        for coid in self._pending:
            order = self._orders[coid]
            if order.pair != pair or order.submitted_at > time:
                still.append(coid)
                continue
            sign = order.side.sign
            price = dec(price0 * (1 + sign * self._slip))
            qty = order.qty - order.filled_qty
            fee = dec(qty * price * self._fee)
            n = self._fill_count.get(coid, 0) + 1
            self._fill_count[coid] = n
            fill = VenueFill(f"{coid}-{n}", coid, pair, order.side, qty, price, fee, time)
            self._cash -= sign * qty * price + fee
            self._positions[pair] = self._positions.get(pair, Decimal(0)) + sign * qty
            self._orders[coid] = replace(order, status=OrderStatus.FILLED, filled_qty=order.qty)
            self._fills.append(fill)
            done.append(fill)
        self._pending = still
        return done

    # ---------------------------------------------------------------- restart
    def restore(self, state: DeskState) -> None:
        """Take balances, positions and resting orders from the ledger's state (a restarted desk)."""
        self._cash = state.cash()
        self._positions = {}
        for pos in state.positions.values():
            self._positions[pos.pair] = self._positions.get(pos.pair, Decimal(0)) + pos.qty
        self._orders.clear()
        self._pending.clear()
        self._fills.clear()
        self._fill_count.clear()
        for fill in state.fills.values():
            coid = ClientOrderId(fill.client_order_id)
            self._fill_count[coid] = self._fill_count.get(coid, 0) + 1
        for rec in state.orders.values():
            order = VenueOrder(ClientOrderId(rec.client_order_id), rec.pair, Side(rec.side), OrderType(rec.type),
                               rec.qty, rec.updated_at, rec.status, rec.filled_qty)
            self._orders[order.client_order_id] = order
            if rec.status.is_open:
                self._pending.append(order.client_order_id)
