"""The strategy-halt protocol end to end: the monitor flags drift, the lead reviews the verdict against its
policy, decides (adjust / pause / remove), acts, records its decision with the evidence, and sends
Validation a revalidation request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES


def _overrated(folder: Path) -> Path:
    """trend_ema_cross with a validation report far better than anything it does live: +3% a trade,
    every trade a winner, a tiny spread."""
    spec: dict[str, Any] = load_bundle(BUNDLES / "trend_ema_cross.yaml").to_canonical_dict()
    spec["validation"].update(returns=[0.03 + 0.001 * (i % 5) for i in range(60)], win_rate=1.0, trades=60,
                              sharpe=4.0, max_drawdown=0.01, profit_factor=10.0)
    path = folder / "overrated.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


STRATEGIES = [{"allocation": 0.5}, {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3}]
RISK = {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": {"enabled": False}}


def test_strategy_halt_when_live_trades_far_below_the_backtest_then_paused_with_a_revalidation_request(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: the default policy (a critical Page-Hinkley gives the verdict "pause" after 10 trades)
    strategies = [{**STRATEGIES[0], "bundle": str(_overrated(tmp_path))}, STRATEGIES[1]]
    home = tmp_path / "h"

    # Act
    run_desk(load_desk_config(write_config(strategies=strategies, risk=RISK)), home)

    # Assert: the lead paused it (no new positions), with the evidence, and asked Validation to revalidate
    with Ledger.for_home(home) as ledger:
        dep = "STR-001-v1"
        reviews = [e.payload for e in ledger.events({EventKind.STRATEGY_REVIEWED}, deployment_id=dep)]
        assert [(r["verdict"], r["decision"]) for r in reviews][-1] == ("pause", "pause")
        assert reviews[-1]["evidence"]["findings"][0]["metric"] == "page_hinkley"
        paused = next(e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id=dep)
                      if e.payload["reason"] == "drift_pause")
        entries = [e for e in ledger.events({EventKind.ORDER_SUBMITTED}, deployment_id=dep)
                   if e.seq > paused.seq and e.payload["reason"] == "entry_signal"]
        assert entries == [], "paused: no new positions"
        sent = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT}) if e.payload["kind"] ==
                "revalidation_request"]
        assert [m["subject"] for m in sent] == [dep] * len(reviews)
    request = json.loads((home / "outbox" / sent[-1]["files"][0]).read_text())
    assert (request["to"], request["body"]["decision"]) == ("validation", "pause")


def test_strategy_halt_when_policy_removes_on_pause_then_closed_halted_and_revalidation_requested(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a stricter stated policy: a "pause" verdict removes the strategy
    strategies = [{**STRATEGIES[0], "bundle": str(_overrated(tmp_path))}, STRATEGIES[1]]
    home = tmp_path / "h"

    # Act
    run_desk(load_desk_config(write_config(strategies=strategies, risk=RISK,
                                           lead={"drift_policy": {"pause": "remove"}})), home)

    # Assert
    with Ledger.for_home(home) as ledger:
        dep = "STR-001-v1"
        reviews = [e.payload for e in ledger.events({EventKind.STRATEGY_REVIEWED}, deployment_id=dep)]
        assert reviews[-1]["decision"] == "remove"
        assert reviews[-1]["policy"]["pause"] == "remove"
        assert all(r["evidence"]["findings"] for r in reviews)
        # remove: its positions closed and HALTED once flat; nothing traded for it afterwards
        halted = [e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id=dep)
                  if e.payload["to"] == "HALTED"]
        assert halted[0].payload["reason"] == "drift_remove"
        after = [e for e in ledger.events({EventKind.ORDER_SUBMITTED}, deployment_id=dep) if e.seq > halted[0].seq]
        assert after == []
        assert all(p.deployment_id != dep for p in ledger.state.open_positions())
        # the other deployment trades on
        assert ledger.state.deployments["STR-004-v1"].state.value == "ACTIVE"
        # a revalidation request per decision, in the outbox, with the drift evidence
        sent = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT}) if e.payload["kind"] ==
                "revalidation_request"]
        assert len(sent) == len(reviews)
    request = json.loads((home / "outbox" / sent[-1]["files"][0]).read_text())
    assert (request["to"], request["kind"], request["subject"]) == ("validation", "revalidation_request", "STR-001-v1")
    assert request["body"]["decision"] == "remove"
    assert request["body"]["findings"]
    assert (home / "outbox" / sent[-1]["files"][1]).read_text().startswith("#")
