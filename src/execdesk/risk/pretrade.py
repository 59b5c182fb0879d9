"""The desk's pre-trade check: every order intent is sized (entries) and passed through the fast path.

:class:`PreTrade` keeps the fast path's :class:`~execdesk.risk.fastpath.RiskState` current for the desk —
deployments and pairs as small integers, positions from fills, prices at each bar the desk acts on,
equity from the monitor, trading states from the ledger — and turns each intent into a
:class:`Verdict`: the rule, the reason and the numbers, with the sizing arithmetic for an entry. A
denial is data, recorded by the caller as an ``order.denied`` event; nothing here raises.

Entries are sized by fixed fractional risk on the deployment's equity *in use* (its equity times the
staged-allocation fraction), cut by the drawdown ladder's size multiplier, then shrunk to fit the
room every cap leaves (each cut named), rounded down, and checked by :func:`~execdesk.risk.fastpath.check`
— which also applies the rules sizing does not (trading state, open positions, throttle, price band).

Orders in flight count as if filled at their reference price: an approved entry takes its notional
and fee from free cash and adds its exposure at once (so two entries in one bar see each other); an
approved exit takes its quantity off the position at once (so nothing closes twice), but gives cash
back only when it fills. Fills replace these holds. The snapshot is recomputed from the ledger's
positions and cash, the holds and the prices whenever one of them changed, so the book's floats never
drift from the accounting and a resumed desk decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from execdesk.domain.state import DeskState, FillRecord
from execdesk.domain.types import QUANTUM, OrderIntent, TradingState, dec
from execdesk.risk.config import RiskConfig
from execdesk.risk.fastpath import PORTFOLIO as FAST_PORTFOLIO
from execdesk.risk.fastpath import FastLimits, FastOrder, RiskState, check, entry_rooms
from execdesk.risk.sizing import SizeResult, entry_size

if TYPE_CHECKING:
    from execdesk.strategy.bundle import Sizing, ValidationReport

#: float tolerance between the ledger's Decimal quantities and the book's floats
_HAIR = 1e-9


def _money(x: float) -> str:
    return f"{round(x, 2) + 0.0:.2f}"  # + 0.0: no "-0.00"


@dataclass(frozen=True, slots=True)
class Verdict:
    approved: bool
    rule: str
    reason: str
    qty: Decimal
    numbers: dict[str, str] = field(default_factory=dict)
    sizing: SizeResult | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"approved": self.approved, "rule": self.rule, "reason": self.reason,
                                  "qty": str(self.qty), "numbers": self.numbers}
        if self.sizing is not None:
            out["sizing"] = self.sizing.as_dict()
        return out


@dataclass(slots=True)
class _Hold:
    """An order in flight, counted in the book: ``qty`` (signed) still unfilled at ``price``."""

    lane: int
    qty: float
    price: float
    cost_rate: float  # what an entry holds of free cash per unit of notional (1 + fee); 0 for an exit


@dataclass(frozen=True, slots=True)
class Context:
    """What the desk knows about an intent's deployment at the moment of the check."""

    portfolio_state: TradingState
    deployment_state: TradingState
    portfolio_equity: float
    deployment_equity: float
    stop_distance: float
    size_multiplier: float = 1.0
    allocation_fraction: float = 1.0
    sizing: Sizing | None = None  # the strategy's sizing method (None: fixed fractional at risk_per_trade)
    validation: ValidationReport | None = None  # Kelly's win rate and payoff
    atr: float | None = None  # volatility target: the pair's ATR at the strategy's last closed candle


