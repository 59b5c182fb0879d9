"""Stops and limits through the order manager on the replay loop with the paper venue: a strategy's stoploss rests
at the venue (``order_types.stoploss_on_exchange``) from the bar after its entry filled, fills inside the bar that
trades through it at its price, follows a trailing stop, is cancelled before any other exit and on pause or kill;
exits asked as limits rest at the backtest's price and go to market after their timeout."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from execdesk.api import actions
from execdesk.desk.assembly import build_market
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import OrderStatus
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES, small_desk
from tests.kit import example_with, run_config_to

NOW = 1_900_000_000
STOP, LIMIT = "STOP_MARKET", "LIMIT"


def _config(tmp_path: Path, **overrides: Any) -> Path:
    """The small desk: STR-001 (stop 5%, no trailing) and STR-004 (trailing, exits as limits), both stops resting."""
    strategies = [
        {"bundle": str(example_with(tmp_path, "trend_ema_cross.yaml", order_types={"stoploss_on_exchange": True})),
         "allocation": 0.5},
        {"bundle": str(example_with(tmp_path, "breakout_4h.yaml",
                                    order_types={"stoploss_on_exchange": True, "exit": "limit"})), "allocation": 0.3},
    ]
    path = tmp_path / "resting-desk.yaml"
    path.write_text(yaml.safe_dump(small_desk(tmp_path, strategies=strategies, **overrides)))
    return path


@pytest.fixture(scope="module")
def resting_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DeskState, dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("resting")
    config = _config(tmp_path)
    actions.run_config(config, tmp_path / "h", report=False)
    with Ledger.for_home(tmp_path / "h") as ledger:
        state = ledger.state
        submitted = {e.payload["client_order_id"]: e.payload for e in ledger.events({EventKind.ORDER_SUBMITTED})}
        filled = {e.payload["client_order_id"]: e.payload for e in ledger.events({EventKind.ORDER_FILLED})}
    return config, state, {"submitted": submitted, "filled": filled}


def _positions_over_time(state: DeskState) -> dict[tuple[str, str], list[Decimal]]:
    held: dict[tuple[str, str], list[Decimal]] = {}
    for fill in sorted(state.fills.values(), key=lambda f: (f.time, f.fill_id)):
        order = state.orders[fill.client_order_id]
        run = held.setdefault((order.deployment_id, order.pair), [Decimal(0)])
        run.append(run[-1] + (fill.qty if order.side == "BUY" else -fill.qty))
    return held


def test_desk_when_a_stop_rests_then_the_venue_fills_it_inside_the_bar_that_reaches_it_at_its_price(
        resting_run: tuple[Path, DeskState, dict[str, Any]]) -> None:
    config, state, events = resting_run
    desk = load_desk_config(config)
    market = build_market(desk, [load_bundle(BUNDLES / "trend_ema_cross.yaml")])
    stops = [o for o in state.orders.values() if o.type == STOP]
    assert stops
    assert all(o.stop_price is not None and o.reason == "stoploss" for o in stops)
    fills = [f for f in state.fills.values() if state.orders[f.client_order_id].type == STOP]
    assert len(fills) >= 3, "stops filled at the venue"
    intrabar = 0
    for fill in fills:
        order = state.orders[fill.client_order_id]
        assert order.stop_price is not None
        track = market.pairs[order.pair]
        g = int(np.searchsorted(market.time, fill.time))
        assert market.time[g] == fill.time
        assert track.low[g] <= float(order.stop_price), "the bar reached the stop"
        assert fill.price <= order.stop_price, "a sell stop never fills better than its stop"
        if track.open[g] > float(order.stop_price):  # opened above: filled at the stop, less slippage and impact
            assert fill.price >= order.stop_price * Decimal("0.997")
            intrabar += 1
        # the execution quality: against the price the backtest assumed, the stop's
        assert "backtest_slippage_bps" in events["filled"][fill.client_order_id]
    assert intrabar >= 1, "at least one stop filled inside its bar, at its price"


def test_desk_when_a_stop_rests_then_it_is_placed_for_the_whole_position_at_the_strategys_stop(
        resting_run: tuple[Path, DeskState, dict[str, Any]]) -> None:
    _config_path, state, _events = resting_run
    for order in state.orders.values():
        if order.type != STOP or order.deployment_id != "STR-001-v1":
            continue
        entries = [f for f in state.fills.values() if f.time <= order.created_at
                   and state.orders[f.client_order_id].reason == "entry_signal"
                   and state.orders[f.client_order_id].deployment_id == order.deployment_id
                   and state.orders[f.client_order_id].pair == order.pair]
        entry = max(entries, key=lambda f: f.time)
        assert order.stop_price is not None
        assert float(order.stop_price) == pytest.approx(float(entry.price) * 0.95, rel=1e-9)  # stoploss -0.05
        assert order.qty == entry.qty  # the whole position
        assert order.backtest_price == order.stop_price


def test_desk_when_a_stop_rests_then_each_other_exit_cancels_it_first_and_no_position_is_ever_oversold(
        resting_run: tuple[Path, DeskState, dict[str, Any]]) -> None:
    _config_path, state, _events = resting_run
    for key, run in _positions_over_time(state).items():
        assert min(run) >= 0, f"{key} never went short (a stop and an exit never both filled)"
    reasons = [o.status_reason for o in state.orders.values() if o.type == STOP and o.status is OrderStatus.CANCELED]
    assert any(r == "replaced by the exit_signal exit" for r in reasons)
    assert any(r == "replaced by the roi exit" for r in reasons)
    open_stops = [o for o in state.orders.values() if o.type == STOP and o.status.is_open]
    assert len(open_stops) <= len(state.open_positions())  # at most one per position
    for o in open_stops:
        pos = state.position(o.deployment_id, o.pair)
        assert pos is not None
        assert abs(pos.qty) == o.qty


def test_desk_when_a_trailing_stop_moves_then_the_resting_stop_moves_up_with_it(
        resting_run: tuple[Path, DeskState, dict[str, Any]]) -> None:
    _config_path, state, _events = resting_run
    trail = sorted((o for o in state.orders.values() if o.type == STOP and o.deployment_id == "STR-004-v1"),
                   key=lambda o: o.created_at)
    moved = [o for o in trail if (o.status_reason or "").startswith("moved to ")]
    assert moved, "the trailing strategy's stop was moved"
    for before, after in itertools.pairwise(trail):
        if (before.status_reason or "").startswith("moved to ") and before.pair == after.pair:
            assert before.stop_price is not None
            assert after.stop_price is not None
            assert after.stop_price > before.stop_price, "a long's trailing stop only moves up"
            assert before.status_reason == f"moved to {after.stop_price} for {after.qty}"


def test_desk_when_exits_are_limits_then_they_rest_at_the_price_that_decided_them(
        resting_run: tuple[Path, DeskState, dict[str, Any]]) -> None:
    _config_path, state, events = resting_run
    limits = [o for o in state.orders.values() if o.type == LIMIT]
    assert limits
    assert {o.deployment_id for o in limits} == {"STR-004-v1"}
    for order in limits:
        assert order.reason in ("exit_signal", "roi")
        if order.reason == "exit_signal":
            assert order.price == order.ref_price, "an exit signal's limit: the close that decided it"
        assert events["submitted"][order.client_order_id]["type"] == LIMIT
    assert all(o.type != LIMIT for o in state.orders.values() if o.deployment_id == "STR-001-v1")


def test_desk_when_a_limit_exit_is_not_filled_in_time_then_it_is_cancelled_and_sent_at_market(
        tmp_path: Path) -> None:
    limits = example_with(tmp_path, "trend_ema_cross.yaml", order_types={"exit": "limit"})
    strategies = [{"bundle": str(limits), "allocation": 0.5}]
    config = tmp_path / "limits.yaml"
    config.write_text(yaml.safe_dump(small_desk(tmp_path, strategies=strategies)))
    actions.run_config(config, tmp_path / "h", report=False)
    with Ledger.for_home(tmp_path / "h") as ledger:
        state = ledger.state
    timed_out = [o for o in state.orders.values() if o.type == LIMIT and o.status is OrderStatus.CANCELED]
    assert timed_out, "a limit exit went unfilled for a candle"
    for order in timed_out:
        assert order.status_reason == "limit exit unfilled after its timeout: sent at market"
        market = [o for o in state.orders.values() if o.type == "MARKET" and o.reason == order.reason
                  and o.pair == order.pair and o.created_at == order.updated_at]
        assert len(market) == 1
        assert market[0].status is OrderStatus.FILLED
        assert market[0].backtest_price == order.backtest_price  # still measured against the backtest's price
    roi = [o for o in state.orders.values() if o.type == LIMIT and o.reason == "roi"]
    assert roi
    assert all(o.price == o.backtest_price for o in roi), "an ROI exit's limit: the backtest's ROI price"


def _stopped_with_a_resting_stop(tmp_path: Path, after_day: int = 3) -> tuple[Path, Path, str, list[str]]:
    """A desk stopped at the first day's end after ``after_day`` at which STR-001-v1 has a stop resting."""
    for day in range(after_day + 1, 30):
        end = f"2024-03-{day:02d}T00:00:00Z"
        home = tmp_path / f"home-{day}"
        config = _config(tmp_path, market__end=end)
        actions.run_config(config, home, report=False)
        with Ledger.for_home(home) as ledger:
            resting = [o.client_order_id for o in ledger.state.orders.values()
                       if o.type == STOP and o.status.is_open and o.deployment_id == "STR-001-v1"]
        if resting:
            return config, home, end, resting
    raise AssertionError("STR-001-v1 never had a stop resting at a day's end in March")


