"""Execution quality from the ledger: hand-computed figures for one deployment's orders and fills."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from execdesk.domain.events import Event, EventKind
from execdesk.monitor.quality import execution_quality
from execdesk.store.ledger import Ledger
from tests.kit import desk_ledger

D = Decimal
DEP = "dep-1"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = desk_ledger(tmp_path, DEP, ["BTC/USDT"], D(10000))
    yield led
    led.close(flush=False)


def order(ledger: Ledger, coid: str, side: str, qty: str, t: int, reason: str = "entry_signal",
          backtest: str | None = None) -> None:
    ledger.record(Event(t, EventKind.ORDER_SUBMITTED, {
        "client_order_id": coid, "deployment_id": DEP, "pair": "BTC/USDT", "side": side, "direction": "LONG",
        "type": "MARKET", "qty": D(qty), "reason": reason, "signal_time": t, "ref_price": D(100),
        **({"backtest_price": D(backtest)} if backtest else {})}, DEP))


def fill(ledger: Ledger, coid: str, fid: str, qty: str, price: str, fee: str, t: int, slip: str, latency: str,
         bt: str | None = None, liquidity: str = "taker") -> None:
    ledger.record(Event(t, EventKind.ORDER_FILLED, {
        "client_order_id": coid, "fill_id": fid, "qty": D(qty), "price": D(price), "fee": D(fee),
        "slippage_bps": slip, "latency_s": latency, "liquidity": liquidity,
        **({"backtest_slippage_bps": bt} if bt else {})}, DEP))


def test_quality_when_orders_filled_partly_and_rejected_then_hand_computed_figures(ledger: Ledger) -> None:
    # Arrange: o1 buys 2, filled at 100.05 (5 bps worse than 100) after 3600 s, fee 0.2;
    # o2 sells 2 (an exit the backtest filled at 101), filled 1 at 100.90 — against the desk's 100 that is
    # -90 bps (better), against the backtest's 101 it is 9.90 bps worse — then cancelled; o3 rejected.
    order(ledger, "o1", "BUY", "2", 0)
    fill(ledger, "o1", "f1", "2", "100.05", "0.2", 3600, "5.00", "3600")
    order(ledger, "o2", "SELL", "2", 7200, reason="roi", backtest="101")
    fill(ledger, "o2", "f2", "1", "100.90", "0.1", 7300, "-90.00", "100", bt="9.90", liquidity="maker")
    ledger.record(Event(7400, EventKind.ORDER_CANCELED, {"client_order_id": "o2", "reason": "test"}, DEP))
    order(ledger, "o3", "BUY", "1", 9000)
    ledger.record(Event(9000, EventKind.ORDER_REJECTED, {"client_order_id": "o3", "reason": "min_notional"}, DEP))
    ledger.flush()

    # Act
    q = execution_quality(ledger)[DEP]

    # Assert: filled 2 + 1 of ordered 2 + 2 + 1 = 3/5 = 0.6; 1 of 3 rejected;
    # slippage mean (5 - 90) / 2 = -42.5, p95 of two = the larger, 5; vs backtest 9.9; fees 0.3; latency 1850
    assert q == {"orders": 3, "fills": 2, "maker_fills": 1, "fill_ratio": 0.6, "reject_rate": 0.333333,
                 "slippage_bps_mean": -42.5, "slippage_bps_p95": 5.0, "backtest_slippage_bps_mean": 9.9,
                 "fees": 0.3, "latency_s_mean": 1850.0}


def test_quality_when_nothing_traded_then_counts_zero_and_ratios_none(ledger: Ledger) -> None:
    ledger.flush()
    assert execution_quality(ledger)[DEP] == {
        "orders": 0, "fills": 0, "maker_fills": 0, "fill_ratio": None, "reject_rate": None,
        "slippage_bps_mean": None, "slippage_bps_p95": None, "backtest_slippage_bps_mean": None, "fees": 0.0,
        "latency_s_mean": None}
