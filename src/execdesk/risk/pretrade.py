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

The order path is lean: the book and every check are floats and small integers; Decimal is used only
for what leaves for the ledger — the entry's size (the sizing method's notional, in the Decimal
arithmetic its formula shows) and the verdict's qty (Decimal, rounded down). The words of a verdict (its
reason, its numbers, the sizing's formula and caps) are what gets recorded, not what decides: they are
put in words when first read — by :meth:`Verdict.as_dict` as the order manager records the verdict —
from the figures of the moment of the decision, so the record is the same as if they had been written
at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

from execdesk.domain.state import DeskState, FillRecord
from execdesk.domain.types import QUANTUM, OrderIntent, TradingState, dec
from execdesk.risk.config import RiskConfig
from execdesk.risk.fastpath import PORTFOLIO as FAST_PORTFOLIO
from execdesk.risk.fastpath import (
    ROOM_RULES,
    STATE_CODE,
    Denial,
    FastLimits,
    FastOrder,
    RiskState,
    check,
    entry_room_values,
)
from execdesk.risk.sizing import (
    FixedFractionalFigures,
    SizeResult,
    entry_size,
    fixed_fractional_figures,
    fixed_fractional_risk,
    fixed_fractional_words,
    float_repr,
)

if TYPE_CHECKING:
    from execdesk.strategy.bundle import Sizing, ValidationReport

#: float tolerance between the ledger's Decimal quantities and the book's floats
_HAIR = 1e-9
_ZERO = Decimal(0)
_PROBE = float(QUANTUM)  # the qty the check sees for an entry sized 0
#: the verdict's fields put in words when first read (see :class:`Verdict`)
_WORDS = frozenset(("reason", "numbers", "sizing"))


