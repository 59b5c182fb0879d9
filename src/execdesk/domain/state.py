"""The desk's current state as the fold of its events.

:meth:`DeskState.apply` is the only way state changes. The live loop applies each event as it is
recorded; a restart or an audit folds the ledger's events into a fresh :class:`DeskState` and gets
the same thing. Payload values are read through ``Decimal(str(v))`` so that an event applied
in memory (Decimals) and the same event read back from the ledger (strings) fold identically.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import OrderStatus, TradingState
from execdesk.errors import LedgerError

ZERO = Decimal(0)


def _d(value: Any) -> Decimal:
    return value if type(value) is Decimal else Decimal(str(value))


def _opt(value: Any) -> Decimal | None:
    return None if value is None else _d(value)


@dataclass(slots=True)
class DeploymentRecord:
    id: str
    strategy_id: str
    name: str
    version: int
    bundle_hash: str
    timeframe: str
    pairs: list[str]
    allocation: Decimal
    capital: Decimal
    created_at: int
    venue: str = "paper"  # where it trades: paper, ccxt:<exchange>[:live], freqtrade
    start_at: int | None = None  # scheduled: trades from this time on (None: from its creation)
    replaces: str | None = None  # the version it takes over from (at its start)
    positions_policy: str = "hand_over"  # what that version does with its positions: hand_over or close
    state: TradingState = TradingState.ACTIVE
    state_reason: str = "deployed"
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    trades: int = 0
    wins: int = 0
    ladder_step: int = 0  # the deployment's drawdown ladder: highest step reached (0: none)
    # staged allocation: the fraction of the allocation in use, the losing-period streak, and the
    # period in progress (its start time and the deployment's equity then; None: staging off)
    stage_fraction: Decimal = Decimal(1)
    stage_step: int = 0
    stage_streak: int = 0
    stage_since: int | None = None
    stage_anchor: float = 0.0


@dataclass(slots=True)
class OrderRecord:
    client_order_id: str
    deployment_id: str
    pair: str
    side: str
    direction: str
    type: str
    qty: Decimal
    reason: str
    signal_time: int
    ref_price: Decimal
    created_at: int
    status: OrderStatus = OrderStatus.NEW
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    updated_at: int = 0
    price: Decimal | None = None  # a limit order's limit
    stop_price: Decimal | None = None  # a stop order's trigger
    venue_order_id: str | None = None
    status_reason: str | None = None  # why it was rejected, cancelled or expired
    backtest_price: Decimal | None = None  # the fill the backtest assumed, for exits it decided


@dataclass(slots=True)
class FillRecord:
    fill_id: str
    client_order_id: str
    deployment_id: str
    pair: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    time: int


@dataclass(slots=True)
class PositionRecord:
    """A deployment's position in one pair. ``qty`` is signed: negative is short."""

    deployment_id: str
    pair: str
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    opened_at: int = 0
    trip_pnl: Decimal = ZERO  # realized P&L less fees of the round trip in progress


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command the desk took in: its id (what makes applying it again a no-op), action, and event."""

    command_id: str
    action: str
    seq: int
    received_at: int

    def row(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "action": self.action, "seq": self.seq,
                "received_at": self.received_at}


@dataclass(slots=True)
class DeskState:
    """Everything the desk knows, rebuilt from events. Mutated only by :meth:`apply`."""

    quote: str = "USDT"
    config: dict[str, Any] | None = None
    trading_state: TradingState = TradingState.ACTIVE
    trading_reason: str = "initial"
    ladder_step: int = 0  # the portfolio's drawdown ladder: highest step reached (0: none)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    fills: dict[str, FillRecord] = field(default_factory=dict)
    positions: dict[tuple[str, str], PositionRecord] = field(default_factory=dict)
    balances: dict[str, Decimal] = field(default_factory=dict)
    last_bar_time: int | None = None
    bars_done: int = 0
    completed: bool = False
    # the commands taken in (``command.received``), by command id: each is applied once
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    # the first bar's time of the run under way: a run resumed after a crash carries on the one it interrupted
    run_began_at: int | None = None
    last_seq: int = 0
    # bumped by every change of a trading state or the set of deployments (caches key on it)
    states_version: int = 0
    # client order ids of the orders still open, in submission order (an index over ``orders``)
    open_order_ids: dict[str, None] = field(default_factory=dict)
    # the same, per (deployment, pair): what a lane or a close asks for, without scanning every open order
    open_orders_by_key: dict[tuple[str, str], dict[str, None]] = field(default_factory=dict)
    # (deployment, pair) of the positions not flat, in the order they opened (an index over ``positions``)
    open_position_keys: dict[tuple[str, str], None] = field(default_factory=dict)
    # keys touched since the projections were last written (see store.ledger)
    dirty: set[tuple[str, Any]] = field(default_factory=set)

    # ---------------------------------------------------------------- fold
    @classmethod
    def from_events(cls, events: Iterable[Event]) -> DeskState:
        state = cls()
        for event in events:
            state.apply(event)
        state.dirty.clear()
        return state

    def apply(self, event: Event) -> None:
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, event)
        self.last_seq = max(self.last_seq, event.seq)

    # ---------------------------------------------------------------- queries
    def config_section(self, name: str) -> dict[str, Any]:
        """One section of the desk config the ledger recorded (``risk``, ``market``...; empty before any)."""
        section = ((self.config or {}).get("config") or {}).get(name)
        return dict(section) if isinstance(section, dict) else {}

    def cash(self) -> Decimal:
        return self.balances.get(self.quote, ZERO)

    def open_positions(self) -> list[PositionRecord]:
        return [self.positions[k] for k in self.open_position_keys]

    def open_orders(self) -> list[OrderRecord]:
        return [self.orders[c] for c in self.open_order_ids]

    def closable(self, deployment_id: str, pair: str) -> Decimal:
        """The deployment's position in ``pair`` (signed) less the exits already on their way (a stop resting at the
        venue is not on its way: it waits for a price, and is cancelled before any other exit is sent)."""
        pos = self.position(deployment_id, pair)
        closable = pos.qty if pos is not None else Decimal(0)
        if closable != 0:
            for order in self.open_orders_of(deployment_id, pair):
                if order.reason != "entry_signal" and order.type != "STOP_MARKET":
                    remaining = order.qty - order.filled_qty
                    closable -= remaining if closable > 0 else -remaining
        return closable

    def open_orders_of(self, deployment_id: str, pair: str) -> list[OrderRecord]:
        """The open orders of one deployment in one pair, in submission order."""
        return [self.orders[c] for c in self.open_orders_by_key.get((deployment_id, pair), ())]

    def position(self, deployment_id: str, pair: str) -> PositionRecord | None:
        return self.positions.get((deployment_id, pair))


# -------------------------------------------------------------------- handlers
def _on_configured(s: DeskState, e: Event) -> None:
    p = e.payload
    s.config = {"config": p["config"], "identity": p["identity"]}
    s.quote = str(p["quote"])
    s.balances[s.quote] = _d(p["capital"])
    s.dirty.add(("balance", s.quote))
    s.dirty.add(("desk", None))


def _on_deployment_created(s: DeskState, e: Event) -> None:
    s.states_version += 1
    p = e.payload
    s.deployments[p["deployment_id"]] = DeploymentRecord(
        id=p["deployment_id"], strategy_id=p["strategy_id"], name=p["name"], version=int(p["version"]),
        bundle_hash=p["bundle_hash"], timeframe=p["timeframe"], pairs=list(p["pairs"]),
        allocation=_d(p["allocation"]), capital=_d(p["capital"]), created_at=e.time,
        venue=str(p.get("venue", "paper")), start_at=p.get("start_at"), replaces=p.get("replaces"),
        positions_policy=str(p.get("positions", "hand_over")),
    )
    s.dirty.add(("deployment", p["deployment_id"]))


def _on_handed_over(s: DeskState, e: Event) -> None:
    """Positions move from one deployment to another (a new version, or a rollback) at their entry price:
    no fill, no cash; the receiving deployment's exits manage them from here."""
    p = e.payload
    source, target = p["from"], p["to"]
    for item in p["positions"]:
        pair = item["pair"]
        pos = s.positions.get((source, pair))
        if pos is None or pos.qty != _d(item["qty"]):
            raise LedgerError(f"event {e.seq}: {source} holds no {item['qty']} {pair} to hand over")
        into = s.positions.get((target, pair))
        if into is not None and into.qty != 0:
            raise LedgerError(f"event {e.seq}: {target} already holds {pair}; a hand-over needs it flat")
        s.positions[(target, pair)] = PositionRecord(target, pair, pos.qty, pos.avg_price, ZERO, ZERO,
                                                     pos.opened_at, pos.trip_pnl)
        pos.qty, pos.avg_price, pos.trip_pnl = ZERO, ZERO, ZERO
        s.open_position_keys.pop((source, pair), None)
        s.open_position_keys[(target, pair)] = None
        s.dirty.update({("position", (source, pair)), ("position", (target, pair))})
    s.states_version += 1