class PreTrade:
    """Sizing and the fast path for one desk (see the module docstring).

    The :class:`RiskState` the check reads is a pure function of the ledger's positions and cash, the
    orders in flight and the last prices — recomputed when one of them changed — so a desk resumed from
    its ledger decides exactly as one that never stopped. Only the throttle's ring of recent orders is
    kept incrementally (and rebuilt from the ledger's orders on a restart).
    """

    def __init__(self, cfg: RiskConfig, deployments: Sequence[str], pairs: Sequence[str], fee_rate: Decimal,
                 equity: float) -> None:
        self.cfg = cfg
        self.fee_rate = fee_rate
        self.dep_index = {d: i for i, d in enumerate(deployments)}
        self.pair_index = {p: i for i, p in enumerate(pairs)}
        group_of = cfg.group_of()
        group_ids = {name: i for i, name in enumerate(sorted(cfg.correlation_groups))}
        self.asset_group = [group_ids[group_of[p]] if p in group_of else -1 for p in pairs]
        self.limits = FastLimits.from_config(cfg, fee_rate=float(fee_rate))
        self.state = RiskState.new(len(self.dep_index), len(self.pair_index), equity=equity, cash=equity,
                                   asset_group=self.asset_group, limits=self.limits)
        self.held: dict[str, _Hold] = {}
        self._positions: dict[int, float] = {}  # lane -> the ledger's position (float), lanes not flat
        self._cash = equity  # the ledger's cash
        self._lanes_set: list[int] = []  # lanes the view holds a position on
        self._dirty = True

    def _lane(self, deployment_id: str, pair: str) -> int:
        return self.dep_index[deployment_id] * len(self.pair_index) + self.pair_index[pair]

    # ---------------------------------------------------------------- keeping the book current
    def rebuild(self, ledger: DeskState, prices: Mapping[str, float], now: float) -> None:
        """The book from the ledger: positions, orders in flight, the throttle's recent orders, cash."""
        rs = self.state
        rs.ring = [-math.inf] * len(rs.ring)
        rs.ring_head = [0] * len(rs.ring_head)
        self.held = {}
        self._positions = {}
        self.mark(prices)
        for pos in ledger.open_positions():
            self._positions[self._lane(pos.deployment_id, pos.pair)] = float(pos.qty)
        for order in ledger.open_orders():
            if order.type == "STOP_MARKET":
                continue  # a resting stop reduces nothing until it fills
            self._hold(order.client_order_id, order.deployment_id, order.pair, order.side,
                       float(order.qty - order.filled_qty), float(order.ref_price), order.reason == "entry_signal")
        window = self.limits.throttle_window_s
        recent = sorted((o.created_at, o.deployment_id) for o in ledger.orders.values()
                        if o.created_at > now - window and o.deployment_id in self.dep_index)
        for created, dep in recent:
            rs.record_order(FastOrder(self.dep_index[dep], 0, 1, 0.0, 0.0, timestamp=float(created)))
        self._cash = float(ledger.cash())
        self._dirty = True

    def mark(self, prices: Mapping[str, float]) -> None:
        """New last prices (a bar's closes): exposure is re-marked at them."""
        last, index = self.state.last_price, self.pair_index
        for pair, price in prices.items():
            a = index.get(pair)
            if a is not None and price > 0:
                last[a] = price
        # recomputed at the first check after every mark, changed prices or not: a resumed desk starts
        # each bar from the same snapshot as one that never stopped
        self._dirty = True

    def on_fills(self, ledger: DeskState, fills: Sequence[FillRecord]) -> None:
        """Fills replace (their part of) their orders' holds; the lanes take the ledger's positions."""
        for fill in fills:
            order = ledger.orders[fill.client_order_id]
            hold = self.held.get(order.client_order_id)
            if hold is not None:
                part = min(float(fill.qty), abs(hold.qty))
                hold.qty -= part if hold.qty > 0 else -part
            pos = ledger.position(order.deployment_id, order.pair)
            lane = self._lane(order.deployment_id, order.pair)
            if pos is None or pos.qty == 0:
                self._positions.pop(lane, None)
            else:
                self._positions[lane] = float(pos.qty)
        self.settle(ledger)

    def settle(self, ledger: DeskState) -> None:
        """Let go of the holds of orders no longer open (filled, cancelled, rejected); take the ledger's cash."""
        for coid in [c for c in self.held if c not in ledger.open_order_ids]:
            del self.held[coid]
        self._cash = float(ledger.cash())
        self._dirty = True

    def _hold(self, coid: str, dep: str, pair: str, side: str, qty: float, price: float, entry: bool) -> None:
        if qty > 0:
            hold = self.held[coid] = _Hold(self._lane(dep, pair), qty if side == "BUY" else -qty, price,
                                           1.0 + float(self.fee_rate) if entry else 0.0)
            if not self._dirty:  # the snapshot is current: add the hold to it rather than recompute it all
                self._add_to_view(hold)

    def _add_to_view(self, hold: _Hold) -> None:
        rs = self.state
        lane = hold.lane
        d, a = divmod(lane, rs.n_assets)
        q0 = rs.pos_qty[lane]
        q1 = q0 + hold.qty
        if abs(q1) < 1e-12:
            q1 = 0.0
        rs.pos_qty[lane] = q1
        if q1 != 0.0 and lane not in self._lanes_set:
            self._lanes_set.append(lane)
        price = rs.last_price[a]
        d_abs = (abs(q1) - abs(q0)) * price
        rs.gross += d_abs
        rs.dep_exposure[d] += d_abs
        d_long = (q1 if q1 > 0.0 else 0.0) - (q0 if q0 > 0.0 else 0.0)
        d_short = (-q1 if q1 < 0.0 else 0.0) - (-q0 if q0 < 0.0 else 0.0)
        rs.asset_long_qty[a] += d_long
        rs.asset_short_qty[a] += d_short
        g = rs.asset_group[a]
        if g >= 0:
            rs.group_long[g] += d_long * price
            rs.group_short[g] += d_short * price
        rs.open_positions += (q1 != 0.0) - (q0 != 0.0)
        rs.cash -= abs(hold.qty) * hold.price * hold.cost_rate

    def view(self) -> RiskState:
        """The check's snapshot, recomputed if anything changed since it was last read."""
        if not self._dirty:
            return self.state
        rs = self.state
        qty = dict(self._positions)
        cash = self._cash
        for h in self.held.values():
            qty[h.lane] = qty.get(h.lane, 0.0) + h.qty
            cash -= abs(h.qty) * h.price * h.cost_rate
        n = rs.n_assets
        pos_qty, last, group = rs.pos_qty, rs.last_price, rs.asset_group
        for lane in self._lanes_set:
            pos_qty[lane] = 0.0
        dep_exposure = [0.0] * rs.n_deployments
        longs, shorts = [0.0] * n, [0.0] * n
        gross, count = 0.0, 0
        for lane in sorted(qty):
            q = qty[lane]
            if abs(q) < 1e-12:  # a hold that cancels its position out, to float dust
                continue
            pos_qty[lane] = q
            d, a = divmod(lane, n)
            value = abs(q) * last[a]
            gross += value
            dep_exposure[d] += value
            if q > 0:
                longs[a] += q
            else:
                shorts[a] -= q
            count += 1
        self._lanes_set = [lane for lane in qty if pos_qty[lane] != 0.0]
        n_groups = len(rs.group_long)
        group_long, group_short = [0.0] * n_groups, [0.0] * n_groups
        for a in range(n):
            if group[a] >= 0:
                group_long[group[a]] += longs[a] * last[a]
                group_short[group[a]] += shorts[a] * last[a]
        rs.gross, rs.dep_exposure, rs.open_positions, rs.cash = gross, dep_exposure, count, cash
        rs.asset_long_qty, rs.asset_short_qty, rs.group_long, rs.group_short = longs, shorts, group_long, group_short
        self._dirty = False
        return rs

    # ---------------------------------------------------------------- the check
    def decide(self, intent: OrderIntent, ctx: Context) -> Verdict:
        """Size (entries) and check one intent."""
        rs = self.view()
        d, a = self.dep_index[intent.deployment_id], self.pair_index[intent.pair]
        rs.set_state(FAST_PORTFOLIO, ctx.portfolio_state)
        rs.set_state(d, ctx.deployment_state)
        side = 1 if intent.side.value == "BUY" else -1
        price = float(intent.ref_price)
        if intent.reduce_only:
            want = float(intent.qty or 0)
            held = abs(rs.position(d, a))
            if held < want <= held * (1.0 + _HAIR):  # the ledger's Decimals vs the book's floats
                want = held
            denial = check(FastOrder(d, a, side, want, price, True, float(intent.signal_time)), rs, self.limits)
            if denial is not None:
                return Verdict(False, denial.rule, denial.describe(), Decimal(0), denial.as_numbers())
            return Verdict(True, "approved", "reduces exposure", intent.qty or Decimal(0),
                           {"position_qty": repr(held)})
        return self._entry(intent, ctx, d, a, side, price)

    def _entry(self, intent: OrderIntent, ctx: Context, d: int, a: int, side: int, price: float) -> Verdict:
        rs, cfg = self.state, self.cfg
        equity_in_use = ctx.deployment_equity * ctx.allocation_fraction
        rs.set_equity(ctx.portfolio_equity)
        rs.set_equity(equity_in_use, d)
        size = entry_size(ctx.sizing, dec(round(equity_in_use, 8)), intent.ref_price, ctx.stop_distance,
                          cfg.risk_per_trade, cfg.max_position_fraction, ctx.validation, ctx.atr)
        caps = list(size.caps_applied)
        wanted = float(size.notional)
        notional = wanted
        if ctx.size_multiplier < 1.0:
            cut = notional * ctx.size_multiplier
            caps.append(f"drawdown_ladder: {notional:.2f} x {ctx.size_multiplier} -> {cut:.2f}")
            notional = cut
        rooms = entry_rooms(d, a, side, price, rs, self.limits)
        for rule, room in rooms:
            if notional > room:
                caps.append(f"{rule}: {notional:.2f} -> {room:.2f}")
                notional = room
        # rounded down; by a hair below the room when it reached one (an entry of exactly the room sits on
        # every binding cap), not otherwise: an entry no cap cut keeps the size its formula shows
        at_room = notional >= min(room for _rule, room in rooms) * (1.0 - _HAIR)
        qty = (dec(notional * (1.0 - _HAIR) if at_room else notional) / intent.ref_price).quantize(
            QUANTUM, ROUND_DOWN) if intent.ref_price > 0 else Decimal(0)
        numbers = {"deployment_equity": _money(ctx.deployment_equity),
                   "allocation_fraction": repr(ctx.allocation_fraction), "equity_in_use": _money(equity_in_use),
                   "portfolio_equity": _money(ctx.portfolio_equity), "gross_exposure": _money(rs.gross),
                   "deployment_exposure": _money(rs.dep_exposure[d]), "free_cash": _money(rs.cash),
                   "notional": _money(notional)}
        sized = SizeResult(qty, dec(qty * intent.ref_price), size.method, size.formula, size.inputs, caps)
        # the trading state, the position count, the throttle and the price band come first, whatever the size
        probe = float(qty) if qty > 0 else float(QUANTUM)
        denial = check(FastOrder(d, a, side, probe, price, False, float(intent.signal_time)), rs, self.limits)
        if denial is not None:
            numbers.update(denial.as_numbers())
            return Verdict(False, denial.rule, denial.describe(), Decimal(0), numbers, sized)
        # below a hundredth of the intended size, the order is noise: deny rather than trade dust
        if qty <= 0 or notional < wanted / 100:
            rule = caps[-1].split(":")[0] if caps else "size"
            return Verdict(False, rule, "no room for a position of useful size", Decimal(0), numbers, sized)
        return Verdict(True, "approved", "within limits", qty, numbers, sized)

    def check_sized(self, intent: OrderIntent, ctx: Context) -> Verdict:
        """Check an entry sized elsewhere — ``intent.qty``, e.g. a Freqtrade bot's amount — without resizing it:
        the fast path's rules on that qty (trading state, open positions, the exposure caps, free cash, throttle,
        price band), then sizing's per-position cap (the lane's position plus the entry at most
        ``max_position_fraction`` x the deployment's equity in use, cut by the drawdown ladder's size multiplier).
        Approved: the qty asked for; denied: the first rule that failed, with its numbers."""
        rs = self.view()
        d, a = self.dep_index[intent.deployment_id], self.pair_index[intent.pair]
        rs.set_state(FAST_PORTFOLIO, ctx.portfolio_state)
        rs.set_state(d, ctx.deployment_state)
        equity_in_use = ctx.deployment_equity * ctx.allocation_fraction
        rs.set_equity(ctx.portfolio_equity)
        rs.set_equity(equity_in_use, d)
        side = 1 if intent.side.value == "BUY" else -1
        price, qty = float(intent.ref_price), float(intent.qty or 0)
        notional = qty * price
        numbers = {"deployment_equity": _money(ctx.deployment_equity),
                   "allocation_fraction": repr(ctx.allocation_fraction), "equity_in_use": _money(equity_in_use),
                   "portfolio_equity": _money(ctx.portfolio_equity), "gross_exposure": _money(rs.gross),
                   "deployment_exposure": _money(rs.dep_exposure[d]), "free_cash": _money(rs.cash),
                   "notional": _money(notional)}
        denial = check(FastOrder(d, a, side, qty, price, False, float(intent.signal_time)), rs, self.limits)
        if denial is not None:
            numbers.update(denial.as_numbers())
            return Verdict(False, denial.rule, denial.describe(), Decimal(0), numbers)
        cap = equity_in_use * self.cfg.max_position_fraction * ctx.size_multiplier
        position = (abs(rs.position(d, a)) * price if rs.position(d, a) * side > 0 else 0.0) + notional
        if position > cap * (1.0 + _HAIR):
            numbers.update({"value": repr(position), "limit": repr(cap)})
            return Verdict(False, "max_position_fraction", f"max_position_fraction: position above "
                           f"{self.cfg.max_position_fraction} x equity in use x size multiplier {ctx.size_multiplier} "
                           f"({position:.6g} vs limit {cap:.6g})", Decimal(0), numbers)
        return Verdict(True, "approved", "within limits", intent.qty or Decimal(0), numbers)

    def commit(self, client_order_id: str, intent: OrderIntent, verdict: Verdict) -> None:
        """An approved order was sent: hold it in the book and count it against the throttle."""
        self._hold(client_order_id, intent.deployment_id, intent.pair, intent.side.value, float(verdict.qty),
                   float(intent.ref_price), not intent.reduce_only)
        self.state.record_order(FastOrder(self.dep_index[intent.deployment_id], 0, 1, 0.0, 0.0,
                                          timestamp=float(intent.signal_time)))

    def position(self, deployment_id: str, pair: str) -> float:
        """The lane's position net of orders in flight."""
        return self.view().pos_qty[self._lane(deployment_id, pair)]