def _money(x: float) -> str:
    """``x`` to the cent, never "-0.00". (The same as ``f"{round(x, 2) + 0.0:.2f}"``, in a third of the time: both
    round the binary value correctly, ties to even, and the float nearest a number of cents prints as it.)"""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the check answers for one intent: approved or not, the rule, the reason, the qty (Decimal: what the
    order manager records and sends), the numbers and, for an entry, the sizing's arithmetic.

    :meth:`PreTrade.decide` builds its verdicts with :func:`_deferred`: ``approved``, ``rule`` and ``qty`` at
    once, the words — ``reason``, ``numbers``, ``sizing`` — the first time one of them is read (by
    :meth:`as_dict`, an equality, a ``dataclasses.replace``...), from figures it kept from the moment of the
    decision; the same words, only later. A verdict built by its constructor has its words from the start.
    """

    approved: bool
    rule: str
    reason: str
    qty: Decimal
    numbers: dict[str, str] = field(default_factory=dict)
    sizing: SizeResult | None = None
    #: (render, args) of a deferred verdict: ``render(*args)`` answers (reason, numbers, sizing); None once
    #: they are in words
    _words: tuple[Any, tuple[Any, ...]] | None = field(default=None, init=False, repr=False, compare=False)

    if not TYPE_CHECKING:  # (for mypy the words are plain fields)
        def __getattr__(self, name: str) -> Any:
            # only called for a slot not set: the words of a deferred verdict, put in words once
            if name not in _WORDS:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            words = object.__getattribute__(self, "_words")
            if words is None:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            render, args = words
            reason, numbers, sizing = render(*args)
            _set_reason(self, reason)
            _set_numbers(self, numbers)
            _set_sizing(self, sizing)
            _set_words(self, None)
            return object.__getattribute__(self, name)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"approved": self.approved, "rule": self.rule, "reason": self.reason,
                                  "qty": str(self.qty), "numbers": self.numbers}
        if self.sizing is not None:
            out["sizing"] = self.sizing.as_dict()
        return out


_new_verdict = object.__new__
# the slots' own setters: a frozen dataclass's fields set without object.__setattr__ (a fourth of its cost)
_set_approved, _set_rule, _set_qty, _set_reason, _set_numbers, _set_sizing, _set_words = (
    Verdict.__dict__[name].__set__ for name in ("approved", "rule", "qty", "reason", "numbers", "sizing", "_words"))


def _deferred(approved: bool, rule: str, qty: Decimal, render: Any, args: tuple[Any, ...]) -> Verdict:
    """A :class:`Verdict` whose reason, numbers and sizing are ``render(*args)``, put in words when first read."""
    verdict: Verdict = _new_verdict(Verdict)
    _set_approved(verdict, approved)
    _set_rule(verdict, rule)
    _set_qty(verdict, qty)
    _set_words(verdict, (render, args))
    return verdict


def _denial_words(denial: Denial) -> tuple[str, dict[str, str], None]:
    return denial.describe(), denial.as_numbers(), None


def _exit_words(held: float) -> tuple[str, dict[str, str], None]:
    return "reduces exposure", {"position_qty": repr(held)}, None


#: an entry's size as the order path keeps it: a SizeResult (Kelly, volatility target), or the arguments of
#: fixed_fractional_result (fixed fractional, put in words when recorded)
_Size = SizeResult | tuple[Decimal, float, Decimal, float, float, FixedFractionalFigures | None]
#: a cut of an entry's notional: (rule, before, the drawdown ladder's multiplier or None, after)
_Cut = tuple[str, float, float | None, float]


def _entry_words(reason: str, denial: Denial | None, figures: tuple[float, ...], size: _Size,
                 cuts: list[_Cut] | None, qty: Decimal, ref_price: Decimal) -> tuple[str, dict[str, str], SizeResult]:
    """An entry verdict's words: its numbers (money to the cent), the denial's words (if any) and the sizing —
    the method's result with every cut of the notional named, and the qty the verdict took."""
    deployment_equity, allocation_fraction, equity_in_use, portfolio_equity, gross, exposure, cash, notional = figures
    numbers = {"deployment_equity": _money(deployment_equity), "allocation_fraction": float_repr(allocation_fraction),
               "equity_in_use": _money(equity_in_use), "portfolio_equity": _money(portfolio_equity),
               "gross_exposure": _money(gross), "deployment_exposure": _money(exposure), "free_cash": _money(cash),
               "notional": _money(notional)}
    if denial is not None:
        numbers.update(denial.as_numbers())
        reason = denial.describe()
    if isinstance(size, SizeResult):
        method, formula, inputs, caps = size.method, size.formula, size.inputs, list(size.caps_applied)
    else:
        method = "fixed_fractional"
        formula, inputs, caps = fixed_fractional_words(*size)
    for rule, before, multiplier, after in cuts or ():
        caps.append(f"{rule}: {before:.2f} -> {after:.2f}" if multiplier is None else
                    f"{rule}: {before:.2f} x {multiplier} -> {after:.2f}")
    return reason, numbers, SizeResult(qty, dec(qty * ref_price), method, formula, inputs, caps)


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
        self._entry_cost_rate = 1.0 + float(fee_rate)  # what an entry holds of free cash per unit of notional
        self.state = RiskState.new(len(self.dep_index), len(self.pair_index), equity=equity, cash=equity,
                                   asset_group=self.asset_group, limits=self.limits)
        self.held: dict[str, _Hold] = {}
        self._positions: dict[int, float] = {}  # lane -> the ledger's position (float), lanes not flat
        self._cash = equity  # the ledger's cash
        # lanes the view may hold a position on (zeroed before a recompute); a lane may be listed twice
        self._lanes_set: list[int] = []
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
                                           self._entry_cost_rate if entry else 0.0)
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
        if q1 != 0.0:
            self._lanes_set.append(lane)  # (no membership test: a scan of every open lane per hold)
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
        """Size (entries) and check one intent: on the book's floats; the verdict's qty in Decimal, its words
        when it is recorded (see :class:`Verdict`)."""
        rs = self.state if not self._dirty else self.view()
        d, a = self.dep_index[intent.deployment_id], self.pair_index[intent.pair]
        rs.portfolio_state = STATE_CODE[ctx.portfolio_state]  # (RiskState.set_state, inlined)
        rs.dep_state[d] = STATE_CODE[ctx.deployment_state]
        side = 1 if intent.side == "BUY" else -1
        price = float(intent.ref_price)
        if intent.reduce_only:
            want = float(intent.qty or 0)
            held = abs(rs.pos_qty[d * rs.n_assets + a])
            if held < want <= held * (1.0 + _HAIR):  # the ledger's Decimals vs the book's floats
                want = held
            denial = check(FastOrder(d, a, side, want, price, True, float(intent.signal_time)), rs, self.limits)
            if denial is not None:
                return _deferred(False, denial.rule, _ZERO, _denial_words, (denial,))
            return _deferred(True, "approved", intent.qty or _ZERO, _exit_words, (held,))
        return self._entry(intent, ctx, rs, d, a, side, price)

    def _entry(self, intent: OrderIntent, ctx: Context, rs: RiskState, d: int, a: int, side: int,
               price: float) -> Verdict:
        cfg, limits = self.cfg, self.limits
        equity_in_use = ctx.deployment_equity * ctx.allocation_fraction
        rs.equity = ctx.portfolio_equity  # (RiskState.set_equity, inlined)
        rs.dep_equity[d] = equity_in_use
        ref_price = intent.ref_price
        equity = Decimal(repr(round(equity_in_use, 8))).quantize(QUANTUM, ROUND_HALF_EVEN)  # dec(...), inlined
        # the size, in the Decimal arithmetic its formula shows (put in words only when recorded)
        size: _Size
        risk = fixed_fractional_risk(ctx.sizing, cfg.risk_per_trade)
        if risk is not None:
            figures = fixed_fractional_figures(equity, risk, ref_price, ctx.stop_distance, cfg.max_position_fraction)
            size = (equity, risk, ref_price, ctx.stop_distance, cfg.max_position_fraction, figures)
            wanted = float(figures[3]) if figures is not None else 0.0
        else:
            size = entry_size(ctx.sizing, equity, ref_price, ctx.stop_distance, cfg.risk_per_trade,
                              cfg.max_position_fraction, ctx.validation, ctx.atr)
            wanted = float(size.notional)
        # cut by the drawdown ladder and to the room each cap leaves, in floats
        notional = wanted
        cuts: list[_Cut] | None = None
        multiplier = ctx.size_multiplier
        if multiplier < 1.0:
            cut = notional * multiplier
            cuts = [("drawdown_ladder", notional, multiplier, cut)]
            notional = cut
        rooms = entry_room_values(d, a, side, price, rs, limits)
        for rule, room in zip(ROOM_RULES, rooms, strict=True):
            if notional > room:
                if cuts is None:
                    cuts = []
                cuts.append((rule, notional, None, room))
                notional = room
        # rounded down; by a hair below the room when it reached one (an entry of exactly the room sits on
        # every binding cap), not otherwise: an entry no cap cut keeps the size its formula shows
        at_room = notional >= min(rooms) * (1.0 - _HAIR)
        if ref_price > _ZERO:  # (dec(...), inlined, then divided and rounded down)
            qty = (Decimal(repr(notional * (1.0 - _HAIR) if at_room else notional)).quantize(QUANTUM, ROUND_HALF_EVEN)
                   / ref_price).quantize(QUANTUM, ROUND_DOWN)
        else:
            qty = _ZERO
        figures_now = (ctx.deployment_equity, ctx.allocation_fraction, equity_in_use, ctx.portfolio_equity, rs.gross,
                       rs.dep_exposure[d], rs.cash, notional)
        # the trading state, the position count, the throttle and the price band come first, whatever the size
        probe = float(qty) if qty > _ZERO else _PROBE
        denial = check(FastOrder(d, a, side, probe, price, False, float(intent.signal_time)), rs, limits)
        if denial is not None:
            return _deferred(False, denial.rule, _ZERO, _entry_words,
                             ("", denial, figures_now, size, cuts, qty, ref_price))
        # below a hundredth of the intended size, the order is noise: deny rather than trade dust
        if qty <= _ZERO or notional < wanted / 100:
            return _deferred(False, _last_cut(size, cuts), _ZERO, _entry_words,
                             ("no room for a position of useful size", None, figures_now, size, cuts, qty, ref_price))
        return _deferred(True, "approved", qty, _entry_words,
                         ("within limits", None, figures_now, size, cuts, qty, ref_price))

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
        self._hold(client_order_id, intent.deployment_id, intent.pair, intent.side, float(verdict.qty),
                   float(intent.ref_price), not intent.reduce_only)
        self.state.record_order_at(self.dep_index[intent.deployment_id], float(intent.signal_time))

    def position(self, deployment_id: str, pair: str) -> float:
        """The lane's position net of orders in flight."""
        return self.view().pos_qty[self._lane(deployment_id, pair)]


def _last_cut(size: _Size, cuts: list[_Cut] | None) -> str:
    """The rule of the last cut of an entry's size (sizing's own caps, the ladder's, the rooms'): the rule an
    entry left no room by is denied by; ``size`` when nothing cut it."""
    if cuts:
        return cuts[-1][0]
    if isinstance(size, SizeResult):
        caps = size.caps_applied
    else:
        figures = size[5]
        return "no_size" if figures is None else "max_position_fraction" if figures[0] > figures[1] else "size"
    return caps[-1].split(":")[0] if caps else "size"
