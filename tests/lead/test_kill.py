"""The manual kill switch: `execdesk kill` runs the circuit breaker's path, each step recorded; the desk
stays HALTED until re-armed by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from execdesk.cli import app
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from tests.kit import new_token

runner = CliRunner()


def test_kill_when_pulled_then_the_next_bar_runs_the_breaker_path_and_the_desk_halts_until_rearmed(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk run to mid-March, holding positions
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)

    # Act: a human (the risk manager's token) pulls the kill switch; the desk carries on
    ops = new_token(home, "ops", "risk")
    pulled = runner.invoke(app, ["kill", "--home", str(home), "--token", ops, "--reason", "exchange incident",
                                 "--json"])
    run_desk(load_desk_config(write_config()), home)

    # Assert: requested (by a human), confirmed (risk records equity), authorized (by the human), then flat and
    # HALTED, in that order; nothing traded after; the request was consumed; the Orchestrator was told
    assert pulled.exit_code == 0, pulled.output
    request = Path(json.loads(pulled.stdout)["request"])
    assert not request.exists()
    assert (request.parent / "done" / request.name).is_file()
    with Ledger.for_home(home) as ledger:
        steps = [e for e in ledger.events({EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED,
                                           EventKind.BREACH_AUTHORIZED, EventKind.TRADING_STATE_CHANGED})]
        assert [e.kind for e in steps] == [EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED,
                                           EventKind.BREACH_AUTHORIZED, EventKind.TRADING_STATE_CHANGED,
                                           EventKind.TRADING_STATE_CHANGED]
        assert (steps[0].payload["by"], steps[0].payload["by_name"], steps[0].payload["reason"]) == (
            "human", "ops", "exchange incident")
        assert steps[2].payload["by"] == "ops"
        assert steps[0].time == 1_710_892_800 + 3600  # the first bar of the carried-on run closes at 01:00
        assert (ledger.state.trading_state.value, ledger.state.trading_reason) == ("HALTED", "circuit_breaker")
        assert not ledger.state.open_positions()
        halted = steps[-1].seq
        assert not [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.seq > halted]
        escalations = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT}) if e.payload["kind"] == "escalation"]
        assert len(escalations) == 1
        received = [e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})]
        assert [(p["action"], p["identity"]["name"], p["identity"]["role"], p["identity"]["via"])
                for p in received] == [("kill", "ops", "risk", "token")]
    rearmed = runner.invoke(app, ["rearm", "--home", str(home), "--reason", "incident over"],
                            env={"EXECDESK_TOKEN": ops})
    assert rearmed.exit_code == 0, rearmed.output
    with Ledger.for_home(home) as ledger:  # the token's identity, from the environment
        assert next(iter(ledger.events({EventKind.REARMED}))).payload["by"] == "ops"


def test_kill_when_no_desk_or_no_reason_then_exit_2(tmp_path: Path) -> None:
    no_desk = runner.invoke(app, ["kill", "--home", str(tmp_path), "--reason", "x"])
    no_reason = runner.invoke(app, ["kill", "--home", str(tmp_path), "--reason", " "])
    assert (no_desk.exit_code, no_reason.exit_code) == (2, 2)
    assert "no ledger here" in no_desk.stderr
    assert "--reason (why) is required" in no_reason.stderr


def test_kill_when_a_viewer_pulls_it_then_exit_3_and_the_desk_records_the_refusal_without_killing(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk run to mid-March, holding positions
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    viewer = new_token(home, "vic", "viewer")
    # Act: a viewer pulls the kill switch; the desk carries on
    pulled = runner.invoke(app, ["kill", "--home", str(home), "--token", viewer, "--reason", "curious"])
    run_desk(load_desk_config(write_config()), home)
    # Assert: refused at once, naming the rule; the desk read the request, refused it on record, kept trading
    assert pulled.exit_code == 3, pulled.output
    assert "vic (viewer) may not kill" in " ".join(pulled.stderr.split())
    with Ledger.for_home(home) as ledger:
        refused = [e.payload for e in ledger.events({EventKind.COMMAND_REFUSED})]
        assert [(p["action"], p["identity"]["name"], p["identity"]["role"], p["exit_code"]) for p in refused] == [
            ("kill", "vic", "viewer", 3)]
        assert not list(ledger.events({EventKind.BREACH_DETECTED}))
        assert ledger.state.trading_state.value == "ACTIVE"
        assert ledger.state.completed
    assert not list((home / "control").glob("*.json"))


def test_deploy_when_the_desk_is_halted_then_the_deploy_gate_refuses_until_it_is_rearmed(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from tests.conftest import EXAMPLES

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    assert runner.invoke(app, ["kill", "--home", str(home), "--reason", "drill"]).exit_code == 0
    run_desk(load_desk_config(write_config()), home)  # the kill acted on: HALTED
    v2 = str(EXAMPLES / "next" / "trend_ema_cross_v2.yaml")

    refused = runner.invoke(app, ["deploy", v2, "--home", str(home), "--json"])
    runner.invoke(app, ["rearm", "--home", str(home), "--reason", "drill over"])
    deployed = runner.invoke(app, ["deploy", v2, "--home", str(home), "--json"])

    assert refused.exit_code == 3, refused.output
    error = json.loads(refused.stdout)["error"]["message"]
    assert "the desk is HALTED (circuit_breaker)" in error
    assert "re-arm it first" in error
    assert deployed.exit_code == 0, deployed.output
    assert json.loads(deployed.stdout)["status"] == "deployed"
    with Ledger.for_home(home) as ledger:
        gates = [(e.payload["gate"], e.payload["outcome"]) for e in ledger.events({EventKind.GATE})
                 if e.payload["deployment_id"] == "STR-001-v2"]
        assert ("deploy", "refused") in gates  # recorded, and the second request went through
        assert ledger.state.deployments["STR-001-v2"].state.value == "ACTIVE"


def test_kill_and_rearm_when_the_ledger_is_on_postgresql_then_the_desk_halts_and_is_rearmed(
        write_config: Callable[..., Path], tmp_path: Path, postgres_url: str) -> None:
    # a real PostgreSQL server on loopback (tests/postgres.py); the home keeps control/, reports, the outbox
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home, db_url=postgres_url)
    assert not (home / "ledger.sqlite").exists()

    pulled = runner.invoke(app, ["kill", "--home", str(home), "--db-url", postgres_url, "--reason", "drill"])
    run_desk(load_desk_config(write_config()), home, db_url=postgres_url)
    status = runner.invoke(app, ["status", "--home", str(home), "--db-url", postgres_url, "--json"])
    rearmed = runner.invoke(app, ["rearm", "--home", str(home), "--db-url", postgres_url, "--reason", "over"])
    after = runner.invoke(app, ["status", "--home", str(home), "--db-url", postgres_url, "--json"])

    assert pulled.exit_code == 0, pulled.output
    assert json.loads(status.stdout)["trading_state"] == "HALTED"
    assert rearmed.exit_code == 0, rearmed.output
    assert json.loads(after.stdout)["trading_state"] == "ACTIVE"
    with Ledger.open(postgres_url) as ledger:
        assert [(e.payload["by"], e.payload["reason"]) for e in ledger.events({EventKind.BREACH_DETECTED})] == [
            ("human", "drill")]
        assert [e.payload["reason"] for e in ledger.events({EventKind.REARMED})] == ["over"]
        assert ledger.verify_chain() is None


def test_commands_when_the_ledger_url_names_a_driver_not_installed_then_exit_2_naming_it(tmp_path: Path) -> None:
    url = "postgresql+psycopg2://u@127.0.0.1:1/none"  # psycopg 3 is the driver execdesk installs, not psycopg2
    for args in (["status"], ["kill", "--reason", "x"], ["rearm", "--reason", "x"], ["verify"]):
        result = runner.invoke(app, [*args, "--home", str(tmp_path), "--db-url", url])
        assert result.exit_code == 2, (args, result.output)
        line = " ".join(result.stderr.split())
        assert "its driver is not installed" in line
        assert "No module named 'psycopg2'" in line
        assert "pip install 'execdesk[postgres]'" in line
