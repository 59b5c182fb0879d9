"""Requests left in HOME/control/ are validated where they enter: a file that is not a regular JSON request of a
known action is set aside in control/rejected/ with its reason and an alert, unread if it is not a regular file,
and the desk keeps running."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from execdesk.desk.commands import MAX_REQUEST_BYTES, queue_request, read_request, set_aside, sign
from execdesk.desk.identity import local_identity
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.errors import InvalidInput
from execdesk.store.ledger import Ledger
from tests.kit import new_token, token_identity


@pytest.fixture
def control(tmp_path: Path) -> Path:
    folder = tmp_path / "control"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not a JSON request"),
    ("[1, 2]", "a JSON list; a request is a JSON object"),
    ({"action": "format_disk"}, "action 'format_disk'"),  # signed: refused for what it asks
    ('{"action": "pause"', "not a JSON request"),
    ('{"action": "pause", "identity": {"name": "ana", "role": "admin", "via": "token"}}', "not signed"),
    ({"action": "pause", "command_id": "cmd-1"}, "a request names its identity"),
    ({"action": "pause", "command_id": "cmd-1", "identity": {"name": "ana", "role": "root", "via": "token"}},
     "role: got 'root'"),
])
def test_read_request_when_not_a_request_then_refused_naming_why(control: Path, content: str | dict[str, Any],
                                                                 why: str) -> None:
    path = control / "pause-1-000.json"
    path.write_text(content if isinstance(content, str) else json.dumps(sign(control.parent, content)))
    with pytest.raises(InvalidInput, match=why):
        read_request(path, control.parent)


def test_read_request_when_a_kill_names_nobody_then_refused(control: Path) -> None:
    path = control / "kill-1-000.json"
    path.write_text(json.dumps(sign(control.parent, {"reason": "x", "identity": local_identity().as_dict()})))
    with pytest.raises(InvalidInput, match="names who"):
        read_request(path, control.parent)


def test_read_request_when_signed_then_read_and_when_altered_after_signing_then_refused(control: Path) -> None:
    # Arrange: a request as the commands leave it (signed with the home's key)
    who = local_identity().as_dict()
    path = queue_request(control.parent, "pause", 1, {"deployment": "STR-001-v1", "reason": "r", "identity": who})
    # Act / Assert: read as it is; one field changed afterwards, or signed with another key, and it is refused
    assert read_request(path, control.parent)["identity"] == who
    assert oct((control.parent / "command.key").stat().st_mode & 0o777) == "0o600"
    request = json.loads(path.read_text())
    path.write_text(json.dumps({**request, "identity": {**who, "role": "viewer"}}))
    with pytest.raises(InvalidInput, match="not signed with this home's command key"):
        read_request(path, control.parent)
    elsewhere = control.parent / "elsewhere"
    path.write_text(json.dumps(sign(elsewhere, {k: v for k, v in request.items() if k != "signature"})))
    with pytest.raises(InvalidInput, match="not signed"):
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


def test_running_desk_when_a_request_is_not_signed_then_set_aside_unapplied_and_a_signed_one_applied(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk run to mid-March, then "running" (its lock held): a pause queued by the command (signed), and
    # a pause of the other deployment written into control/ by hand, as the command would, but without the key
    from execdesk.api import actions
    from tests.kit import desk_running

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    with desk_running(home):
        queued = Path(actions.lifecycle(home, "pause", "STR-001-v1", "hold on", 1)["queued"])
        by_hand = home / "control" / "pause-1-500.json"
        by_hand.write_text(json.dumps({"action": "pause", "deployment": "STR-004-v1", "reason": "forged",
                                       "requested_at": 1, "command_id": "cmd-by-hand", "by": "admin",
                                       "identity": {"name": "admin", "role": "admin", "via": "token"}}))
    # Act: the desk carries on; its first bar reads both
    run_desk(load_desk_config(write_config(market__end="2024-03-25T00:00:00Z")), home)
    # Assert: the unsigned one set aside with its reason, unapplied, an alert; the signed one applied
    rejected = home / "control" / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == ["pause-1-500.json", "pause-1-500.json.error.txt"]
    assert "not signed" in (rejected / "pause-1-500.json.error.txt").read_text()
    assert (home / "control" / "done" / queued.name).is_file()
    with Ledger.for_home(home) as ledger:
        states = {d.id: d.state_reason for d in ledger.state.deployments.values()}
        received = [e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})]
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "request_rejected"]
    assert states["STR-001-v1"] == "paused"
    assert states["STR-004-v1"] != "paused"
    assert [(p["action"], p["identity"]["name"]) for p in received] == [("pause", local_identity().name)]
    assert [a["evidence"]["file"] for a in alerts] == ["pause-1-500.json"]
    assert "not signed" in alerts[0]["message"]


def test_stopped_desk_when_a_command_is_refused_then_the_refusal_is_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a stopped desk with a deployment paused once
    from typer.testing import CliRunner

    from execdesk.cli import app

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    ana, bo = new_token(home, "ana", "operator"), new_token(home, "bo", "lead")
    pause = ["pause", "STR-001-v1", "--home", str(home), "--token", ana, "--reason", "hold on"]
    assert CliRunner().invoke(app, pause).exit_code == 0
    # Act: paused again, and a deployment that does not exist
    again = CliRunner().invoke(app, pause)
    unknown = CliRunner().invoke(app, ["resume", "NOPE-v1", "--home", str(home), "--token", bo, "--reason", "go"])
    # Assert: both refused (a state that does not allow it: exit 3; an unknown deployment: exit 2) and both in the
    # ledger, who and why, with the reason they were refused
    assert (again.exit_code, unknown.exit_code) == (3, 2)
    with Ledger.for_home(home) as ledger:
        refused = [(e.deployment_id, e.payload) for e in ledger.events({EventKind.COMMAND_REFUSED})]
    assert [(d, p["action"], p["by"], p["identity"]["role"], p["reason"], p["exit_code"]) for d, p in refused] == [
        ("STR-001-v1", "pause", "ana", "operator", "hold on", 3), (None, "resume", "bo", "lead", "go", 2)]
    assert all(p["error"] for _d, p in refused)


# ------------------------------------------------------------------ commands carry intent and an id, applied once
def test_stopped_desk_when_the_same_command_id_comes_twice_then_applied_once(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from execdesk.api import actions

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    first = actions.lifecycle(home, "pause", "STR-001-v1", "hold on", 1, command_id="cmd-pause-1")
    again = actions.lifecycle(home, "pause", "STR-001-v1", "hold on", 2, command_id="cmd-pause-1")
    assert first["command_id"] == "cmd-pause-1"
    assert again["already_applied"] is True
    with Ledger.for_home(home) as ledger:
        received = [e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})]
        assert [(p["command_id"], p["action"], p["identity"]) for p in received] == [
            ("cmd-pause-1", "pause", local_identity().as_dict())]
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
    (control / "pause-1-000.json").write_text(json.dumps(sign(control.parent, {
        "action": "pause", "command_id": bad, "identity": local_identity().as_dict()})))
    with pytest.raises(InvalidInput, match="command_id"):
        read_request(control / "pause-1-000.json", control.parent)


def test_stopped_desk_when_five_pauses_come_at_once_then_one_applies_and_four_refusals_are_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from execdesk.api import actions
    from execdesk.errors import ExecdeskError

    home = tmp_path / "h"
    run_desk(load_desk_config(write_config(market__end="2024-03-20T00:00:00Z")), home)
    operators = [token_identity(home, f"op-{i}", "operator") for i in range(5)]

    def pause(i: int) -> str:
        try:
            actions.lifecycle(home, "pause", "STR-001-v1", "hold on", 100 + i, identity=operators[i])
        except ExecdeskError as exc:
            return type(exc).__name__
        return "applied"

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(pause, range(5)))
    assert sorted(outcomes) == ["Refused"] * 4 + ["applied"]
    with Ledger.for_home(home) as ledger:
        received = [e.payload["by"] for e in ledger.events({EventKind.COMMAND_RECEIVED})]
        refused = [e.payload["by"] for e in ledger.events({EventKind.COMMAND_REFUSED})]
    assert len(received) == 1
    assert len(refused) == 4
    assert sorted(received + refused) == [f"op-{i}" for i in range(5)]  # each under its own identity


def _deploy_cmd(home: Path, token: str) -> list[str]:
    import sys

    from tests.conftest import BUNDLES

    return [sys.executable, "-m", "execdesk.cli", "deploy", str(BUNDLES / "mean_revert_bbands.yaml"), "--home",
            str(home), "--venue", "paper", "--allocation", "0.1", "--token", token, "--json"]


def test_stopped_desk_when_two_deploys_of_one_bundle_run_at_once_then_exactly_one_deployment(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    import subprocess

    from tests.lead.test_deploy import _desk

    _config, home = _desk(write_config, tmp_path)
    procs = [subprocess.Popen(_deploy_cmd(home, new_token(home, by, "operator")), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for by in ("ana", "bo")]
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
            actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1, allocation=0.1,
                           identity=token_identity(home, by, "operator"))
    assert len(list((home / "control").glob("deploy-*.json"))) == 2
    actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
    with Ledger.for_home(home) as ledger:
        created = [e for e in ledger.events({EventKind.DEPLOYMENT_CREATED}) if e.deployment_id == "STR-002-v1"]
        assert len(created) == 1  # the second's gates ran when the desk applied it: the same version, refused
        refused = [e.payload for e in ledger.events({EventKind.GATE}) if e.payload["outcome"] == "refused"]
        assert [(r["gate"], r["by"]) for r in refused] == [("intake", "bo")]  # the second, applied in order
        assert created[0].payload["by"] == "ana"


def test_running_desk_when_a_queued_deploy_is_edited_then_its_gates_run_on_what_it_says_now(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: two deploys queued for a running desk; then their request files are edited
    from execdesk.api import actions
    from tests.conftest import BUNDLES
    from tests.kit import desk_running
    from tests.lead.test_deploy import _desk, _extend

    config, home = _desk(write_config, tmp_path)
    with desk_running(home):
        queued = [Path(actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1, allocation=0.1)["queued"])
                  for _ in range(2)]
        # edited by someone without the home's key: its signature no longer holds
        queued[0].write_text(json.dumps(dict(json.loads(queued[0].read_text()), allocation=5.0)))
        # edited and signed again by a process holding the key: the gates run on what it says now
        queued[1].write_text(json.dumps(sign(home, dict(json.loads(queued[1].read_text()), allocation=5.0))))
        # an old-style request: a plan whose gates all say "passed", carried to the desk to commit (signed)
        forged = {"gates": [{"gate": "risk", "outcome": "passed"}]}
        (home / "control" / "deploy-2-000.json").write_text(json.dumps(sign(home, {
            "action": "deploy", "command_id": "cmd-forged", "identity": local_identity().as_dict(), "plan": forged})))
    # Act: the desk applies them at its next bar
    actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
    # Assert: none deployed; each set aside or refused with its reason, an alert each; nothing of theirs committed
    with Ledger.for_home(home) as ledger:
        assert "STR-002-v1" not in ledger.state.deployments
        alerts = {e.payload["evidence"].get("file") or e.payload["evidence"]["request"]["command_id"]: e.payload
                  for e in ledger.events({EventKind.ALERT_RAISED})
                  if e.payload["code"] in ("request_rejected", "request_refused")}
        refused = [e.payload for e in ledger.events({EventKind.COMMAND_REFUSED})]
    first, second = queued[0].name, json.loads((home / "control" / "done" / queued[1].name).read_text())
    assert sorted(alerts) == sorted([first, second["command_id"], "cmd-forged"]), alerts
    assert alerts[first]["code"] == "request_rejected"
    assert "not signed with this home's command key" in alerts[first]["message"]
    assert (home / "control" / "rejected" / first).is_file()
    assert "allocation 5.0; expected a fraction of equity in (0, 1]" in alerts[second["command_id"]]["message"]
    assert all("deploy request" in alerts[c]["message"] for c in (second["command_id"], "cmd-forged"))
    assert sorted(r["command_id"] for r in refused) == sorted([second["command_id"], "cmd-forged"])


# ------------------------------------------------------------------ a stopped desk's messages reach their webhook
class Hook:
    """A loopback webhook: answers each POST with the next status of ``statuses`` (then 200), keeps what it got."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.received.append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orchestrator-T0KEN"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HOOK_ENV = "EXECDESK_TEST_ORCHESTRATOR_HOOK"
