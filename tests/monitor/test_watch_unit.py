"""The monitor's Watch on plain inputs (execdesk.monitor.watch): a small ledger holding one deployment created
with its validation report, a hand-made market, and the findings each question answers with. No desk runs.

Market: BTC/USDT, 1h candles from 2024-01-01 00:00 UTC, close 100 throughout, volume 1000.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from execdesk.data.feed import MarketView
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO, Snapshot
from execdesk.domain.state import FillRecord
from execdesk.domain.types import AlertLevel
from execdesk.monitor.alerts import Alert
from execdesk.monitor.watch import Cleared, Finding, VerdictChanged, Watch
from execdesk.store.ledger import Ledger
from execdesk.strategy.bundle import ValidationReport
from execdesk.venues.paper import PaperVenue, PaperVenueConfig

DEP = "d1"
BTC = "BTC/USDT"
D = Decimal
HOUR = 3_600
T0 = int(pd.Timestamp("2024-01-01", tz="UTC").timestamp())
#: the backtest that approved d1: 40 trades, half of them won, held 5 h on average
VALIDATION = ValidationReport.model_validate({
    "period": {"start": "2023-01-01", "end": "2023-12-31"}, "trades": 40, "sharpe": 1.0, "max_drawdown": 0.1,
    "win_rate": 0.5, "profit_factor": 1.2, "avg_trade_duration": "5h", "slippage_budget_bps": 5.0,
}).model_dump(mode="json")


def market(bars: int = 48) -> MarketView:
    dates = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC")
    close = pd.Series([100.0] * bars)
    return MarketView({BTC: pd.DataFrame({"date": dates, "open": close, "high": close, "low": close,
                                          "close": close, "volume": 1000.0})}, "1h")


def deployment(dep: str, validation: dict[str, Any] | None) -> Event:
    payload: dict[str, Any] = {
        "deployment_id": dep, "strategy_id": "S", "name": "s", "version": 1, "bundle_hash": "0", "timeframe": "1h",
        "pairs": [BTC], "allocation": D("0.5"), "capital": D(5_000)}
    if validation is not None:
        payload["validation"] = validation
    return Event(2, EventKind.DEPLOYMENT_CREATED, payload, dep)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A desk of 10,000 USDT: d1 created with its validation report, d0 without one."""
    led = Ledger.for_home(tmp_path)
    led.record(Event(1, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                    "capital": D(10_000)}))
    led.record(deployment(DEP, VALIDATION))
    led.record(deployment("d0", None))
    led.flush()
    yield led
    led.close()


@pytest.fixture
def watch(ledger: Ledger) -> Watch:
    return Watch(ledger, market(), "paper")


# ---------------------------------------------------------------- what it watches
def test_watch_when_one_deployment_has_no_validation_report_then_only_the_other_is_compared(watch: Watch) -> None:
    # Act / Assert
    assert watch.ids == [DEP]
    assert watch.baselines[0].trades == 40


# ---------------------------------------------------------------- venue errors
def test_after_bar_when_venue_calls_failed_then_one_critical_executor_alert(watch: Watch) -> None:
    # Arrange
    t = T0 + 5 * HOUR

    # Act
    findings = watch.after_bar(t, venue_errors=2)

    # Assert
    assert len(findings) == 1
    alert = findings[0]
    assert isinstance(alert, Alert)
    assert (alert.time, alert.level, alert.code, alert.source, alert.scope) == (
        t, AlertLevel.CRITICAL, "venue_errors", "executor", PORTFOLIO)
    assert alert.evidence == {"failed_calls": 2, "total": 2, "venue": "paper"}


def test_after_bar_when_the_error_count_is_unchanged_then_nothing(watch: Watch) -> None:
    # Arrange
    watch.after_bar(T0 + 5 * HOUR, venue_errors=2)

    # Act
    findings = watch.after_bar(T0 + 6 * HOUR, venue_errors=2)

    # Assert
    assert findings == []


def test_after_bar_when_more_calls_failed_then_an_alert_for_the_new_ones_only(watch: Watch) -> None:
    # Arrange
    watch.after_bar(T0 + 5 * HOUR, venue_errors=2)

    # Act
    findings = watch.after_bar(T0 + 6 * HOUR, venue_errors=5)

    # Assert
    assert [(f.code, f.evidence["failed_calls"], f.evidence["total"]) for f in findings if isinstance(f, Alert)] == [
        ("venue_errors", 3, 5)]
    assert len(findings) == 1


def test_after_bar_when_no_venue_call_failed_then_nothing(watch: Watch) -> None:
    # Act / Assert
    assert watch.after_bar(T0 + 5 * HOUR, venue_errors=0) == []


# ---------------------------------------------------------------- stale data
def test_check_stale_when_the_next_candle_is_not_due_yet_then_stale_data_cleared(watch: Watch) -> None:
    # Arrange: the bar opened 10:00; the 11:00 bar closes at 12:00; 60 s of grace
    last_bar_open = T0 + 10 * HOUR

    # Act
    findings = watch.check_stale(last_bar_open, last_bar_open + 2 * HOUR + 60, HOUR)

    # Assert
    assert findings == [Cleared("stale_data", PORTFOLIO)]


