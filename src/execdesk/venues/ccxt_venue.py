"""The ccxt venue: spot trading on any exchange ccxt knows, on its sandbox unless told otherwise.

Safety first:

* **Sandbox by default.** :meth:`CcxtVenue.create` turns on ccxt's sandbox mode (the exchange's
  testnet URLs). Real money needs ``sandbox=False`` *and* ``live=True``; an exchange without a
  sandbox is refused unless both are given (:class:`~execdesk.errors.InvalidInput`).
* **Keys only from the environment**: ``EXECDESK_<EXCHANGE>_API_KEY``, ``EXECDESK_<EXCHANGE>_SECRET``
  and, where the exchange wants them, ``..._PASSWORD`` and ``..._UID`` (``<EXCHANGE>`` is the ccxt
  id in upper case, e.g. ``EXECDESK_BINANCE_API_KEY``). The same names serve sandbox and live: put
  testnet keys there while ``sandbox`` is on. Key values never reach a repr, an exception message or
  a log line: ccxt's own request log (DEBUG, which includes the API-key header) goes through a
  redacting logger named ``execdesk.venues.ccxt_venue.http``.
* **ccxt's rate limiter is on** (``enableRateLimit``).
* **Nothing a risk check approved is changed.** Before an order leaves, the market must exist and be
  spot, the qty must already sit on the market's amount step (else ``precision``, naming the nearest
  accepted qty), the limit/stop price on its price step, qty >= ``limits.amount.min``
  (``min_amount``) and <= ``limits.amount.max`` (``max_amount``), and notional >= ``limits.cost.min``
  (``min_notional``: priced at the limit price, the stop price, or for a market order the desk's
  ``ref_price`` when the order carries one, else the ticker's last price). None of these checks sends
  an order to the exchange.

Idempotency under the client order id: the id goes to the exchange (ccxt's unified
``clientOrderId`` parameter; Binance spot receives it as ``newClientOrderId``). A resubmitted id
this process already placed returns the known order. When a submit's outcome is unknown (timeout,
dropped connection, unreadable answer) the id is remembered, and the retry first looks the order up
on the exchange by client id, placing it only if the exchange has never seen it. An exchange answer
"duplicate client order id" is answered the same way. A *restarted* process has no memory of
uncertain ids: the order manager should reconcile orders it recorded as submitted through
:meth:`CcxtVenue.order` before resubmitting them (Binance refuses a duplicate id only while the
first order is still open).

Errors: ccxt's ``NetworkError`` family (``RequestTimeout``, ``RateLimitExceeded``/``DDoSProtection``,
``ExchangeNotAvailable``/``OnMaintenance``, ``InvalidNonce``) becomes
:class:`~execdesk.venues.base.VenueUnavailable` (``retry_after`` from an HTTP ``Retry-After`` header
when there is one). Everything the exchange refused becomes
:class:`~execdesk.venues.base.OrderRejected`: ``insufficient_balance``, ``unknown_symbol``,
``min_notional``, ``invalid_order``, ``auth``, ``unsupported``, ``duplicate_order``, ``exchange_error``.
A malformed answer (``BadResponse``, garbage JSON, missing fields) is ``OrderRejected('bad_response')``
for a submit (after one lookup by client id, since the order may exist) and ``VenueUnavailable``
for reads (cancel, order, open orders, fills, balances), which are safe to retry.

Cursor of :meth:`CcxtVenue.fills_since`: the exchange timestamp, in milliseconds, of the newest
fill returned so far (0: the exchange's most recent trades, e.g. Binance's last 500 per pair).
The next call asks for trades at or after that millisecond, so a trade stamped with the same
millisecond but published late is not lost; fills this process already returned at that
millisecond are left out, and after a restart the order manager de-duplicates by fill id.

Spot only. :meth:`CcxtVenue.positions` is the base-asset balance (free + used) of each configured
pair: it includes coins the account held before the desk traded. When two pairs share a base asset
the balance is reported once, under the first pair in ``pairs``. Fees are converted to the quote
asset: a fee in the base asset at the fill price, a fee in a third asset (Binance's BNB) at that
asset's current ticker price against the quote (an approximation; 0 with a warning if there is no
such market).

A venue object is not thread-safe (neither is a ccxt exchange): one per thread.
"""

from __future__ import annotations

import decimal
import functools
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, ParamSpec, TypeVar
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

import ccxt  # type: ignore[import-untyped]

from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side, dec
from execdesk.errors import ExecdeskError, InvalidInput
from execdesk.venues.base import OrderRejected, Quote, VenueFill, VenueOrder, VenueUnavailable