def _on_deployment_state(s: DeskState, e: Event) -> None:
    s.states_version += 1
    dep = s.deployments[e.payload["deployment_id"]]
    dep.state = TradingState(e.payload["to"])
    dep.state_reason = str(e.payload["reason"])
    s.dirty.add(("deployment", dep.id))


def _on_trading_state(s: DeskState, e: Event) -> None:
    s.states_version += 1
    s.trading_state = TradingState(e.payload["to"])
    s.trading_reason = str(e.payload["reason"])
    s.dirty.add(("desk", None))


def _on_ladder_stepped(s: DeskState, e: Event) -> None:
    s.states_version += 1
    step = int(e.payload["step"])
    if e.deployment_id is None:
        s.ladder_step = max(s.ladder_step, step)
        s.dirty.add(("desk", None))
    else:
        dep = s.deployments[e.deployment_id]
        dep.ladder_step = max(dep.ladder_step, step)
        s.dirty.add(("deployment", dep.id))


def _on_rearmed(s: DeskState, e: Event) -> None:
    """A human re-armed the desk or a deployment: its ladder starts again from no step."""
    s.states_version += 1
    if e.deployment_id is None:
        s.ladder_step = 0
        s.dirty.add(("desk", None))
    else:
        s.deployments[e.deployment_id].ladder_step = 0
        s.dirty.add(("deployment", e.deployment_id))


