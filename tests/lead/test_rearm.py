"""Re-arming by hand: after the circuit breaker the desk stays HALTED until a human re-arms it; then it
trades again, its ladder starting from no step and its drawdown measured from its equity then."""

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
from tests.kit import desk_running, new_token

runner = CliRunner()
SHOCK = {"at": "2024-03-20T12:00:00Z", "move": -0.35, "bars": 2}
RISK = {"risk_per_trade": 0.04, "max_position_fraction": 0.9, "staging": {"enabled": False},
        "portfolio_drawdown": {"alert": None, "reduce": None, "trim": None, "kill": 0.02},
        "deployment_drawdown": {"alert": None, "reduce": None, "trim": None, "kill": None}}


def _halted_desk(write_config: Callable[..., Path], home: Path, end: str = "2024-03-25T00:00:00Z") -> Path:
    market = {"source": "generated", "timeframe": "1h", "start": "2024-03-01T00:00:00Z", "end": end,
              "pairs": {"BTC/USDT": {"start_price": 60000, "annual_vol": 0.6, "base_volume": 20000},
                        "ETH/USDT": {"start_price": 3000, "annual_vol": 0.75, "base_volume": 300000}},
              "shocks": [SHOCK]}
    path = write_config(market=market, risk=RISK)
    run_desk(load_desk_config(path), home)
    return path


def test_rearm_when_circuit_breaker_halted_the_desk_then_it_trades_again_only_after_rearm(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk the circuit breaker halted
    home = tmp_path / "h"
    _halted_desk(write_config, home)
    with Ledger.for_home(home) as ledger:
        assert (ledger.state.trading_state.value, ledger.state.trading_reason) == ("HALTED", "circuit_breaker")
    # carrying on without a re-arm: nothing trades
    extended = _halted_desk(write_config, home, end="2024-04-05T00:00:00Z")
    with Ledger.for_home(home) as ledger:
        halted_seq = max(e.seq for e in ledger.events({EventKind.TRADING_STATE_CHANGED}))
        assert not [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.seq > halted_seq]

    # Act: a human (the desk head's lead token) re-arms it, then the desk carries on further
    head = new_token(home, "desk-head", "lead")
    result = runner.invoke(app, ["rearm", "--home", str(home), "--token", head, "--reason", "shock absorbed",
                                 "--json"])
    _halted_desk(write_config, home, end="2024-04-15T00:00:00Z")

    # Assert
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["scope"], data["lifted"]["state"], data["lifted"]["reason"]) == ("portfolio", "HALTED",
                                                                                 "circuit_breaker")
    with Ledger.for_home(home) as ledger:
        rearmed = next(iter(ledger.events({EventKind.REARMED})))
        assert (rearmed.payload["by"], rearmed.payload["reason"]) == ("desk-head", "shock absorbed")
        # the deployments the circuit breaker halted came back with the desk
        back = [e.deployment_id for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED})
                if e.payload["reason"] == "rearmed"]
        assert sorted(back) == sorted(ledger.state.deployments)
        after = [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.seq > rearmed.seq]
        assert after, "the desk trades again once re-armed"
    assert extended.exists()


def test_rearm_when_nothing_to_rearm_or_no_reason_then_exit_2_and_only_the_refusals_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config()), home)
    with Ledger.for_home(home) as ledger:
        before = ledger.state.last_seq
    active = runner.invoke(app, ["rearm", "--home", str(home), "--reason", "why"])
    unexplained = runner.invoke(app, ["rearm", "--home", str(home), "--reason", " "])
    unknown = runner.invoke(app, ["rearm", "--home", str(home), "--reason", "x", "--deployment", "X"])
    assert (active.exit_code, unexplained.exit_code, unknown.exit_code) == (2, 2, 2)
    assert "nothing to re-arm" in active.stderr
    assert "--reason (why) is required" in unexplained.stderr
    assert "no deployment 'X'" in unknown.stderr
    with Ledger.for_home(home) as ledger:  # the desk's state as it was; the two refused commands on record
        assert [e.kind.value for e in ledger.events() if e.seq > before] == ["command.refused"] * 2
        assert ledger.state.trading_state.value == "ACTIVE"


def test_rearm_when_the_desk_is_running_then_queued_and_applied_by_the_loop_at_its_next_bar(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a halted desk, "running" (its lock held)
    home = tmp_path / "h"
    _halted_desk(write_config, home)
    head = new_token(home, "desk-head", "risk")
    with desk_running(home):
        # Act
        result = runner.invoke(app, ["rearm", "--home", str(home), "--token", head, "--reason", "absorbed",
                                     "--json"])
    # Assert: nothing written by the command; the loop applies the request at its first bar and trades again
    assert result.exit_code == 0, result.output
    queued = Path(json.loads(result.stdout)["queued"])
    assert queued.is_file()
    with Ledger.for_home(home) as ledger:
        assert ledger.state.trading_state.value == "HALTED"
    _halted_desk(write_config, home, end="2024-04-15T00:00:00Z")
    assert not queued.exists()
    assert (home / "control" / "done" / queued.name).is_file()
    with Ledger.for_home(home) as ledger:
        rearmed = next(iter(ledger.events({EventKind.REARMED})))
        assert rearmed.payload["by"] == "desk-head"
        received = next(e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})
                        if e.payload["action"] == "rearm")
        assert (received["identity"]["name"], received["identity"]["role"]) == ("desk-head", "risk")
        assert rearmed.time == 1711324800 + 3600  # the close of the run's first bar (2024-03-25T00:00Z)
        back = next(e for e in ledger.events({EventKind.TRADING_STATE_CHANGED}) if e.seq > rearmed.seq)
        assert (back.payload["from"], back.payload["to"]) == ("HALTED", "ACTIVE")
        assert [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.seq > rearmed.seq]