def test_check_stale_when_the_next_candle_is_overdue_then_a_critical_stale_data_alert(watch: Watch) -> None:
    # Arrange: one second past the grace
    last_bar_open = T0 + 10 * HOUR
    now = last_bar_open + 2 * HOUR + 61

    # Act
    findings = watch.check_stale(last_bar_open, now, HOUR)

    # Assert: overdue since the 11:00 bar's close (12:00): 61 s
    assert len(findings) == 1
    alert = findings[0]
    assert isinstance(alert, Alert)
    assert (alert.time, alert.level, alert.code, alert.scope, alert.source) == (
        now, AlertLevel.CRITICAL, "stale_data", PORTFOLIO, "monitor")
    assert alert.evidence == {"last_bar_open": last_bar_open, "now": now, "overdue_s": 61, "timeframe_s": HOUR}
    assert "2024-01-01 10:00" in alert.message


def test_check_stale_when_fresh_again_after_an_alert_then_cleared(watch: Watch) -> None:
    # Arrange
    last_bar_open = T0 + 10 * HOUR
    watch.check_stale(last_bar_open, last_bar_open + 3 * HOUR, HOUR)

    # Act: the missing candle arrived
    findings = watch.check_stale(last_bar_open + HOUR, last_bar_open + 3 * HOUR, HOUR)

    # Assert
    assert findings == [Cleared("stale_data", PORTFOLIO)]