def _on_allocation_staged(s: DeskState, e: Event) -> None:
    s.states_version += 1
    p = e.payload
    dep = s.deployments[p["deployment_id"]]
    dep.stage_fraction = _d(p["fraction_after"])
    dep.stage_step = int(p["step"])
    dep.stage_streak = int(p["losing_streak"])
    dep.stage_since = int(p["next_period_from"])
    dep.stage_anchor = float(p["equity"])
    s.dirty.add(("deployment", dep.id))


def _on_submitted(s: DeskState, e: Event) -> None:
    p = e.payload
    coid = p["client_order_id"]
    s.orders[coid] = OrderRecord(
        client_order_id=coid, deployment_id=p["deployment_id"], pair=p["pair"], side=p["side"],
        direction=p["direction"], type=p["type"], qty=_d(p["qty"]), reason=p["reason"],
        signal_time=int(p["signal_time"]), ref_price=_d(p["ref_price"]), created_at=e.time, updated_at=e.time,
        price=_opt(p.get("price")), stop_price=_opt(p.get("stop_price")),
        backtest_price=_opt(p.get("backtest_price")),
    )
    s.open_order_ids[coid] = None
    s.open_orders_by_key.setdefault((p["deployment_id"], p["pair"]), {})[coid] = None
    s.dirty.add(("order", coid))


def _transition(order: OrderRecord, to: OrderStatus, e: Event) -> None:
    if not order.status.can_become(to):
        raise LedgerError(f"event {e.seq} ({e.kind.value}): order {order.client_order_id} cannot go from "
                          f"{order.status.value} to {to.value}")
    order.status = to


def _on_accepted(s: DeskState, e: Event) -> None:
    order = s.orders[e.payload["client_order_id"]]
    order.venue_order_id = e.payload.get("venue_order_id") or order.venue_order_id
    order.updated_at = e.time
    if order.status is OrderStatus.NEW:  # a fill may have been reported before the acknowledgement
        _transition(order, OrderStatus.SUBMITTED, e)
    s.dirty.add(("order", order.client_order_id))


_ENDS = {EventKind.ORDER_CANCELED: OrderStatus.CANCELED, EventKind.ORDER_REJECTED: OrderStatus.REJECTED,
         EventKind.ORDER_EXPIRED: OrderStatus.EXPIRED}


def _on_closed_order(s: DeskState, e: Event) -> None:
    order = s.orders[e.payload["client_order_id"]]
    _transition(order, _ENDS[e.kind], e)
    order.status_reason = str(e.payload.get("reason", "")) or None
    order.updated_at = e.time
    _close_order(s, order)
    s.dirty.add(("order", order.client_order_id))


def _close_order(s: DeskState, order: OrderRecord) -> None:
    s.open_order_ids.pop(order.client_order_id, None)
    key = (order.deployment_id, order.pair)
    same = s.open_orders_by_key.get(key)
    if same is not None:
        same.pop(order.client_order_id, None)
        if not same:
            del s.open_orders_by_key[key]


def _on_filled(s: DeskState, e: Event) -> None:
    p = e.payload
    if p["fill_id"] in s.fills:  # a venue may report a fill twice; it counts once
        return
    qty, price, fee = _d(p["qty"]), _d(p["price"]), _d(p["fee"])
    order = s.orders[p["client_order_id"]]
    fill = FillRecord(p["fill_id"], order.client_order_id, order.deployment_id, order.pair, order.side,
                      qty, price, fee, e.time)
    s.fills[fill.fill_id] = fill
    s.dirty.add(("fill", fill.fill_id))

    new_filled = order.filled_qty + qty
    if new_filled > order.qty:
        raise LedgerError(f"event {e.seq}: fills of order {order.client_order_id} add up to {new_filled}, "
                          f"more than its {order.qty}")
    order.avg_price = (order.avg_price * order.filled_qty + price * qty) / new_filled
    order.filled_qty = new_filled
    if order.status.is_open:
        _transition(order, OrderStatus.FILLED if new_filled >= order.qty else OrderStatus.PARTIALLY_FILLED, e)
    # else: a fill the venue made before the order ended (cancelled, expired), reported after: it counts
    order.updated_at = e.time
    if order.status is OrderStatus.FILLED:
        _close_order(s, order)
    s.dirty.add(("order", order.client_order_id))

    sign = 1 if order.side == "BUY" else -1
    s.balances[s.quote] = s.cash() - sign * qty * price - fee
    s.dirty.add(("balance", s.quote))
    _apply_to_position(s, order.deployment_id, order.pair, sign * qty, price, fee, e.time)


