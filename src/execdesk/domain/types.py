"""Plain data types shared by every role. No I/O here.

Money and quantities that are *accounting* (orders, fills, positions, balances) are ``Decimal``;
float arrays are for analytics (indicators, equity curves). Identifiers are typed strings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from functools import lru_cache
from typing import NewType

DeploymentId = NewType("DeploymentId", str)
ClientOrderId = NewType("ClientOrderId", str)

#: Quantities and prices are kept to 12 decimal places: finer than any venue's precision.
QUANTUM = Decimal("1e-12")


def dec(value: float | int | str | Decimal) -> Decimal:
    """A float/str/int as an accounting ``Decimal`` rounded to :data:`QUANTUM`.

    Floats go through ``repr`` so that ``0.1`` becomes ``Decimal("0.1")``, not its binary expansion.
    """
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        d = Decimal(repr(value))
    else:
        d = Decimal(value)
    return d.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


@lru_cache(maxsize=1024)
def dec_const(value: float | int | str) -> Decimal:
    """:func:`dec` for configuration constants (limits, fractions), memoised: the hot path asks often."""
    return dec(value)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class Direction(StrEnum):
    """The direction of a position: LONG holds the asset, SHORT owes it."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_side(self) -> Side:
        return Side.BUY if self is Direction.LONG else Side.SELL

    @property
    def exit_side(self) -> Side:
        return Side.SELL if self is Direction.LONG else Side.BUY


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP_MARKET = "STOP_MARKET"


class OrderStatus(StrEnum):
    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED)

    def can_become(self, to: OrderStatus) -> bool:
        """Whether the order state machine allows ``self -> to`` (see :data:`ORDER_TRANSITIONS`)."""
        return to in ORDER_TRANSITIONS[self]


#: The order state machine. NEW: the desk's order, recorded before the venue hears of it; SUBMITTED:
#: the venue acknowledged it; then fills, or an end: CANCELED, REJECTED (the venue refused it), EXPIRED.
#: A venue may fill an order before its acknowledgement reaches us (NEW -> FILLED). Ends are final.
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
                                OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}),
    OrderStatus.SUBMITTED: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED,
                                      OrderStatus.REJECTED, OrderStatus.EXPIRED}),
    OrderStatus.PARTIALLY_FILLED: frozenset({OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
                                             OrderStatus.CANCELED, OrderStatus.EXPIRED}),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


class TradingState(StrEnum):
    """NautilusTrader's trading states: ACTIVE trades; REDUCING only reduces; HALTED does nothing."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class AlertLevel(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    EMERGENCY = "EMERGENCY"


class IntentReason(StrEnum):
    """Why an order was wanted; part of the client order id, so one reason per signal bar."""

    ENTRY_SIGNAL = "entry_signal"
    EXIT_SIGNAL = "exit_signal"
    STOPLOSS = "stoploss"
    ROI = "roi"
    TRAILING_STOP = "trailing_stop"
    DEPLOYMENT_HALT = "deployment_halt"
    DEPLOYMENT_TRIM = "deployment_trim"
    PORTFOLIO_TRIM = "portfolio_trim"
    CIRCUIT_BREAKER = "circuit_breaker"

    @property
    def is_exit(self) -> bool:
        return self is not IntentReason.ENTRY_SIGNAL


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A wish to trade, before the risk manager has seen it.

    ``qty`` is ``None`` for entries (the risk manager sizes them) and the position size for exits.
    ``ref_price`` is the price the strategy saw (the signal bar's close): slippage is measured from it.
    ``backtest_price`` (exits) is the backtester's fill price for the same exit.
    """

    deployment_id: str
    pair: str
    side: Side
    direction: Direction
    reason: IntentReason
    signal_time: int
    ref_price: Decimal
    qty: Decimal | None = None
    #: for exits, the price the backtester would have filled at (slippage against the backtest)
    backtest_price: Decimal | None = None

    @property
    def reduce_only(self) -> bool:
        return self.reason.is_exit


def client_order_id(deployment_id: str, pair: str, signal_time: int, reason: str, side: str) -> ClientOrderId:
    """The deterministic client order id of an intent.

    Derived from (deployment, pair, signal bar, reason, side) only, so a retry or a restart that
    re-derives the same intent gets the same id and the venue can refuse the duplicate.
    """
    raw = f"{deployment_id}|{pair}|{signal_time}|{reason}|{side}".encode()
    return ClientOrderId("ed-" + hashlib.sha256(raw).hexdigest()[:20])
