"""Orders that rest at the venue: a strategy's stop (``order_types.stoploss_on_exchange``) and its limit exits
(``order_types.exit: limit``), as the loop places, amends and waits for them.

* :func:`stop_wanted` — the stop a position should have resting now (its side, quantity and price), or None: a
  strategy that asks for it, a position, a deployment that trades (not HALTED, not paused: a paused deployment's
  resting orders are cancelled and the desk exits by its own rules, with market orders, as without
  ``stoploss_on_exchange``), and no other exit on its way (that one closes the position; the stop is cancelled
  before it is sent, so that the two never both fill).
* :func:`trigger_bar` — the first bar at which a resting order can fill on the paper venue, so the loop still skips
  the quiet bars between: a sell stop where the low reaches the stop, a buy stop where the high does, a buy limit
  where the low reaches the limit, a sell limit where the high does (an unfilled limit also at its expiry); a
  market order, or an order already partly filled, at the pair's next bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np

from execdesk.data.feed import PairTrack
from execdesk.domain.state import DeskState, OrderRecord
from execdesk.domain.types import Direction, IntentReason, OrderType, Side, TradingState
from execdesk.lead.lifecycle import PAUSED
from execdesk.venues.base import VenueOrder

#: the lane's exits a resting stop takes care of: the loop sends no order of its own for them
STOP_REASONS: Final = frozenset({IntentReason.STOPLOSS, IntentReason.TRAILING_STOP})
#: a deployment in one of these states keeps no stop resting (the desk exits by its own rules)
_UNPROTECTED_REASONS: Final = frozenset({PAUSED, "drift_pause"})


@dataclass(frozen=True, slots=True)
class WantedStop:
    """The stop a position should have at the venue: ``side`` (the exit side), ``qty`` (the whole position) and
    ``direction`` (of the position)."""

    side: Side
    direction: Direction
    qty: Decimal


def resting_stops(state: DeskState, deployment_id: str, pair: str) -> list[OrderRecord]:
    """The open stop orders of one deployment in one pair."""
    return [o for o in state.open_orders_of(deployment_id, pair) if o.type == OrderType.STOP_MARKET]


def stop_wanted(state: DeskState, deployment_id: str, pair: str) -> tuple[WantedStop | None, str]:
    """The stop the position of ``deployment_id`` in ``pair`` should have resting, or None and why not (see the
    module docstring)."""
    pos = state.position(deployment_id, pair)
    if pos is None or pos.qty == 0:
        return None, "the position is closed"
    if state.trading_state is TradingState.HALTED:
        return None, "the desk is HALTED"
    dep = state.deployments.get(deployment_id)
    if dep is None or dep.state is TradingState.HALTED:
        return None, "the deployment is HALTED"
    if dep.state_reason in _UNPROTECTED_REASONS:
        return None, f"the deployment is paused ({dep.state_reason})"
    if any(o.type != OrderType.STOP_MARKET for o in state.open_orders_of(deployment_id, pair)):
        return None, "another order of the position is open"  # an exit on its way: the stop waits for it to end
    direction = Direction.LONG if pos.qty > 0 else Direction.SHORT
    return WantedStop(direction.exit_side, direction, abs(pos.qty)), ""


def trigger_bar(order: VenueOrder, track: PairTrack, times: np.ndarray, cur: int, ttl_s: int | None) -> int:
    """The first grid index > ``cur`` at which ``order`` can fill or end on the paper venue (``n``: none in the
    data; ``times``: the grid's bar open times); see the module docstring."""
    n = len(track.has_bar)
    nxt = int(track.next_bar[cur]) if cur >= 0 else (0 if track.has_bar[0] else int(track.next_bar[0]))
    if order.type is OrderType.MARKET or order.filled_qty > 0:
        return nxt
    start = cur + 1
    buy = order.side is Side.BUY
    if order.type is OrderType.STOP_MARKET:
        assert order.stop_price is not None
        level = float(order.stop_price)
        hit = track.high[start:] >= level if buy else track.low[start:] <= level
    else:
        assert order.price is not None
        level = float(order.price)
        hit = track.low[start:] <= level if buy else track.high[start:] >= level
    found = int(np.argmax(hit)) if hit.size and hit.any() else -1
    at = start + found if found >= 0 else n
    if ttl_s is not None and order.type is OrderType.LIMIT:
        due = max(int(np.searchsorted(times, order.submitted_at + ttl_s)), start)
        if due < n:
            at = min(at, due if track.has_bar[due] else int(track.next_bar[due]))
    return at
