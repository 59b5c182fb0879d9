"""The desk's side effects follow its committed events, exactly once: an alert's line and a message's files are
written only once their event is committed, and whatever a crash left undone is written when the desk starts
again — never twice, never something the ledger does not hold."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from execdesk.desk.effects import SideEffects, message_payload
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import AlertLevel
from execdesk.lead.liaison import Liaison
from execdesk.lead.outbox import Message, Outbox
from execdesk.monitor.alerts import Alert, AlertRouter, JsonlSink
from execdesk.store.ledger import Ledger


def _alert(i: int) -> Alert:
    return Alert(1_700_000_000 + i, AlertLevel.WARNING, "monitor", f"code_{i}", "portfolio", f"alert {i}", {"i": i})


def _desk(home: Path) -> tuple[Ledger, AlertRouter, Liaison, SideEffects]:
    ledger = Ledger.for_home(home)

    def record(alert: Alert) -> None:
        ledger.record(Event(alert.time, EventKind.ALERT_RAISED, alert.ledger_payload(), alert.deployment_id))

    router = AlertRouter([JsonlSink(home / "alerts.jsonl")], record)
    liaison = Liaison(Outbox(home / "outbox"))
    effects = SideEffects(ledger, router, liaison)
    effects.attach()
    return ledger, router, liaison, effects


def _lines(home: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (home / "alerts.jsonl").read_text().splitlines()]


def test_alert_when_raised_then_its_line_is_written_only_once_its_event_is_committed(tmp_path: Path) -> None:
    ledger, router, _liaison, effects = _desk(tmp_path)
    try:
        router.raise_(_alert(1))
        assert not (tmp_path / "alerts.jsonl").exists()  # recorded, not yet committed: nothing told
        ledger.flush()
        assert [line["id"] for line in _lines(tmp_path)] == [_alert(1).id]
    finally:
        effects.detach()
        ledger.close()


def test_effects_when_held_then_a_commit_tells_nobody_until_released_and_then_in_the_ledgers_order(
        tmp_path: Path) -> None:
    # Arrange: the loop's way: effects held (its bar's orders go to the venue between the commit and the release)
    ledger, router, liaison, effects = _desk(tmp_path)
    effects.detach()
    effects.attach(hold=True)
    message = _message()
    try:
        router.raise_(_alert(1))
        ledger.record(Event(message.time, EventKind.MESSAGE_SENT, message_payload(message, [])))
        router.raise_(_alert(2))
        # Act
        ledger.flush()
        committed_only = (tmp_path / "alerts.jsonl").exists(), liaison.outbox.paths(message)[0].exists()
        effects.release()
        # Assert
        assert committed_only == (False, False)
        assert [line["id"] for line in _lines(tmp_path)] == [_alert(1).id, _alert(2).id]
        assert liaison.outbox.paths(message)[0].read_text() == message.to_json()
        # what is held when the loop stops is carried out as it detaches
        router.raise_(_alert(3))
        ledger.flush()
        assert len(_lines(tmp_path)) == 2
    finally:
        effects.detach()
        ledger.close()
    assert [line["id"] for line in _lines(tmp_path)] == [_alert(i).id for i in (1, 2, 3)]


def test_alerts_file_when_a_crash_cut_it_short_then_the_restart_completes_it_without_a_line_twice(
        tmp_path: Path) -> None:
    # Arrange: three alerts committed; the file holds the first and half of the second (the process died writing)
    ledger, router, _liaison, effects = _desk(tmp_path)
    for i in (1, 2, 3):
        router.raise_(_alert(i))
    effects.detach()  # (the desk died before it told the sinks)
    ledger.close()
    first = json.dumps(_alert(1).to_dict())
    (tmp_path / "alerts.jsonl").write_text(first + "\n" + json.dumps(_alert(2).to_dict())[:30])
    # Act: the desk starts again, twice
    for _ in range(2):
        ledger, _router, _liaison, effects = _desk(tmp_path)
        effects.detach()
        ledger.close()
    # Assert: each alert once, in the ledger's order, the torn line gone
    assert [line["id"] for line in _lines(tmp_path)] == [_alert(i).id for i in (1, 2, 3)]


def test_alerts_file_when_its_lines_have_no_ids_then_the_restart_appends_only_later_alerts(tmp_path: Path) -> None:
    ledger, router, _liaison, effects = _desk(tmp_path)
    for i in (1, 2):
        router.raise_(_alert(i))
    effects.detach()
    ledger.close()
    old = {k: v for k, v in _alert(1).to_dict().items() if k != "id"}  # a line an older execdesk wrote
    (tmp_path / "alerts.jsonl").write_text(json.dumps(old) + "\n")
    ledger, _router, _liaison, effects = _desk(tmp_path)
    effects.detach()
    ledger.close()
    assert [line.get("code") for line in _lines(tmp_path)] == ["code_1", "code_2"]


def _message(t: int = 1_700_000_000) -> Message:
    return Message(t, "hr", "team_performance", "team", "the team did fine", {"orders": 3, "by": {"a": [1, 2]}})


def test_message_when_recorded_then_written_after_the_commit_and_rewritten_when_lost(tmp_path: Path) -> None:
    # Arrange
    ledger, _router, liaison, effects = _desk(tmp_path)
    message = _message()
    json_path, md_path = liaison.outbox.paths(message)
    files = [p.relative_to(liaison.outbox.root).as_posix() for p in (json_path, md_path)]
    try:
        # Act: the message is recorded whole
        ledger.record(Event(message.time, EventKind.MESSAGE_SENT, message_payload(message, files)))
        assert not json_path.exists()
        ledger.flush()
        # Assert: written once committed, exactly the message the ledger holds
        assert json_path.read_text() == message.to_json()
        assert md_path.read_text() == message.to_markdown()
    finally:
        effects.detach()
        ledger.close()
    # a crash lost the Markdown (or the process died before writing it): the next start writes it again
    md_path.unlink()
    ledger, _router, _liaison, effects = _desk(tmp_path)
    effects.detach()
    ledger.close()
    assert md_path.read_text() == message.to_markdown()
    assert json_path.read_text() == message.to_json()


def test_message_when_a_stray_file_holds_its_name_then_not_overwritten_and_an_alert_says_so(tmp_path: Path) -> None:
    ledger, _router, liaison, effects = _desk(tmp_path)
    message = _message()
    json_path, _md = liaison.outbox.paths(message)
    json_path.parent.mkdir(parents=True)
    json_path.write_text("something else\n")
    try:
        ledger.record(Event(message.time, EventKind.MESSAGE_SENT, message_payload(message, [])))
        ledger.flush()
        ledger.flush()  # (the alert about it is committed with the next flush)
        assert json_path.read_text() == "something else\n"
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED})]
        assert [a["code"] for a in alerts] == ["outbox_conflict"]
    finally:
        effects.detach()
        ledger.close()


@pytest.mark.parametrize("payload", [{"id": "x", "to": "hr", "kind": "team_performance", "subject": "team",
                                      "summary": "before messages were recorded whole", "files": []}])
def test_message_when_its_event_predates_whole_messages_then_nothing_is_written(tmp_path: Path,
                                                                               payload: dict[str, object]) -> None:
    ledger, _router, _liaison, effects = _desk(tmp_path)
    try:
        ledger.record(Event(1, EventKind.MESSAGE_SENT, payload))
        ledger.flush()
    finally:
        effects.detach()
        ledger.close()
    assert not (tmp_path / "outbox").exists()


def test_run_when_a_finished_desk_lost_its_side_effects_then_running_it_again_writes_them_from_the_ledger(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a finished desk whose last message files and alert lines were never written (killed after the
    # commit), and a temporary file a writer killed mid-message left (pid 2**22 + 7: no such process)
    from execdesk.desk.runner import run_desk
    from execdesk.desk.settings import load_desk_config

    config = load_desk_config(write_config())
    home = tmp_path / "h"
    run_desk(config, home)
    alerts = (home / "alerts.jsonl").read_text()
    outbox = {p: p.read_bytes() for p in sorted((home / "outbox").rglob("*")) if p.is_file()}
    assert alerts.count("\n") >= 2
    assert outbox
    (home / "alerts.jsonl").write_text(alerts.splitlines(keepends=True)[0])
    for p in outbox:
        p.unlink()
    stray = home / "outbox" / "hr" / f".20240415-000000-team_performance-x.md.{2**22 + 7}.tmp"
    stray.write_text("half a message")
    # Act: the desk has nothing left to run
    again = run_desk(config, home)
    # Assert: every line and file back, byte for byte; nothing else
    assert again.already_complete
    assert (home / "alerts.jsonl").read_text() == alerts
    assert {p: p.read_bytes() for p in sorted((home / "outbox").rglob("*")) if p.is_file()} == outbox
