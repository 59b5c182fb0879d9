"""Team performance from the ledger (`execdesk team`): each role's figures agree with the ledger's records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from execdesk.cli import app
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger

runner = CliRunner()


def _team(home: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["team", "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_team_when_desk_ran_then_each_role_counts_what_the_ledger_holds(write_config: Callable[..., Path],
                                                                      tmp_path: Path) -> None:
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config()), home)
    data = _team(home)
    with Ledger.for_home(home) as ledger:
        submitted = list(ledger.events({EventKind.ORDER_SUBMITTED}))
        denied = list(ledger.events({EventKind.ORDER_DENIED}))
        fills = ledger.state.fills
    sg, risk, ex = data["signal_generator"], data["risk_manager"], data["order_executor"]
    assert sg["intents"] == len(submitted) + len(denied)
    assert sg["entries_sent"] + sg["exits_sent"] == len(submitted) == risk["orders_approved"] == ex["orders"]
    assert risk["orders_denied"] == sg["refused_by_risk"] == len(denied)
    assert ex["fill_ratio"] == 1.0
    assert ex["fees"] == round(float(sum(f.fee for f in fills.values())), 6)
    assert data["capacity_flags"] == []


def test_team_when_every_entry_is_over_the_order_cap_then_breaches_prevented_and_nothing_sent(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(risk={"max_order_notional": 0.01})), home)
    data = _team(home)
    risk = data["risk_manager"]
    assert risk["orders_approved"] == 0
    assert risk["denied_by_rule"] == {"max_order_notional": risk["orders_denied"]}
    assert risk["breaches_prevented"] == risk["orders_denied"] > 0


def test_team_when_the_throttle_denies_orders_then_a_capacity_flag(write_config: Callable[..., Path],
                                                                  tmp_path: Path) -> None:
    # one order per deployment per 7 days (the longest window): the throttle is hit
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(risk={"throttle_count": 1, "throttle_window_s": 7 * 86_400})), home)
    data = _team(home)
    assert data["risk_manager"]["denied_by_rule"].get("throttle", 0) > 0
    assert "order_throttle_hit" in data["capacity_flags"]
    human = runner.invoke(app, ["team", "--home", str(home)])
    assert "capacity flags: order_throttle_hit" in human.stdout


def test_team_when_a_monitoring_cycle_is_over_its_budget_then_flagged_once_to_hr(write_config: Callable[..., Path],
                                                                               tmp_path: Path) -> None:
    # Arrange: a budget no cycle can meet (a billionth of a bar)
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(monitor={"snapshot_every": "1d", "cycle_budget": 1e-9})), home)
    # Act
    data = _team(home)
    # Assert
    assert "monitor_cycle_over_budget" in data["capacity_flags"]
    with Ledger.for_home(home) as ledger:
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED})
                  if e.payload["code"] == "monitor_cycle_over_budget"]
        flags = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT}) if e.payload["kind"] == "capacity_flag"]
        team = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT}) if e.payload["kind"] == "team_performance"]
    assert len(alerts) == 1
    assert alerts[0]["evidence"]["seconds"] > alerts[0]["evidence"]["budget_s"]
    assert [(f["to"], f["subject"]) for f in flags] == [("hr", "monitor")]
    assert len(team) == 1
    assert "capacity flags: monitor_cycle_over_budget" in team[0]["summary"]
    body = json.loads((home / "outbox" / team[0]["files"][0]).read_text())["body"]
    assert body["signal_generator"]["strategies_generated"] == 2
    assert body["risk_manager"]["assessments"] == 2  # the risk gate of each strategy of the config


def test_team_when_desk_ran_then_no_capacity_flag_within_the_default_budget(write_config: Callable[..., Path],
                                                                             tmp_path: Path) -> None:
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config()), home)
    with Ledger.for_home(home) as ledger:
        assert not [e for e in ledger.events({EventKind.MESSAGE_SENT}) if e.payload["kind"] == "capacity_flag"]


def test_team_when_desk_ran_then_the_lead_counts_its_gates_reviews_and_messages(write_config: Callable[..., Path],
                                                                               tmp_path: Path) -> None:
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config()), home)
    lead = _team(home)["execution_lead"]
    human = runner.invoke(app, ["team", "--home", str(home)], env={"COLUMNS": "120"})
    with Ledger.for_home(home) as ledger:
        gates = [e.payload for e in ledger.events({EventKind.GATE})]
        sent = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT})]
        deployments = len(ledger.state.deployments)
    assert lead["requests_through_the_gates"] == sum(1 for g in gates if g["gate"] == "intake") == deployments
    assert lead["deployed"] == deployments
    assert lead["refused"] == 0
    assert sum(lead["messages_sent"].values()) == len(sent)
    # people read a table: one row per figure, no Python reprs
    assert human.exit_code == 0, human.output
    assert "execution lead" in human.stdout
    assert "{" not in human.stdout
    assert "[" not in human.stdout