def _apply_to_position(s: DeskState, dep_id: str, pair: str, dq: Decimal, price: Decimal, fee: Decimal,
                       time: int) -> None:
    key = (dep_id, pair)
    pos = s.positions.get(key)
    if pos is None:
        pos = s.positions[key] = PositionRecord(dep_id, pair)
    dep = s.deployments[dep_id]
    realized = ZERO
    if pos.qty == 0:
        pos.qty, pos.avg_price, pos.opened_at, pos.trip_pnl = dq, price, time, ZERO
    elif (pos.qty > 0) == (dq > 0):
        total = abs(pos.qty) + abs(dq)
        pos.avg_price = (pos.avg_price * abs(pos.qty) + price * abs(dq)) / total
        pos.qty += dq
    else:
        closing = min(abs(dq), abs(pos.qty))
        direction = 1 if pos.qty > 0 else -1
        realized = closing * (price - pos.avg_price) * direction
        remaining = pos.qty + dq
        if remaining != 0 and (remaining > 0) != (pos.qty > 0):  # flipped through zero
            # the round trip in progress ends here with its share of the fee; a new one opens
            closing_fee = fee * closing / abs(dq)
            dep.trades += 1
            dep.wins += 1 if pos.trip_pnl + realized - closing_fee > 0 else 0
            pos.avg_price, pos.opened_at = price, time
            pos.trip_pnl = closing_fee - realized  # the new trip keeps only the rest of the fee (below)
        pos.qty = remaining
    pos.realized_pnl += realized
    pos.fees += fee
    pos.trip_pnl += realized - fee
    dep.realized_pnl += realized
    dep.fees += fee
    if pos.qty == 0:
        dep.trades += 1
        dep.wins += 1 if pos.trip_pnl > 0 else 0
        pos.avg_price, pos.trip_pnl = ZERO, ZERO
        s.open_position_keys.pop(key, None)
    else:
        s.open_position_keys[key] = None
    s.dirty.add(("position", key))
    s.dirty.add(("deployment", dep_id))


def _on_progress(s: DeskState, e: Event) -> None:
    s.last_bar_time = int(e.payload["bar_time"])
    s.bars_done = int(e.payload["bars_done"])
    s.dirty.add(("desk", None))


def _on_completed(s: DeskState, e: Event) -> None:
    s.completed = True
    s.dirty.add(("desk", None))


def _on_command(s: DeskState, e: Event) -> None:
    command_id = str(e.payload["command_id"])
    s.commands[command_id] = CommandRecord(command_id, str(e.payload["action"]), e.seq, e.time)
    s.dirty.add(("command", command_id))


def _on_started(s: DeskState, e: Event) -> None:
    if s.completed or s.run_began_at is None:
        s.run_began_at = e.time
    s.completed = False
    s.dirty.add(("desk", None))


_HANDLERS = {
    EventKind.DESK_CONFIGURED: _on_configured,
    EventKind.DEPLOYMENT_CREATED: _on_deployment_created,
    EventKind.DEPLOYMENT_STATE_CHANGED: _on_deployment_state,
    EventKind.TRADING_STATE_CHANGED: _on_trading_state,
    EventKind.LADDER_STEPPED: _on_ladder_stepped,
    EventKind.REARMED: _on_rearmed,
    EventKind.POSITIONS_HANDED_OVER: _on_handed_over,
    EventKind.ALLOCATION_STAGED: _on_allocation_staged,
    EventKind.ORDER_SUBMITTED: _on_submitted,
    EventKind.ORDER_ACCEPTED: _on_accepted,
    EventKind.ORDER_CANCELED: _on_closed_order,
    EventKind.ORDER_REJECTED: _on_closed_order,
    EventKind.ORDER_EXPIRED: _on_closed_order,
    EventKind.ORDER_FILLED: _on_filled,
    EventKind.RUN_STARTED: _on_started,
    EventKind.COMMAND_RECEIVED: _on_command,
    EventKind.RUN_PROGRESS: _on_progress,
    EventKind.RUN_COMPLETED: _on_completed,
}
