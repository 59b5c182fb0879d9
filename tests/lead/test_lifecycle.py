"""Deployments after the gates, end to end on the replay loop with the paper venue: pause, resume, remove,
a new version replacing the one trading, and rollback to the previous version, handing positions over or
closing them by the stated policy."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from execdesk.api import actions
from execdesk.domain.events import EventKind
from execdesk.domain.types import TradingState
from execdesk.errors import InvalidInput, Refused
from execdesk.monitor.report import write_report
from execdesk.store.ledger import Ledger
from execdesk.store.projections import all_projection_rows
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES
from tests.kit import replay_fills, run_config_to, token_identity

NOW = 1_900_000_000
END = "2024-04-15T00:00:00Z"


def _desk(write_config: Callable[..., Path], tmp_path: Path, end: str) -> tuple[Path, Path]:
    config = write_config(market__end=end)
    home = tmp_path / "home"
    actions.run_config(config, home, report=False)
    return config, home


def _v2(tmp_path: Path, **changes: Any) -> Path:
    spec = load_bundle(BUNDLES / "trend_ema_cross.yaml").to_canonical_dict()
    spec.update(version=2, **changes)
    path = tmp_path / "trend_ema_cross-v2.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _open_positions(home: Path, deployment: str) -> dict[str, Decimal]:
    with Ledger.for_home(home) as ledger:
        return {p.pair: p.qty for p in ledger.state.open_positions() if p.deployment_id == deployment}


def _mid_trade(write_config: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path, str]:
    """A desk stopped at the first bar after which STR-001-v1 holds a position."""
    for day in range(8, 30):
        end = f"2024-03-{day:02d}T00:00:00Z"
        home = tmp_path / "home"
        config, home = _desk(write_config, tmp_path, end)
        if _open_positions(home, "STR-001-v1"):
            return config, home, end
        import shutil

        shutil.rmtree(home)
    raise AssertionError("STR-001-v1 never held a position at a day's end in March")


def test_pause_when_paused_then_no_new_entries_until_resumed(write_config: Callable[..., Path],
                                                             tmp_path: Path) -> None:
    config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    paused = actions.lifecycle(home, "pause", "STR-001-v1", "looks off", NOW)
    assert (paused["state"], paused["reason"]) == ("REDUCING", "paused")
    run_config_to(config, home, "2024-03-25T00:00:00Z")
    with Ledger.for_home(home) as ledger:
        since = ledger.state.deployments["STR-001-v1"]
        entries = [o for o in ledger.state.orders.values()
                   if o.deployment_id == "STR-001-v1" and o.reason == "entry_signal"
                   and o.signal_time > int(pd_ts("2024-03-10T00:00:00Z"))]
        assert entries == [], "a paused deployment opens nothing"
        assert since.state is TradingState.REDUCING
    resumed = actions.lifecycle(home, "resume", "STR-001-v1", "checked", NOW)
    assert resumed["state"] == "ACTIVE"
    run_config_to(config, home, END)
    with Ledger.for_home(home) as ledger:
        later = [o for o in ledger.state.orders.values() if o.deployment_id == "STR-001-v1"
                 and o.reason == "entry_signal" and o.signal_time > int(pd_ts("2024-03-25T00:00:00Z"))]
        assert later, "resumed, it trades again"
        reasons = [e.payload["reason"] for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED},
                                                              deployment_id="STR-001-v1")]
        assert reasons == ["paused", "resumed"]


def test_lifecycle_when_the_state_does_not_allow_it_then_refused_with_the_reason(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    with pytest.raises(Refused, match="only a paused deployment resumes"):
        actions.lifecycle(home, "resume", "STR-001-v1", "why not", NOW)
    with pytest.raises(InvalidInput, match="no deployment 'STR-009-v1'"):
        actions.lifecycle(home, "pause", "STR-009-v1", "typo", NOW)
    with pytest.raises(InvalidInput, match="--reason"):
        actions.lifecycle(home, "pause", "STR-001-v1", " ", NOW)
    with Ledger.for_home(home) as ledger:
        assert ledger.state.deployments["STR-001-v1"].state is TradingState.ACTIVE


def test_remove_when_holding_then_closed_at_the_next_runs_first_bar_and_halted_once_flat(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, home, end = _mid_trade(write_config, tmp_path)
    actions.lifecycle(home, "remove", "STR-001-v1", "strategy retired", NOW)
    run_config_to(config, home, END)
    with Ledger.for_home(home) as ledger:
        dep = ledger.state.deployments["STR-001-v1"]
        assert (dep.state, dep.state_reason) == (TradingState.HALTED, "removed")
        closes = [o for o in ledger.state.orders.values()
                  if o.deployment_id == "STR-001-v1" and o.reason == "deployment_halt"]
        assert closes
        assert min(o.signal_time for o in closes) == int(pd_ts(end)) + 3600  # the first bar's close
        assert not _open_positions(home, "STR-001-v1")
        assert [o for o in ledger.state.orders.values() if o.deployment_id == "STR-001-v1"
                and o.reason == "entry_signal" and o.signal_time > int(pd_ts(end))] == []


def test_new_version_when_deployed_then_it_takes_over_the_positions_and_rollback_hands_them_back(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: v1 holds a position
    config, home, _end = _mid_trade(write_config, tmp_path)
    held = _open_positions(home, "STR-001-v1")
    ana = token_identity(home, "ana", "lead")
    # Act 1: v2 through the gates supersedes v1, taking over its positions
    result = actions.deploy(home, _v2(tmp_path), "paper", NOW, allocation=0.5, reason="v2 validated", identity=ana)
    # Assert 1
    assert result["status"] == "deployed"
    assert _open_positions(home, "STR-001-v2") == held
    assert _open_positions(home, "STR-001-v1") == {}
    status = {d["id"]: d for d in actions.status(home)["deployments"]}
    assert status["STR-001-v1"]["lifecycle"] == "closing"  # superseded: HALTED at the next run, being flat
    assert status["STR-001-v2"]["lifecycle"] == "live"
    run_config_to(config, home, "2024-03-30T00:00:00Z")
    # Act 2: rollback
    back = actions.rollback(home, "STR-001", "v2 misbehaves", NOW, identity=ana)
    # Assert 2: v1 trades again with what v2 held; v2 is rolled back
    assert (back["from"], back["to"]) == ("STR-001-v2", "STR-001-v1")
    with Ledger.for_home(home) as ledger:
        states = {d.id: (d.state, d.state_reason) for d in ledger.state.deployments.values()}
        assert states["STR-001-v1"] == (TradingState.ACTIVE, "rollback")
        assert states["STR-001-v2"] == (TradingState.REDUCING, "rolled_back")
        handed = [e.payload for e in ledger.events({EventKind.POSITIONS_HANDED_OVER})]
        assert handed[0]["from"] == "STR-001-v1"
        assert handed[0]["to"] == "STR-001-v2"
        assert all(p["by"] == "ana" for p in handed)  # the token's identity, both the deploy's and the rollback's
    run_config_to(config, home, END)
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        assert state.deployments["STR-001-v2"].state is TradingState.HALTED
        # the books still add up: positions are the sum of fills once hand-overs are followed, cash agrees
        positions, cash = replay_fills(state, Decimal(50_000))
        assert state.cash() == cash
        for (dep, pair), pos in state.positions.items():
            if dep.startswith("STR-001"):
                continue  # hand-overs move quantity between the two versions without a fill
            assert pos.qty == positions[(dep, pair)]
        total = {pair: sum((p.qty for (d, pp), p in state.positions.items() if d.startswith("STR-001") and pp == pair),
                           Decimal(0)) for pair in ("BTC/USDT", "ETH/USDT")}
        fills = {pair: sum((q for (d, pp), q in positions.items() if d.startswith("STR-001") and pp == pair),
                           Decimal(0)) for pair in ("BTC/USDT", "ETH/USDT")}
        assert total == fills
        assert ledger.read_projections() == all_projection_rows(ledger.rebuild_state())
        data, _files = write_report(ledger, home)  # round trips follow the hand-overs
        trades = {d["id"]: d for d in data["deployments"]}
        assert trades["STR-001-v1"]["trades"] + trades["STR-001-v2"]["trades"] == (
            state.deployments["STR-001-v1"].trades + state.deployments["STR-001-v2"].trades)


def test_rollback_when_close_policy_then_the_rolled_back_version_closes_its_positions(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, home, _end = _mid_trade(write_config, tmp_path)
    actions.deploy(home, _v2(tmp_path), "paper", NOW, allocation=0.5, positions="close")
    assert _open_positions(home, "STR-001-v2") == {}
    run_config_to(config, home, END)
    with Ledger.for_home(home) as ledger:
        v1 = ledger.state.deployments["STR-001-v1"]
        assert (v1.state, v1.state_reason) == (TradingState.HALTED, "superseded")
        assert any(o.deployment_id == "STR-001-v1" and o.reason == "deployment_halt"
                   for o in ledger.state.orders.values())
    with pytest.raises(Refused, match="first version"):
        actions.rollback(home, "STR-004", "nothing before", NOW)
    with pytest.raises(InvalidInput, match="no strategy 'STR-042'"):
        actions.rollback(home, "STR-042", "typo", NOW)


def pd_ts(text: str) -> float:
    import pandas as pd

    return pd.Timestamp(text).timestamp()


def test_lifecycle_when_the_desk_is_stopped_then_recorded_at_its_last_bars_close(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    actions.lifecycle(home, "pause", "STR-001-v1", "looks off", NOW)
    with Ledger.for_home(home) as ledger:
        paused = [e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}) if e.payload["reason"] == "paused"]
        last = max(e.time for e in ledger.events())
    assert paused[0].time == int(pd_ts("2024-03-10T00:00:00Z")) == last  # no time before the run's last events


def test_new_version_when_scheduled_then_the_old_one_trades_until_the_new_one_starts_and_hands_over_then(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, home, end = _mid_trade(write_config, tmp_path)
    start = int(pd_ts(end)) + 3 * 86_400
    actions.deploy(home, _v2(tmp_path), "paper", NOW, allocation=0.5,
                   at=pd.Timestamp(start, unit="s", tz="UTC").isoformat())
    status = {d["id"]: d["lifecycle"] for d in actions.status(home)["deployments"]}
    assert (status["STR-001-v1"], status["STR-001-v2"]) == ("live", "scheduled")
    run_config_to(config, home, END)
    with Ledger.for_home(home) as ledger:
        superseded = next(e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id="STR-001-v1")
                          if e.payload["reason"] == "superseded")
        started = next(e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id="STR-001-v2")
                       if e.payload["reason"] == "schedule")
        assert superseded.time == started.time
        assert 0 <= started.time - start < 3600
        v1_entries = [o for o in ledger.state.orders.values()
                      if o.deployment_id == "STR-001-v1" and o.reason == "entry_signal"]
        assert max(o.signal_time for o in v1_entries) <= started.time
        assert ledger.state.deployments["STR-001-v1"].state is TradingState.HALTED


def test_resume_when_paused_before_its_start_then_scheduled_again(write_config: Callable[..., Path],
                                                                  tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    actions.deploy(home, _v2(tmp_path), "paper", NOW, allocation=0.1, at="2024-03-30T00:00:00Z")
    actions.lifecycle(home, "pause", "STR-001-v2", "not yet", NOW)
    resumed = actions.lifecycle(home, "resume", "STR-001-v2", "go on", NOW)
    assert (resumed["state"], resumed["reason"]) == ("REDUCING", "scheduled")


def test_rollback_when_the_previous_version_was_removed_then_refused(write_config: Callable[..., Path],
                                                                     tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    actions.lifecycle(home, "remove", "STR-001-v1", "retired", NOW)
    with pytest.raises(Refused, match="already"):
        actions.lifecycle(home, "remove", "STR-001-v1", "twice", NOW)
    actions.deploy(home, _v2(tmp_path), "paper", NOW, allocation=0.1)
    with pytest.raises(Refused, match="was stopped by removed"):
        actions.rollback(home, "STR-001", "back", NOW)


def test_deploy_when_a_deployment_waited_for_approval_then_the_desk_still_runs(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "ccxt:binance", NOW, live=True,
                             allocation=0.1)
    assert pending["status"] == "pending_approval"
    run_config_to(config, home, "2024-03-20T00:00:00Z")  # the lead reads the approval events back without tripping
    with Ledger.for_home(home) as ledger:
        assert ledger.state.last_bar_time is not None
        assert ledger.state.last_bar_time >= int(pd_ts("2024-03-19T23:00:00Z"))


def test_deploy_when_the_same_version_is_paused_then_refused_naming_resume(write_config: Callable[..., Path],
                                                                          tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path, "2024-03-10T00:00:00Z")
    actions.lifecycle(home, "pause", "STR-001-v1", "looks off", NOW)
    with pytest.raises(Refused) as refused:
        actions.deploy(home, BUNDLES / "trend_ema_cross.yaml", "paper", NOW)
    assert "STR-001-v1 is deployed already (paused)" in str(refused.value)
    assert "execdesk resume STR-001-v1" in str(refused.value)
    assert "rollback" not in str(refused.value)