@pytest.mark.parametrize("how", ["pause", "kill"])
def test_desk_when_paused_or_killed_then_the_resting_stop_is_cancelled_at_the_runs_first_bar(
        tmp_path: Path, how: str) -> None:
    """Paused or killed while the desk was stopped: its next run cancels the stop at its first bar (unless the
    strategy's own exit replaced it there first: then the next day with a stop resting is taken)."""
    day, why = 3, "the deployment is paused (paused)" if how == "pause" else "circuit_breaker"
    while True:
        config, home, end, resting = _stopped_with_a_resting_stop(tmp_path, day)
        if how == "pause":
            actions.lifecycle(home, "pause", "STR-001-v1", "looks off", NOW)
        else:
            actions.kill(home, "drill", NOW)
        day = int(end[8:10])
        run_config_to(config, home, f"2024-03-{day + 2:02d}T00:00:00Z")
        with Ledger.for_home(home) as ledger:
            state = ledger.state
        first_close = int(np.datetime64(end[:-1], "s").astype(np.int64)) + 3600
        for coid in resting:
            order = state.orders[coid]
            assert order.status is OrderStatus.CANCELED, coid
            assert order.updated_at == first_close, coid
        if {state.orders[c].status_reason for c in resting} == {why}:
            break
        assert how == "pause", [state.orders[c].status_reason for c in resting]
        assert day < 27, "no day of March left with a stop resting"
    assert not [o for o in state.orders.values() if o.type == STOP and o.deployment_id == "STR-001-v1"
                and o.created_at >= first_close], "no stop placed for a paused or killed deployment"


