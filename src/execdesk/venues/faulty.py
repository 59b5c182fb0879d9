"""A venue wrapper that misbehaves like a real exchange connection, for fault tests and drills.

:class:`FaultyVenue` wraps any venue and, by a seeded schedule, makes its calls fail the ways remote
venues do:

* ``timeout_before`` — the request never arrives (:class:`VenueUnavailable`; nothing happened);
* ``timeout_after`` — the request is carried out but the answer is lost (:class:`VenueUnavailable`;
  the order *was* placed, the cancel *was* done): the dangerous one, which only idempotent client
  order ids make safe to retry;
* ``rate_limit`` — HTTP 429 with a ``retry_after``;
* ``disconnect`` — the connection drops before the request;
* ``reject`` — the venue refuses an order (:class:`OrderRejected`, code ``venue_reject``);
* ``split_fill`` — a fill reported as two partial executions (two trade ids, the quantity and the
  fee split);
* ``duplicate_fill`` — a fill already reported is reported again in a later batch (same trade id).

It is a wrapper, not a stand-in: the wrapped venue does the real work and holds the truth the tests
compare the ledger against. ``embedded`` is False: the order manager treats it as remote.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from execdesk.domain.types import ClientOrderId
from execdesk.venues.base import OrderRejected, Venue, VenueFill, VenueOrder, VenueUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability of each fault per call (fills: per fill)."""

    timeout_before: float = 0.03
    timeout_after: float = 0.03
    rate_limit: float = 0.03
    disconnect: float = 0.02
    reject: float = 0.01
    split_fill: float = 0.10
    duplicate_fill: float = 0.10


@dataclass(slots=True)
class FaultCounts:
    timeout_before: int = 0
    timeout_after: int = 0
    rate_limit: int = 0
    disconnect: int = 0
    reject: int = 0
    split_fill: int = 0
    duplicate_fill: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return (self.timeout_before + self.timeout_after + self.rate_limit + self.disconnect + self.reject
                + self.split_fill + self.duplicate_fill)


class FaultyVenue:
    """Wraps ``inner`` and injects faults by ``rates`` (see module docstring)."""

    embedded = False

    def __init__(self, inner: Venue, rates: FaultRates | None = None, seed: int = 0) -> None:
        self.inner = inner
        self.name = f"faulty-{inner.name}"
        self.rates = rates or FaultRates()
        self.counts = FaultCounts()
        self._rng = random.Random(seed)  # noqa: S311 — a fault schedule, not cryptography
        self._reported: list[VenueFill] = []  # the fills as this venue reports them (split, repeated)
        self._inner_cursor = 0
        self._repeat: list[VenueFill] = []

    # ---------------------------------------------------------------- faults
    def _roll(self, name: str) -> bool:
        rate = getattr(self.rates, name)
        if rate > 0 and self._rng.random() < rate:
            setattr(self.counts, name, getattr(self.counts, name) + 1)
            return True
        return False

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        self.counts.calls[what] = self.counts.calls.get(what, 0) + 1
        if self._roll("disconnect"):
            raise VenueUnavailable(self.name, f"{what}: connection reset by peer")
        if self._roll("rate_limit"):
            raise VenueUnavailable(self.name, f"{what}: HTTP 429 too many requests", retry_after=0.5)
        if self._roll("timeout_before"):
            raise VenueUnavailable(self.name, f"{what}: request timed out")
        result = fn()
        if self._roll("timeout_after"):
            raise VenueUnavailable(self.name, f"{what}: timed out waiting for the answer")
        return result

    # ---------------------------------------------------------------- Venue protocol
    def submit(self, order: VenueOrder) -> VenueOrder:
        def place() -> VenueOrder:
            if self.inner.order(order.client_order_id) is None and self._roll("reject"):
                raise OrderRejected(self.name, "venue_reject", f"order {order.client_order_id} refused by the venue")
            return self.inner.submit(order)

        return self._call("submit", place)

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        return self._call("cancel", lambda: self.inner.cancel(client_order_id))

    def order(self, client_order_id: ClientOrderId) -> VenueOrder | None:
        return self._call("order", lambda: self.inner.order(client_order_id))

    def open_orders(self) -> list[VenueOrder]:
        return self._call("open_orders", self.inner.open_orders)

    def balances(self) -> dict[str, Decimal]:
        return self._call("balances", self.inner.balances)

    def positions(self) -> dict[str, Decimal]:
        return self._call("positions", self.inner.positions)

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        def read() -> tuple[list[VenueFill], int]:
            self._pull()
            batch = self._reported[cursor:]
            # a fill reported before comes again in this batch (same trade id)
            repeats, self._repeat = self._repeat, []
            return repeats + batch, len(self._reported)

        return self._call("fills_since", read)

    def _pull(self) -> None:
        """Take the wrapped venue's new fills into this venue's report, split and marked for repeats."""
        fills, self._inner_cursor = self.inner.fills_since(self._inner_cursor)
        for f in fills:
            if f.qty > 0 and self._roll("split_fill"):
                first = (f.qty / 2).quantize(Decimal("1e-12"))
                if 0 < first < f.qty:
                    fee1 = (f.fee * first / f.qty).quantize(Decimal("1e-12"))
                    parts = [VenueFill(f"{f.fill_id}.1", f.client_order_id, f.pair, f.side, first, f.price, fee1,
                                       f.time, f.liquidity),
                             VenueFill(f"{f.fill_id}.2", f.client_order_id, f.pair, f.side, f.qty - first, f.price,
                                       f.fee - fee1, f.time, f.liquidity)]
                    self._reported.extend(parts)
                    continue
            self._reported.append(f)
        for f in self._reported[-len(fills):] if fills else []:
            if self._roll("duplicate_fill"):
                self._repeat.append(f)
