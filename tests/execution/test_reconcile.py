"""Reconciliation: the ledger against the venue after a restart — adopt, resubmit, cancel, flag, stop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.domain.types import ClientOrderId, Direction, IntentReason, OrderIntent, OrderStatus, OrderType, Side
from execdesk.execution.oms import OrderManager, ReconcilePolicy
from execdesk.retry import RetryPolicy
from execdesk.risk.pretrade import Verdict
from execdesk.store.ledger import Ledger
from execdesk.venues.base import VenueOrder
from execdesk.venues.faulty import FaultRates, FaultyVenue
from execdesk.venues.paper import PaperVenue, PaperVenueConfig
from tests.kit import desk_ledger

D = Decimal
DEP = "dep-1"
PAIR = "BTC/USDT"
H = 3600
T = 1_700_006_400


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def ledger(home: Path) -> Iterator[Ledger]:
    led = desk_ledger(home, DEP, [PAIR], D(10000))
    yield led
    led.close(flush=False)


def venue(home: Path, **cfg: object) -> PaperVenue:
    """The persistent paper venue (it outlives an order manager, as a real venue outlives the desk)."""
    return PaperVenue("USDT", D(10000), PaperVenueConfig(fee_bps=0, slippage_bps=0, **cfg),  # type: ignore[arg-type]
                      pairs=[PAIR], bar_seconds=H, store=home / "venue.sqlite")


def buy(oms: OrderManager, qty: str = "2", signal_time: int = T, order_type: OrderType = OrderType.MARKET,
        price: Decimal | None = None) -> str:
    intent = OrderIntent(DEP, PAIR, Side.BUY, Direction.LONG, IntentReason.ENTRY_SIGNAL, signal_time, D(100))
    coid = oms.submit(intent, Verdict(True, "approved", "test", D(qty)), signal_time + H, order_type, price)
    assert coid is not None
    return coid


def restarted(ledger: Ledger, v: PaperVenue) -> OrderManager:
    """A new order manager on the same ledger and venue: what a restarted desk has."""
    ledger.flush()
    return OrderManager(ledger, v, RetryPolicy(sleep=lambda _s: None))


def test_reconcile_when_order_recorded_but_never_sent_then_resubmitted_once(ledger: Ledger, home: Path) -> None:
    # Arrange: the desk recorded the order and stopped before sending it
    v = venue(home)
    coid = buy(OrderManager(ledger, v))

    # Act
    report = restarted(ledger, v).reconcile(T + 2 * H)

    # Assert
    assert report.resubmitted == [coid]
    assert report.clean
    assert v.order(ClientOrderId(coid)) is not None
    assert ledger.state.orders[coid].status is OrderStatus.SUBMITTED
    assert [e.payload["resubmitted"] for e in ledger.events({EventKind.RECONCILED})] == [[coid]]


def test_reconcile_when_policy_cancels_unsent_then_cancelled_and_venue_never_hears_of_it(
        ledger: Ledger, home: Path) -> None:
    v = venue(home)
    coid = buy(OrderManager(ledger, v))
    report = restarted(ledger, v).reconcile(T + 2 * H, ReconcilePolicy(unsent="cancel"))
    assert report.cancelled_unsent == [coid]
    assert ledger.state.orders[coid].status is OrderStatus.CANCELED
    assert v.order(ClientOrderId(coid)) is None


def test_reconcile_when_venue_filled_what_the_ledger_missed_then_fills_adopted_and_books_agree(
        ledger: Ledger, home: Path) -> None:
    # Arrange: sent and filled at the venue; the desk died before it heard of the fill
    v = venue(home)
    oms = OrderManager(ledger, v)
    coid = buy(oms)
    oms.send(T + H)
    v.on_bar(PAIR, T + H, 100.0, 101.0, 99.0, 100.0, 0.0)
    reopened = venue(home)  # the venue's book, read back from its file

    # Act
    report = restarted(ledger, reopened).reconcile(T + 2 * H)

    # Assert: 2 BTC at 100, no fee: cash 10000 - 200 = 9800 on both sides
    assert report.adopted_fills == [f"{coid}-1"]
    assert report.clean
    assert ledger.state.orders[coid].status is OrderStatus.FILLED
    assert ledger.state.position(DEP, PAIR).qty == D(2)  # type: ignore[union-attr]
    assert ledger.state.cash() == reopened.balances()["USDT"] == D(9800)
    adopted = [e.payload for e in ledger.events({EventKind.ORDER_FILLED})]
    assert adopted[0]["adopted"] is True


def test_reconcile_when_venue_expired_an_open_order_then_the_end_is_recorded(ledger: Ledger, home: Path) -> None:
    v = venue(home, limit_ttl_s=H)
    oms = OrderManager(ledger, v)
    coid = buy(oms, order_type=OrderType.LIMIT, price=D(90))
    oms.send(T + H)
    v.on_bar(PAIR, T + 3 * H, 100.0, 101.0, 99.0, 100.0, 0.0)  # an hour later, unfilled: expired
    report = restarted(ledger, v).reconcile(T + 4 * H)
    assert report.ended == [{"client_order_id": coid, "venue": "EXPIRED", "ledger": "SUBMITTED"}]
    assert ledger.state.orders[coid].status is OrderStatus.EXPIRED


@pytest.mark.parametrize(("policy", "still_open"), [("cancel", False), ("flag", True)])
def test_reconcile_when_venue_holds_an_order_the_desk_never_placed_then_cancelled_or_flagged(
        ledger: Ledger, home: Path, policy: str, still_open: bool) -> None:
    # Arrange: someone placed an order by hand on the desk's account
    v = venue(home)
    v.submit(VenueOrder(ClientOrderId("manual-1"), PAIR, Side.BUY, OrderType.LIMIT, D(1), T, price=D(50)))

    # Act
    report = restarted(ledger, v).reconcile(T + H, ReconcilePolicy(foreign=policy))  # type: ignore[arg-type]

    # Assert
    assert [o["client_order_id"] for o in report.foreign_orders] == ["manual-1"]
    assert report.foreign_orders[0]["action"] == ("flagged" if still_open else "cancelled")
    assert bool(v.open_orders()) is still_open
    assert "manual-1" not in ledger.state.orders


def test_reconcile_when_venue_position_differs_then_mismatch_names_pair_and_deployments(
        ledger: Ledger, home: Path) -> None:
    # Arrange: a hand-placed order filled at the venue: 1 BTC the ledger cannot account for
    v = venue(home)
    v.submit(VenueOrder(ClientOrderId("manual-1"), PAIR, Side.BUY, OrderType.MARKET, D(1), T))
    v.on_bar(PAIR, T, 100.0, 100.0, 100.0, 100.0, 0.0)

    # Act
    report = restarted(ledger, v).reconcile(T + H)

    # Assert
    assert not report.clean
    assert report.foreign_fills == ["manual-1-1"]
    assert report.position_mismatches == [{"pair": PAIR, "ledger": "0", "venue": "1", "deployments": DEP}]
    assert report.cash_mismatch is not None
    assert (D(report.cash_mismatch["ledger"]), D(report.cash_mismatch["venue"])) == (D(10000), D(9900))
    assert not ledger.state.fills, "a fill of an order the desk never placed is not booked"


def test_reconcile_when_venue_unreachable_then_reported_not_raised(ledger: Ledger, home: Path) -> None:
    down = FaultyVenue(venue(home), FaultRates(timeout_before=1.0, timeout_after=0, rate_limit=0, disconnect=0,
                                               reject=0, split_fill=0, duplicate_fill=0))
    report = OrderManager(ledger, down, RetryPolicy(attempts=2, sleep=lambda _s: None)).reconcile(T)
    assert report.venue_unavailable is not None
    assert "timed out" in report.venue_unavailable
    assert not report.clean


# ---------------------------------------------------------------- the desk: what it does with a mismatch
def test_desk_when_venue_holds_a_position_the_ledger_does_not_then_those_deployments_are_not_traded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a first run with the paper venue keeping its own book
    risk = {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": {"enabled": False}}
    persist = {"kind": "paper", "fee_bps": 10, "slippage_bps": 5, "persist": True}
    run_desk(load_desk_config(write_config(venue=persist, risk=risk, market__end="2024-03-20T00:00:00Z")),
             tmp_path / "h")
    with Ledger.for_home(tmp_path / "h") as ledger:
        cash = ledger.state.cash()
    # ... then someone trades 0.1 BTC by hand on the account
    v = PaperVenue("USDT", D(0), store=tmp_path / "h" / "paper-venue.sqlite")
    v.submit(VenueOrder(ClientOrderId("manual-1"), "BTC/USDT", Side.BUY, OrderType.MARKET, D("0.1"),
                        1_710_892_800))
    v.on_bar("BTC/USDT", 1_710_892_800, 60_000.0, 60_000.0, 60_000.0, 60_000.0, 0.0)
    v.close()

    # Act: the desk carries on
    summary = run_desk(load_desk_config(write_config(venue=persist, risk=risk)), tmp_path / "h")

    # Assert: both deployments trade BTC/USDT: HALTED, with the evidence; the desk stops opening positions
    with Ledger.for_home(tmp_path / "h") as ledger:
        halts = [e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}) if e.payload["reason"] ==
                 "reconciliation"]
        assert {e.deployment_id for e in halts} == {d.id for d in summary.deployments}
        assert halts[0].payload["evidence"]["pair"] == "BTC/USDT"
        assert halts[0].payload["evidence"]["venue"] != halts[0].payload["evidence"]["ledger"]
        after = [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.seq > halts[-1].seq]
        assert after == [], "a deployment whose position cannot be squared is not traded"
        alerts = [e.payload["code"] for e in ledger.events({EventKind.ALERT_RAISED})]
        assert "position_mismatch" in alerts
        assert "cash_mismatch" in alerts
        assert ledger.state.trading_state.value == "REDUCING"
        assert ledger.state.cash() == cash
