"""DeskLoop.submit_exits: the lead's closes as one batch record exactly what DeskLoop.submit records taken one by one
(the resting stops cancelled first, the same verdicts, the same orders), on a small replay desk holding long and short
positions, with and without stops resting at the venue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execdesk.backtest.engine import BacktestConfig
from execdesk.backtest.lane import Lane
from execdesk.clock import ReplayClock
from execdesk.data.feed import MarketView
from execdesk.data.generator import PairProfile, generate_market
from execdesk.desk.loop import DeskLoop
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import Direction, IntentReason, OrderIntent
from execdesk.risk.config import DrawdownLadder, RiskConfig, StagingConfig
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle, validate_bundle
from execdesk.venues.paper import PaperVenue, PaperVenueConfig
from tests.conftest import BUNDLES

START = datetime(2024, 1, 1, tzinfo=UTC)
PAIRS = ["A/USDT", "B/USDT"]
CAPITAL = Decimal(1_000_000)
FAR = DrawdownLadder(alert=None, reduce=0.9, trim=None, kill=0.95)


def _desk(home: Path, protected: bool) -> DeskLoop:
    """Three deployments (the last one short) entering on both pairs at the first bar, never exiting on their own;
    ``protected``: their stops rest at the venue. Run over four bars: six positions open at the end."""
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e9) for p in PAIRS}, "1h", START,
                             START + timedelta(hours=4), seed=3)
    market = MarketView(frames, "1h")
    template = load_bundle(BUNDLES / "trend_ema_cross.yaml").to_canonical_dict()
    ledger = Ledger.for_home(home)
    t = int(market.time[0])
    ledger.record(Event(t, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                        "capital": CAPITAL}))
    lanes = []
    for i, side in enumerate(["long", "long", "short"]):
        spec: dict[str, Any] = dict(template)
        spec.update(pairs=PAIRS, timeframe="1h", indicators={}, entry={side: "close > 0"}, exit={}, stoploss=-0.5,
                    minimal_roi={})
        if protected:
            spec["order_types"] = {"stoploss_on_exchange": True}
        bundle = validate_bundle(spec, f"exits test bundle {i}")
        dep = f"{bundle.id}-{i}"
        ledger.record(Event(t, EventKind.DEPLOYMENT_CREATED, {
            "deployment_id": dep, "strategy_id": bundle.id, "name": bundle.name, "version": bundle.version,
            "bundle_hash": bundle.bundle_hash, "timeframe": "1h", "pairs": PAIRS, "allocation": Decimal(1) / 3,
            "capital": CAPITAL / 3}, dep))
        lanes += [Lane(dep, pair, bundle, market.lane_candles(pair, "1h"), config=BacktestConfig(fee=0.001))
                  for pair in PAIRS]
    ledger.flush()
    venue = PaperVenue("USDT", ledger.state.cash(), PaperVenueConfig(), pairs=market.pairs,
                       bar_seconds=market.tf_seconds)
    risk = RiskConfig(risk_per_trade=0.2, max_position_fraction=0.1, max_open_positions=100,
                      staging=StagingConfig(enabled=False), portfolio_drawdown=FAR, deployment_drawdown=FAR)
    loop = DeskLoop(ledger, market, lanes, venue, risk, ReplayClock(), end_reports=False)
    loop.run()
    return loop


def _new_events(ledger: Ledger, after: int) -> list[tuple[Any, ...]]:
    ledger.flush()
    return [(e.time, e.kind, e.deployment_id, e.payload) for e in ledger.events() if e.seq > after]


@pytest.mark.parametrize("protected", [False, True])
def test_submit_exits_when_closing_every_position_then_the_same_events_as_submit_one_by_one(
        tmp_path: Path, protected: bool) -> None:
    # Arrange: two desks alike, six positions open on each (stops resting when protected)
    batch, single = _desk(tmp_path / "batch", protected), _desk(tmp_path / "single", protected)
    g = batch.market.n - 1
    intents = batch.lead.exits(g, None, None, IntentReason.CIRCUIT_BREAKER)
    assert intents == single.lead.exits(g, None, None, IntentReason.CIRCUIT_BREAKER)
    assert len(intents) == 6
    assert {i.side.value for i in intents} == {"SELL", "BUY"}
    stops = [o for o in batch.ledger.state.open_orders() if o.type == "STOP_MARKET"]
    assert len(stops) == (6 if protected else 0)
    before = batch.ledger.state.last_seq
    assert single.ledger.state.last_seq == before

    # Act
    approved = batch.submit_exits(intents, g)
    for intent in intents:
        single.submit(intent, g)

    # Assert: the same events, in the same order; every exit approved, every stop cancelled; the risk books agree
    events = _new_events(batch.ledger, before)
    assert events == _new_events(single.ledger, before)
    kinds = [e[1] for e in events]
    assert approved == 6 == kinds.count(EventKind.ORDER_SUBMITTED)
    assert kinds.count(EventKind.ORDER_CANCELED) == len(stops)
    if protected:  # each stop cancelled right before its position's exit
        assert kinds == [EventKind.ORDER_CANCELED, EventKind.ORDER_SUBMITTED] * 6
    assert batch.stats.orders - single.stats.orders == 0
    assert batch.pretrade.view().pos_qty == single.pretrade.view().pos_qty
    assert not any(batch.ledger.state.closable(i.deployment_id, i.pair) for i in intents)


def test_submit_exits_when_an_intent_is_an_entry_then_refused(tmp_path: Path) -> None:
    loop = _desk(tmp_path / "h", protected=False)
    g = loop.market.n - 1
    entry = OrderIntent(loop.lanes[0].deployment_id, PAIRS[0], Direction.LONG.entry_side, Direction.LONG,
                        IntentReason.ENTRY_SIGNAL, loop.market.close_time(g), Decimal(100))
    with pytest.raises(ValueError, match="exits only"):
        loop.submit_exits([entry], g)
