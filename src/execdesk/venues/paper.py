"""The paper venue: an exchange simulated against bars, with fees, slippage, partial fills and latency.

Orders meet bars (:meth:`PaperVenue.on_bar`) or, when given, single trades (:meth:`PaperVenue.on_trade`,
a bar of one price whose volume is the trade's size):

  * MARKET fills at the open of the first bar it reaches (taker fee), moved against the trader by
    ``slippage_bps`` plus an impact term, ``impact_bps`` x (the fill's share of the bar's volume).
  * LIMIT fills at the bar's open when the open is already through the limit (a marketable order:
    taker), else at the limit when the bar trades at or through it (resting: maker fee); never worse than
    the limit, no slippage. With ``limit_ttl_s`` an unfilled limit order EXPIRES after that long.
  * STOP_MARKET triggers when the bar trades through the stop (a sell stop: low <= stop; a buy stop:
    high >= stop) and fills at the stop — or at the open, if the bar opened through it — moved by the
    slippage like a market order (taker).
  * At most ``max_volume_share`` of a bar's volume fills in that bar; the rest waits for the next bars
    (PARTIALLY_FILLED). A triggered stop keeps filling at the next opens.
  * An order reaches the venue ``latency_ms`` (plus a jitter up to ``latency_jitter_ms``, fixed per
    order by the seed and its client order id) after it was sent: it can fill in the bar that contains
    its arrival, never before; the fill's time is its arrival if that is inside the bar.

Refusals (:class:`~execdesk.venues.base.OrderRejected`): a pair the venue does not list
(``unknown_symbol``), a quantity not on ``qty_step`` (``precision``), a notional below
``min_notional`` (``min_notional``), a buy whose cost exceeds the free cash at the last price
(``insufficient_balance``), a limit or stop order without its price (``invalid_order``).

The venue is deterministic: the same orders, bars and seed give the same fills. Its book either lives
in the desk's process and is rebuilt from the ledger on restart (:meth:`PaperVenue.restore`; the
embedded mode a replay uses), or persists on its own in a SQLite file (``store``), committed at every
call, so that a desk killed at any moment finds the venue as it left it — orders it accepted, fills it
made — and reconciles its ledger against it.

Its quote (:func:`quoted_spread_bps`, what the monitor watches for a spread widening in a replay): a spread of
``2 x slippage_bps`` at a bar of the pair's typical range, scaled by the bar's high-low range over the median range
of the pair's ``window`` bars before it (never below a quarter of it) — so it widens in a shock. Fills do not read
it: market and stop fills keep their ``slippage_bps`` (half the spread at a typical bar) and impact.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from execdesk.domain.state import DeskState
from execdesk.domain.types import QUANTUM, ClientOrderId, OrderStatus, OrderType, Side, dec
from execdesk.errors import InvalidInput
from execdesk.venues.base import OrderRejected, VenueFill, VenueOrder

BPS = Decimal("0.0001")
ZERO = Decimal(0)
SPREAD_WINDOW = 168  # bars: the pair's typical range for the quoted spread is their median
SPREAD_FLOOR = 0.25  # the quoted spread never narrows below this share of the typical bar's


@dataclass(frozen=True, slots=True)
class PaperVenueConfig:
    """Paper venue settings (defaults in brackets).

    fee_bps [10] — taker fee, basis points of notional; maker_fee_bps [= fee_bps] — resting limit fills;
    slippage_bps [5] — adverse move of market and stop fills; impact_bps [20] — extra adverse move for a
    fill the size of the whole bar's volume, scaled by its share; max_volume_share [0.25] — at most this
    share of a bar's volume fills in it (None: no limit); latency_ms [0] / latency_jitter_ms [0];
    seed [0]; limit_ttl_s [None: good till cancelled]; min_notional [0]; qty_step [None: any].
    """

    fee_bps: float = 10.0
    slippage_bps: float = 5.0
    maker_fee_bps: float | None = None
    impact_bps: float = 20.0
    max_volume_share: float | None = 0.25
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    seed: int = 0
    limit_ttl_s: int | None = None
    min_notional: float = 0.0
    qty_step: float | None = None

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps", "maker_fee_bps", "impact_bps"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1000:
                raise InvalidInput(f"venue.{name}: got {value}; expected a number of basis points in [0, 1000]")
        if self.max_volume_share is not None and not 0 < self.max_volume_share <= 1:
            raise InvalidInput(f"venue.max_volume_share: got {self.max_volume_share}; expected a fraction in (0, 1]")
        for name in ("latency_ms", "latency_jitter_ms", "min_notional"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"venue.{name}: got {getattr(self, name)}; expected >= 0")
        for name in ("limit_ttl_s", "qty_step"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidInput(f"venue.{name}: got {value}; expected > 0 (or null)")


class PaperVenue:
    """An in-process exchange for replay and paper trading (see module docstring)."""

    name = "paper"

    def __init__(self, quote: str, cash: Decimal, config: PaperVenueConfig | None = None, *,
                 pairs: Iterable[str] | None = None, bar_seconds: int = 0, store: Path | None = None) -> None:
        self.quote = quote
        self.config = cfg = config or PaperVenueConfig()
        self.pairs = set(pairs) if pairs is not None else None
        self.bar_seconds = bar_seconds
        self._taker = dec(cfg.fee_bps) * BPS
        self._maker = dec(cfg.fee_bps if cfg.maker_fee_bps is None else cfg.maker_fee_bps) * BPS
        self._slip = dec(cfg.slippage_bps) * BPS
        self._impact = dec(cfg.impact_bps) * BPS
        self._share = None if cfg.max_volume_share is None else dec(cfg.max_volume_share)
        self._cash = cash
        self._positions: dict[str, Decimal] = {}
        self._orders: dict[ClientOrderId, VenueOrder] = {}
        self._arrival: dict[ClientOrderId, int] = {}
        self._triggered: set[ClientOrderId] = set()
        # the open orders in submission order, and the same per pair (a bar of one pair meets only that pair's)
        self._pending: dict[ClientOrderId, None] = {}
        self._pending_of: dict[str, dict[ClientOrderId, None]] = {}
        self._fills: list[VenueFill] = []
        self._fill_count: dict[ClientOrderId, int] = {}  # fills per order, for unique fill ids
        self._last_price: dict[str, Decimal] = {}
        self._last_bar: dict[str, int] = {}
        self._held: Decimal | None = None  # cache of _held_cash()
        self._db: sqlite3.Connection | None = None
        if store is not None:
            self._open_store(store)

    @property
    def embedded(self) -> bool:
        """True when the book lives only in this process (no ``store``): see the Venue protocol."""
        return self._db is None

    # ---------------------------------------------------------------- Venue protocol
    def submit(self, order: VenueOrder) -> VenueOrder:
        known = self._orders.get(order.client_order_id)
        if known is not None:
            return known
        accepted = self._accept(order)
        self._save([accepted], [])
        return accepted

    def submit_many(self, orders: Iterable[VenueOrder]) -> list[VenueOrder | OrderRejected]:
        """Place ``orders`` in their order, each as :meth:`submit` would (a known id answered with the known order,
        a refusal with its :class:`OrderRejected`, returned in its place, not raised): one answer per order. The
        batch is one call, and one commit of a persistent book."""
        out: list[VenueOrder | OrderRejected] = []
        accepted: list[VenueOrder] = []
        try:
            for order in orders:
                known = self._orders.get(order.client_order_id)
                if known is not None:
                    out.append(known)
                    continue
                try:
                    placed = self._accept(order)
                except OrderRejected as exc:
                    out.append(exc)
                    continue
                accepted.append(placed)
                out.append(placed)
        finally:
            if accepted:
                self._save(accepted, [])
        return out

    def _accept(self, order: VenueOrder) -> VenueOrder:
        """Check ``order`` (:class:`OrderRejected`) and take it into the book (not saved: the caller saves)."""
        self._validate(order)
        cfg = self.config
        coid = order.client_order_id
        accepted = VenueOrder(coid, order.pair, order.side, order.type, order.qty, order.submitted_at,
                              OrderStatus.SUBMITTED, ZERO, order.price, order.stop_price,
                              f"paper-{len(self._orders) + 1}", order.reason, order.ref_price)
        jitter = 0
        if cfg.latency_jitter_ms:
            digest = hashlib.sha256(f"{cfg.seed}:{coid}".encode()).digest()
            jitter = int.from_bytes(digest[:8], "big") % (cfg.latency_jitter_ms + 1)
        self._orders[coid] = accepted
        self._arrival[coid] = order.submitted_at + (cfg.latency_ms + jitter + 999) // 1000
        self._add_pending(coid, order.pair)
        return accepted

    def _add_pending(self, coid: ClientOrderId, pair: str) -> None:
        self._pending[coid] = None
        self._pending_of.setdefault(pair, {})[coid] = None

    def _drop_pending(self, coid: ClientOrderId, pair: str) -> None:
        self._pending.pop(coid, None)
        same = self._pending_of.get(pair)
        if same is not None:
            same.pop(coid, None)
            if not same:
                del self._pending_of[pair]

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        order = self._orders.get(client_order_id)
        if order is None or not order.status.is_open:
            return False
        self._orders[client_order_id] = replace(order, status=OrderStatus.CANCELED, reason="cancelled by the client")
        self._drop_pending(client_order_id, order.pair)
        self._held = None
        self._save([self._orders[client_order_id]], [])
        return True

    def order(self, client_order_id: ClientOrderId) -> VenueOrder | None:
        return self._orders.get(client_order_id)

    def open_orders(self) -> list[VenueOrder]:
        return [self._orders[c] for c in self._pending]

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        return self._fills[cursor:], len(self._fills)

    def balances(self) -> dict[str, Decimal]:
        return {self.quote: self._cash}

    def positions(self) -> dict[str, Decimal]:
        return {p: q for p, q in self._positions.items() if q != 0}

    # ---------------------------------------------------------------- checks
    def _validate(self, order: VenueOrder) -> None:
        cfg, coid = self.config, order.client_order_id
        if self.pairs is not None and order.pair not in self.pairs:
            raise OrderRejected(self.name, "unknown_symbol", f"{order.pair} is not listed (order {coid})")
        if order.qty <= 0:
            raise OrderRejected(self.name, "invalid_order", f"order {coid} has qty {order.qty}; expected > 0")
        if order.type is OrderType.LIMIT and (order.price is None or order.price <= 0):
            raise OrderRejected(self.name, "invalid_order", f"limit order {coid} needs a positive price")
        if order.type is OrderType.STOP_MARKET and (order.stop_price is None or order.stop_price <= 0):
            raise OrderRejected(self.name, "invalid_order", f"stop order {coid} needs a positive stop_price")
        if cfg.qty_step is not None:
            step = dec(cfg.qty_step)
            if order.qty % step != 0:
                raise OrderRejected(self.name, "precision", f"order {coid} qty {order.qty} is not a multiple of "
                                                            f"the step {step}")
        price = order.price or order.stop_price or order.ref_price or self._last_price.get(order.pair)
        if price is None:
            return
        notional = order.qty * price
        if notional < dec(cfg.min_notional):
            raise OrderRejected(self.name, "min_notional", f"order {coid} notional {notional:.2f} is below the "
                                                           f"minimum {cfg.min_notional}")
        if order.side is Side.BUY:
            cost = notional * (1 + self._taker)
            held = self._held_cash()
            if cost + held > self._cash:
                raise OrderRejected(self.name, "insufficient_balance",
                                    f"order {coid} costs {notional:.2f} plus fee; free cash is "
                                    f"{self._cash - held:.2f}")
            self._held = held + cost  # this order is about to be accepted

    def _held_cash(self) -> Decimal:
        """What the open buy orders will cost at their prices (the last price for market orders); kept
        between submits, recomputed after anything else changed the open orders."""
        if self._held is None:
            held = ZERO
            for coid in self._pending:
                o = self._orders[coid]
                if o.side is Side.BUY:
                    price = o.price or o.stop_price or o.ref_price or self._last_price.get(o.pair, ZERO)
                    held += (o.qty - o.filled_qty) * price * (1 + self._taker)
            self._held = held
        return self._held

    # ---------------------------------------------------------------- market data
    def has_pending(self) -> bool:
        return bool(self._pending)

    def quoted_spreads(self, open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The spread this venue quotes in each of a pair's bars (consecutive, oldest first), in basis points:
        :func:`quoted_spread_bps` at its ``slippage_bps``."""
        return quoted_spread_bps(open_, high, low, self.config.slippage_bps)

    def pending_pairs(self) -> set[str]:
        return set(self._pending_of)

    def on_bar_open(self, pair: str, time: int, open_price: float) -> list[VenueFill]:
        """A bar known only by its open: what market orders need (no volume cap, no range)."""
        return self.on_bar(pair, time, open_price, open_price, open_price, open_price, 0.0)

    def on_trade(self, pair: str, time: int, price: float, qty: float) -> list[VenueFill]:
        """A trade printed on the market at ``time``: resting orders of ``pair`` meet it as they would a bar
        whose open, high, low and close are its price and whose volume is its quantity (so at most
        ``max_volume_share`` of it fills). Only orders that have arrived by ``time`` take part."""
        return self.on_bar(pair, time, price, price, price, price, qty, span=0)

    def on_bar(self, pair: str, time: int, open_: float, high: float, low: float, close: float,
               volume: float, span: int | None = None) -> list[VenueFill]:
        """The bar of ``pair`` that opens at ``time`` (and lasts ``span`` seconds, default ``bar_seconds``):
        fill, trigger and expire its resting orders.

        A bar the venue has already seen (a restarted desk replaying it) changes nothing.
        """
        if time <= self._last_bar.get(pair, -1):
            return []
        self._last_bar[pair] = time
        o, h, lo = dec(open_), dec(high), dec(low)
        self._last_price[pair] = dec(close)
        vol = dec(volume) if volume > 0 else ZERO
        budget = self._share * vol if self._share is not None and volume > 0 else None
        end = time + (self.bar_seconds if span is None else span)
        ttl = self.config.limit_ttl_s
        done: list[VenueFill] = []
        changed: list[VenueOrder] = []
        for coid in list(self._pending_of.get(pair, ())):  # (this pair's open orders, in submission order)
            order = self._orders[coid]
            arrival = self._arrival.get(coid, order.submitted_at)
            if not (arrival <= time or arrival < end):
                continue
            if order.type is OrderType.LIMIT and ttl is not None and time >= order.submitted_at + ttl:
                self._orders[coid] = replace(order, status=OrderStatus.EXPIRED, reason=f"unfilled after {ttl} s")
                changed.append(self._orders[coid])
                self._drop_pending(coid, pair)
                continue
            price, maker = self._fill_price(coid, order, o, h, lo)
            if price is None:
                continue
            qty = order.qty - order.filled_qty
            if budget is not None:
                qty = min(qty, budget.quantize(QUANTUM, ROUND_DOWN))
            if qty <= 0:
                continue
            if budget is not None:
                budget -= qty
            if not maker and order.type is not OrderType.LIMIT:
                share = qty / vol if volume > 0 else ZERO
                price = dec(price * (1 + order.side.sign * (self._slip + self._impact * share)))
            fill = self._fill(order, qty, price, maker, max(time, arrival))
            done.append(fill)
            after = self._orders[coid]
            changed.append(after)
            if not after.status.is_open:
                self._drop_pending(coid, pair)
        self._held = None
        self._save(changed, done)
        return done

    def _fill_price(self, coid: ClientOrderId, order: VenueOrder, o: Decimal, h: Decimal, lo: Decimal
                    ) -> tuple[Decimal | None, bool]:
        """(price before slippage, maker?) if ``order`` fills in this bar, else (None, False)."""
        buy = order.side is Side.BUY
        if order.type is OrderType.MARKET or coid in self._triggered:
            return o, False
        if order.type is OrderType.LIMIT:
            assert order.price is not None
            limit = order.price
            if (o < limit) if buy else (o > limit):
                return o, False  # marketable on arrival: through the limit
            if (lo <= limit) if buy else (h >= limit):
                return limit, True
            return None, False
        assert order.stop_price is not None
        stop = order.stop_price
        if (o >= stop) if buy else (o <= stop):
            self._triggered.add(coid)
            return o, False  # opened through the stop
        if (h >= stop) if buy else (lo <= stop):
            self._triggered.add(coid)
            return stop, False
        return None, False

    def _fill(self, order: VenueOrder, qty: Decimal, price: Decimal, maker: bool, time: int) -> VenueFill:
        coid = order.client_order_id
        sign = order.side.sign
        fee = dec(qty * price * (self._maker if maker else self._taker))
        n = self._fill_count.get(coid, 0) + 1
        self._fill_count[coid] = n
        fill = VenueFill(f"{coid}-{n}", coid, order.pair, order.side, qty, price, fee, time,
                         "maker" if maker else "taker")
        self._cash -= sign * qty * price + fee
        self._positions[order.pair] = self._positions.get(order.pair, ZERO) + sign * qty
        filled = order.filled_qty + qty
        status = OrderStatus.FILLED if filled >= order.qty else OrderStatus.PARTIALLY_FILLED
        self._orders[coid] = VenueOrder(coid, order.pair, order.side, order.type, order.qty, order.submitted_at, status,
                                        filled, order.price, order.stop_price, order.venue_order_id, order.reason,
                                        order.ref_price)
        self._fills.append(fill)
        return fill

    # ---------------------------------------------------------------- restart (embedded)
    def restore(self, state: DeskState) -> None:
        """Take balances, positions and resting orders from the ledger's state (a restarted embedded desk)."""
        self._held = None
        if self._db is not None:
            return  # a persistent venue keeps its own book: the desk reconciles against it instead
        self._cash = state.cash()
        self._positions = {}
        for pos in state.positions.values():
            self._positions[pos.pair] = self._positions.get(pos.pair, ZERO) + pos.qty
        for table in (self._orders, self._arrival, self._fill_count):
            table.clear()
        self._triggered.clear()
        self._pending.clear()
        self._pending_of.clear()
        self._fills.clear()
        for fill in state.fills.values():
            coid = ClientOrderId(fill.client_order_id)
            self._fill_count[coid] = self._fill_count.get(coid, 0) + 1
        for rec in state.orders.values():
            status = OrderStatus.SUBMITTED if rec.status is OrderStatus.NEW else rec.status
            order = VenueOrder(ClientOrderId(rec.client_order_id), rec.pair, Side(rec.side), OrderType(rec.type),
                               rec.qty, rec.created_at, status, rec.filled_qty, rec.price, rec.stop_price,
                               rec.venue_order_id, None, rec.ref_price)
            self._orders[order.client_order_id] = order
            if status.is_open and rec.status is not OrderStatus.NEW:
                self._add_pending(order.client_order_id, order.pair)
                if order.type is OrderType.STOP_MARKET and order.filled_qty > 0:
                    self._triggered.add(order.client_order_id)  # a stop only fills once triggered: it stays so
            elif rec.status is OrderStatus.NEW:  # recorded but never sent before the restart: not here
                del self._orders[order.client_order_id]

    # ---------------------------------------------------------------- persistence
    def _open_store(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process (not a power cut)
        db.execute("CREATE TABLE IF NOT EXISTS orders (coid TEXT PRIMARY KEY, data TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS fills (seq INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            self._save([], [])
            return
        if meta.get("quote") != self.quote:
            raise InvalidInput(f"{path}: the paper venue's book is in {meta.get('quote')}, not {self.quote}")
        self._cash = Decimal(meta["cash"])
        self._positions = {k: Decimal(v) for k, v in json.loads(meta["positions"]).items()}
        self._last_price = {k: Decimal(v) for k, v in json.loads(meta["last_price"]).items()}
        self._last_bar = {k: int(v) for k, v in json.loads(meta["last_bar"]).items()}
        self._triggered = {ClientOrderId(c) for c in json.loads(meta["triggered"])}
        for (data,) in db.execute("SELECT data FROM orders ORDER BY rowid"):
            order, arrival = _order_from(json.loads(data))
            self._orders[order.client_order_id] = order
            self._arrival[order.client_order_id] = arrival
            if order.status.is_open:
                self._add_pending(order.client_order_id, order.pair)
        for (data,) in db.execute("SELECT data FROM fills ORDER BY seq"):
            fill = _fill_from(json.loads(data))
            self._fills.append(fill)
            self._fill_count[fill.client_order_id] = self._fill_count.get(fill.client_order_id, 0) + 1

    def _save(self, orders: list[VenueOrder], fills: list[VenueFill]) -> None:
        db = self._db
        if db is None:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            # an upsert, not INSERT OR REPLACE: that deletes the row and re-adds it at the end, and the rowid
            # order is the submission order a reopened venue fills its pending orders (and shares volume) in
            db.executemany("INSERT INTO orders (coid, data) VALUES (?, ?) "
                           "ON CONFLICT (coid) DO UPDATE SET data = excluded.data",
                           [(o.client_order_id, json.dumps(_order_to(o, self._arrival.get(o.client_order_id))))
                            for o in orders])
            start = len(self._fills) - len(fills)
            db.executemany("INSERT INTO fills (seq, data) VALUES (?, ?)",
                           [(start + i, json.dumps(_fill_to(f))) for i, f in enumerate(fills)])
            meta = {"quote": self.quote, "cash": str(self._cash),
                    "positions": json.dumps({k: str(v) for k, v in self._positions.items()}),
                    "last_price": json.dumps({k: str(v) for k, v in self._last_price.items()}),
                    "last_bar": json.dumps(self._last_bar), "triggered": json.dumps(sorted(self._triggered))}
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _order_to(o: VenueOrder, arrival: int | None) -> dict[str, Any]:
    return {"coid": o.client_order_id, "pair": o.pair, "side": o.side.value, "type": o.type.value, "qty": str(o.qty),
            "submitted_at": o.submitted_at, "status": o.status.value, "filled_qty": str(o.filled_qty),
            "price": None if o.price is None else str(o.price),
            "stop_price": None if o.stop_price is None else str(o.stop_price), "venue_order_id": o.venue_order_id,
            "reason": o.reason, "arrival": arrival, "ref_price": None if o.ref_price is None else str(o.ref_price)}


def _order_from(d: dict[str, Any]) -> tuple[VenueOrder, int]:
    order = VenueOrder(ClientOrderId(d["coid"]), d["pair"], Side(d["side"]), OrderType(d["type"]), Decimal(d["qty"]),
                       int(d["submitted_at"]), OrderStatus(d["status"]), Decimal(d["filled_qty"]),
                       None if d["price"] is None else Decimal(d["price"]),
                       None if d["stop_price"] is None else Decimal(d["stop_price"]), d["venue_order_id"], d["reason"],
                       None if d.get("ref_price") is None else Decimal(d["ref_price"]))
    return order, int(d["arrival"] if d["arrival"] is not None else d["submitted_at"])


def _fill_to(f: VenueFill) -> dict[str, Any]:
    return {"fill_id": f.fill_id, "coid": f.client_order_id, "pair": f.pair, "side": f.side.value, "qty": str(f.qty),
            "price": str(f.price), "fee": str(f.fee), "time": f.time, "liquidity": f.liquidity}


def _fill_from(d: dict[str, Any]) -> VenueFill:
    return VenueFill(d["fill_id"], ClientOrderId(d["coid"]), d["pair"], Side(d["side"]), Decimal(d["qty"]),
                     Decimal(d["price"]), Decimal(d["fee"]), int(d["time"]), d["liquidity"])


def quoted_spread_bps(open_: npt.ArrayLike, high: npt.ArrayLike, low: npt.ArrayLike, slippage_bps: float,
                      window: int = SPREAD_WINDOW) -> npt.NDArray[np.float64]:
    """The paper venue's quoted spread (bps) in each of a pair's consecutive bars: ``2 x slippage_bps x
    max(r / typical, SPREAD_FLOOR)``, where ``r`` is the bar's range relative to its open, ``(high - low) / open``,
    and ``typical`` the median ``r`` of the ``window`` bars before it (the bar's own while it has none before it:
    the first bar quotes ``2 x slippage_bps``). Deterministic: the same bars give the same quotes.

    Worked: slippage 5 bps, the pair's bars ranging 1% of their price for a week, then one ranging 4%: quoted
    10 bps until then, 40 bps in that bar; a bar ranging 0.1% quotes 2.5 bps (the floor, a quarter of 10).
    """
    o, h, lo = (np.asarray(a, dtype=np.float64) for a in (open_, high, low))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(o > 0, (h - lo) / o, np.nan)
    if len(rel) == 0:
        return np.zeros(0)
    # the median of the ``window`` bars before each (pandas' rolling median: a skip list, not a sort per bar)
    typical = pd.Series(rel).rolling(window, min_periods=1).median().shift(1).to_numpy(dtype=np.float64)
    typical = np.where(np.isfinite(typical) & (typical > 0), typical, rel)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(typical > 0, rel / typical, 1.0)
    ratio = np.maximum(np.where(np.isfinite(ratio), ratio, 1.0), SPREAD_FLOOR)
    return np.asarray(2.0 * slippage_bps * ratio, dtype=np.float64)