#: a desk whose every deploy waits for a human, its messages to the Orchestrator posted to a webhook (one attempt)
APPROVALS = {"lead": {"approve_all": True},
             "liaison": {"webhooks": {"orchestrator": {"url_env": HOOK_ENV, "timeout_s": 5, "retry": {"attempts": 1}}}}}


def _posts(home: Path) -> list[tuple[str, dict[str, Any]]]:
    with Ledger.for_home(home) as ledger:
        return [(e.kind.value, e.payload) for e in ledger.events({EventKind.MESSAGE_POSTED,
                                                                  EventKind.MESSAGE_POST_FAILED})]


def test_stopped_desk_when_a_deploy_waits_for_approval_then_its_decision_request_is_posted_to_the_orchestrator(
        write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: a stopped desk (no loop runs to post its messages) and the Orchestrator's webhook
    from execdesk.api import actions
    from tests.conftest import BUNDLES
    from tests.lead.test_deploy import _desk

    _config, home = _desk(write_config, tmp_path, **APPROVALS)
    hook = Hook()
    monkeypatch.setenv(HOOK_ENV, hook.url)
    try:
        # Act: the command is applied by the CLI's process to the ledger directly
        pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1_900_000_000, allocation=0.1)
    finally:
        hook.close()

    # Assert: the decision request was posted, once, as the outbox holds it; the post is recorded
    assert pending["status"] == "pending_approval"
    (posted,) = hook.received
    assert (posted["kind"], posted["to"], posted["request_id"]) == ("decision_request", "orchestrator",
                                                                    pending["approval_request"])
    assert posted["body"]["evidence"]["request_id"] == pending["request_id"]
    assert len(list((home / "outbox" / "orchestrator").glob(f"*-decision_request-{posted['id'][:8]}.json"))) == 1
    assert [(k, p["id"], p["sink"].endswith("/***")) for k, p in _posts(home)] == [
        ("lead.message_posted", posted["id"], True)]
    assert actions.status(home)["unposted_messages"] == []


