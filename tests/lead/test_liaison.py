"""The liaison: outbox files (JSON + Markdown), decision requests, the bundle inbox, webhook posting."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from execdesk.errors import InvalidInput
from execdesk.lead.inbox import Inbox
from execdesk.lead.liaison import JsonPoster, LiaisonConfig, LiaisonCourier, build_liaison, post_json
from execdesk.lead.outbox import AlreadyAnswered, DecisionRequests, Message, Outbox, OutboxConflict
from execdesk.retry import RetryPolicy
from tests.conftest import BUNDLES

T0 = 1_717_200_000  # 2024-06-01T00:00:00Z


def _feedback(time: int = T0, subject: str = "trend_ema_cross#1", **body: Any) -> Message:
    return Message(time, "validation", "live_feedback", subject, "live Sharpe 0.8 vs backtest 1.4",
                   body or {"sharpe_live": 0.8, "sharpe_backtest": 1.4, "pnl": Decimal("12.50"),
                            "trades": 14, "daily": [0.1, -0.2]})


def _no_sleep(_s: float) -> None:
    return None


# ---------------------------------------------------------------------------------------- messages


def test_send_when_new_message_then_json_and_md_with_exact_names(tmp_path: Path) -> None:
    # Arrange
    outbox = Outbox(tmp_path)
    message = _feedback()
    # Act
    json_path, md_path = outbox.send(message)
    # Assert
    stem = f"20240601-000000-live_feedback-{message.id[:8]}"
    assert json_path == tmp_path / "validation" / f"{stem}.json"
    assert md_path == tmp_path / "validation" / f"{stem}.md"
    data = json.loads(json_path.read_text())
    assert data["id"] == message.id
    assert data["time"] == T0
    assert data["to"] == "validation"
    assert data["body"]["pnl"] == "12.50"  # Decimal kept exact as text
    md = md_path.read_text()
    assert md.startswith("# Live feedback: trend_ema_cross#1")
    assert "| sharpe_live | 0.8 |" in md
    assert "| pnl | 12.50 |" in md
    assert "```json\n" in md
    assert '"daily": [' in md
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["validation", json_path.name, md_path.name])


def test_message_id_when_same_kind_subject_time_then_same_id_else_different() -> None:
    assert _feedback().id == _feedback().id
    assert _feedback().id != _feedback(time=T0 + 1).id
    assert _feedback().id != _feedback(subject="other").id


def test_send_when_sent_twice_then_no_op_returning_same_paths(tmp_path: Path) -> None:
    # Arrange
    outbox = Outbox(tmp_path)
    first = outbox.send(_feedback())
    before = {p: p.stat().st_mtime_ns for p in first}
    # Act
    second = outbox.send(_feedback())
    written = outbox.write(_feedback())
    # Assert
    assert second == first
    assert not written.created
    assert {p: p.stat().st_mtime_ns for p in second} == before
    assert len(list((tmp_path / "validation").iterdir())) == 2


def test_send_when_different_file_at_path_then_conflict_and_nothing_overwritten(tmp_path: Path) -> None:
    # Arrange
    outbox = Outbox(tmp_path)
    json_path, _md = outbox.paths(_feedback())
    json_path.parent.mkdir(parents=True)
    json_path.write_text("someone else's file\n")
    # Act / Assert
    with pytest.raises(OutboxConflict, match="different content"):
        outbox.send(_feedback())
    assert json_path.read_text() == "someone else's file\n"


def test_send_when_same_id_but_changed_body_then_conflict(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.send(_feedback())
    with pytest.raises(OutboxConflict):
        outbox.send(_feedback(sharpe_live=0.1))


def test_list_when_messages_sent_out_of_order_then_time_order_and_filters(tmp_path: Path) -> None:
    # Arrange
    outbox = Outbox(tmp_path)
    late = _feedback(time=T0 + 3600)
    status = Message(T0 + 60, "orchestrator", "portfolio_status", "portfolio", "equity 50,120", {"equity": 50120})
    flag = Message(T0, "hr", "capacity_flag", "risk_manager", "retries doubled", {"retries": 12})
    early = _feedback(time=T0 - 60)
    for m in (late, status, flag, early):
        outbox.send(m)
    # Act / Assert
    assert [m.id for m in outbox.list()] == [early.id, flag.id, status.id, late.id]
    assert outbox.list(to="validation") == [early, late]
    assert outbox.list(kind="capacity_flag") == [flag]
    assert outbox.list(to="hr", kind="live_feedback") == []


def test_message_when_kind_and_recipient_disagree_then_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="goes to validation"):
        Message(T0, "hr", "live_feedback", "x", "y")
    with pytest.raises(InvalidInput, match="kind"):
        Message(T0, "hr", "gossip", "x", "y")
    with pytest.raises(InvalidInput, match="one non-empty line"):
        Message(T0, "hr", "capacity_flag", "x", "two\nlines")
    with pytest.raises(InvalidInput, match=r"body\.when"):
        Message(T0, "hr", "capacity_flag", "x", "y", {"when": object()})


def test_message_when_non_finite_float_then_text_in_json() -> None:
    message = Message(T0, "hr", "team_performance", "risk_manager", "week", {"sharpe": float("nan")})
    assert json.loads(message.to_json())["body"]["sharpe"] == "NaN"


# --------------------------------------------------------------------------------------- decisions


def test_decision_request_when_answered_then_not_pending_and_answer_recorded(tmp_path: Path) -> None:
    # Arrange
    outbox = Outbox(tmp_path)
    decisions = DecisionRequests(outbox)
    request_id = decisions.request(T0, "portfolio", "Flatten everything?", {"drawdown": 0.19})
    # Act
    pending_before = [m.request_id for m in decisions.pending()]
    answer = decisions.answer(request_id, "approve", "orchestrator", T0 + 120)
    # Assert
    assert pending_before == [request_id]
    assert decisions.pending() == []
    assert decisions.answer_of(request_id) == answer
    saved = json.loads((tmp_path / "decisions" / f"{request_id}.json").read_text())
    assert saved["decision"] == "approve"
    assert saved["by"] == "orchestrator"
    assert saved["time"] == T0 + 120
    md = next((tmp_path / "orchestrator").glob("*-decision_request-*.md")).read_text()
    assert f"execdesk approve {request_id}" in md
    assert f"execdesk deny {request_id}" in md


def test_decision_request_when_asked_again_then_same_id_and_one_file(tmp_path: Path) -> None:
    decisions = DecisionRequests(Outbox(tmp_path))
    first = decisions.request(T0, "portfolio", "Flatten everything?", {"drawdown": 0.19})
    again = decisions.request(T0, "portfolio", "Flatten everything?", {"drawdown": 0.19})
    other = decisions.request(T0, "portfolio", "Halt new entries?", {"drawdown": 0.19})
    assert first == again != other
    assert len(list((tmp_path / "orchestrator").glob("*.json"))) == 2


def test_answer_when_answered_twice_then_error_naming_first_answer(tmp_path: Path) -> None:
    # Arrange
    decisions = DecisionRequests(Outbox(tmp_path))
    request_id = decisions.request(T0, "dep-7", "Remove dep-7?", {"losing_periods": 3})
    decisions.answer(request_id, "deny", "alice", T0 + 10)
    # Act / Assert
    with pytest.raises(AlreadyAnswered, match=r"already answered 'deny' by alice at 2024-06-01T00:00:10Z"):
        decisions.answer(request_id, "approve", "bob", T0 + 20)
    assert decisions.answer_of(request_id) is not None
    assert decisions.answer_of(request_id).decision == "deny"  # type: ignore[union-attr]


def test_answer_when_unknown_request_or_option_then_invalid_input(tmp_path: Path) -> None:
    decisions = DecisionRequests(Outbox(tmp_path))
    request_id = decisions.request(T0, "dep-7", "Remove dep-7?", {})
    with pytest.raises(InvalidInput, match="no such decision request"):
        decisions.answer("dr-000000000000", "approve", "alice", T0)
    with pytest.raises(InvalidInput, match="expected dr-"):
        decisions.answer("../../etc/passwd", "approve", "alice", T0)
    with pytest.raises(InvalidInput, match="approve, deny"):
        decisions.answer(request_id, "maybe", "alice", T0)
    assert [m.request_id for m in decisions.pending()] == [request_id]


# ------------------------------------------------------------------------------------------- inbox


def test_inbox_when_valid_and_broken_bundles_then_taken_and_rejected_with_reason(tmp_path: Path) -> None:
    # Arrange
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    shutil.copy(BUNDLES / "trend_ema_cross.yaml", inbox_dir / "b_trend.yaml")
    (inbox_dir / "a_broken.yaml").write_text("name: broken\nthis is: [not a bundle\n")
    (inbox_dir / "notes.txt").write_text("left alone")
    inbox = Inbox(inbox_dir)
    # Act
    entries = inbox.take_all()
    # Assert
    assert [(e.name, e.ok) for e in entries] == [("a_broken.yaml", False), ("b_trend.yaml", True)]
    assert entries[1].path == inbox_dir / "taken" / "b_trend.yaml"
    assert (inbox_dir / "taken" / "b_trend.yaml").read_bytes() == (BUNDLES / "trend_ema_cross.yaml").read_bytes()
    assert (inbox_dir / "rejected" / "a_broken.yaml").exists()
    reason = (inbox_dir / "rejected" / "a_broken.yaml.error.txt").read_text()
    assert "a_broken.yaml" in reason
    assert reason.strip() == entries[0].error
    assert sorted(p.name for p in inbox_dir.iterdir()) == ["notes.txt", "rejected", "taken"]
    assert inbox.take() == []


def test_inbox_when_name_already_taken_then_numeric_suffix_and_nothing_lost(tmp_path: Path) -> None:
    # Arrange
    inbox = Inbox(tmp_path)
    shutil.copy(BUNDLES / "trend_ema_cross.yaml", tmp_path / "trend.yaml")
    first = inbox.take()
    shutil.copy(BUNDLES / "breakout_4h.yaml", tmp_path / "trend.yaml")
    # Act
    second = inbox.take()
    # Assert
    assert first == [tmp_path / "taken" / "trend.yaml"]
    assert second == [tmp_path / "taken" / "trend.1.yaml"]
    assert (tmp_path / "taken" / "trend.yaml").read_bytes() == (BUNDLES / "trend_ema_cross.yaml").read_bytes()
    assert (tmp_path / "taken" / "trend.1.yaml").read_bytes() == (BUNDLES / "breakout_4h.yaml").read_bytes()


def test_inbox_when_bundle_folder_then_moved_whole(tmp_path: Path) -> None:
    folder = tmp_path / "trend_folder"
    folder.mkdir()
    shutil.copy(BUNDLES / "trend_ema_cross.yaml", folder / "bundle.yaml")
    assert Inbox(tmp_path).take() == [tmp_path / "taken" / "trend_folder"]
    assert (tmp_path / "taken" / "trend_folder" / "bundle.yaml").is_file()


# ---------------------------------------------------------------------------------------- webhooks

SECRET_PATH = "/hooks/T0KEN-s3cret-value"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}", received
    finally:
        server.shutdown()
        server.server_close()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


def test_liaison_when_webhook_configured_then_loopback_server_receives_json(
        tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    # Arrange
    url, received = receiver
    config = LiaisonConfig.model_validate({"webhooks": {"validation": {"url_env": "EXECDESK_VALIDATION_HOOK"}}})
    liaison = build_liaison(config, tmp_path, {"EXECDESK_VALIDATION_HOOK": url}, sleep=_no_sleep)
    # Act
    sent = liaison.send(_feedback())
    again = liaison.send(_feedback())
    # Assert
    assert sent.delivery is not None
    assert sent.delivery.ok
    assert sent.delivery.status == 200
    assert again.delivery is None  # already written: not posted twice
    assert len(received) == 1
    assert received[0]["id"] == _feedback().id
    assert received[0]["body"]["trades"] == 14
    assert received[0]["text"].startswith("[live_feedback] trend_ema_cross#1")
    assert SECRET_PATH not in repr(liaison.posters["validation"]) + sent.delivery.sink


def test_post_json_when_dead_url_then_failed_delivery_redacted_and_not_raised(caplog: pytest.LogCaptureFixture,
                                                                             tmp_path: Path) -> None:
    # Arrange
    url = _dead_url()
    retry = RetryPolicy(attempts=2, sleep=_no_sleep)
    liaison = build_liaison(LiaisonConfig.model_validate({"webhooks": {"hr": {"url_env": "HOOK"}}}), tmp_path,
                            {"HOOK": url}, sleep=_no_sleep)
    # Act
    result = post_json(url, {"hello": "world"}, retry, timeout_s=1.0)
    with caplog.at_level(logging.DEBUG):
        sent = liaison.send(Message(T0, "hr", "capacity_flag", "risk_manager", "retries doubled", {"n": 12}))
    # Assert
    assert not result.ok
    assert result.attempts == 2
    assert result.error
    assert sent.delivery is not None
    assert not sent.delivery.ok
    assert sent.written.json_path.exists()  # the file is written whatever the webhook does
    texts = [result.error, result.sink, sent.delivery.error or "", sent.delivery.sink, caplog.text]
    assert "not posted" in caplog.text
    for text in texts:
        assert "T0KEN" not in text
        assert "/hooks" not in text


@pytest.fixture
def silent() -> Iterator[tuple[str, threading.Event]]:
    """A loopback webhook that takes each request and never answers (until the test ends): its URL, and an event
    set when it has a request."""
    got, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.set()
            release.wait(120)  # no answer: the client waits for its timeout

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}", got
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def _escalation(time: int = T0) -> Message:
    return Message(time, "orchestrator", "escalation", "portfolio", "circuit breaker: close everything",
                   {"drawdown": 0.021, "limit": 0.02})


def test_liaison_when_courier_and_webhook_hangs_then_send_returns_at_once_and_the_drain_reports_what_is_left(
        tmp_path: Path, silent: tuple[str, threading.Event], receiver: tuple[str, list[dict[str, Any]]],
        caplog: pytest.LogCaptureFixture) -> None:
    # Arrange: the Orchestrator's webhook takes the request and never answers (3 attempts of 60 s if waited for);
    # Validation's answers
    hanging, got = silent
    url, received = receiver
    config = LiaisonConfig.model_validate({"webhooks": {
        "orchestrator": {"url_env": "ORCH_HOOK", "timeout_s": 60, "retry": {"attempts": 3}},
        "validation": {"url_env": "VALIDATION_HOOK"}}})
    courier = LiaisonCourier(drain_timeout_s=0)
    liaison = build_liaison(config, tmp_path, {"ORCH_HOOK": hanging, "VALIDATION_HOOK": url}, sleep=_no_sleep,
                            courier=courier)
    # Act: the escalation, then a second message to the same recipient, then one to another
    first = liaison.send(_escalation())
    # Assert: send returned with the files written and the post queued, not made
    assert first.queued
    assert first.delivery is None
    assert first.written.created
    assert first.written.json_path.exists()
    assert got.wait(30)  # (the worker has posted it: in flight at the hanging server)
    second = liaison.send(_escalation(T0 + 60))
    feedback = liaison.send(_feedback())
    assert second.queued
    assert second.written.json_path.exists()
    assert feedback.queued
    # the hanging webhook holds only its recipient's queue: Validation's post comes back, the Orchestrator's do not
    done: list[tuple[Message, Any]] = []
    deadline = time.monotonic() + 30
    while not done and time.monotonic() < deadline:
        done += liaison.collect()
        time.sleep(0.005)
    assert [(m.kind, r.ok, r.status) for m, r in done] == [("live_feedback", True, 200)]
    assert [m["kind"] for m in received] == ["live_feedback"]
    assert courier.pending == 2
    # Act: the caller stops (a drain of 0 s)
    with caplog.at_level(logging.WARNING, logger="execdesk.liaison"):
        left = liaison.close_courier()
    # Assert: nothing dropped without a word — the one in flight (it may yet arrive), the one never tried; logged
    assert [(m.id, r.ok, r.attempts) for m, r in left] == [(first.message.id, False, 1), (second.message.id, False, 0)]
    assert (left[0][1].error or "").startswith("delivery unknown: still in flight when the desk stopped")
    assert (left[1][1].error or "").startswith("not sent: still queued when the desk stopped")
    lines = [r.getMessage() for r in caplog.records if r.name == "execdesk.liaison"]
    assert len(lines) == 2
    assert all(line.startswith("liaison escalation ") and " to orchestrator not posted by " in line for line in lines)
    assert "T0KEN" not in caplog.text
    assert (courier.stats.queued, courier.stats.delivered, courier.stats.left, courier.pending) == (3, 1, 2, 0)
    # the files are the record: both escalations are in the outbox
    assert [m.id for m in Outbox(tmp_path).list("orchestrator")] == [first.message.id, second.message.id]


def test_liaison_when_courier_and_message_already_written_then_nothing_queued(
        tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    config = LiaisonConfig.model_validate({"webhooks": {"validation": {"url_env": "VALIDATION_HOOK"}}})
    courier = LiaisonCourier(drain_timeout_s=30)
    liaison = build_liaison(config, tmp_path, {"VALIDATION_HOOK": url}, sleep=_no_sleep, courier=courier)
    liaison.send(_feedback())
    again = liaison.send(_feedback())
    done = liaison.close_courier()
    assert not again.queued
    assert again.delivery is None
    assert [(m.kind, r.ok) for m, r in done] == [("live_feedback", True)]
    assert len(received) == 1
    assert courier.stats.queued == 1


def test_build_liaison_when_env_missing_or_url_inline_then_error_without_secret(tmp_path: Path) -> None:
    config = LiaisonConfig.model_validate({"webhooks": {"hr": {"url_env": "MISSING_HOOK"}}})
    with pytest.raises(InvalidInput, match="MISSING_HOOK is not set"):
        build_liaison(config, tmp_path, {})
    assert build_liaison(config, tmp_path, {}, webhooks=False).posters == {}
    with pytest.raises(ValueError, match="url") as info:
        LiaisonConfig.model_validate({"webhooks": {"hr": {"url_env": "X", "url": "https://h.example/T0KEN"}}})
    assert "T0KEN" not in str(info.value)


def test_build_liaison_when_missing_ok_and_a_variable_is_unset_or_no_url_then_its_posts_fail_saying_why(
        tmp_path: Path) -> None:
    # Arrange: a command's liaison (a stopped desk): what it cannot post to is a failure to record, not an error
    config = LiaisonConfig.model_validate({"webhooks": {"hr": {"url_env": "MISSING_HOOK"},
                                                        "orchestrator": {"url_env": "NOT_A_URL"}}})
    liaison = build_liaison(config, tmp_path, {"NOT_A_URL": "ftp://h.example/T0KEN"}, missing_ok=True)
    message = Message(T0, "hr", "capacity_flag", "monitor", "saturated", {"flag": "x"})

    # Act
    sent = liaison.send(message)
    orchestrator = liaison.posters["orchestrator"].post({})

    # Assert: the files are written; each post fails with its reason, the URL's secret never in it
    assert sent.written.created
    assert sent.delivery is not None
    assert (sent.delivery.ok, sent.delivery.attempts) == (False, 0)
    assert "MISSING_HOOK is not set" in str(sent.delivery.error)
    assert not orchestrator.ok
    assert "NOT_A_URL does not hold an http(s) URL" in str(orchestrator.error)
    assert "T0KEN" not in str(orchestrator.error)


def test_liaison_post_when_the_files_are_written_already_then_posted_again_and_no_webhook_is_none(
        tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]) -> None:
    # Arrange: a message sent (files written, posted) whose post is to be tried again
    url, received = receiver
    config = LiaisonConfig.model_validate({"webhooks": {"validation": {"url_env": "EXECDESK_VALIDATION_HOOK"}}})
    liaison = build_liaison(config, tmp_path, {"EXECDESK_VALIDATION_HOOK": url}, sleep=_no_sleep)
    liaison.send(_feedback())

    # Act
    again = liaison.post(_feedback())
    nobody = liaison.post(Message(T0, "hr", "capacity_flag", "monitor", "saturated", {"flag": "x"}))

    # Assert: posted again under the same id (the recipient tells the repeat by it); HR has no webhook
    assert again is not None
    assert again.ok
    assert [r["id"] for r in received] == [_feedback().id, _feedback().id]
    assert nobody is None


def test_json_poster_when_bad_url_then_invalid_input_redacted() -> None:
    with pytest.raises(InvalidInput) as info:
        JsonPoster("ftp://h.example/T0KEN")
    assert "T0KEN" not in str(info.value)
    assert not post_json("ftp://h.example/T0KEN", {}).ok


def test_inbox_when_an_entry_links_to_a_file_outside_then_rejected_unread(tmp_path: Path) -> None:
    # Arrange: a "bundle" that is a link to a secret outside the inbox, and a FIFO
    from execdesk.lead.inbox import Inbox

    secret = tmp_path / "shadow"
    secret.write_text("root:secret-hash:19000:0:99999:7:::\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "linked.yaml").symlink_to(secret)
    os.mkfifo(inbox / "pipe.yaml")
    # Act
    entries = {e.name: e for e in Inbox(inbox).take_all()}
    # Assert: both rejected with their reason; nothing of the secret anywhere in the inbox; the secret untouched
    assert "symbolic link" in (entries["linked.yaml"].error or "")
    assert "not a regular file" in (entries["pipe.yaml"].error or "")
    written = "".join(p.read_text() for p in (inbox / "rejected").glob("*.error.txt"))
    assert "secret-hash" not in written
    assert (inbox / "rejected" / "linked.yaml").is_symlink()
    assert secret.read_text().startswith("root:")
