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
    assert "nothing to kill" in no_desk.stderr
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