log = logging.getLogger(__name__)
HTTP_LOG = logging.getLogger(__name__ + ".http")
T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


def _own_decimal_context(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` in its own copy of the decimal context: ccxt's precision helpers set the context's rounding
    (half up) and traps on the thread's context, which would otherwise change how the desk's ledger rounds its
    own Decimals after the first call (and the same events would fold differently in another process)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with decimal.localcontext():
            return method(*args, **kwargs)

    return wrapper

#: ccxt options per exchange id, so that loading markets touches only the spot endpoints
#: (Binance otherwise also asks its margin/futures/"capital config" APIs, which testnets lack).
EXCHANGE_OPTIONS: Mapping[str, Mapping[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                "warnOnFetchOpenOrdersWithoutSymbol": False},
}
_CREDENTIALS = (("apiKey", "API_KEY"), ("secret", "SECRET"), ("password", "PASSWORD"), ("uid", "UID"))
_STATUS = {"open": OrderStatus.SUBMITTED, "closed": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED,
           "cancelled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CcxtVenueConfig:
    """Settings of a :class:`CcxtVenue`.

    exchange_id: the ccxt exchange id ("binance", "kraken", "okx"...).
    pairs: unified spot symbols traded ("BTC/USDT"); orders, fills and positions are for these only.
    sandbox: use the exchange's sandbox/testnet (default True).
    live: must be True, with ``sandbox=False``, to trade real money (default False).
    timeout_ms: ccxt's HTTP timeout per request (default 10000).
    check_balance: refuse (``insufficient_balance``) an order the free balance cannot pay before
        sending it (default False: the exchange checks anyway; this costs one request per order).
    client_order_id_param: the create-order parameter carrying our id (default ccxt's unified
        ``clientOrderId``; a few exchanges want their own name, e.g. ``text`` or ``clOrdID``).
    client_order_id_prefix: fills of orders whose client id does not start with this (manual trades,
        other bots on the account) are not reported (default "ed-", the desk's ids; "" reports all).
    trades_page: trades asked per ``fetch_my_trades`` page (default 500).
    options: extra ccxt options, merged over :data:`EXCHANGE_OPTIONS`.
    api_url: ``scheme://host[:port]`` replacing the exchange's own in every REST URL (after the sandbox
        switch): a proxy, or a loopback exchange in tests; paths are kept.
    """

    exchange_id: str
    pairs: tuple[str, ...]
    sandbox: bool = True
    live: bool = False
    timeout_ms: int = 10_000
    check_balance: bool = False
    client_order_id_param: str = "clientOrderId"
    client_order_id_prefix: str = "ed-"
    trades_page: int = 500
    options: Mapping[str, Any] = field(default_factory=dict)
    api_url: str | None = None  # replaces the scheme and host of every REST URL (a proxy, a loopback exchange)

    def __post_init__(self) -> None:
        if self.exchange_id not in ccxt.exchanges:
            raise InvalidInput(f"venue.exchange_id: got {self.exchange_id!r}; expected a ccxt exchange id")
        if not self.pairs or any("/" not in p for p in self.pairs):
            raise InvalidInput(f"venue.pairs: got {list(self.pairs)}; expected unified symbols like 'BTC/USDT'")
        if self.sandbox and self.live:
            raise InvalidInput("venue.live: got True with venue.sandbox True; live trading needs sandbox=False")
        if not self.sandbox and not self.live:
            raise InvalidInput("venue.sandbox: got False without venue.live; real-money trading needs live=True")
        if not 100 <= self.timeout_ms <= 120_000:
            raise InvalidInput(f"venue.timeout_ms: got {self.timeout_ms}; expected 100..120000")
        if not 1 <= self.trades_page <= 1000:
            raise InvalidInput(f"venue.trades_page: got {self.trades_page}; expected 1..1000")


class CcxtVenue:
    """A :class:`~execdesk.venues.base.Venue` over a ccxt exchange (see the module docstring)."""

    embedded = False

    def __init__(self, exchange: ccxt.Exchange, config: CcxtVenueConfig, secrets: Sequence[str] = ()) -> None:
        """Wrap a ready ccxt ``exchange``; prefer :meth:`create`. ``secrets`` are scrubbed from messages."""
        self.name = f"ccxt:{config.exchange_id}"
        self.config = config
        self._exchange = exchange
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        exchange.logger = _RedactingLogger(HTTP_LOG, self._scrub)
        self._placed: dict[ClientOrderId, VenueOrder] = {}  # what submit() returned, per client id
        self._uncertain: dict[ClientOrderId, str] = {}  # submits with unknown outcome -> pair
        self._pair_of: dict[ClientOrderId, str] = {}
        self._coid_of: dict[str, ClientOrderId] = {}  # venue order id -> client order id
        self._seen_at_cursor: tuple[int, frozenset[str]] = (0, frozenset())

    @classmethod
    def create(cls, exchange_id: str, *, pairs: Sequence[str], sandbox: bool = True, live: bool = False,
               env: Mapping[str, str] | None = None, **settings: Any) -> CcxtVenue:
        """A venue on ccxt exchange ``exchange_id``; keys from ``env`` (default ``os.environ``).

        ``settings`` are the other :class:`CcxtVenueConfig` fields. Raises
        :class:`~execdesk.errors.InvalidInput` for a bad setting, a missing key variable, or an
        exchange without a sandbox when live trading was not asked for.
        """
        config = CcxtVenueConfig(exchange_id, tuple(pairs), sandbox=sandbox, live=live, **settings)
        return cls.from_config(config, env=env)

    @classmethod
    def from_config(cls, config: CcxtVenueConfig, env: Mapping[str, str] | None = None) -> CcxtVenue:
        env = os.environ if env is None else env
        exchange_class = getattr(ccxt, config.exchange_id)
        options = {"defaultType": "spot", **EXCHANGE_OPTIONS.get(config.exchange_id, {}), **config.options}
        exchange: ccxt.Exchange = exchange_class({"enableRateLimit": True, "timeout": config.timeout_ms,
                                                  "options": options})
        prefix = f"EXECDESK_{config.exchange_id.upper()}_"
        secrets: list[str] = []
        missing: list[str] = []
        for attr, suffix in _CREDENTIALS:
            value = env.get(prefix + suffix, "")
            if value:
                setattr(exchange, attr, value)
                secrets.append(value)
            elif exchange.requiredCredentials.get(attr):
                missing.append(prefix + suffix)
        if missing:
            raise InvalidInput(f"venue {config.exchange_id}: environment variables {', '.join(missing)} are not set")
        if config.sandbox:
            # many ccxt exchanges declare an empty 'test' URL set; only bitget-style overrides work without one
            has_sandbox = bool(exchange.urls.get("test")) or "set_sandbox_mode" in vars(exchange_class)
            try:
                if not has_sandbox:
                    raise ccxt.NotSupported(config.exchange_id)
                exchange.set_sandbox_mode(True)
            except (ccxt.NotSupported, TypeError):
                raise InvalidInput(
                    f"venue {config.exchange_id}: the exchange has no sandbox; trading it is live trading "
                    "and needs sandbox=False and live=True") from None
        else:
            log.warning("ccxt venue %s: LIVE trading (sandbox off, live=True)", config.exchange_id)
        if config.api_url:
            _point_at(exchange.urls.get("api"), urlsplit(config.api_url))
        return cls(exchange, config, secrets)

    @property
    def exchange(self) -> ccxt.Exchange:
        """The underlying ccxt exchange (for tests and diagnostics; it holds the keys: never log it)."""
        return self._exchange

    def __repr__(self) -> str:
        mode = "sandbox" if self.config.sandbox else "LIVE"
        return f"CcxtVenue({self.config.exchange_id}, {mode}, pairs={list(self.config.pairs)})"

    @_own_decimal_context
    def candles(self, pair: str, timeframe: str, since: int, until: int, page: int = 1000) -> list[list[float]]:
        """The exchange's closed candles of ``pair`` opening in [``since``, ``until``) (epoch seconds), as
        ``[open time s, open, high, low, close, volume]`` rows, paged through ``fetch_ohlcv``."""
        rows: list[list[float]] = []
        cursor = since * 1000
        while cursor < until * 1000:
            batch = self._read(partial(self._exchange.fetch_ohlcv, pair, timeframe, cursor, page))
            fresh = [r for r in batch if cursor <= int(r[0]) < until * 1000]
            if not fresh:
                break
            rows.extend([int(r[0]) // 1000, float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])]
                        for r in fresh)
            cursor = int(fresh[-1][0]) + 1
        return rows

    @_own_decimal_context
    def top_of_book(self, pair: str) -> Quote:
        """The best bid and ask of ``pair`` now: the top of the exchange's order book (``fetch_order_book``, its
        first levels), or its ticker's bid and ask where ccxt has no order book for the exchange or a side is empty.
        A read like the others: through ccxt's rate limiter, its errors :class:`VenueUnavailable` (retry: the
        caller's :class:`~execdesk.retry.RetryPolicy`), a book without both sides too."""
        self._markets()
        if pair not in self.config.pairs:
            raise InvalidInput(f"{pair} is not one of this venue's pairs {list(self.config.pairs)}")
        bid = ask = None
        stamp = None
        if self._exchange.has.get("fetchOrderBook"):
            book = self._read(partial(self._exchange.fetch_order_book, pair, 5))
            bid, ask, stamp = _best(book, "bids"), _best(book, "asks"), book.get("timestamp")
        if bid is None or ask is None:
            ticker = self._read(partial(self._exchange.fetch_ticker, pair))
            bid, ask = bid or _num(ticker.get("bid")), ask or _num(ticker.get("ask"))
            stamp = stamp or ticker.get("timestamp")
        if bid is None or ask is None or bid <= 0 or ask < bid:
            raise VenueUnavailable(self.name, f"no usable bid and ask for {pair} (bid {bid}, ask {ask})")
        return Quote(pair, bid, ask, int(stamp) // 1000 if stamp else None)

    # ---------------------------------------------------------------- Venue protocol: orders
    @_own_decimal_context
    def submit(self, order: VenueOrder) -> VenueOrder:
        coid = order.client_order_id
        known = self._placed.get(coid)
        if known is not None:
            return known
        if coid in self._uncertain:
            found = self._lookup(coid, order.pair)
            if found is not None:
                log.info("ccxt venue %s: retried submit %s found on the exchange; not placed again", self.name, coid)
                return self._remember(found)
        market = self._checked_market(order)
        amount, price, params = self._checked_request(order, market)
        ctype = "limit" if order.type is OrderType.LIMIT else "market"
        try:
            raw = self._exchange.create_order(order.pair, ctype, order.side.value.lower(), amount, price, params)
            placed = self._parse_order(raw, order)
        except ccxt.BaseError as exc:
            return self._submit_failed(order, exc)
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            return self._submit_failed(order, ccxt.BadResponse(f"unreadable answer ({type(exc).__name__})"))
        log.info("ccxt venue %s: placed %s %s %s %s (venue id %s)", self.name, coid, order.side, order.qty,
                 order.pair, placed.venue_order_id)
        return self._remember(replace(placed, submitted_at=order.submitted_at))

    @_own_decimal_context
    def cancel(self, client_order_id: ClientOrderId) -> bool:
        current = self.order(client_order_id)
        if current is None or not current.status.is_open or current.venue_order_id is None:
            return False
        try:
            self._read(lambda: self._exchange.cancel_order(current.venue_order_id, current.pair))
        except _NotFound:
            return False
        self._placed.pop(client_order_id, None)
        return True

    @_own_decimal_context
    def order(self, client_order_id: ClientOrderId) -> VenueOrder | None:
        return self._lookup(client_order_id, self._pair_of.get(client_order_id))

    @_own_decimal_context
    def open_orders(self) -> list[VenueOrder]:
        self._markets()
        out: list[VenueOrder] = []
        for pair in self._pairs():
            raws = self._read(partial(self._exchange.fetch_open_orders, pair))
            out.extend(self._remember_seen(self._read_parse(r, None)) for r in raws)
        return out

    # ---------------------------------------------------------------- Venue protocol: fills, balances
    @_own_decimal_context
    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        self._markets()
        trades: dict[str, tuple[int, dict[str, Any]]] = {}
        for pair in self._pairs():
            since: int | None = cursor or None
            while True:
                page = self._read(partial(self._exchange.fetch_my_trades, pair, since, self.config.trades_page))
                stamps = [int(t["timestamp"]) for t in page if t.get("timestamp") is not None]
                for t in page:
                    if t.get("id") is not None and t.get("timestamp") is not None:
                        trades[str(t["id"])] = (int(t["timestamp"]), t)
                if len(page) < self.config.trades_page or not stamps or max(stamps) == since:
                    break
                since = max(stamps)
        seen_ms, seen_ids = self._seen_at_cursor
        fresh = sorted((ts, tid, t) for tid, (ts, t) in trades.items()
                       if ts >= cursor and not (ts == seen_ms == cursor and tid in seen_ids))
        fills = [f for ts, tid, t in fresh if (f := self._parse_fill(tid, ts, t)) is not None]
        newest = max([cursor, *(ts for ts, _, _ in fresh)])
        at_newest = {tid for ts, tid, _ in fresh if ts == newest}
        self._seen_at_cursor = (newest, frozenset(at_newest | (seen_ids if newest == seen_ms else set())))
        return fills, newest

    @_own_decimal_context
    def balances(self) -> dict[str, Decimal]:
        """Free + used per asset, zero balances left out."""
        raw = self._read(self._exchange.fetch_balance)
        free, used = raw.get("free") or {}, raw.get("used") or {}
        out: dict[str, Decimal] = {}
        for asset in sorted(set(free) | set(used)):
            total = (_num(free.get(asset)) or Decimal(0)) + (_num(used.get(asset)) or Decimal(0))
            if total != 0:
                out[asset] = total
        return out

    @_own_decimal_context
    def positions(self) -> dict[str, Decimal]:
        """Spot: each configured pair's base-asset balance (see the module docstring)."""
        bal = self.balances()
        out: dict[str, Decimal] = {}
        for pair in self.config.pairs:
            base = pair.split("/")[0]
            if base in bal and not any(p.split("/")[0] == base for p in out):
                out[pair] = bal[base]
        return out

    # ---------------------------------------------------------------- pre-trade checks
    def _checked_market(self, order: VenueOrder) -> dict[str, Any]:
        markets = self._markets()
        if order.pair not in self.config.pairs:
            raise OrderRejected(self.name, "unknown_symbol",
                                f"{order.pair} is not one of this venue's pairs {list(self.config.pairs)}")
        market = markets.get(order.pair)
        if market is None:
            raise OrderRejected(self.name, "unknown_symbol",
                                f"{order.pair} is not a market on {self.config.exchange_id}")
        if not market.get("spot"):
            raise OrderRejected(self.name, "unsupported", f"{order.pair} is not a spot market")
        if market.get("active") is False:
            raise OrderRejected(self.name, "unknown_symbol", f"{order.pair} is not trading (market inactive)")
        return market

    def _checked_request(self, order: VenueOrder, market: dict[str, Any]) -> tuple[float, float | None, dict[str, Any]]:
        """Check ``order`` against the market's precision and limits; ccxt's amount, price and params."""
        if order.qty <= 0:
            raise OrderRejected(self.name, "invalid_order", f"qty {order.qty}; expected > 0")
        self._on_step("qty", order.qty, self._exchange.amount_to_precision, order.pair)
        params: dict[str, Any] = {self.config.client_order_id_param: order.client_order_id}
        price: Decimal | None = None
        if order.type is OrderType.LIMIT:
            if order.price is None or order.price <= 0:
                raise OrderRejected(self.name, "invalid_order", f"limit order needs a price > 0; got {order.price}")
            price = self._on_step("price", order.price, self._exchange.price_to_precision, order.pair)
        elif order.type is OrderType.STOP_MARKET:
            has = self._exchange.has
            if not (has.get("createTriggerOrder") or has.get("createStopOrder") or has.get("createStopMarketOrder")):
                raise OrderRejected(self.name, "unsupported",
                                    f"{self.config.exchange_id} takes no stop orders via ccxt")
            if order.stop_price is None or order.stop_price <= 0:
                raise OrderRejected(self.name, "invalid_order",
                                    f"stop order needs a stop price > 0; got {order.stop_price}")
            stop = self._on_step("stop price", order.stop_price, self._exchange.price_to_precision, order.pair)
            params["triggerPrice"] = float(stop)
        limits = market.get("limits") or {}
        amount_limits, cost_limits = limits.get("amount") or {}, limits.get("cost") or {}
        min_amount, max_amount = _num(amount_limits.get("min")), _num(amount_limits.get("max"))
        if min_amount is not None and order.qty < min_amount:
            raise OrderRejected(self.name, "min_amount", f"qty {order.qty} is below the market minimum {min_amount}")
        if max_amount is not None and max_amount > 0 and order.qty > max_amount:
            raise OrderRejected(self.name, "max_amount", f"qty {order.qty} is above the market maximum {max_amount}")
        min_cost = _num(cost_limits.get("min"))
        if min_cost is not None or self.config.check_balance:
            ref = price or order.stop_price or order.ref_price or self._last_price(order.pair)
            notional = order.qty * ref
            if min_cost is not None and notional < min_cost:
                raise OrderRejected(self.name, "min_notional",
                                    f"notional {notional.normalize()} ({order.qty} x {ref}) is below the market "
                                    f"minimum {min_cost}")
            if self.config.check_balance:
                self._check_balance(order, market, notional)
        return float(order.qty), (float(price) if price is not None else None), params

    @_own_decimal_context
    def qty_on_step(self, pair: str, qty: Decimal) -> Decimal:
        """``qty`` rounded down onto the market's amount step (0 when below one step): what to ask for."""
        self._markets()
        try:
            return Decimal(str(self._exchange.amount_to_precision(pair, str(qty))))
        except ccxt.InvalidOrder:
            return Decimal(0)

    def _on_step(self, what: str, value: Decimal, to_precision: Callable[[str, Any], Any], pair: str) -> Decimal:
        try:
            rounded = Decimal(str(to_precision(pair, str(value))))
        except ccxt.InvalidOrder:
            raise OrderRejected(self.name, "min_amount" if what == "qty" else "precision",
                                f"{what} {value} is smaller than the market's step") from None
        if rounded != value:
            raise OrderRejected(self.name, "precision", f"{what} {value} is not on the market's step; "
                                f"the nearest accepted {what} is {rounded.normalize()} (not changed here: resize it)")
        return value

    def _last_price(self, pair: str) -> Decimal:
        ticker = self._read(lambda: self._exchange.fetch_ticker(pair))
        last = _num(ticker.get("last")) or _num(ticker.get("close"))
        if last is None or last <= 0:
            raise VenueUnavailable(self.name, f"no last price for {pair} in the ticker")
        return last

    def _check_balance(self, order: VenueOrder, market: dict[str, Any], notional: Decimal) -> None:
        free = self._read(self._exchange.fetch_balance).get("free") or {}
        asset, need = (market["quote"], notional) if order.side is Side.BUY else (market["base"], order.qty)
        have = _num(free.get(asset)) or Decimal(0)
        if have < need:
            raise OrderRejected(self.name, "insufficient_balance", f"needs {need.normalize()} {asset}; free {have}")

    # ---------------------------------------------------------------- lookups and parsing
    def _lookup(self, coid: ClientOrderId, pair: str | None) -> VenueOrder | None:
        """The exchange's order with client id ``coid`` (searching ``pair``, else every configured pair).

        Asks ``fetch_order`` with the client id as parameter (Binance: ``origClientOrderId``); an
        exchange that cannot fetch by client id is searched among its open orders instead.
        """
        self._markets()
        for p in [pair] if pair else self._pairs():
            try:
                raw = self._exchange.fetch_order("", p, {self.config.client_order_id_param: coid})
            except ccxt.OrderNotFound:
                continue
            except (ccxt.NotSupported, ccxt.ArgumentsRequired, ccxt.BadRequest):
                raws = self._read(partial(self._exchange.fetch_open_orders, p))
                raw = next((r for r in raws if r.get("clientOrderId") == coid), None)
                if raw is None:
                    continue
            except ccxt.BaseError as exc:
                raise self._translate(exc, submit=False) from None
            except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
                raise VenueUnavailable(self.name, f"bad_response: unreadable answer ({type(exc).__name__})") from None
            return self._remember_seen(self._read_parse(raw, None))
        return None

    def _parse_order(self, raw: Mapping[str, Any], fallback: VenueOrder | None) -> VenueOrder:
        """A ccxt order as a :class:`VenueOrder`; KeyError/ValueError when a needed field is missing."""
        info_coid = raw.get("clientOrderId") or (fallback.client_order_id if fallback else None)
        pair = raw.get("symbol") or (fallback.pair if fallback else None)
        side = raw.get("side") or (fallback.side.value.lower() if fallback else None)
        if raw.get("id") is None or not info_coid or not pair or side not in ("buy", "sell"):
            raise KeyError("id/clientOrderId/symbol/side")
        qty = _num(raw.get("amount"))
        if qty is None:
            if fallback is None:
                raise KeyError("amount")
            qty = fallback.qty
        filled = _num(raw.get("filled")) or Decimal(0)
        status = _STATUS.get(str(raw.get("status")), OrderStatus.SUBMITTED)
        if status is OrderStatus.SUBMITTED and filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        stop = _num(raw.get("triggerPrice")) or _num(raw.get("stopPrice"))
        stop = stop if stop else None
        kind = str(raw.get("type") or "").lower()
        otype = (OrderType.STOP_MARKET if stop is not None and "limit" not in kind
                 else OrderType.LIMIT if "limit" in kind else OrderType.MARKET)
        ts = raw.get("timestamp")
        return VenueOrder(
            client_order_id=ClientOrderId(str(info_coid)), pair=str(pair), side=Side(str(side).upper()), type=otype,
            qty=qty, submitted_at=int(ts) // 1000 if ts is not None else (fallback.submitted_at if fallback else 0),
            status=status, filled_qty=filled, price=_num(raw.get("price")) if otype is OrderType.LIMIT else None,
            stop_price=stop, venue_order_id=str(raw["id"]),
            reason=str(raw["status"]) if status in (OrderStatus.REJECTED, OrderStatus.EXPIRED) else None)

    def _read_parse(self, raw: Mapping[str, Any], fallback: VenueOrder | None) -> VenueOrder:
        try:
            return self._parse_order(raw, fallback)
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise VenueUnavailable(self.name, f"bad_response: order without {exc}") from None

    def _parse_fill(self, trade_id: str, ts: int, t: Mapping[str, Any]) -> VenueFill | None:
        try:
            pair, side = str(t["symbol"]), Side(str(t["side"]).upper())
            qty, price = _num(t["amount"]), _num(t["price"])
            if qty is None or price is None:
                raise KeyError("amount/price")
        except (KeyError, ValueError, TypeError) as exc:
            raise VenueUnavailable(self.name, f"bad_response: trade {trade_id} without {exc}") from None
        coid = self._coid_for_trade(t, pair)
        if coid is None or not coid.startswith(self.config.client_order_id_prefix):
            log.info("ccxt venue %s: trade %s of order %s is not the desk's; not reported", self.name, trade_id,
                     t.get("order"))
            return None
        fee = self._fee_in_quote(t, pair, price)
        return VenueFill(trade_id, coid, pair, side, qty, price, fee, ts // 1000,
                         liquidity=str(t.get("takerOrMaker") or "taker"))

    def _coid_for_trade(self, t: Mapping[str, Any], pair: str) -> ClientOrderId | None:
        vid = t.get("order")
        if vid is None:
            return None
        known = self._coid_of.get(str(vid))
        if known is not None:
            return known
        try:
            raw = self._read(lambda: self._exchange.fetch_order(str(vid), pair))
        except _NotFound:
            return None
        coid = raw.get("clientOrderId")
        if coid:
            self._coid_of[str(vid)] = ClientOrderId(str(coid))
        return self._coid_of.get(str(vid))

    def _fee_in_quote(self, t: Mapping[str, Any], pair: str, price: Decimal) -> Decimal:
        base, quote = pair.split("/")[0], pair.split("/")[1].split(":")[0]
        fees = t.get("fees") or ([t["fee"]] if t.get("fee") else [])
        total = Decimal(0)
        for fee in fees:
            cost, ccy = _num(fee.get("cost")), fee.get("currency")
            if not cost:
                continue
            if ccy == quote:
                total += cost
            elif ccy == base:
                total += cost * price
            elif f"{ccy}/{quote}" in self._markets():
                total += cost * self._last_price(f"{ccy}/{quote}")
            else:
                log.warning("ccxt venue %s: fee of %s %s on %s has no %s market; counted as 0",
                            self.name, cost, ccy, pair, quote)
        return dec(total)

    def _remember(self, order: VenueOrder) -> VenueOrder:
        self._placed[order.client_order_id] = order
        self._uncertain.pop(order.client_order_id, None)
        return self._remember_seen(order)

    def _remember_seen(self, order: VenueOrder) -> VenueOrder:
        self._pair_of[order.client_order_id] = order.pair
        if order.venue_order_id is not None:
            self._coid_of[order.venue_order_id] = order.client_order_id
        return order

    def _pairs(self) -> list[str]:
        return [p for p in self.config.pairs if p in self._exchange.markets]

    # ---------------------------------------------------------------- calls and errors
    def _markets(self) -> dict[str, Any]:
        if not self._exchange.markets:
            self._read(self._exchange.load_markets)
        markets: dict[str, Any] = self._exchange.markets
        return markets

    def _read(self, call: Callable[[], T]) -> T:
        """Run a ccxt read; its errors as desk errors (a malformed answer: VenueUnavailable)."""
        try:
            return call()
        except ccxt.OrderNotFound:
            raise _NotFound() from None
        except ccxt.BaseError as exc:
            raise self._translate(exc, submit=False) from None
        except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation) as exc:
            raise VenueUnavailable(self.name, f"bad_response: unreadable answer ({type(exc).__name__})") from None

    def _submit_failed(self, order: VenueOrder, exc: ccxt.BaseError) -> VenueOrder:
        coid = order.client_order_id
        duplicate = isinstance(exc, ccxt.DuplicateOrderId) or "duplicate" in str(exc).lower()
        if duplicate or isinstance(exc, ccxt.BadResponse):
            try:
                found = self._lookup(coid, order.pair)
            except ExecdeskError:
                found = None
                self._uncertain[coid] = order.pair
            if found is not None:
                log.info("ccxt venue %s: submit %s answered %s; the order exists, returning it",
                         self.name, coid, type(exc).__name__)
                return self._remember(found)
            if duplicate:
                raise OrderRejected(self.name, "duplicate_order", self._scrub(str(exc))) from None
        elif isinstance(exc, ccxt.NetworkError):
            self._uncertain[coid] = order.pair
        raise self._translate(exc, submit=True) from None

    def _translate(self, exc: ccxt.BaseError, *, submit: bool) -> ExecdeskError:
        msg = f"{type(exc).__name__}: {self._scrub(str(exc))}"
        if isinstance(exc, ccxt.BadResponse):
            return OrderRejected(self.name, "bad_response", msg) if submit else VenueUnavailable(self.name, msg)
        if isinstance(exc, ccxt.NetworkError):
            return VenueUnavailable(self.name, msg, retry_after=self._retry_after(exc))
        if isinstance(exc, ccxt.InsufficientFunds):
            code = "insufficient_balance"
        elif isinstance(exc, ccxt.BadSymbol):
            code = "unknown_symbol"
        elif isinstance(exc, ccxt.AuthenticationError):
            code = "auth"
        elif isinstance(exc, ccxt.NotSupported):
            code = "unsupported"
        elif isinstance(exc, ccxt.InvalidOrder) or "FILTER FAILURE" in str(exc).upper():
            # Binance answers a broken symbol filter with -1013 "Filter failure: <FILTER>"
            code = "min_notional" if "NOTIONAL" in str(exc).upper() else "invalid_order"
        elif isinstance(exc, ccxt.ExchangeError):
            code = "exchange_error"
        else:  # OperationFailed and other non-exchange failures: the venue is in trouble, try later
            return VenueUnavailable(self.name, msg)
        return OrderRejected(self.name, code, msg)

    def _retry_after(self, exc: ccxt.BaseError) -> float | None:
        if not isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable)):
            return None
        headers = getattr(self._exchange, "last_response_headers", None) or {}
        try:
            value = headers.get("Retry-After") or headers.get("retry-after")
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def _scrub(self, text: str) -> str:
        """``text`` without credential values (raw or URL-encoded) and request signatures."""
        for secret in self._secrets:
            text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
        return _SIGNATURE.sub(r"\1***", text)


class _NotFound(Exception):
    """Internal: the exchange does not know the order."""


class _RedactingLogger:
    """Stands in for a ccxt exchange's logger: ccxt logs every request's headers at DEBUG, and those
    carry the API key (and on some exchanges the passphrase). Lines are scrubbed, then logged."""

    def __init__(self, target: logging.Logger, scrub: Callable[[str], str]) -> None:
        self._target = target
        self._scrub = scrub

    def _emit(self, level: int, msg: object, *args: object) -> None:
        if self._target.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self._target.log(level, "%s", self._scrub(text))

    def debug(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.DEBUG, msg, *args)

    def info(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.INFO, msg, *args)

    def warning(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.WARNING, msg, *args)

    def error(self, msg: object, *args: object, **_: object) -> None:
        self._emit(logging.ERROR, msg, *args)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging's name)
        return self._target.isEnabledFor(level)


def _num(value: object) -> Decimal | None:
    """A ccxt number (float, int or str) as an accounting Decimal; None for None or ''."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("boolean where a number was expected")
    if isinstance(value, float | int | str | Decimal):
        return dec(value)
    raise TypeError(f"{type(value).__name__} where a number was expected")


def _best(book: Mapping[str, Any], side: str) -> Decimal | None:
    """The best price on one side of a ccxt order book (None: the side is empty); an unreadable level is a
    :class:`VenueUnavailable` like any malformed answer to a read."""
    levels = book.get(side) or []
    if not levels:
        return None
    try:
        return _num(levels[0][0])
    except (IndexError, KeyError, TypeError, ValueError, InvalidOperation):
        raise VenueUnavailable("ccxt", f"bad_response: unreadable {side} in the order book") from None


def _point_at(urls: Any, target: SplitResult) -> None:
    """Every URL in ccxt's (nested) ``urls['api']`` with ``target``'s scheme and host, its path kept."""
    if not isinstance(urls, dict):
        return
    for key, url in urls.items():
        if isinstance(url, dict):
            _point_at(url, target)
        elif isinstance(url, str):
            urls[key] = urlunsplit((target.scheme, target.netloc, urlsplit(url).path, "", ""))