def test_stopped_desk_when_the_orchestrators_webhook_fails_then_recorded_and_posted_when_the_desk_starts(
        write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: the webhook answers 503 to the command's post
    from execdesk.api import actions
    from tests.conftest import BUNDLES
    from tests.lead.test_deploy import _desk, _extend

    config, home = _desk(write_config, tmp_path, **APPROVALS)
    hook = Hook(statuses=(503,))
    monkeypatch.setenv(HOOK_ENV, hook.url)
    try:
        # Act: the deploy's decision request cannot be posted; then the desk starts again (carried on five days),
        # then runs once more
        pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1_900_000_000, allocation=0.1)
        failed = _posts(home)
        unposted = actions.status(home)["unposted_messages"]
        actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
        actions.run_config(_extend(config, "2024-03-26T00:00:00Z"), home, report=False)
    finally:
        hook.close()

    # Assert: the command's failed post was recorded (nothing lost: the message and its files are there) ...
    assert pending["status"] == "pending_approval"
    ((kind, failure),) = failed
    assert kind == "lead.message_post_failed"
    assert (failure["status"], failure["kind"], failure["to"], failure["retry"]) == (
        503, "decision_request", "orchestrator", False)
    assert "orchestrator-T0KEN" not in json.dumps(failure)  # the URL's secret path is never recorded
    assert [(m["id"], m["kind"]) for m in unposted] == [(failure["id"], "decision_request")]
    # ... and posted when the desk started, once: the next start has nothing left to post
    (posted,) = hook.received
    assert (posted["id"], posted["request_id"]) == (failure["id"], pending["approval_request"])
    assert [(k, p["retry"]) for k, p in _posts(home)] == [("lead.message_post_failed", False),
                                                        ("lead.message_posted", True)]
    assert actions.status(home)["unposted_messages"] == []


def test_stopped_desk_when_the_webhooks_variable_is_not_set_then_the_deploy_goes_on_and_the_post_waits(
        write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from execdesk.api import actions
    from tests.conftest import BUNDLES
    from tests.lead.test_deploy import _desk

    _config, home = _desk(write_config, tmp_path, **APPROVALS)
    monkeypatch.delenv(HOOK_ENV, raising=False)

    pending = actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "paper", 1_900_000_000, allocation=0.1)

    assert pending["status"] == "pending_approval"
    ((kind, failure),) = _posts(home)
    assert kind == "lead.message_post_failed"
    assert f"environment variable {HOOK_ENV} is not set" in failure["error"]
    assert [m["id"] for m in actions.status(home)["unposted_messages"]] == [failure["id"]]
