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
