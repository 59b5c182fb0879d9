"""The gated pipeline end to end on the replay loop with the paper venue: ``execdesk deploy`` takes a bundle
through intake, signal generator, risk, approval, deploy and monitor — each gate an event with its
evidence, a refused gate exit 3 with its reason — and the desk trades what was deployed."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from execdesk.api import actions
from execdesk.desk.identity import local_identity
from execdesk.domain.events import EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import TradingState
from execdesk.errors import InvalidInput, Refused
from execdesk.lead import deploy
from execdesk.lead.deploy import GATES, DeployPlan, GateResult, VenueTarget, as_deployed
from execdesk.lead.outbox import DecisionRequests, Outbox
from execdesk.risk.assessment import (
    AllocationCap,
    Assessment,
    Condition,
    StatedRisk,
    StoplossCap,
    Verdict,
    WorstCase,
)
from execdesk.risk.config import RiskConfig
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle, validate_bundle
from tests.conftest import BUNDLES
from tests.kit import desk_running, token_identity

NOW = 1_900_000_000  # the wall time a command is given (files and decision answers); the desk's time is its own
MID = "2024-03-20T00:00:00Z"
SOL = {"start_price": 140, "annual_vol": 0.9, "base_volume": 4_000_000}


def _desk(write_config: Callable[..., Path], tmp_path: Path, end: str = MID, **overrides: Any) -> tuple[Path, Path]:
    """A small desk (two strategies, SOL in its market for a third) run up to ``end``; its config and home."""
    market = {"source": "generated", "timeframe": "1h", "start": "2024-03-01T00:00:00Z", "end": end,
              "pairs": {"BTC/USDT": {"start_price": 60000, "annual_vol": 0.6, "base_volume": 20000},
                        "ETH/USDT": {"start_price": 3000, "annual_vol": 0.75, "base_volume": 300000},
                        "SOL/USDT": SOL}}
    config = write_config(market=market, **overrides)
    home = tmp_path / "home"
    actions.run_config(config, home, report=False)
    return config, home


def _extend(config: Path, end: str) -> Path:
    data = yaml.safe_load(config.read_text())
    data["market"]["end"] = end
    path = config.with_name(f"{config.stem}-to-{end[:10]}.yaml")
    path.write_text(yaml.safe_dump(data))
    return path


def _gates(home: Path, deployment: str) -> list[dict[str, Any]]:
    with Ledger.for_home(home) as ledger:
        return [e.payload for e in ledger.events({EventKind.GATE}) if e.payload["deployment_id"] == deployment]


def _version(tmp_path: Path, source: str, version: int, **changes: Any) -> Path:
    spec = load_bundle(BUNDLES / source).to_canonical_dict()
    spec.update(version=version, **changes)
    path = tmp_path / f"{Path(source).stem}-v{version}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_deploy_when_every_gate_passes_then_each_is_recorded_in_order_and_the_desk_trades_it(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange
    config, home = _desk(write_config, tmp_path)
    # Act
    result = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", NOW, allocation=0.15,
                            reason="validated by research")
    # Assert: six gates, in the pipeline's order, each with its evidence
    assert result["status"] == "deployed"
    gates = _gates(home, "STR-002-v1")
    assert [g["gate"] for g in gates] == list(GATES)
    assert [g["outcome"] for g in gates][:2] == ["passed", "passed"]
    assert gates[2]["outcome"] in ("passed", "conditional")
    assert gates[2]["evidence"]["verdict"] != "REJECTED"
    assert gates[3]["outcome"] == "not_required"
    assert gates[1]["evidence"]["checks"] == {"compiles": True, "ruff": True, "ast_audit": True,
                                              "freqtrade_load": True, "freqtrade_attributes": True}
    assert (home / gates[1]["evidence"]["file"]).is_file()
    assert gates[5]["evidence"]["count"] > 0
    assert all(g["by"] == local_identity().name for g in gates)  # no token: the local user
    status = actions.status(home)
    dep = next(d for d in status["deployments"] if d["id"] == "STR-002-v1")
    assert (dep["venue"], dep["lifecycle"], dep["state"]) == ("paper", "live", "ACTIVE")
    # the next run trades it, from the bar after the one the desk had reached
    actions.run_config(_extend(config, "2024-04-15T00:00:00Z"), home, report=False)
    with Ledger.for_home(home) as ledger:
        created = next(e for e in ledger.events({EventKind.DEPLOYMENT_CREATED})
                       if e.payload["deployment_id"] == "STR-002-v1")
        orders = [o for o in ledger.state.orders.values() if o.deployment_id == "STR-002-v1"]
        assert orders, "the deployed strategy should trade"
        assert min(o.signal_time for o in orders) > created.time


def test_deploy_when_the_bundle_is_invalid_then_intake_refuses_with_exit_3_and_records_it(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path)
    spec = load_bundle(BUNDLES / "mean_revert_bbands.yaml").to_canonical_dict()
    spec["stoploss"] = 0.5  # a stoploss must be negative
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(Refused, match="intake gate refused") as caught:
        actions.deploy(home, bad, "paper", NOW)
    assert caught.value.exit_code == 3
    gates = _gates(home, "unknown-v0")
    assert [(g["gate"], g["outcome"]) for g in gates] == [("intake", "refused")]
    assert any(e["path"] == "stoploss" for e in gates[0]["evidence"]["errors"])


def test_deploy_when_the_version_is_deployed_already_then_intake_refuses(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path)
    with pytest.raises(Refused, match="deployed already"):
        actions.deploy(home, BUNDLES / "trend_ema_cross.yaml", "paper", NOW)
    with Ledger.for_home(home) as ledger:
        assert len(ledger.state.deployments) == 2


def test_deploy_when_the_risk_manager_rejects_then_refused_before_approval_and_nothing_deployed(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk that deploys at most half its equity, and half is deployed
    risk = {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "assessment": {"max_deployed_fraction": 0.5}}
    strategies = [{"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5}]
    _config, home = _desk(write_config, tmp_path, risk=risk, strategies=strategies)
    # Act
    with pytest.raises(Refused, match="risk gate refused it: REJECTED"):
        actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", NOW, allocation=0.1)
    # Assert: recorded up to the refusal, with the rule that failed
    gates = _gates(home, "STR-002-v1")
    assert [(g["gate"], g["outcome"]) for g in gates] == [("intake", "passed"), ("signal_generator", "passed"),
                                                           ("risk", "refused")]
    assert gates[-1]["evidence"]["verdict"] == "REJECTED"
    assert gates[-1]["evidence"]["rules"]["deployed_fraction"]["passed"] is False
    with Ledger.for_home(home) as ledger:
        assert set(ledger.state.deployments) == {"STR-001-v1"}


def test_deploy_when_conditional_then_the_smaller_allocation_is_applied_and_named(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: 80% deployed by the config; the desk deploys at most 90%
    risk = {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "assessment": {"max_deployed_fraction": 0.9}}
    _config, home = _desk(write_config, tmp_path, risk=risk)
    # Act
    result = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", NOW, allocation=0.2)
    # Assert
    risk_gate = next(g for g in result["gates"] if g["gate"] == "risk")
    assert risk_gate["outcome"] == "conditional"
    equity = risk_gate["evidence"]["equity"]  # the portfolio's marked equity; 40,000 is deployed
    assert result["allocation"] == math.floor((0.9 * equity - 40_000) / equity * 1e4) / 1e4
    assert any("allocation 0.2 ->" in a for a in risk_gate["evidence"]["applied"])
    with Ledger.for_home(home) as ledger:
        assert float(ledger.state.deployments["STR-002-v1"].allocation) == result["allocation"]


def test_deploy_when_a_pair_is_not_in_the_desks_market_then_the_deploy_gate_refuses(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path)
    with pytest.raises(Refused, match="no candles for AVAX/USDT"):
        actions.deploy(home, BUNDLES / "momentum_macd.yaml", "paper", NOW, allocation=0.1)
    assert [g["outcome"] for g in _gates(home, "STR-003-v1")][-1] == "refused"


def test_deploy_when_the_venue_trades_real_money_then_it_waits_for_a_human_who_denies(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path)
    # Act: real money waits; the decision request is in the Orchestrator's outbox
    ana, officer = token_identity(home, "ana", "lead"), token_identity(home, "risk-officer", "risk")
    pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "ccxt:binance", NOW, allocation=0.1,
                             live=True, identity=ana)
    assert pending["status"] == "pending_approval"
    request = pending["approval_request"]
    assert [m.request_id for m in DecisionRequests(Outbox(home / "outbox")).pending()] == [request]
    assert [w["request_id"] for w in actions.status(home)["waiting_for_a_human"]] == [request]
    denied = actions.decide(home, request, "deny", "not before the testnet run", NOW + 60, identity=officer)
    # Assert
    assert denied["status"] == "refused"
    gates = _gates(home, "STR-002-v1")
    outcomes = [(g["gate"], g["outcome"]) for g in gates]
    assert outcomes[3] == ("approval", "pending")
    assert outcomes[-1] == ("approval", "denied")  # the gates ran again with the answer: denied, nothing deployed
    with Ledger.for_home(home) as ledger:
        decided = [e.payload for e in ledger.events({EventKind.APPROVAL_DECIDED})]
        assert decided == [{"request_id": request, "deployment_id": "STR-002-v1", "decision": "denied",
                            "by": "risk-officer", "reason": "not before the testnet run"}]
        assert "STR-002-v1" not in ledger.state.deployments
    assert actions.status(home)["waiting_for_a_human"] == []
    with pytest.raises(InvalidInput, match="not waiting for approval"):
        actions.decide(home, request, "approve", "second answer", NOW + 120,
                       identity=token_identity(home, "someone-else", "lead"))


def test_deploy_when_every_deployment_needs_approval_then_approve_deploys_it(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path, lead={"approve_all": True})
    pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", NOW, allocation=0.1)
    with Ledger.for_home(home) as ledger:
        assert "STR-002-v1" not in ledger.state.deployments
    approved = actions.decide(home, pending["approval_request"], "approve", "looks right", NOW + 5,
                              identity=token_identity(home, "lead-human", "lead"))
    assert approved["status"] == "deployed"
    # the answer applies the command again: its gates run again on the ledger as it is, the human's answer in
    # the approval gate
    gates = [(g["gate"], g["outcome"]) for g in _gates(home, "STR-002-v1")]
    assert [g for g, _o in gates] == ["intake", "signal_generator", "risk", "approval",
                                      "intake", "signal_generator", "risk", "approval", "deploy", "monitor"]
    assert gates[3] == ("approval", "pending")
    assert gates[-3:] == [("approval", "approved"), ("deploy", "passed"), ("monitor", "passed")]


def test_deploy_when_ccxt_on_a_paper_desk_then_the_deploy_gate_refuses_naming_the_desks_venue(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _config, home = _desk(write_config, tmp_path)
    with pytest.raises(Refused, match="this desk's loop trades paper"):
        actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "ccxt:binance", NOW, allocation=0.1)
    gates = _gates(home, "STR-002-v1")
    assert gates[3]["outcome"] == "not_required"
    assert "testnet" in gates[3]["reason"]


def test_deploy_when_freqtrade_then_a_dry_run_bot_folder_is_prepared(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    import json

    _config, home = _desk(write_config, tmp_path)
    result = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "freqtrade", NOW, allocation=0.1)
    deploy_gate = next(g for g in result["gates"] if g["gate"] == "deploy")
    bot = json.loads((home / deploy_gate["evidence"]["config"]).read_text())
    assert bot["dry_run"] is True
    assert bot["exchange"]["pair_whitelist"] == ["SOL/USDT"]
    # one pair, but as many slots as keep one trade's stake ("unlimited": the wallet over the slots) within the
    # risk manager's position cap (the small desk's 0.5: two), which the desk's check holds a bot's entries to
    assert (bot["stake_amount"], bot["max_open_trades"]) == ("unlimited", 2)
    assert (home / deploy_gate["evidence"]["checklist"]).is_file()
    status = actions.status(home)
    assert next(d for d in status["deployments"] if d["id"] == "STR-002-v1")["venue"] == "freqtrade"


def test_deploy_when_scheduled_then_it_starts_trading_at_its_time_and_not_before(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, home = _desk(write_config, tmp_path)
    start = "2024-04-01T00:00:00Z"
    actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", NOW, allocation=0.15, at=start)
    assert next(d for d in actions.status(home)["deployments"] if d["id"] == "STR-002-v1")["lifecycle"] == "scheduled"
    actions.run_config(_extend(config, "2024-04-15T00:00:00Z"), home, report=False)
    with Ledger.for_home(home) as ledger:
        started = [e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id="STR-002-v1")
                   if e.payload["reason"] == "schedule"]
        assert len(started) == 1
        at = started[0].time
        assert 0 <= at - 1711929600 < 3600  # the bar closing at 2024-04-01T00:00Z
        orders = [o for o in ledger.state.orders.values() if o.deployment_id == "STR-002-v1"]
        assert orders
        assert min(o.signal_time for o in orders) >= at


def test_venue_target_when_parsed_then_real_money_only_for_live_ccxt() -> None:
    assert not VenueTarget.parse("paper").real_money
    assert not VenueTarget.parse("ccxt:kraken").real_money
    assert VenueTarget.parse("ccxt:kraken", live=True).real_money
    assert str(VenueTarget.from_str("ccxt:kraken:live")) == "ccxt:kraken:live"
    with pytest.raises(InvalidInput, match="--venue"):
        VenueTarget.parse("binance")
    with pytest.raises(InvalidInput, match="--live"):
        VenueTarget.parse("paper", live=True)


def test_deploy_when_a_desk_is_running_then_the_request_waits_in_control_and_the_loop_deploys_it(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config, home = _desk(write_config, tmp_path)
    with desk_running(home):
        queued = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", NOW, allocation=0.15)
        with pytest.raises(InvalidInput, match="running in this home already"):
            actions.run_config(config, home, report=False)
    assert Path(queued["queued"]).is_file()
    with Ledger.for_home(home) as ledger:
        assert "STR-002-v1" not in ledger.state.deployments  # nothing written while the desk held the ledger
    # the desk carries on: its loop takes the request at its first bar, deploys, rebuilds itself and trades it
    actions.run_config(_extend(config, "2024-04-15T00:00:00Z"), home, report=False)
    assert not list((home / "control").glob("*.json"))
    with Ledger.for_home(home) as ledger:
        assert ledger.state.deployments["STR-002-v1"].state is TradingState.ACTIVE
        assert [g["gate"] for g in _gates(home, "STR-002-v1")] == list(GATES)
        assert any(o.deployment_id == "STR-002-v1" for o in ledger.state.orders.values())


def test_inbox_when_validation_leaves_bundles_then_each_goes_through_the_gates_on_its_own(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: one good bundle, one that does not validate
    _config, home = _desk(write_config, tmp_path)
    inbox = home / "inbox"
    inbox.mkdir()
    (inbox / "a-mean-revert.yaml").write_bytes((BUNDLES / "mean_revert_bbands.yaml").read_bytes())
    (inbox / "b-broken.yaml").write_text("id: STR-009\nversion: one\n")
    # Act
    bot = token_identity(home, "validation-bot", "operator")
    data = actions.take_inbox(home, "paper", NOW, allocation=0.1, identity=bot)
    # Assert
    status = {r["entry"]: r["status"] for r in data["results"]}
    assert status == {"a-mean-revert.yaml": "deployed", "b-broken.yaml": "refused"}
    assert (inbox / "taken" / "a-mean-revert.yaml").is_file()
    assert (inbox / "rejected" / "b-broken.yaml").is_file()
    assert (inbox / "rejected" / "b-broken.yaml.error.txt").is_file()
    assert [g["gate"] for g in _gates(home, "STR-002-v1")] == list(GATES)
    refused = _gates(home, "unknown-v0")
    assert [(g["gate"], g["outcome"]) for g in refused] == [("intake", "refused")]
    assert refused[0]["by"] == "validation-bot"
    assert actions.take_inbox(home, "paper", NOW, identity=bot)["taken"] == 0


# ------------------------------------------------------------------------ correlation with live strategies
def test_deploy_when_the_candidate_clones_a_live_strategy_then_it_correlates_on_the_same_dates_and_is_rejected(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: STR-001 and STR-004 trade on the desk; STR-101 is STR-001 under another id
    _config, home = _desk(write_config, tmp_path)
    clone = _version(tmp_path, "trend_ema_cross.yaml", 1, id="STR-101", name="trend_clone")
    # Act
    with pytest.raises(Refused, match="risk gate refused it: REJECTED"):
        actions.deploy(home, clone, "paper", NOW, allocation=0.1)
    # Assert: measured on the same dates (both backtested over the clone's validation period on the same candles),
    # far above the 0.30 limit; nothing deployed
    gate = _gates(home, "STR-101-v1")[-1]
    assert (gate["gate"], gate["evidence"]["verdict"]) == ("risk", "REJECTED")
    assert gate["evidence"]["rules"]["pairwise_correlation"]["passed"] is False
    assessment = yaml.safe_load((home / gate["evidence"]["assessment"]).read_text())
    pair = next(c for c in assessment["correlations"] if c["deployment_id"] == "STR-001-v1")
    assert pair["correlation"] > 0.95
    assert (pair["n"], pair["window"], pair["status"]) == (182, {"start": "2024-01-01", "end": "2024-06-30"},
                                                           "above limit")
    assert pair["source"].startswith("generated desk candles (seed 7): backtests of both strategies")
    assert "correlate" in gate["reason"]
    assert "STR-001-v1 over 182 days 2024-01-01..2024-06-30" in gate["reason"]
    with Ledger.for_home(home) as ledger:
        assert "STR-101-v1" not in ledger.state.deployments


def _ledger_with(home: Path, deployments: dict[str, str | None]) -> Ledger:
    """A ledger in ``home``: a desk of 100,000 USDT and, per deployment id, a deployment of 10% trading the example
    bundle named (its bundle recorded in its ``deployment.created`` event), or None: one recorded without it."""
    from decimal import Decimal

    from execdesk.domain.events import Event

    ledger = Ledger.for_home(home)
    ledger.record(Event(1, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                       "capital": Decimal(100_000)}))
    for dep_id, source in deployments.items():
        bundle = load_bundle(BUNDLES / (source or "trend_ema_cross.yaml"))
        ledger.record(Event(2, EventKind.DEPLOYMENT_CREATED, {
            "deployment_id": dep_id, "strategy_id": dep_id.rsplit("-v", 1)[0], "name": bundle.name, "version": 1,
            "bundle_hash": bundle.bundle_hash, "timeframe": bundle.timeframe, "pairs": list(bundle.pairs),
            "allocation": Decimal("0.1"), "capital": Decimal(10_000), "stoploss": None,
            **({"bundle": bundle.to_canonical_dict()} if source is not None else {})}, dep_id))
    ledger.flush()
    return ledger


def test_assess_bundle_when_a_different_strategy_then_measured_with_n_on_the_same_dates_and_passing(
        tmp_path: Path) -> None:
    # Arrange: STR-001 (trend, BTC and ETH) live; the candidate mean-reverts on SOL
    from execdesk.risk.assessment import AssessmentLimits

    candidate = load_bundle(BUNDLES / "mean_revert_bbands.yaml")
    with _ledger_with(tmp_path, {"STR-001-v1": "trend_ema_cross.yaml"}) as ledger:
        # Act
        data, result = deploy.assess_bundle(candidate, ledger, 0.1, AssessmentLimits())
    # Assert: measured over the candidate's validation period, on every one of its 182 days, and passing
    pair = result.correlations[0]
    assert (pair.deployment_id, pair.status, pair.passed, pair.n) == ("STR-001-v1", "ok", True, 182)
    assert abs(pair.correlation) <= 0.30
    assert data["correlation_window"]["start"] == "2024-01-01"
    assert data["correlation_window"]["end"] == "2024-06-30"
    assert "generate_market(seed=7)" in data["correlation_window"]["source"]
    assert result.rule("pairwise_correlation").passed
    assert result.verdict is Verdict.APPROVED


def test_assess_bundle_when_a_live_deployments_bundle_is_missing_then_unmeasured_with_the_reason(
        tmp_path: Path) -> None:
    # Arrange: OLD-v1's deployment.created event records no bundle (only its hash); STR-001-v1's does
    from execdesk.risk.assessment import AssessmentLimits

    candidate = load_bundle(BUNDLES / "mean_revert_bbands.yaml")
    with _ledger_with(tmp_path, {"OLD-v1": None, "STR-001-v1": "trend_ema_cross.yaml"}) as ledger:
        # Act
        _data, result = deploy.assess_bundle(candidate, ledger, 0.1, AssessmentLimits())
    # Assert: OLD-v1 unmeasured with why, carried as a stated risk; STR-001-v1 measured
    by_id = {c.deployment_id: c for c in result.correlations}
    old = by_id["OLD-v1"]
    assert (old.status, old.passed, old.n) == ("unavailable", False, 0)
    assert old.reason.startswith("its deployment.created event records no bundle (only its hash")
    assert by_id["STR-001-v1"].status == "ok"
    assert result.verdict is Verdict.CONDITIONAL
    assert [c.text for c in result.conditions] == [
        f"correlation with OLD-v1 unmeasured (unavailable: {old.reason}): review before deploying"]


# ------------------------------------------------------------------------ the risk gate on a hand-made assessment
_UNMEASURED = "correlation with A unmeasured (insufficient overlap, 5 common days): review before deploying"
_STOP_TEXT = "stoploss tighter than 0.0350 (now 0.06; alternative to the allocation cut for worst_case_drawdown)"


def _risk_gate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, conditions: tuple[Condition, ...],
               max_allocation: float, equity: float = 1000.0, allocation: float = 0.2,
               verdict: Verdict = Verdict.CONDITIONAL) -> tuple[GateResult, DeployPlan]:
    """The risk gate of mean_revert_bbands (stoploss -0.06) at ``allocation`` on an empty desk, the
    assessment being a hand-made one with ``conditions`` (no market, no ledger)."""
    bundle = load_bundle(BUNDLES / "mean_revert_bbands.yaml")
    worst = WorstCase(0.02, 0.02, 0.01, 0.01, 0.03, 0.03, 2000, 0, 2, 1.0, True)
    result = Assessment(f"{bundle.id}-v{bundle.version}", verdict, allocation * equity, max_allocation,
                        {"deployed_fraction": max_allocation}, (), (), (), worst, conditions)
    data = {"equity": equity, "data_source": "hand-made", **result.as_dict()}
    monkeypatch.setattr(deploy, "assess_bundle", lambda *args, **kwargs: (data, result))
    plan = DeployPlan(request_id="r1", bundle=bundle.to_canonical_dict(), venue="paper", allocation=allocation,
                      applied_allocation=allocation, stoploss=None, start_at=None, positions="hand_over", by="ana",
                      reason="", requested_at=NOW)
    ledger: Any = None  # the assessment is given: the gate passes the ledger on to it only
    gate = deploy._risk(tmp_path, DeskState(), ledger, plan, bundle, RiskConfig())
    return gate, plan


def test_risk_gate_when_stoploss_and_allocation_caps_then_both_applied_and_named(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Arrange: 70.1229 of equity 1,000 -> 0.0701; a stop of 0.035 instead of the bundle's 0.06
    conditions = (AllocationCap(70.12), StoplossCap(0.035, 0.06), StatedRisk(_UNMEASURED))
    # Act
    gate, plan = _risk_gate(monkeypatch, tmp_path, conditions, max_allocation=70.1229)
    # Assert: the plan carries both, the texts are the assessment's own
    assert (plan.applied_allocation, plan.stoploss) == (0.0701, -0.035)
    assert gate.outcome == "conditional"
    assert gate.evidence["conditions"] == ["allocation <= 70.12", _STOP_TEXT, _UNMEASURED]
    assert all(type(c) is str for c in gate.evidence["conditions"])
    assert gate.evidence["applied"] == ["allocation 0.2 -> 0.0701 (allocation <= 70.12 of equity 1,000.00)",
                                        f"stoploss -0.06 -> -0.035 ({_STOP_TEXT})"]
    assert gate.reason == ("CONDITIONAL: allocation 0.2 -> 0.0701 (allocation <= 70.12 of equity 1,000.00); "
                           f"stoploss -0.06 -> -0.035 ({_STOP_TEXT}); stated risks: {_UNMEASURED}")
    written = (tmp_path / "deployments" / "STR-002-v1" / "assessment.yaml").read_text()
    assert yaml.safe_load(written)["conditions"] == gate.evidence["conditions"]


def test_risk_gate_when_stoploss_cap_alone_then_the_stop_its_text_shows_is_applied(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Arrange: a stop with more decimals than its text shows: the text's 0.0351 is the one applied
    cap = StoplossCap(0.035061, 0.06)
    # Act
    gate, plan = _risk_gate(monkeypatch, tmp_path, (cap,), max_allocation=200.0)
    # Assert: the allocation stands
    assert plan.stoploss == -float(f"{0.035061:.4f}") == -0.0351
    assert plan.applied_allocation == 0.2
    assert gate.evidence["applied"] == [f"stoploss -0.06 -> -0.0351 ({cap.text})"]
    assert gate.reason == f"CONDITIONAL: stoploss -0.06 -> -0.0351 ({cap.text})"


def test_risk_gate_when_allocation_cap_then_the_allocation_is_cut_and_the_stop_kept(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Act: 50 of equity 1,000 -> 0.05
    gate, plan = _risk_gate(monkeypatch, tmp_path, (AllocationCap(50.0),), max_allocation=50.0)
    # Assert
    assert (plan.applied_allocation, plan.stoploss) == (0.05, None)
    assert gate.reason == "CONDITIONAL: allocation 0.2 -> 0.05 (allocation <= 50.00 of equity 1,000.00)"


def test_risk_gate_when_allocation_cap_leaves_nothing_then_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Act: 50 of equity 10,000,000 rounds down to 0
    gate, _plan = _risk_gate(monkeypatch, tmp_path, (AllocationCap(50.0),), max_allocation=50.0,
                             equity=10_000_000.0)
    # Assert
    assert (gate.outcome, gate.reason) == ("refused", "CONDITIONAL with no allocation left (allocation <= 50.00)")
    assert "applied" not in gate.evidence


def test_risk_gate_when_only_stated_risks_then_nothing_applied_and_they_are_named(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Act
    gate, plan = _risk_gate(monkeypatch, tmp_path, (StatedRisk(_UNMEASURED),), max_allocation=200.0)
    # Assert
    assert (plan.applied_allocation, plan.stoploss) == (0.2, None)
    assert gate.reason == f"CONDITIONAL: no condition to apply; stated risks: {_UNMEASURED}"


def test_as_deployed_when_the_risk_gate_tightened_the_stop_then_the_strategy_stops_below_its_entry() -> None:
    # Arrange: the bundle's stop is -0.06; the gate applied -0.035 (a plan from before the sign fix: 0.035)
    bundle = yaml.safe_load((BUNDLES / "trend_ema_cross.yaml").read_text())
    # Act
    now, older = as_deployed(bundle, -0.035), as_deployed(bundle, 0.035)
    # Assert: both trade with a stop 3.5% below the entry, tighter than the bundle's
    assert now.stoploss == older.stoploss == -0.035
    assert now.stoploss > validate_bundle(bundle).stoploss


def test_as_deployed_when_the_applied_stop_is_not_a_fraction_then_refused() -> None:
    bundle = yaml.safe_load((BUNDLES / "trend_ema_cross.yaml").read_text())
    with pytest.raises(InvalidInput, match="applied stoploss"):
        as_deployed(bundle, -1.5)
