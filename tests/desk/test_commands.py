"""Requests left in HOME/control/ are validated where they enter: a file that is not a regular JSON request of a
known action is set aside in control/rejected/ with its reason and an alert, unread if it is not a regular file,
and the desk keeps running."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from execdesk.desk.commands import MAX_REQUEST_BYTES, read_request, set_aside
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.errors import InvalidInput
from execdesk.store.ledger import Ledger


@pytest.fixture
def control(tmp_path: Path) -> Path:
    folder = tmp_path / "control"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not a JSON request"),
    ("[1, 2]", "a JSON list; a request is a JSON object"),
    ('{"action": "format_disk"}', "action 'format_disk'"),
    ('{"action": "pause"', "not a JSON request"),
])
def test_read_request_when_not_a_request_then_refused_naming_why(control: Path, content: str, why: str) -> None:
    path = control / "pause-1-000.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=why):
        read_request(path, control.parent)


def test_read_request_when_a_kill_names_nobody_then_refused(control: Path) -> None:
    path = control / "kill-1.json"
    path.write_text(json.dumps({"reason": "x"}))
    with pytest.raises(InvalidInput, match="names who"):
        read_request(path, control.parent)


def test_read_request_when_larger_than_a_request_then_refused_unread(control: Path) -> None:
    path = control / "pause-1-000.json"
    path.write_bytes(b" " * (MAX_REQUEST_BYTES + 1))
    with pytest.raises(InvalidInput, match="bytes; a request is at most"):
        read_request(path, control.parent)


def test_read_request_when_a_symbolic_link_then_refused_and_its_target_not_read(control: Path, tmp_path: Path
                                                                               ) -> None:
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps({"action": "kill", "by": "x", "reason": "y"}))
    link = control / "kill-1.json"
    link.symlink_to(secret)
    with pytest.raises(InvalidInput, match="symbolic link"):
        read_request(link, control.parent)
    moved = set_aside(link, "a symbolic link")
    assert moved.is_symlink()  # the link itself moved, the target untouched
    assert secret.read_text().startswith("{")
    assert (moved.parent / (moved.name + ".error.txt")).read_text() == "a symbolic link\n"


def test_read_request_when_a_fifo_then_refused_without_blocking(control: Path) -> None:
    fifo = control / "pause-1-000.json"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_request(fifo, control.parent)


def test_running_desk_when_a_request_is_malformed_then_set_aside_with_an_alert_and_the_run_goes_on(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk run to mid-March; a malformed request and a link left for it
    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    (home / "control").mkdir(exist_ok=True)
    (home / "control" / "pause-1-000.json").write_text("{not json")
    (home / "control" / "kill-2.json").symlink_to(tmp_path / "nowhere.json")
    # Act: the desk carries on, twice
    run_desk(load_desk_config(write_config(market__end="2024-03-25T00:00:00Z")), home)
    run_desk(load_desk_config(write_config()), home)
    # Assert: both set aside with their reasons, each an alert once; the desk ran to the end, not killed
    rejected = home / "control" / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == [
        "kill-2.json", "kill-2.json.error.txt", "pause-1-000.json", "pause-1-000.json.error.txt"]
    assert "symbolic link" in (rejected / "kill-2.json.error.txt").read_text()
    with Ledger.for_home(home) as ledger:
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "request_rejected"]
        assert len(alerts) == 2
        assert ledger.state.completed
        assert ledger.state.trading_state.value == "ACTIVE"


def test_stopped_desk_when_a_command_is_refused_then_the_refusal_is_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a stopped desk with a deployment paused once
    from typer.testing import CliRunner

    from execdesk.cli import app

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    pause = ["pause", "STR-001-v1", "--home", str(home), "--by", "ana", "--reason", "hold on"]
    assert CliRunner().invoke(app, pause).exit_code == 0
    # Act: paused again, and a deployment that does not exist
    again = CliRunner().invoke(app, pause)
    unknown = CliRunner().invoke(app, ["resume", "NOPE-v1", "--home", str(home), "--by", "bo", "--reason", "go"])
    # Assert: both refused (a state that does not allow it: exit 3; an unknown deployment: exit 2) and both in the
    # ledger, who and why, with the reason they were refused
    assert (again.exit_code, unknown.exit_code) == (3, 2)
    with Ledger.for_home(home) as ledger:
        refused = [(e.deployment_id, e.payload) for e in ledger.events({EventKind.COMMAND_REFUSED})]
    assert [(d, p["action"], p["by"], p["reason"], p["exit_code"]) for d, p in refused] == [
        ("STR-001-v1", "pause", "ana", "hold on", 3), (None, "resume", "bo", "go", 2)]
    assert all(p["error"] for _d, p in refused)


# ------------------------------------------------------------------ commands carry intent and an id, applied once
def test_stopped_desk_when_the_same_command_id_comes_twice_then_applied_once(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from execdesk.api import actions

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    first = actions.lifecycle(home, "pause", "STR-001-v1", "ana", "hold on", 1, command_id="cmd-pause-1")
    again = actions.lifecycle(home, "pause", "STR-001-v1", "ana", "hold on", 2, command_id="cmd-pause-1")
    assert first["command_id"] == "cmd-pause-1"
    assert again["already_applied"] is True
    with Ledger.for_home(home) as ledger:
        received = [e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})]
        assert [(p["command_id"], p["action"]) for p in received] == [("cmd-pause-1", "pause")]
        assert not list(ledger.events({EventKind.COMMAND_REFUSED}))  # a repeat is no refusal: it was done


def test_ledger_when_two_writers_take_in_one_command_id_then_the_database_refuses_the_second(tmp_path: Path) -> None:
    # Arrange: two ledgers open on one home (what the desk lock prevents), each taking in the same command
    from execdesk.desk.commands import receive

    home = tmp_path / "h"
    first, second = Ledger.for_home(home), Ledger.for_home(home)
    try:
        assert receive(first, 10, "pause", {"command_id": "cmd-1", "by": "ana"})
        assert receive(second, 10, "pause", {"command_id": "cmd-1", "by": "bo"})  # it has not seen the first's
        first.flush()
        # Act / Assert: the database holds a command id once; nothing of the second write stays
        with pytest.raises(InvalidInput, match="written twice"):
            second.flush()
    finally:
        first.close()
        second.close(flush=False)
    with Ledger.for_home(home) as ledger:
        assert [e.payload["by"] for e in ledger.events()] == ["ana"]
        assert ledger.verify_chain() is None


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, 7, "../etc"])
def test_read_request_when_the_command_id_is_not_one_then_refused_naming_it(control: Path, bad: object) -> None:
    (control / "pause-1-000.json").write_text(json.dumps({"action": "pause", "command_id": bad}))
    with pytest.raises(InvalidInput, match="command_id"):
        read_request(control / "pause-1-000.json", control.parent)


def test_stopped_desk_when_five_pauses_come_at_once_then_one_applies_and_four_refusals_are_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from execdesk.api import actions
    from execdesk.errors import ExecdeskError

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)

    def pause(i: int) -> str:
        try:
            actions.lifecycle(home, "pause", "STR-001-v1", f"op-{i}", "hold on", 100 + i)
        except ExecdeskError as exc:
            return type(exc).__name__
        return "applied"

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(pause, range(5)))
    assert sorted(outcomes) == ["Refused"] * 4 + ["applied"]
    with Ledger.for_home(home) as ledger:
        assert len(list(ledger.events({EventKind.COMMAND_RECEIVED}))) == 1
        assert len(list(ledger.events({EventKind.COMMAND_REFUSED}))) == 4


def _deploy_cmd(home: Path, by: str) -> list[str]:
    import sys

    from tests.conftest import BUNDLES

    return [sys.executable, "-m", "execdesk.cli", "deploy", str(BUNDLES / "mean_revert_bbands.yaml"), "--home",
            str(home), "--venue", "paper", "--allocation", "0.1", "--by", by, "--json"]


def test_stopped_desk_when_two_deploys_of_one_bundle_run_at_once_then_exactly_one_deployment(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    import subprocess

    from tests.lead.test_deploy import _desk

    _config, home = _desk(write_config, tmp_path)
    procs = [subprocess.Popen(_deploy_cmd(home, by), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for by in ("ana", "bo")]
    codes = sorted(p.wait(timeout=300) for p in procs)
    # one deploys; the other, run after it (commands wait for each other), is refused by the intake gate
    assert codes == [0, 3], [p.stderr.read() for p in procs if p.stderr]
    with Ledger.for_home(home) as ledger:
        created = [e for e in ledger.events({EventKind.DEPLOYMENT_CREATED}) if e.deployment_id == "STR-002-v1"]
        assert len(created) == 1
        refused = [e.payload for e in ledger.events({EventKind.GATE}) if e.payload["outcome"] == "refused"]
        assert [(r["gate"], r["by"]) for r in refused] == [("intake", next(b for b in ("ana", "bo")
                                                                           if b != created[0].payload["by"]))]
        assert len(list(ledger.events({EventKind.COMMAND_RECEIVED}))) == 2  # both taken in, one after the other
    assert not list((home / "control").glob("*.json"))  # nobody queued behind a desk that was not running


def test_running_desk_when_two_deploys_of_one_bundle_are_queued_then_exactly_one_deployment(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from execdesk.api import actions
    from tests.conftest import BUNDLES
    from tests.kit import desk_running
    from tests.lead.test_deploy import _desk, _extend

    config, home = _desk(write_config, tmp_path)
    with desk_running(home):
        for by in ("ana", "bo"):
            actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1, allocation=0.1, by=by)
    assert len(list((home / "control").glob("deploy-*.json"))) == 2
    actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
    with Ledger.for_home(home) as ledger:
        created = [e for e in ledger.events({EventKind.DEPLOYMENT_CREATED}) if e.deployment_id == "STR-002-v1"]
        assert len(created) == 1  # the second's gates ran when the desk applied it: the same version, refused
        refused = [e.payload for e in ledger.events({EventKind.GATE}) if e.payload["outcome"] == "refused"]
        assert [r["gate"] for r in refused] == ["intake"]


def test_running_desk_when_a_queued_deploy_is_edited_then_its_gates_run_on_what_it_says_now(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a deploy queued for a running desk; then someone edits the request file
    from execdesk.api import actions
    from tests.conftest import BUNDLES
    from tests.kit import desk_running
    from tests.lead.test_deploy import _desk, _extend

    config, home = _desk(write_config, tmp_path)
    with desk_running(home):
        queued = Path(actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1, allocation=0.1,
                                     by="ana")["queued"])
        bold = dict(json.loads(queued.read_text()), allocation=5.0)
        queued.write_text(json.dumps(bold))
        # an old-style request: a plan whose gates all say "passed", carried to the desk to commit
        forged = {"gates": [{"gate": "risk", "outcome": "passed"}]}
        (home / "control" / "deploy-2-000.json").write_text(json.dumps({
            "action": "deploy", "command_id": "cmd-forged", "plan": forged}))
    # Act: the desk applies them at its next bar
    actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
    # Assert: neither deployed; each refused with its reason, an alert each; nothing of theirs committed
    with Ledger.for_home(home) as ledger:
        assert "STR-002-v1" not in ledger.state.deployments
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED})
                  if e.payload["code"] in ("request_rejected", "request_refused")]
    reasons = sorted(a["message"] for a in alerts)
    assert len(reasons) == 2, reasons
    assert "allocation 5.0; expected a fraction of equity in (0, 1]" in reasons[0] + reasons[1]
    assert all("deploy request" in r for r in reasons)
