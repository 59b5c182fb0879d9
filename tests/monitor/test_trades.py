"""Round trips rebuilt from fills: hand-computed trades, and agreement with the state fold."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal as D  # noqa: N817 - short in hand-computed fixtures
from pathlib import Path

import pytest

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.state import FillRecord
from execdesk.monitor.trades import round_trips
from execdesk.store.ledger import Ledger


def fill(n: int, side: str, qty: str, price: str, fee: str = "0", time: int = 0, pair: str = "BTC/USDT") -> FillRecord:
    return FillRecord(f"f{n}", f"o{n}", "dep", pair, side, D(qty), D(price), D(fee), time)


def test_round_trips_when_bought_added_and_sold_in_two_parts_then_one_trade_with_net_profit() -> None:
    # Arrange: buy 1 @100 (fee 0.1), buy 1 @110 (fee 0.11), sell 1.5 @120 (fee 0.18), sell 0.5 @90 (fee 0.045)
    fills = [fill(1, "BUY", "1", "100", "0.1", 0), fill(2, "BUY", "1", "110", "0.11", 3600),
             fill(3, "SELL", "1.5", "120", "0.18", 7200), fill(4, "SELL", "0.5", "90", "0.045", 10800)]
    # Act
    trades = round_trips(fills)
    # Assert: avg 105; realised 1.5 x 15 + 0.5 x (-15) = 15; fees 0.435; stake 210
    assert len(trades) == 1
    t = trades.iloc[0]
    assert t.profit_abs == pytest.approx(15 - 0.435)
    assert t.profit_ratio == pytest.approx((15 - 0.435) / 210)
    assert t.open_rate == pytest.approx(105)
    assert t.close_rate == pytest.approx((180 + 45) / 2)
    assert t.trade_duration == 180
    assert not t.is_short


def test_round_trips_when_position_flips_then_two_trades_and_the_fee_is_split() -> None:
    # long 1 @100, then sell 3 @110 (fee 0.3): closes the long (+10, fee 0.1) and opens a short of 2;
    # buy 2 @100 (fee 0.2) closes the short (+20)
    fills = [fill(1, "BUY", "1", "100", "0", 0), fill(2, "SELL", "3", "110", "0.3", 60),
             fill(3, "BUY", "2", "100", "0.2", 120)]
    trades = round_trips(fills)
    assert list(trades.is_short) == [False, True]
    assert trades.profit_abs.tolist() == pytest.approx([10 - 0.1, 20 - 0.2 - 0.2])


def test_round_trips_when_position_still_open_then_left_out() -> None:
    assert round_trips([fill(1, "BUY", "1", "100")]).empty


def test_round_trips_when_a_desk_ran_then_they_agree_with_the_state_fold(write_config: Callable[..., Path],
                                                                        tmp_path: Path) -> None:
    run_desk(load_desk_config(write_config()), tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        trades = round_trips(ledger.state.fills.values())
        for dep in ledger.state.deployments.values():
            mine = trades[trades.deployment_id == dep.id]
            assert len(mine) == dep.trades
            assert int((mine.profit_abs > 0).sum()) == dep.wins
            # closed trades = all realised P&L net of fees, less the trip still open (its fees so far)
            open_trip = sum((p.trip_pnl for p in ledger.state.open_positions() if p.deployment_id == dep.id), D(0))
            assert mine.profit_abs.sum() == pytest.approx(float(dep.realized_pnl - dep.fees - open_trip), abs=1e-6)
