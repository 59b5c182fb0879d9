"""The loop tells the outside only once a bar's orders are with the venue, and never waits on a webhook: the circuit
breaker of a desk whose pager (or the Orchestrator's liaison webhook) never answers is flat in the bar it trips, its
closes sent before any sink hears of its EMERGENCY alert (or the Orchestrator of its escalation)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.lead.liaison import JsonPoster
from execdesk.lead.outbox import Outbox
from execdesk.monitor.alerts import Alert, JsonlSink, LogSink, SinkResult, WebhookSink
from execdesk.store.ledger import Ledger
from execdesk.venues.base import OrderRejected, VenueOrder
from execdesk.venues.paper import PaperVenue
from tests.desk.test_runner import _trading_events
from tests.kit import InstantWallClock

NO_LADDER = {"alert": None, "reduce": None, "trim": None, "kill": None}
# the circuit breaker alone, low enough that the small desk trips it in mid-March holding two positions
BREAKER = {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": {"enabled": False},
           "deployment_drawdown": NO_LADDER, "portfolio_drawdown": {**NO_LADDER, "kill": 0.02}}
END = "2024-03-16T00:00:00Z"  # (it trips on 2024-03-12)
# a paper venue with its own book (not rebuilt from the ledger): the ledger is committed before every send to it,
# as before every send to an exchange
LIVE_LIKE = {"kind": "paper", "fee_bps": 10, "slippage_bps": 5, "persist": True}


class Silent:
    """A loopback webhook that takes each request and never answers (until the test ends): it notes the alert's code
    (or the liaison message's kind) of each."""

    def __init__(self, seen: list[tuple[str, ...]], env: str = "EXECDESK_TEST_PAGER") -> None:
        self.release = threading.Event()
        silent = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                seen.append(("server", body["code"] if "code" in body else body["kind"]))
                silent.release.wait(120)  # no answer: the client waits for its timeout

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.env = env
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/pager-token"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def timeline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """What reached the venue and the sinks, in the order it happened (whatever the thread)."""
    seen: list[tuple[str, ...]] = []
    submit = PaperVenue.submit

    def venue_submit(self: PaperVenue, order: VenueOrder) -> VenueOrder:
        seen.append(("venue", order.client_order_id))
        return submit(self, order)

    monkeypatch.setattr(PaperVenue, "submit", venue_submit)
    submit_many = PaperVenue.submit_many

    def venue_submit_many(self: PaperVenue, orders: Iterable[VenueOrder]) -> list[VenueOrder | OrderRejected]:
        orders = list(orders)  # (the order manager's batch: each order reaches the venue in it)
        seen.extend(("venue", o.client_order_id) for o in orders)
        return submit_many(self, orders)

    monkeypatch.setattr(PaperVenue, "submit_many", venue_submit_many)
    for cls in (LogSink, JsonlSink, WebhookSink):
        def sink_send(self: Any, alert: Alert, send: Callable[[Any, Alert], SinkResult] = cls.send) -> SinkResult:
            seen.append(("sink", self.name, alert.code))
            return send(self, alert)

        monkeypatch.setattr(cls, "send", sink_send)
    post = JsonPoster.post

    def poster_post(self: JsonPoster, payload: Mapping[str, Any]) -> SinkResult:
        seen.append(("post", payload["to"], payload["kind"]))
        return post(self, payload)

    monkeypatch.setattr(JsonPoster, "post", poster_post)
    return seen


@pytest.fixture
def pager(timeline: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> Iterator[Silent]:
    server = Silent(timeline)
    monkeypatch.setenv(server.env, server.url)
    yield server
    server.close()


@pytest.fixture
def orchestrator(timeline: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> Iterator[Silent]:
    server = Silent(timeline, "EXECDESK_TEST_ORCHESTRATOR")
    monkeypatch.setenv(server.env, server.url)
    yield server
    server.close()


def _flat_at_the_breach(home: Path) -> dict[str, Any]:
    """The circuit breaker's close orders (by client order id), checked: all filled at the close of the bar the
    breach was detected at, and the desk HALTED flat then."""
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        breach = next(iter(ledger.events({EventKind.BREACH_DETECTED})))
        closes = {o.client_order_id: o for o in state.orders.values() if o.reason == "circuit_breaker"}
        halted = next(e for e in ledger.events({EventKind.TRADING_STATE_CHANGED}) if e.payload["to"] == "HALTED")
    assert closes
    assert {o.status.value for o in closes.values()} == {"FILLED"}
    assert {f.time for f in state.fills.values() if f.client_order_id in closes} == {breach.time}
    assert halted.payload["evidence"]["flat_at"] == breach.time
    assert not state.open_positions()
    return closes


def test_breaker_when_the_pager_never_answers_then_flat_in_its_bar_closes_sent_before_any_sink_and_run_not_held(
        write_config: Callable[..., Path], tmp_path: Path, timeline: list[tuple[str, ...]], pager: Silent) -> None:
    # Arrange: a live-like desk (a wall clock, so webhooks are posted; a paper venue with its own book, so the
    # ledger is committed before every send, as for an exchange) with a pager for EMERGENCY alerts that takes the
    # request and never answers: 3 attempts of 60 s each if the desk waited for it
    pager_sink = {"kind": "webhook", "url_env": "EXECDESK_TEST_PAGER", "min_level": "EMERGENCY", "timeout_s": 60,
                  "retry": {"attempts": 3}, "name": "pager"}
    desk = {"risk": BREAKER, "market__end": END, "venue": LIVE_LIKE}
    paged = load_desk_config(write_config(**desk, alerts={"sinks": [{"kind": "log"}, pager_sink],
                                                          "drain_timeout": "1s"}))
    quiet = load_desk_config(write_config(**desk))

    # Act
    run_desk(paged, tmp_path / "paged", clock=InstantWallClock())
    seen = list(timeline)
    run_desk(quiet, tmp_path / "quiet", clock=InstantWallClock())

    # Assert: the breaker tripped, its closes were filled at the breach bar's close, and the desk HALTED flat
    closes = _flat_at_the_breach(tmp_path / "paged")
    with Ledger.for_home(tmp_path / "paged") as ledger:
        failed = [e.payload for e in ledger.events({EventKind.ALERT_DELIVERY_FAILED})]
    # ... exactly as the same desk without a pager: the hanging sink changed no order, fill or time
    paged_trades = [c for c in _trading_events(tmp_path / "paged") if "alert.delivery_failed" not in c]
    assert paged_trades == _trading_events(tmp_path / "quiet")
    # the closes reached the venue before any sink heard of the EMERGENCY (the log and the file on the loop's
    # thread, the pager on the courier's)
    sent = [i for i, entry in enumerate(seen) if entry[0] == "venue" and entry[1] in closes]
    told = [i for i, entry in enumerate(seen) if entry[0] != "venue" and entry[-1] == "portfolio_drawdown_kill"]
    assert {seen[i][1] for i in told if seen[i][0] == "sink"} >= {"log:execdesk.alerts", "jsonl:alerts.jsonl"}
    assert len(sent) == len(closes)
    assert max(sent) < min(told)
    # the run did not wait for the pager's timeouts: the EMERGENCY was left to it when the desk stopped (after the
    # bounded drain) and recorded as such — not as a timeout, which would have taken three minutes
    assert [(f["code"], f["sink"]) for f in failed] == [("portfolio_drawdown_kill", "pager")]
    assert failed[0]["error"].startswith(("delivery unknown: still in flight when the desk stopped",
                                          "not sent: still queued when the desk stopped"))


def test_breaker_when_the_orchestrator_webhook_never_answers_then_flat_in_its_bar_and_trading_unchanged(
        write_config: Callable[..., Path], tmp_path: Path, timeline: list[tuple[str, ...]], orchestrator: Silent,
        caplog: pytest.LogCaptureFixture) -> None:
    # Arrange: the live-like desk, its messages to the Orchestrator posted to a webhook that takes the request and
    # never answers: 3 attempts of 60 s each per message if the desk waited for it
    hook = {"url_env": orchestrator.env, "timeout_s": 60, "retry": {"attempts": 3}}
    desk = {"risk": BREAKER, "market__end": END, "venue": LIVE_LIKE, "alerts": {"drain_timeout": "1s"}}
    posted = load_desk_config(write_config(**desk, liaison={"webhooks": {"orchestrator": hook}}))
    quiet = load_desk_config(write_config(**desk))

    # Act
    with caplog.at_level(logging.WARNING, logger="execdesk.liaison"):
        run_desk(posted, tmp_path / "posted", clock=InstantWallClock())
    seen = list(timeline)
    run_desk(quiet, tmp_path / "quiet", clock=InstantWallClock())

    # Assert: the breaker tripped, its closes were filled at the breach bar's close, and the desk HALTED flat
    closes = set(_flat_at_the_breach(tmp_path / "posted"))
    with Ledger.for_home(tmp_path / "posted") as ledger:
        messages = [e.payload for e in ledger.events({EventKind.MESSAGE_SENT})]
        failed = list(ledger.events({EventKind.ALERT_DELIVERY_FAILED}))
    # ... exactly as the same desk without the webhook: the hanging post changed no order, fill or time, and (a
    # message's post is not a ledger event) nothing else in the ledger either
    assert _trading_events(tmp_path / "posted") == _trading_events(tmp_path / "quiet")
    assert _events_after_configured(tmp_path / "posted") == _events_after_configured(tmp_path / "quiet")
    assert failed == []
    # the files are the record: every message to the Orchestrator is in the outbox, the escalation first
    kinds = [m["kind"] for m in messages if m["to"] == "orchestrator"]
    assert kinds[0] == "escalation"
    assert [m.kind for m in Outbox(tmp_path / "posted" / "outbox").list("orchestrator")] == kinds
    # the closes reached the venue before the escalation was posted; the hanging webhook got it, and the messages
    # after it waited in its queue (never tried)
    sent = [i for i, entry in enumerate(seen) if entry[0] == "venue" and entry[1] in closes]
    assert [entry for entry in seen if entry[0] == "post"] == [("post", "orchestrator", "escalation")]
    assert max(sent) < seen.index(("post", "orchestrator", "escalation"))
    assert ("server", "escalation") in seen
    # the run did not wait for the webhook's timeouts: the escalation was left to it when the desk stopped (after the
    # bounded drain), the later messages never tried — each logged as not posted, not as a timeout (three minutes)
    lines = [r.getMessage() for r in caplog.records if r.name == "execdesk.liaison"]
    assert len(lines) == len(kinds)
    assert lines[0].startswith("liaison escalation ")
    assert "delivery unknown: still in flight when the desk stopped" in lines[0]
    assert all("not sent: still queued when the desk stopped" in line for line in lines[1:])


def _events_after_configured(home: Path) -> list[str]:
    """The ledger's event contents after ``desk.configured`` (which records the config, and so its webhooks)."""
    with Ledger.for_home(home) as ledger:
        contents = [c for _seq, c, _h in ledger.event_contents()]
    return [c for c in contents if c.split("|")[1] != "desk.configured"]