@pytest.mark.slow
def test_desk_when_killed_with_a_stop_resting_then_the_restart_reconciles_it_once(tmp_path: Path) -> None:
    """``kill -9`` just after a stop reached the ledger; the desk (its paper venue keeping its own book) runs again:
    the venue's stop is the ledger's, sent once, and the books agree (the crash drills' check)."""
    from tests.execution.test_crash import _check_books

    config = _config(tmp_path, venue={"kind": "paper", "fee_bps": 10, "slippage_bps": 5, "persist": True})
    cmd = [sys.executable, "-m", "execdesk.cli", "run", str(config), "--home", str(tmp_path / "h"), "--json"]
    ledger_file = tmp_path / "h" / "ledger.sqlite"
    killed = None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if ledger_file.exists() and _stop_recorded(ledger_file):
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
    finally:
        proc.wait(timeout=60)
    assert killed, "the desk was killed with a stop in its ledger, before its run ended"
    with Ledger.for_home(tmp_path / "h") as ledger:
        assert not ledger.state.completed, "killed mid-run"
        stops_at_kill = {o.client_order_id for o in ledger.state.orders.values() if o.type == STOP}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    _check_books(tmp_path / "h")  # every venue order is the ledger's, same status; fills once; positions, cash
    with Ledger.for_home(tmp_path / "h") as ledger:
        state = ledger.state
        reconciled = [e.payload for e in ledger.events({EventKind.RECONCILED})]
        submitted = [e.payload["client_order_id"] for e in ledger.events({EventKind.ORDER_SUBMITTED})]
    assert len(reconciled) == 2, "reconciled once at each start"
    assert len(submitted) == len(set(submitted)), "no order recorded twice"
    for coid in stops_at_kill:
        order = state.orders[coid]
        assert order.status in (OrderStatus.FILLED, OrderStatus.CANCELED) or order.status.is_open
        assert sum(f.qty for f in state.fills.values() if f.client_order_id == coid) <= order.qty
    for key, run in _positions_over_time(state).items():
        assert min(run) >= 0, key


def _stop_recorded(ledger_file: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{ledger_file}?mode=ro", uri=True, timeout=0.1) as db:
            row = db.execute("SELECT 1 FROM events WHERE kind = 'order.submitted' AND payload LIKE "
                             "'%STOP_MARKET%' LIMIT 1").fetchone()
    except sqlite3.Error:
        return False
    return row is not None
