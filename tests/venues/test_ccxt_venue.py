"""Tests of execdesk.venues.ccxt_venue through ccxt's real HTTP layer and Binance parser.

A loopback HTTP server (127.0.0.1, a free port) plays Binance spot from the recorded responses in
``fixtures/ccxt/`` (see its README for their provenance), keeps the orders it is sent, records every
request, and injects faults on demand. The ccxt exchange's API URLs are pointed at it; nothing else
is mocked, and any connection to a host other than loopback fails the test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt
import pytest

from execdesk.domain.types import ClientOrderId, OrderStatus, OrderType, Side
from execdesk.errors import InvalidInput
from execdesk.venues.base import OrderRejected, Venue, VenueOrder, VenueUnavailable
from execdesk.venues.ccxt_venue import CcxtVenue
from tests.venues.fake_binance import ORDER_PATH, FakeBinance, loopback_only  # noqa: F401 (an autouse fixture)

D = Decimal
KEY = "tEsTkEy-1234567890abcdefKEY"
SECRET = "s3cr3t-NEVER-LOG-ME-0987654321zyx"
PAIRS = ("BTC/USDT", "ETH/USDT", "XRP/USDT")  # XRP/USDT is configured but not listed by the exchange


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECDESK_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("EXECDESK_BINANCE_SECRET", SECRET)


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance() as server:
        yield server


def make_venue(fake: FakeBinance, **settings: Any) -> CcxtVenue:
    """A sandbox Binance venue whose API URLs (every key: public, private, sapi, fapi...) point at ``fake``."""
    settings.setdefault("timeout_ms", 3000)
    v = CcxtVenue.create("binance", pairs=PAIRS, **settings)
    loop = urlsplit(fake.url)
    api = v.exchange.urls["api"]
    for key, url in api.items():
        api[key] = urlunsplit((loop.scheme, loop.netloc, urlsplit(url).path, "", ""))
    return v


@pytest.fixture
def venue(fake: FakeBinance, keys: None) -> CcxtVenue:
    return make_venue(fake)


def order(coid: str = "ed-00000000000000000001", *, side: Side = Side.BUY, type: OrderType = OrderType.LIMIT,
          qty: str = "0.01", price: str | None = "59000", stop: str | None = None,
          pair: str = "BTC/USDT") -> VenueOrder:
    return VenueOrder(ClientOrderId(coid), pair, side, type, D(qty), 1_717_171_200,
                      price=D(price) if price is not None and type is OrderType.LIMIT else None,
                      stop_price=D(stop) if stop is not None else None)


# ---------------------------------------------------------------- creation, sandbox and keys
def test_create_when_defaults_then_sandbox_urls_rate_limiter_and_keys_from_env(keys: None) -> None:
    # Act
    v = CcxtVenue.create("binance", pairs=PAIRS)

    # Assert
    assert isinstance(v, Venue)
    assert v.embedded is False
    assert v.exchange.urls["api"]["public"] == ccxt.binance().urls["test"]["public"]
    assert "testnet" in v.exchange.urls["api"]["private"]
    assert v.exchange.enableRateLimit is True
    assert v.exchange.apiKey == KEY


def test_create_when_sandbox_off_without_live_then_invalid_input(keys: None) -> None:
    with pytest.raises(InvalidInput, match="live=True"):
        CcxtVenue.create("binance", pairs=PAIRS, sandbox=False)
    with pytest.raises(InvalidInput, match="sandbox=False"):
        CcxtVenue.create("binance", pairs=PAIRS, live=True)


def test_create_when_live_asked_explicitly_then_production_urls(keys: None) -> None:
    # Act
    v = CcxtVenue.create("binance", pairs=PAIRS, sandbox=False, live=True)

    # Assert
    assert v.exchange.urls["api"]["public"] == ccxt.binance().urls["api"]["public"]
    assert "testnet" not in v.exchange.urls["api"]["public"]
    assert "LIVE" in repr(v)


def test_create_when_exchange_has_no_sandbox_then_refused_unless_live(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: bitstamp declares no test URLs
    monkeypatch.setenv("EXECDESK_BITSTAMP_API_KEY", KEY)
    monkeypatch.setenv("EXECDESK_BITSTAMP_SECRET", SECRET)

    # Act / Assert
    with pytest.raises(InvalidInput, match="no sandbox"):
        CcxtVenue.create("bitstamp", pairs=["BTC/USD"])
    assert CcxtVenue.create("bitstamp", pairs=["BTC/USD"], sandbox=False, live=True).exchange.urls["api"]


def test_create_when_keys_missing_then_invalid_input_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXECDESK_BINANCE_API_KEY", raising=False)
    monkeypatch.setenv("EXECDESK_BINANCE_SECRET", SECRET)
    with pytest.raises(InvalidInput, match="EXECDESK_BINANCE_API_KEY") as err:
        CcxtVenue.create("binance", pairs=PAIRS)
    assert SECRET not in str(err.value)


def test_create_when_exchange_id_unknown_then_invalid_input(keys: None) -> None:
    with pytest.raises(InvalidInput, match=r"venue\.exchange_id"):
        CcxtVenue.create("no-such-exchange", pairs=PAIRS)


# ---------------------------------------------------------------- submit
def test_submit_limit_when_accepted_then_client_order_id_and_api_key_reach_the_exchange(
        fake: FakeBinance, venue: CcxtVenue) -> None:
    # Act
    placed = venue.submit(order())

    # Assert
    (post,) = fake.posts()
    assert post.params["newClientOrderId"] == "ed-00000000000000000001"
    assert (post.params["symbol"], post.params["side"], post.params["type"]) == ("BTCUSDT", "BUY", "LIMIT")
    assert D(post.params["quantity"]) == D("0.01")
    assert D(post.params["price"]) == D("59000")
    assert post.headers["X-MBX-APIKEY"] == KEY
    assert "signature" in post.params
    assert SECRET not in post.raw
    assert placed.status is OrderStatus.SUBMITTED
    assert placed.venue_order_id == "1001"
    assert (placed.qty, placed.price, placed.submitted_at) == (D("0.01"), D("59000"), 1_717_171_200)


def test_submit_market_when_filled_then_status_filled(fake: FakeBinance, venue: CcxtVenue) -> None:
    # Act
    placed = venue.submit(order(type=OrderType.MARKET, price=None))

    # Assert
    assert fake.posts()[0].params["type"] == "MARKET"
    assert placed.status is OrderStatus.FILLED
    assert placed.filled_qty == D("0.01")


def test_submit_stop_market_when_binance_spot_then_stop_loss_with_stop_price(fake: FakeBinance,
                                                                             venue: CcxtVenue) -> None:
    # Act
    placed = venue.submit(order(side=Side.SELL, type=OrderType.STOP_MARKET, price=None, stop="55000"))

    # Assert
    (post,) = fake.posts()
    assert post.params["type"] == "STOP_LOSS"
    assert D(post.params["stopPrice"]) == D("55000")
    assert placed.type is OrderType.STOP_MARKET
    assert placed.stop_price == D("55000")


def test_submit_when_same_client_id_again_then_known_order_without_second_post(fake: FakeBinance,
                                                                              venue: CcxtVenue) -> None:
    first = venue.submit(order())
    again = venue.submit(order())
    assert again == first
    assert len(fake.posts()) == 1


@pytest.mark.parametrize(("o", "code", "says"), [
    (order(qty="0.012345"), "precision", "0.01234"),
    (order(price="59000.005"), "precision", "59000.01"),
    (order(qty="0.00005"), "min_amount", "0.0001"),
    (order(qty="0.0001", price="30000"), "min_notional", "5"),
    (order(qty="0.001", type=OrderType.MARKET, price=None, pair="ETH/USDT"), "min_notional", "0.001 x 3000"),
    (order(qty="1000"), "max_amount", "900"),
    (order(pair="XRP/USDT"), "unknown_symbol", "not a market"),
    (order(pair="DOGE/USDT"), "unknown_symbol", "not one of this venue's pairs"),
    (order(type=OrderType.LIMIT, price=None), "invalid_order", "price"),
])
def test_submit_when_order_breaks_market_rules_then_rejected_before_any_post(
        fake: FakeBinance, venue: CcxtVenue, o: VenueOrder, code: str, says: str) -> None:
    # Act
    with pytest.raises(OrderRejected) as err:
        venue.submit(o)

    # Assert
    assert err.value.code == code
    assert says in err.value.reason
    assert fake.posts() == []


def test_submit_when_balance_check_on_and_too_little_quote_then_rejected_before_post(
        fake: FakeBinance, keys: None) -> None:
    v = make_venue(fake, check_balance=True)
    with pytest.raises(OrderRejected) as err:
        v.submit(order(qty="1", price="59000"))
    assert err.value.code == "insufficient_balance"
    assert fake.posts() == []


@pytest.mark.parametrize(("error", "code"), [
    ("insufficient_balance", "insufficient_balance"),
    ("lot_size", "invalid_order"),
    ("notional", "min_notional"),
    ("invalid_symbol", "unknown_symbol"),
    ("bad_api_key", "auth"),
])
def test_submit_when_exchange_refuses_then_order_rejected_with_code(
        fake: FakeBinance, venue: CcxtVenue, error: str, code: str) -> None:
    # Arrange
    fake.fail_next("POST", ORDER_PATH, error)

    # Act
    with pytest.raises(OrderRejected) as err:
        venue.submit(order())

    # Assert
    assert err.value.code == code
    assert len(fake.posts()) == 1


def test_submit_when_rate_limited_then_venue_unavailable_with_retry_after(fake: FakeBinance,
                                                                         venue: CcxtVenue) -> None:
    fake.fail_next("POST", ORDER_PATH, "too_many_requests", headers={"Retry-After": "7"})
    with pytest.raises(VenueUnavailable) as err:
        venue.submit(order())
    assert err.value.retry_after == 7.0


def test_submit_when_exchange_down_then_venue_unavailable(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.fail_next("POST", ORDER_PATH, status=503, raw=b"<html>503 Service Unavailable</html>")
    with pytest.raises(VenueUnavailable):
        venue.submit(order())


def test_submit_when_answer_is_garbage_and_order_unknown_then_bad_response(fake: FakeBinance,
                                                                           venue: CcxtVenue) -> None:
    # Arrange: the POST is answered with garbage (and did not take effect)
    fake.fail_next("POST", ORDER_PATH, status=200, raw=b"{this is not json")

    # Act
    with pytest.raises(OrderRejected) as err:
        venue.submit(order())

    # Assert: looked up by client id before giving up
    assert err.value.code == "bad_response"
    assert any(r.method == "GET" and r.params.get("origClientOrderId") == "ed-00000000000000000001"
               for r in fake.requests)


def test_submit_when_answer_lacks_fields_then_bad_response(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.fail_next("POST", ORDER_PATH, status=200, body={"symbol": "BTCUSDT"})
    with pytest.raises(OrderRejected) as err:
        venue.submit(order())
    assert err.value.code == "bad_response"


def test_submit_when_timed_out_and_retried_then_found_by_client_id_and_posted_once(
        fake: FakeBinance, keys: None) -> None:
    # Arrange: the exchange takes the order, but its answer comes after ccxt's 300 ms timeout
    v = make_venue(fake, timeout_ms=300)
    fake.fail_next("POST", ORDER_PATH, delay=1.0, then_serve=True)
    with pytest.raises(VenueUnavailable, match="RequestTimeout"):
        v.submit(order())

    # Act: the order manager retries
    placed = v.submit(order())

    # Assert
    assert len(fake.posts()) == 1
    assert placed.venue_order_id == "1001"
    assert placed.client_order_id == "ed-00000000000000000001"
    assert fake.requests[-1].params.get("origClientOrderId") == "ed-00000000000000000001"


def test_submit_when_unavailable_before_the_order_arrived_then_retry_places_it(fake: FakeBinance,
                                                                              venue: CcxtVenue) -> None:
    fake.fail_next("POST", ORDER_PATH, status=503, raw=b"down")
    with pytest.raises(VenueUnavailable):
        venue.submit(order())
    placed = venue.submit(order())
    assert len(fake.posts()) == 2
    assert len([o for o in fake.orders.values() if o["clientOrderId"] == placed.client_order_id]) == 1


def test_submit_when_exchange_says_duplicate_then_existing_order_returned(fake: FakeBinance, keys: None) -> None:
    # Arrange: a first process placed the order; a restarted one submits the same id
    first = make_venue(fake).submit(order())
    restarted = make_venue(fake)

    # Act
    again = restarted.submit(order())

    # Assert: Binance refused the duplicate; the venue returned the order it already has
    assert len(fake.posts()) == 2
    assert len(fake.orders) == 4  # 3 recorded + this one
    assert again.venue_order_id == first.venue_order_id
    assert again.status is OrderStatus.SUBMITTED


# ---------------------------------------------------------------- cancel, order, open orders
def test_cancel_when_open_then_true_and_then_false(fake: FakeBinance, venue: CcxtVenue) -> None:
    venue.submit(order())
    assert venue.cancel(ClientOrderId("ed-00000000000000000001")) is True
    assert [r.method for r in fake.requests if r.path == ORDER_PATH][-1] == "DELETE"
    assert venue.order(ClientOrderId("ed-00000000000000000001")).status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert venue.cancel(ClientOrderId("ed-00000000000000000001")) is False
    assert venue.cancel(ClientOrderId("ed-never-seen")) is False


def test_order_when_unknown_then_none_and_when_known_then_exchange_view(fake: FakeBinance, venue: CcxtVenue) -> None:
    assert venue.order(ClientOrderId("ed-never-seen")) is None
    got = venue.order(ClientOrderId("ed-bbbbbbbbbbbbbbbbbbbb"))  # placed before this process started
    assert got is not None
    assert (got.pair, got.status, got.type, got.venue_order_id) == ("BTC/USDT", OrderStatus.FILLED,
                                                                    OrderType.LIMIT, "7002")


def test_open_orders_when_limit_resting_then_listed(venue: CcxtVenue) -> None:
    venue.submit(order())
    venue.submit(order("ed-00000000000000000002", type=OrderType.MARKET, price=None))
    (resting,) = venue.open_orders()
    assert resting.client_order_id == "ed-00000000000000000001"
    assert resting.status is OrderStatus.SUBMITTED


def test_open_orders_when_answer_is_garbage_then_venue_unavailable(fake: FakeBinance, venue: CcxtVenue) -> None:
    venue.balances()  # markets loaded
    fake.fail_next("GET", "/api/v3/openOrders", status=200, raw=b"]]garbage")
    with pytest.raises(VenueUnavailable):
        venue.open_orders()


# ---------------------------------------------------------------- fills, balances, positions
def test_fills_since_when_trades_then_desk_fills_with_trade_ids_and_fees_in_quote(fake: FakeBinance,
                                                                                 venue: CcxtVenue) -> None:
    # Act
    fills, cursor = venue.fills_since(0)

    # Assert: trade 9004 belongs to a manual web order (client id not "ed-"): not reported
    assert [f.fill_id for f in fills] == ["9001", "9002", "9003"]
    f1, f2, f3 = fills
    assert (f1.client_order_id, f1.side, f1.qty, f1.price, f1.fee, f1.time, f1.liquidity) == (
        "ed-aaaaaaaaaaaaaaaaaaaa", Side.BUY, D("0.01"), D("60000"), D("0.6"), 1_717_171_300, "taker")
    assert f2.fee == D("0.305")  # 0.000005 BTC at the fill price
    assert f3.fee == D("0.3")  # 0.0005 BNB at BNB/USDT's last price 600
    assert f2.liquidity == "maker"
    assert cursor == 1_717_171_500_000


def test_fills_since_when_called_again_with_cursor_then_no_repeats(fake: FakeBinance, venue: CcxtVenue) -> None:
    _, cursor = venue.fills_since(0)
    fills, again = venue.fills_since(cursor)
    assert fills == []
    assert again == cursor
    assert any(r.path == "/api/v3/myTrades" and r.params.get("startTime") == str(cursor) for r in fake.requests)


def test_fills_since_when_trades_unreadable_then_venue_unavailable(fake: FakeBinance, venue: CcxtVenue) -> None:
    venue.balances()
    fake.fail_next("GET", "/api/v3/myTrades", status=200, body=[{"id": 1, "time": 5}])
    with pytest.raises(VenueUnavailable, match="bad_response"):
        venue.fills_since(0)


def test_balances_when_account_then_free_plus_locked_as_decimal(venue: CcxtVenue) -> None:
    assert venue.balances() == {"BTC": D("0.02"), "LTC": D("1"), "USDT": D("9100.5")}


def test_positions_when_spot_then_base_balances_of_configured_pairs(venue: CcxtVenue) -> None:
    assert venue.positions() == {"BTC/USDT": D("0.02")}


def test_balances_when_rate_limited_then_venue_unavailable(fake: FakeBinance, venue: CcxtVenue) -> None:
    fake.fail_next("GET", "/api/v3/account", "too_many_requests", headers={"Retry-After": "3"})
    with pytest.raises(VenueUnavailable) as err:
        venue.balances()
    assert err.value.retry_after == 3.0


# ---------------------------------------------------------------- secrets
def test_secrets_when_trading_failing_and_debug_logging_then_never_in_repr_errors_or_logs(
        fake: FakeBinance, venue: CcxtVenue, caplog: pytest.LogCaptureFixture) -> None:
    # Arrange
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []

    # Act
    venue.submit(order())
    fake.fail_next("POST", ORDER_PATH, "bad_api_key")
    fake.fail_next("GET", "/api/v3/account", status=503, raw=f"echo {KEY} {SECRET}".encode())
    for call in (lambda: venue.submit(order("ed-00000000000000000002")), venue.balances):
        try:
            call()
        except (OrderRejected, VenueUnavailable) as exc:
            errors.append(str(exc))

    # Assert
    assert len(errors) == 2
    assert "X-MBX-APIKEY" in caplog.text  # ccxt's request log was captured, redacted
    for text in (repr(venue), caplog.text, *errors):
        assert SECRET not in text
        assert KEY not in text


def test_submit_market_when_ref_price_given_then_min_notional_uses_it_without_ticker(fake: FakeBinance,
                                                                                    venue: CcxtVenue) -> None:
    # Arrange: 0.001 ETH at the desk's price 2000 is 2 USDT, below the 5 USDT minimum
    o = VenueOrder(ClientOrderId("ed-00000000000000000003"), "ETH/USDT", Side.BUY, OrderType.MARKET, D("0.001"),
                   1_717_171_200, ref_price=D("2000"))

    # Act
    with pytest.raises(OrderRejected) as err:
        venue.submit(o)

    # Assert
    assert err.value.code == "min_notional"
    assert not any(r.path == "/api/v3/ticker/24hr" for r in fake.requests)
    assert fake.posts() == []


def test_venue_when_called_then_the_process_decimal_context_is_untouched(fake: FakeBinance, venue: CcxtVenue) -> None:
    # ccxt's precision helpers set rounding (half up) and traps on the thread's decimal context; the desk's ledger
    # rounds its own Decimals with that context, so the venue must leave it as it found it
    import decimal

    before = decimal.getcontext().copy()
    venue.submit(order(type=OrderType.MARKET, price=None))
    venue.balances()
    assert venue.qty_on_step("BTC/USDT", D("0.0123456789")) == D("0.01234")
    after = decimal.getcontext()
    assert (after.rounding, after.prec, dict(after.traps)) == (before.rounding, before.prec, dict(before.traps))


# ---------------------------------------------------------------- top of book
def test_top_of_book_when_binance_serves_its_depth_then_best_bid_and_ask_and_their_spread(
        fake: FakeBinance, venue: CcxtVenue) -> None:
    # Act
    quote = venue.top_of_book("BTC/USDT")

    # Assert: the first level of each side of the recorded book (59999.99 / 60000.01: 0.02 on a 60000 mid)
    assert (quote.pair, quote.bid, quote.ask) == ("BTC/USDT", D("59999.99"), D("60000.01"))
    assert quote.spread_bps == pytest.approx(0.02 / 60_000 * 10_000)
    (depth,) = [r for r in fake.requests if r.path == "/api/v3/depth"]
    assert (depth.params["symbol"], depth.params["limit"]) == ("BTCUSDT", "5")
    assert not any(r.path == "/api/v3/ticker/24hr" for r in fake.requests)  # the book was enough


def test_top_of_book_when_a_side_of_the_book_is_empty_then_the_tickers_bid_and_ask(fake: FakeBinance,
                                                                                    venue: CcxtVenue) -> None:
    # Arrange: nobody bids
    fake.books["BTCUSDT"] = {"bids": [], "asks": fake.books["BTCUSDT"]["asks"]}

    # Act
    quote = venue.top_of_book("BTC/USDT")

    # Assert: the ask from the book, the bid from the 24 h ticker (59999.99 in the recorded ticker)
    assert (quote.bid, quote.ask) == (D("59999.99"), D("60000.01"))
    assert any(r.path == "/api/v3/ticker/24hr" for r in fake.requests)


def test_top_of_book_when_rate_limited_then_venue_unavailable_with_retry_after(fake: FakeBinance,
                                                                               venue: CcxtVenue) -> None:
    # Arrange
    venue.top_of_book("ETH/USDT")  # (markets loaded)
    fake.fail_next("GET", "/api/v3/depth", "too_many_requests", headers={"Retry-After": "3"})

    # Act
    with pytest.raises(VenueUnavailable) as err:
        venue.top_of_book("ETH/USDT")

    # Assert: a temporary error the caller's retry policy waits out; the next read answers
    assert err.value.retry_after == 3.0
    assert venue.top_of_book("ETH/USDT").spread_bps == pytest.approx(0.2 / 3000 * 10_000)


def test_top_of_book_when_the_pair_is_not_the_venues_then_invalid_input(venue: CcxtVenue) -> None:
    with pytest.raises(InvalidInput, match="SOL/USDT is not one of this venue's pairs"):
        venue.top_of_book("SOL/USDT")