# ---------------------------------------------------------------- spreads
def ranging_market(bars: int = 240, wide_at: int | None = 230) -> MarketView:
    """BTC/USDT opening and closing at 100, ranging 1.0 and 1.2 in turn; bar ``wide_at`` ranges 6 (a shock)."""
    dates = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC")
    half = pd.Series([0.5, 0.6] * (bars // 2))
    if wide_at is not None:
        half[wide_at] = 3.0
    return MarketView({BTC: pd.DataFrame({"date": dates, "open": 100.0, "high": 100.0 + half, "low": 100.0 - half,
                                          "close": 100.0, "volume": 1000.0})}, "1h")


def spread_alerts(findings: list[Finding]) -> list[Alert]:
    return [f for f in findings if isinstance(f, Alert) and f.code == "spread_widening"]


def test_on_snapshot_when_the_venues_modelled_spread_widens_in_a_bar_then_one_info_alert_that_is_news_each_time(
        ledger: Ledger) -> None:
    # Arrange: the paper venue's model of its quote (5 bps slippage: about 10 bps at this pair's usual range)
    model = PaperVenue("USDT", D(10_000), PaperVenueConfig(slippage_bps=5.0)).quoted_spreads
    watch = Watch(ledger, ranging_market(), "paper", spreads=model)
    watch.start_at(0)

    # Act: the snapshot after the wide bar, then the next one
    findings = watch.on_snapshot(Snapshot(233, 10_000.0, 0.0, {}))
    later = watch.on_snapshot(Snapshot(239, 10_000.0, 0.0, {}))

    # Assert: one INFO alert naming the pair, the bar and the numbers; cleared at once (an event, not a condition)
    (alert,) = spread_alerts(findings)
    assert (alert.level, alert.source, alert.scope, alert.time) == (AlertLevel.INFO, "monitor", PORTFOLIO,
                                                                    T0 + 234 * HOUR)
    assert alert.evidence["pair"] == BTC
    assert alert.evidence["bar_time"] == T0 + 230 * HOUR
    assert alert.evidence["source"] == "venue_model"
    assert alert.evidence["spread_bps"] == pytest.approx(2 * 5.0 * 0.06 / 0.011, abs=1e-3)  # range 6% / median 1.1%
    assert alert.evidence["typical_bps"] == pytest.approx(10.0, abs=1.0)
    assert alert.evidence["z"] > 3
    assert "BTC/USDT: quoted spread 54.5 bps in the bar of 2024-01-10 14:00" in alert.message
    assert findings[findings.index(alert) + 1] == Cleared("spread_widening", PORTFOLIO)
    assert spread_alerts(later) == []  # the bars after it were looked at once, and are ordinary


def test_on_snapshot_when_the_venue_has_no_spread_model_then_no_spread_alert(ledger: Ledger) -> None:
    # Arrange: a venue with a book of its own (an exchange): its spreads are read, not modelled
    watch = Watch(ledger, ranging_market(), "ccxt:binance")
    watch.start_at(0)

    # Act / Assert
    assert spread_alerts(watch.on_snapshot(Snapshot(233, 10_000.0, 0.0, {}))) == []


def quoted(t: int, spread_bps: float, bid: str = "59999.99", ask: str = "60000.01") -> Event:
    return Event(t, EventKind.QUOTED, {"bar_time": t - HOUR,
                                       "quotes": {BTC: {"bid": bid, "ask": ask, "spread_bps": spread_bps}}})


def test_on_quotes_when_the_exchanges_spread_widens_then_an_info_alert_against_the_readings_before_it(
        ledger: Ledger) -> None:
    # Arrange: 30 readings of the exchange's top of book recorded by the desk's earlier runs (about 1.7 bps)
    for i in range(30):
        ledger.record(quoted(T0 + (i + 1) * HOUR, 1.6 + 0.1 * (i % 3)))
    ledger.flush()
    watch = Watch(ledger, market(), "ccxt:binance")  # (a live desk's watch is rebuilt each bar, from the ledger)
    usual, wide = quoted(T0 + 31 * HOUR, 1.7), quoted(T0 + 32 * HOUR, 9.0, "59973.00", "60027.00")

    # Act
    calm = watch.on_quotes(usual)
    widened = watch.on_quotes(wide)

    # Assert
    assert calm == []
    (alert,) = spread_alerts(widened)
    assert (alert.level, alert.time, alert.scope) == (AlertLevel.INFO, T0 + 32 * HOUR, PORTFOLIO)
    assert alert.evidence["source"] == "top_of_book"
    assert (alert.evidence["bid"], alert.evidence["ask"]) == ("59973.00", "60027.00")
    assert alert.evidence["spread_bps"] == 9.0
    assert alert.evidence["typical_bps"] == pytest.approx(1.7)
    assert widened[-1] == Cleared("spread_widening", PORTFOLIO)


def test_on_quotes_when_fewer_than_24_readings_before_it_then_no_judgement(ledger: Ledger) -> None:
    watch = Watch(ledger, market(), "ccxt:binance")
    for i in range(23):
        assert watch.on_quotes(quoted(T0 + (i + 1) * HOUR, 1.6 + 0.1 * (i % 3))) == []
    assert watch.on_quotes(quoted(T0 + 24 * HOUR, 50.0)) == []


# ---------------------------------------------------------------- drift (closed round trips)
def round_trip(ledger: Ledger, i: int, exit_price: str) -> tuple[int, list[FillRecord]]:
    """d1's i-th round trip: buy 1 BTC at 100, sell it 5 h later at ``exit_price``; (exit time, its two fills)."""
    opened = T0 + 2 * i * HOUR
    for coid, side, t, price in ((f"b{i}", "BUY", opened, "100"), (f"s{i}", "SELL", opened + 5 * HOUR, exit_price)):
        ledger.record(Event(t, EventKind.ORDER_SUBMITTED, {
            "client_order_id": coid, "deployment_id": DEP, "pair": BTC, "side": side, "direction": "LONG",
            "type": "MARKET", "qty": D(1), "reason": "entry_signal" if side == "BUY" else "exit_signal",
            "signal_time": t - 1, "ref_price": D(price)}, DEP))
        ledger.record(Event(t, EventKind.ORDER_FILLED, {
            "client_order_id": coid, "fill_id": f"{coid}-1", "qty": D(1), "price": D(price), "fee": D(0)}, DEP))
    return opened + 5 * HOUR, [ledger.state.fills[f"b{i}-1"], ledger.state.fills[f"s{i}-1"]]


def test_on_fills_when_the_twentieth_losing_trade_closes_then_win_rate_warns_and_verdict_review(
        ledger: Ledger, watch: Watch) -> None:
    # Arrange: 19 round trips lost 3% each (a backtest that won half its trades): below the rules' 20-trade minimum
    early: list[Finding] = []
    for i in range(19):
        early.extend(watch.on_fills(*round_trip(ledger, i, "97")))

    # Act
    findings = watch.on_fills(*round_trip(ledger, 19, "97"))

    # Assert: nothing judged on 19 trades but the losing streak; on the 20th, win rate 0 vs 0.5 warns, and the
    # verdict moves from continue to review (the monitor.drift event to record, for the lead)
    assert [(f.code, f.level) for f in early if isinstance(f, Alert)] == [("losing_streak", AlertLevel.WARNING)]
    assert not [f for f in early if isinstance(f, VerdictChanged)]
    alerts = [(f.code, f.level, f.scope) for f in findings if isinstance(f, Alert)]
    assert alerts == [("drift_win_rate", AlertLevel.WARNING, DEP)]
    [changed] = [f for f in findings if isinstance(f, VerdictChanged)]
    assert (changed.deployment_id, changed.verdict, changed.trades) == (DEP, "review", 20)
    assert changed.event.kind is EventKind.DRIFT_ASSESSED
    assert changed.event.payload["verdict"] == "review"
    assert [f["metric"] for f in changed.findings] == ["win_rate"]


def test_on_fills_when_the_verdict_holds_then_no_new_verdict_event(ledger: Ledger, watch: Watch) -> None:
    # Arrange: the verdict at review after 20 losing trades
    for i in range(20):
        watch.on_fills(*round_trip(ledger, i, "97"))

    # Act
    findings = watch.on_fills(*round_trip(ledger, 20, "97"))

    # Assert: a standing condition is not news
    assert findings == []
