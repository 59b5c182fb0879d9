"""The pre-trade fast path: every order, checked in about a microsecond, as a pure function of a snapshot.

:func:`check` is a pure function of a :class:`FastOrder`, a :class:`RiskState` and :class:`FastLimits`:
it reads, never writes, and returns ``None`` when the order is approved (no object is built on that
path beyond a few transient floats, which CPython serves from its free list) or a small immutable
:class:`Denial` (a NamedTuple with a constant reason: nothing is formatted; the trading state's denials,
which carry no figure of the order, are built once) naming the first rule that failed. Turning a denial
into the ledger's verdict record is the caller's job (:meth:`Denial.as_numbers`, :meth:`Denial.describe`).

Everything is indexed by small integers (deployment index, asset index) and every risk figure is a
float: this is a risk check, not accounting. :class:`RiskState` is the snapshot the desk keeps up to
date incrementally; its mutators are O(1) (:meth:`RiskState.set_price` is O(deployments) and is
called per price tick, off the order path).

Rules, in order; the first failing one denies:

0. ``invalid_order`` — qty and price must be positive and finite (a cancel is always let through).
1. ``trading_state`` — the stricter of the portfolio's and the deployment's state: HALTED lets nothing
   through (cancels are not orders); REDUCING lets through only orders that reduce the lane's position.
   A reduce-only order that does not reduce is named ``reduce_only`` rather than ``trading_state``
   whatever the state short of HALTED.
2. ``reduce_only`` — a reduce-only order must reduce: opposite side to the position, qty at most its size.
   Orders that reduce the position skip rules 3-9 (they lower every exposure; an exit never waits on the
   throttle) and face only the price band.
3. ``max_order_notional`` — qty x price above the per-order cap.
4. ``max_open_positions`` — an order that opens a position (the lane is flat) when the count is at the cap.
5. ``deployment_exposure`` — the deployment's gross exposure plus the order above
   ``deployment_exposure_fraction`` x the deployment's equity.
6. ``gross_exposure`` — the portfolio's gross exposure plus the order above ``max_gross_exposure`` x equity.
7. ``correlated_exposure`` — the same-direction exposure of the order's correlation group (the long
   positions of all deployments in the group's assets, or the short ones), plus the order, above
   ``max_correlated_exposure`` x portfolio equity. Longs and shorts do not offset: a short in one asset
   of a group is no hedge of a long in another as far as this cap goes (a net cap would let an exit of
   the hedge raise the net exposure, and exits must never be denied by a cap).
8. ``free_cash`` — notional + fee above free cash.
9. ``throttle`` — the deployment already placed ``throttle_count`` orders within ``throttle_window_s``
   seconds before this order's timestamp (orders are counted by :meth:`RiskState.record_order` only).
10. ``price_band`` — the order's price further than ``price_band`` from the asset's last price (or no
    last price known).

The exposure rules (5-7) value the order at the higher of its price and the last price, at least what
:meth:`RiskState.apply_fill` books (exposure is marked at the last price), so an approved order, once
applied, breaches no cap (the property tests check this, to float rounding).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from execdesk.domain.types import TradingState
from execdesk.risk.config import RiskConfig

#: trading states as small ints, ordered by strictness (the effective state is the max of two)
ACTIVE, REDUCING, HALTED = 0, 1, 2
STATE_CODE: dict[TradingState, int] = {TradingState.ACTIVE: ACTIVE, TradingState.REDUCING: REDUCING,
                                       TradingState.HALTED: HALTED}
STATE_NAME: tuple[str, ...] = ("ACTIVE", "REDUCING", "HALTED")
#: the deployment index :meth:`RiskState.set_state` takes for the portfolio's own state
PORTFOLIO = -1


@dataclass(frozen=True, slots=True)
class FastLimits:
    """The fast path's limits. Fractions are of equity (portfolio or deployment), money in the quote currency.

    Defaults:
      max_order_notional inf — optional absolute cap per order (RiskConfig.max_order_notional, None = inf);
      max_open_positions 50 — as RiskConfig;
      deployment_exposure_fraction 1.0 — a deployment trades its own equity, unlevered;
      max_gross_exposure 1.0 — as RiskConfig;
      max_correlated_exposure 0.30 — net same-direction exposure to one correlation group at most 30% of
        portfolio equity;
      throttle_count 10 / throttle_window_s 60.0 — at most 10 orders per deployment per rolling 60 s
        (the RiskState's ring buffers are sized from throttle_count when it is built);
      price_band 0.05 — an order's price within 5% of the asset's last price;
      fee_rate 0.001 — the taker fee the free-cash rule reserves on top of the notional.
    """

    max_order_notional: float = math.inf
    max_open_positions: int = 50
    deployment_exposure_fraction: float = 1.0
    max_gross_exposure: float = 1.0
    max_correlated_exposure: float = 0.30
    throttle_count: int = 10
    throttle_window_s: float = 60.0
    price_band: float = 0.05
    fee_rate: float = 0.001

    def __post_init__(self) -> None:
        if self.throttle_count < 1:
            raise ValueError(f"throttle_count must be >= 1, not {self.throttle_count}")
        for name in ("max_order_notional", "deployment_exposure_fraction", "max_gross_exposure",
                     "max_correlated_exposure", "throttle_window_s", "price_band"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")
        if not 0 <= self.fee_rate < 1:
            raise ValueError(f"fee_rate must be in [0, 1), not {self.fee_rate}")

    @classmethod
    def from_config(cls, cfg: RiskConfig, **extra: Any) -> FastLimits:
        """The limits a RiskConfig sets, plus any other field by name (``extra``: e.g. ``fee_rate``)."""
        limits = cls(
            max_order_notional=cfg.max_order_notional if cfg.max_order_notional is not None else math.inf,
            max_open_positions=cfg.max_open_positions, max_gross_exposure=cfg.max_gross_exposure,
            max_correlated_exposure=cfg.max_correlated_exposure, throttle_count=cfg.throttle_count,
            throttle_window_s=cfg.throttle_window_s, price_band=cfg.price_band)
        return dataclasses.replace(limits, **extra) if extra else limits


@dataclass(slots=True)
class FastOrder:
    """One order as the fast path sees it.

    ``side`` is +1 (buy) or -1 (sell); ``timestamp`` is in seconds (the throttle's window unit);
    ``cancel`` marks a cancel request, which every state lets through.

    A value: nothing changes one once built. It is not a *frozen* dataclass for the cost of building one —
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, six times the cost of
    plain slots, and the desk builds one per intent (:meth:`PreTrade.decide
    <execdesk.risk.pretrade.PreTrade.decide>`): more than :func:`check` itself.
    """

    deployment: int
    asset: int
    side: int
    qty: float
    price: float
    reduce_only: bool = False
    timestamp: float = 0.0
    cancel: bool = False


class Denial(NamedTuple):
    """Why an order was denied: the rule, the reason in words, the figure and the limit it broke.

    Immutable (a NamedTuple rather than a frozen dataclass: a frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__``, three times the cost, on the deny path). ``reason`` is a
    constant per case, so denying formats nothing: :meth:`describe` puts the numbers in words, off the
    hot path.
    """

    rule: str
    reason: str
    value: float
    limit: float

    def describe(self) -> str:
        return f"{self.rule}: {self.reason} ({self.value:.6g} vs limit {self.limit:.6g})"

    def as_numbers(self) -> dict[str, str]:
        """The numbers as the ledger's verdict record keeps them (strings)."""
        return {"value": repr(self.value), "limit": repr(self.limit)}


@dataclass(slots=True)
class RiskState:
    """The mutable snapshot behind :func:`check`, kept up to date by the desk.

    Per-lane arrays are flat lists indexed ``deployment * n_assets + asset``. Exposure is marked at the
    assets' last prices: ``gross`` = sum |qty| x last price over all lanes; ``dep_exposure[d]`` the same
    over deployment d's lanes; ``group_long[g]`` / ``group_short[g]`` = sum of |qty| x last price over the
    long / short lanes (all deployments) of the assets of group g. ``cash`` is the free cash (collateral
    model: an entry of either direction takes notional + fee, an exit gives back its collateral plus the
    realised P&L). ``equity`` and ``dep_equity`` are set by the monitor (:meth:`set_equity`); fills do not
    move them. Orders in flight are not tracked apart: book an approved entry with :meth:`apply_fill` when
    it is sent (a reservation), and its difference from the real fill (or its release) when that comes.
    """

    n_deployments: int
    n_assets: int
    equity: float
    cash: float
    dep_equity: list[float]
    asset_group: list[int]
    portfolio_state: int = ACTIVE
    dep_state: list[int] = field(default_factory=list)
    pos_qty: list[float] = field(default_factory=list)
    avg_price: list[float] = field(default_factory=list)
    dep_exposure: list[float] = field(default_factory=list)
    gross: float = 0.0
    asset_long_qty: list[float] = field(default_factory=list)
    asset_short_qty: list[float] = field(default_factory=list)
    group_long: list[float] = field(default_factory=list)
    group_short: list[float] = field(default_factory=list)
    open_positions: int = 0
    last_price: list[float] = field(default_factory=list)
    ring_size: int = 10
    ring: list[float] = field(default_factory=list)
    ring_head: list[int] = field(default_factory=list)

    @classmethod
    def new(cls, n_deployments: int, n_assets: int, *, equity: float, cash: float,
            dep_equity: list[float] | None = None, asset_group: list[int] | None = None,
            last_price: list[float] | None = None, limits: FastLimits | None = None) -> RiskState:
        """A flat book. ``asset_group[a]`` is asset a's correlation group (-1: none; groups 0..G-1);
        ``limits`` sizes the throttle's ring buffers (``throttle_count``)."""
        groups = list(asset_group) if asset_group is not None else [-1] * n_assets
        if len(groups) != n_assets:
            raise ValueError(f"asset_group has {len(groups)} entries for {n_assets} assets")
        n_groups = max(groups, default=-1) + 1
        lanes = n_deployments * n_assets
        ring_size = (limits or FastLimits()).throttle_count
        return cls(
            n_deployments=n_deployments, n_assets=n_assets, equity=equity, cash=cash,
            dep_equity=list(dep_equity) if dep_equity is not None else [equity / max(n_deployments, 1)] * n_deployments,
            asset_group=groups, dep_state=[ACTIVE] * n_deployments, pos_qty=[0.0] * lanes,
            avg_price=[0.0] * lanes, dep_exposure=[0.0] * n_deployments, asset_long_qty=[0.0] * n_assets,
            asset_short_qty=[0.0] * n_assets, group_long=[0.0] * n_groups, group_short=[0.0] * n_groups,
            last_price=list(last_price) if last_price is not None else [0.0] * n_assets,
            ring_size=ring_size, ring=[-math.inf] * (n_deployments * ring_size), ring_head=[0] * n_deployments,
        )

    # ------------------------------------------------------------ mutators (the desk calls these)
    def set_state(self, deployment: int, state: TradingState) -> None:
        """The trading state of a deployment, or of the portfolio (``deployment`` = :data:`PORTFOLIO`). O(1)."""
        if deployment == PORTFOLIO:
            self.portfolio_state = STATE_CODE[state]
        else:
            self.dep_state[deployment] = STATE_CODE[state]

    def set_equity(self, equity: float, deployment: int = PORTFOLIO) -> None:
        """Marked equity of the portfolio or of one deployment (from the monitor). O(1)."""
        if deployment == PORTFOLIO:
            self.equity = equity
        else:
            self.dep_equity[deployment] = equity

    def set_price(self, asset: int, price: float) -> None:
        """A new last price: re-marks gross, group and per-deployment exposure. O(deployments)."""
        dp = price - self.last_price[asset]
        self.last_price[asset] = price
        if dp == 0.0:
            return
        longs, shorts = self.asset_long_qty[asset], self.asset_short_qty[asset]
        self.gross += (longs + shorts) * dp
        g = self.asset_group[asset]
        if g >= 0:
            self.group_long[g] += longs * dp
            self.group_short[g] += shorts * dp
        n, q, de = self.n_assets, self.pos_qty, self.dep_exposure
        for d in range(self.n_deployments):
            qty = q[d * n + asset]
            if qty:
                de[d] += abs(qty) * dp

    def record_order(self, order: FastOrder) -> None:
        """Count an order placed (approved and sent) against its deployment's throttle. O(1)."""
        self.record_order_at(order.deployment, order.timestamp)

    def record_order_at(self, deployment: int, timestamp: float) -> None:
        """:meth:`record_order` without building a :class:`FastOrder`: an order of ``deployment`` placed at
        ``timestamp`` (seconds). O(1)."""
        size = self.ring_size
        head = self.ring_head[deployment]
        self.ring[deployment * size + head] = timestamp
        self.ring_head[deployment] = head + 1 if head + 1 < size else 0

    def apply_fill(self, deployment: int, asset: int, signed_qty: float, price: float, fee: float = 0.0) -> None:
        """A fill (or any signed change of a lane's position, e.g. a reservation and its release). O(1).

        Position and exposures move by ``signed_qty`` (exposure at the asset's last price, or at
        ``price`` when no last price is known yet); cash moves at ``price``, less ``fee``.
        """
        if signed_qty == 0.0:
            self.cash -= fee
            return
        i = deployment * self.n_assets + asset
        q0 = self.pos_qty[i]
        q1 = q0 + signed_qty
        avg = self.avg_price[i]
        dq = abs(signed_qty)
        cash = self.cash - fee
        if q0 == 0.0 or (q0 > 0.0) == (signed_qty > 0.0):  # opens or adds
            self.avg_price[i] = (abs(q0) * avg + dq * price) / abs(q1)
            cash -= dq * price
        else:  # reduces, closes or flips
            closed = dq if dq < abs(q0) else abs(q0)
            cash += closed * avg + closed * (price - avg) * (1.0 if q0 > 0.0 else -1.0)
            opened = dq - closed
            if opened > 0.0:
                self.avg_price[i] = price
                cash -= opened * price
            elif q1 == 0.0:
                self.avg_price[i] = 0.0
        self.cash = cash
        if abs(q1) < 1e-12 * max(abs(q0), dq):  # float dust from a full close
            q1 = 0.0
        self.pos_qty[i] = q1
        if q0 == 0.0:
            self.open_positions += 1
        elif q1 == 0.0:
            self.open_positions -= 1
        mark = self.last_price[asset]
        if not mark > 0.0:
            mark = price
            self.last_price[asset] = price
        d_abs = abs(q1) - abs(q0)
        self.gross += d_abs * mark
        self.dep_exposure[deployment] += d_abs * mark
        d_long = (q1 if q1 > 0.0 else 0.0) - (q0 if q0 > 0.0 else 0.0)
        d_short = (-q1 if q1 < 0.0 else 0.0) - (-q0 if q0 < 0.0 else 0.0)
        self.asset_long_qty[asset] += d_long
        self.asset_short_qty[asset] += d_short
        g = self.asset_group[asset]
        if g >= 0:
            self.group_long[g] += d_long * mark
            self.group_short[g] += d_short * mark

    def position(self, deployment: int, asset: int) -> float:
        return self.pos_qty[deployment * self.n_assets + asset]

    def asset_exposure(self, asset: int) -> float:
        """The asset's net signed exposure (all deployments) at its last price."""
        return (self.asset_long_qty[asset] - self.asset_short_qty[asset]) * self.last_price[asset]

    def group_exposure(self, group: int) -> float:
        """The group's net signed exposure (the cap is on each direction: ``group_long``, ``group_short``)."""
        return self.group_long[group] - self.group_short[group]


# ---------------------------------------------------------------- the check
#: builds a Denial without NamedTuple's Python-level ``__new__`` (a frame less on the deny path)
_denial = tuple.__new__
# the denials that carry no figure of the order: built once
_PORTFOLIO_HALTED = Denial("trading_state", "portfolio is HALTED: nothing but cancels", HALTED, ACTIVE)
_DEPLOYMENT_HALTED = Denial("trading_state", "deployment is HALTED: nothing but cancels", HALTED, ACTIVE)
_PORTFOLIO_REDUCING = Denial("trading_state", "portfolio is REDUCING: only orders that reduce a position",
                             REDUCING, ACTIVE)
_DEPLOYMENT_REDUCING = Denial("trading_state", "deployment is REDUCING: only orders that reduce a position",
                              REDUCING, ACTIVE)


def check(order: FastOrder, state: RiskState, limits: FastLimits) -> Denial | None:
    """None when ``order`` passes every rule, else the first rule it fails (see the module's docstring)."""
    if order.cancel:
        return None
    qty = order.qty
    price = order.price
    if not (0.0 < qty < math.inf and 0.0 < price < math.inf):
        return _denial(Denial, ("invalid_order", "qty and price must be positive and finite", qty, price))
    d = order.deployment
    a = order.asset
    side = order.side
    q0 = state.pos_qty[d * state.n_assets + a]
    reduces = (q0 > 0.0 if side < 0 else q0 < 0.0) and qty <= (q0 if q0 > 0.0 else -q0)
    ps = state.portfolio_state
    ds = state.dep_state[d]
    if ps == HALTED or ds == HALTED:
        return _PORTFOLIO_HALTED if ps == HALTED else _DEPLOYMENT_HALTED
    last = state.last_price[a]
    if not reduces:
        if order.reduce_only:
            held = q0 if q0 > 0.0 else -q0
            if held == 0.0 or (q0 > 0.0) == (side > 0):
                return _denial(Denial, ("reduce_only", "nothing to reduce", q0, 0.0))
            return _denial(Denial, ("reduce_only", "exit exceeds the position", qty, held))
        if ps or ds:
            return _PORTFOLIO_REDUCING if ps else _DEPLOYMENT_REDUCING
        notional = qty * price
        if notional > limits.max_order_notional:
            return _denial(Denial, ("max_order_notional", "notional above the per-order cap",
                                    notional, limits.max_order_notional))
        if q0 == 0.0 and state.open_positions >= limits.max_open_positions:
            return _denial(Denial, ("max_open_positions", "open positions at the limit",
                                    state.open_positions, limits.max_open_positions))
        # exposure at the higher of the order's price and the mark: what apply_fill books
        value = qty * (price if price > last else last)
        after = state.dep_exposure[d] + value
        cap = limits.deployment_exposure_fraction * state.dep_equity[d]
        if after > cap:
            return _denial(Denial, ("deployment_exposure", "deployment exposure above its cap", after, cap))
        after = state.gross + value
        cap = limits.max_gross_exposure * state.equity
        if after > cap:
            return _denial(Denial, ("gross_exposure", "gross exposure above its cap", after, cap))
        g = state.asset_group[a]
        if g >= 0:
            after = (state.group_long[g] if side > 0 else state.group_short[g]) + value
            cap = limits.max_correlated_exposure * state.equity
            if after > cap:
                return _denial(Denial, ("correlated_exposure",
                                        "correlated group's same-direction exposure above its cap", after, cap))
        cost = notional + notional * limits.fee_rate
        if cost > state.cash:
            return _denial(Denial, ("free_cash", "notional + fee above free cash", cost, state.cash))
        size = state.ring_size
        oldest = state.ring[d * size + state.ring_head[d]]
        if order.timestamp - oldest < limits.throttle_window_s:
            # value: how long ago the throttle_count-th last order was placed; limit: the window
            return _denial(Denial, ("throttle", "throttle_count orders already within the window",
                                    order.timestamp - oldest, limits.throttle_window_s))
    band = limits.price_band * last
    if not (last > 0.0 and -band <= price - last <= band):
        return _denial(Denial, ("price_band", "price outside the band around the last price", price, last))
    return None


#: the cap rules :func:`entry_room_values` gives a room for, in the check's order
ROOM_RULES: tuple[str, str, str, str, str] = ("max_order_notional", "deployment_exposure", "gross_exposure",
                                              "correlated_exposure", "free_cash")


def entry_room_values(deployment: int, asset: int, side: int, price: float, state: RiskState, limits: FastLimits
                      ) -> tuple[float, float, float, float, float]:
    """The room (largest notional at ``price``, at least 0) each cap rule of :data:`ROOM_RULES` leaves an entry
    on this lane, as a tuple in that order; ``correlated_exposure``'s is ``inf`` when the asset is in no
    correlation group (no cap: it cuts nothing). The sizing path's form of :func:`entry_rooms`, no strings."""
    last = state.last_price[asset]
    scale = price / (price if price > last else last)  # exposure is valued at max(price, last)
    order = limits.max_order_notional
    dep = (limits.deployment_exposure_fraction * state.dep_equity[deployment] - state.dep_exposure[deployment]) * scale
    gross = (limits.max_gross_exposure * state.equity - state.gross) * scale
    g = state.asset_group[asset]
    if g >= 0:
        held = state.group_long[g] if side > 0 else state.group_short[g]
        corr = (limits.max_correlated_exposure * state.equity - held) * scale
        if not corr > 0.0:
            corr = 0.0
    else:
        corr = math.inf
    cash = state.cash / (1.0 + limits.fee_rate)
    return (order if order > 0.0 else 0.0, dep if dep > 0.0 else 0.0, gross if gross > 0.0 else 0.0, corr,
            cash if cash > 0.0 else 0.0)


def entry_rooms(deployment: int, asset: int, side: int, price: float, state: RiskState, limits: FastLimits
                ) -> list[tuple[str, float]]:
    """The room (largest notional at ``price``) each cap rule leaves an entry on this lane, in the check's
    order: (rule, room); no ``correlated_exposure`` for an asset in no group. For sizing, off the hot path
    (see :func:`entry_room`)."""
    rooms = entry_room_values(deployment, asset, side, price, state, limits)
    return [(rule, room) for rule, room in zip(ROOM_RULES, rooms, strict=True)
            if rule != "correlated_exposure" or state.asset_group[asset] >= 0]


def entry_room(deployment: int, asset: int, side: int, price: float, state: RiskState, limits: FastLimits) -> float:
    """The largest notional (at ``price``) an entry on this lane may have under the cap rules.

    Round the qty *down* (to the venue's step, or by a hair): an entry of exactly the room sits on the
    boundary of every cap that binds. Does not look at the trading state, the position count, the
    throttle or the price band.
    """
    return min(room for _rule, room in entry_rooms(deployment, asset, side, price, state, limits))
