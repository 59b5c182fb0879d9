"""Alerts: escalation routing, de-duplication, the sinks (a real loopback HTTP server), redaction, config."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from execdesk.domain.types import AlertLevel
from execdesk.errors import InvalidInput
from execdesk.monitor.alerts import (
    DRAIN_TIMEOUT_S,
    Alert,
    AlertCourier,
    AlertRouter,
    AlertsConfig,
    AlertSink,
    EscalationTable,
    JsonlSink,
    LogSink,
    SinkResult,
    WebhookSink,
    build_router,
    format_discord,
    format_slack,
    format_telegram,
    redact_url,
    telegram_escape,
)
from execdesk.retry import RetryPolicy

INFO, WARNING, CRITICAL, EMERGENCY = AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.CRITICAL, AlertLevel.EMERGENCY
T0 = 1_720_000_000  # 2024-07-03T09:46:40Z
SECRET = "T0001/B0002/s3cr3tT0k3nXYZ"


def alert(level: AlertLevel = WARNING, code: str = "sharpe_drift", scope: str = "trend_ema_cross", t: int = T0,
          message: str = "live Sharpe below backtest") -> Alert:
    return Alert(t, level, "monitor", code, scope, message, {"live_sharpe": 0.4})


SAMPLE = Alert(T0, CRITICAL, "monitor", "sharpe_drift", "trend_ema_cross",
               "Sharpe 0.4 < 1.1 (backtest) & falling: <check>", {"live_sharpe": 0.4, "backtest_sharpe": 1.1})


class Collect(AlertSink):
    """A sink that keeps what it is sent."""

    def __init__(self, name: str, min_level: AlertLevel = INFO, audience: set[str] | None = None) -> None:
        super().__init__(min_level, audience)
        self.name = name
        self.got: list[Alert] = []

    def send(self, alert: Alert) -> SinkResult:
        self.got.append(alert)
        return SinkResult(self.name, True)


class Boom(AlertSink):
    name = "boom"

    def send(self, alert: Alert) -> SinkResult:
        raise RuntimeError("sink exploded")


# ------------------------------------------------------------------------------------- escalation


def test_escalation_when_each_level_raised_then_sinks_reached_by_who_is_told() -> None:
    # Arrange: the desk's own record, a channel per role, and a pager for the human on call
    record = Collect("record")
    lead, risk, pager = (Collect("lead", audience={"execution_lead"}), Collect("risk", audience={"risk_manager"}),
                         Collect("pager", audience={"on_call"}))
    router = AlertRouter([record, lead, risk, pager], record=lambda a: None)
    # Act
    deliveries = {lv: router.raise_(alert(lv, code=f"c_{lv.value.lower()}")) for lv in
                  (INFO, WARNING, CRITICAL, EMERGENCY)}
    # Assert
    assert [a.level for a in record.got] == [INFO, WARNING, CRITICAL, EMERGENCY]
    assert [a.level for a in lead.got] == [WARNING, CRITICAL, EMERGENCY]
    assert [a.level for a in risk.got] == [CRITICAL, EMERGENCY]
    assert [a.level for a in pager.got] == [EMERGENCY]
    assert deliveries[INFO] is not None
    assert deliveries[INFO].recipients == ()
    assert deliveries[EMERGENCY] is not None
    assert deliveries[EMERGENCY].recipients == ("execution_lead", "risk_manager", "orchestrator", "on_call")
    assert [r.sink for r in deliveries[CRITICAL].results] == ["record", "lead", "risk"]  # type: ignore[union-attr]


def test_sink_when_min_level_critical_then_warning_not_sent() -> None:
    sink = Collect("only-critical", min_level=CRITICAL)
    router = AlertRouter([sink], record=lambda a: None)
    router.raise_(alert(WARNING, code="a"))
    router.raise_(alert(CRITICAL, code="b"))
    assert [a.code for a in sink.got] == ["b"]


def test_escalation_table_when_higher_level_drops_a_recipient_then_invalid_input_names_level() -> None:
    with pytest.raises(InvalidInput, match=r"escalation\.CRITICAL: .*missing: execution_lead"):
        EscalationTable({CRITICAL: ("risk_manager",)})


# ----------------------------------------------------------------------------------------- de-dup


def test_dedup_when_same_key_repeats_within_window_then_suppressed_and_counted() -> None:
    recorded: list[Alert] = []
    sink = Collect("s")
    router = AlertRouter([sink], record=recorded.append, repeat_after_s=6 * 3600)
    first = router.raise_(alert(t=T0))
    repeats = [router.raise_(alert(t=T0 + 3600 * i)) for i in range(1, 5)]
    other_scope = router.raise_(alert(t=T0 + 60, scope="breakout_4h"))
    assert first is not None
    assert first.reason == "new"
    assert repeats == [None] * 4
    assert other_scope is not None
    assert other_scope.reason == "new"
    assert len(recorded) == 2
    assert len(sink.got) == 2
    stats = router.stats()
    assert (stats.raised, stats.sent, stats.suppressed) == (6, 2, 4)
    assert stats.suppressed_by_key == {("sharpe_drift", "trend_ema_cross"): 4}


def test_dedup_when_level_escalates_then_sent_and_lower_level_then_suppressed() -> None:
    recorded: list[Alert] = []
    router = AlertRouter([Collect("s")], record=recorded.append)
    router.raise_(alert(WARNING, t=T0))
    up = router.raise_(alert(CRITICAL, t=T0 + 60))
    down = router.raise_(alert(WARNING, t=T0 + 120))
    same = router.raise_(alert(CRITICAL, t=T0 + 180))
    assert up is not None
    assert up.reason == "escalated"
    assert down is None
    assert same is None
    assert [a.level for a in recorded] == [WARNING, CRITICAL]
    assert router.standing() == {("sharpe_drift", "trend_ema_cross"): CRITICAL}


def test_dedup_when_repeat_after_passed_then_sent_again_with_suppressed_count() -> None:
    router = AlertRouter([Collect("s")], record=lambda a: None, repeat_after_s=6 * 3600)
    router.raise_(alert(t=T0))
    router.raise_(alert(t=T0 + 3600))
    router.raise_(alert(t=T0 + 6 * 3600 - 1))
    again = router.raise_(alert(t=T0 + 6 * 3600))
    after = router.raise_(alert(t=T0 + 6 * 3600 + 1))
    assert again is not None
    assert again.reason == "repeat"
    assert again.suppressed_since_last == 2
    assert after is None


def test_dedup_when_repeat_after_none_then_never_repeated() -> None:
    router = AlertRouter([Collect("s")], record=lambda a: None, repeat_after_s=None)
    router.raise_(alert(t=T0))
    assert router.raise_(alert(t=T0 + 365 * 86400)) is None


def test_dedup_when_cleared_then_next_occurrence_sent_and_recorded() -> None:
    recorded: list[Alert] = []
    router = AlertRouter([Collect("s")], record=recorded.append)
    router.raise_(alert(t=T0))
    was_standing = router.clear("sharpe_drift", "trend_ema_cross")
    again = router.raise_(alert(t=T0 + 60))
    assert was_standing
    assert not router.clear("sharpe_drift", "nobody")
    assert again is not None
    assert again.reason == "new"
    assert [a.time for a in recorded] == [T0, T0 + 60]


def test_router_when_record_and_sinks_then_ledger_written_before_any_sink() -> None:
    order: list[str] = []

    class Spy(AlertSink):
        name = "spy"

        def send(self, alert: Alert) -> SinkResult:
            order.append("sink")
            return SinkResult(self.name, True)

    AlertRouter([Spy()], record=lambda a: order.append("ledger")).raise_(alert())
    assert order == ["ledger", "sink"]


def test_router_when_a_sink_raises_then_delivery_failure_and_other_sinks_still_sent() -> None:
    good = Collect("good")
    router = AlertRouter([Boom(), good], record=lambda a: None)
    delivery = router.raise_(alert())
    assert delivery is not None
    assert not delivery.ok
    assert [(f.sink, f.error) for f in delivery.failures] == [("boom", "RuntimeError: sink exploded")]
    assert len(good.got) == 1
    assert router.stats().sink_failures == 1


def test_alert_when_bad_source_or_code_then_value_error() -> None:
    with pytest.raises(ValueError, match="alert source"):
        Alert(T0, WARNING, "somebody", "x", "portfolio", "m")
    with pytest.raises(ValueError, match="alert code"):
        Alert(T0, WARNING, "risk", "Sharpe Drift", "portfolio", "m")


def test_alert_ledger_payload_when_portfolio_then_no_deployment_and_lead_keys() -> None:
    a = Alert(T0, "CRITICAL", "lead", "portfolio_drawdown_trim", "portfolio", "m", {"dd": 0.1})  # type: ignore[arg-type]
    assert a.level is CRITICAL
    assert a.deployment_id is None
    assert a.key == ("portfolio_drawdown_trim", "portfolio")
    assert a.ledger_payload() == {"level": "CRITICAL", "source": "lead", "code": "portfolio_drawdown_trim",
                                  "scope": "portfolio", "message": "m", "evidence": {"dd": 0.1}}


# ----------------------------------------------------------------------------------- log and jsonl


def test_log_sink_when_levels_then_mapped_to_logging_levels(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="execdesk.alerts")
    sink = LogSink()
    for lv in (INFO, WARNING, CRITICAL, EMERGENCY):
        sink.send(alert(lv))
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    assert caplog.records[2].getMessage() == "[CRITICAL] sharpe_drift trend_ema_cross: live Sharpe below backtest"


def test_jsonl_when_two_routers_write_one_file_then_lines_appended_never_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "alerts" / "alerts.jsonl"
    path.parent.mkdir()
    path.write_text('{"earlier": true}\n')
    r1 = AlertRouter([JsonlSink(path)], record=lambda a: None)
    r2 = AlertRouter([JsonlSink(path, fsync=True)], record=lambda a: None)
    r1.raise_(alert(code="a"))
    r2.raise_(alert(code="b"))
    r1.raise_(alert(code="c", level=EMERGENCY))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"earlier": True}
    assert [(x["code"], x["level"]) for x in lines[1:]] == [("a", "WARNING"), ("b", "WARNING"), ("c", "EMERGENCY")]
    assert lines[1] == {"id": alert(code="a").id, "time": T0, "time_iso": "2024-07-03T09:46:40Z", "level": "WARNING",
                        "source": "monitor",
                        "code": "a", "scope": "trend_ema_cross", "message": "live Sharpe below backtest",
                        "evidence": {"live_sharpe": 0.4}}


def test_jsonl_when_path_unwritable_then_failure_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = JsonlSink(blocker / "alerts.jsonl").send(alert())
    assert not result.ok
    assert result.error is not None


# --------------------------------------------------------------------------------- loopback server


@dataclass
class Hook:
    """A loopback webhook receiver: answers each POST with the next planned reply (default 200)."""

    port: int = 0
    plan: list[tuple[int, dict[str, str], bytes] | str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = f"/services/{SECRET}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append((self.path, dict(self.headers), json.loads(body)))
                reply = state.plan.pop(0) if state.plan else (200, {}, b"ok")
            if reply == "hang":
                time.sleep(1.0)  # past the client's timeout
                return
            assert not isinstance(reply, str)
            status, headers, payload = reply
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def webhook(url: str, fmt: str = "generic", sleeps: list[float] | None = None, attempts: int = 3,
            **kwargs: Any) -> WebhookSink:
    slept = sleeps if sleeps is not None else []
    retry = RetryPolicy(attempts=attempts, base_delay_s=0.1, max_delay_s=0.2, sleep=slept.append)
    return WebhookSink(url, fmt, retry=retry, timeout_s=kwargs.pop("timeout_s", 2.0), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- formats


def test_webhook_generic_when_sent_then_body_is_the_alert(hook: Hook) -> None:
    result = webhook(hook.url(), "generic").send(SAMPLE)
    assert result.ok
    assert result.status == 200
    assert result.attempts == 1
    path, headers, body = hook.requests[0]
    assert path == f"/services/{SECRET}"
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert body == {"id": SAMPLE.id, "time": T0, "time_iso": "2024-07-03T09:46:40Z", "level": "CRITICAL",
                    "source": "monitor",
                    "code": "sharpe_drift", "scope": "trend_ema_cross",
                    "message": "Sharpe 0.4 < 1.1 (backtest) & falling: <check>",
                    "evidence": {"live_sharpe": 0.4, "backtest_sharpe": 1.1}}


def test_webhook_slack_when_sent_then_text_and_blocks_escaped(hook: Hook) -> None:
    assert webhook(hook.url(), "slack").send(SAMPLE).ok
    assert hook.requests[0][2] == {
        "text": ("[CRITICAL] sharpe_drift (trend_ema_cross): "
                 "Sharpe 0.4 &lt; 1.1 (backtest) &amp; falling: &lt;check&gt;"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "CRITICAL: sharpe_drift"}},
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": "Sharpe 0.4 &lt; 1.1 (backtest) &amp; falling: &lt;check&gt;"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*live_sharpe*\n0.4"},
                                           {"type": "mrkdwn", "text": "*backtest_sharpe*\n1.1"}]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": "scope `trend_ema_cross` · source monitor · 2024-07-03T09:46:40Z"}]},
        ],
    }


def test_webhook_discord_when_sent_then_content_and_embed_coloured_by_level(hook: Hook) -> None:
    assert webhook(hook.url(), "discord").send(SAMPLE).ok
    assert hook.requests[0][2] == {
        "content": "**CRITICAL** sharpe_drift (trend_ema_cross)",
        "embeds": [{
            "title": "CRITICAL: sharpe_drift",
            "description": "Sharpe 0.4 < 1.1 (backtest) & falling: <check>",
            "color": 0xE74C3C,
            "fields": [{"name": "scope", "value": "trend_ema_cross", "inline": True},
                       {"name": "source", "value": "monitor", "inline": True},
                       {"name": "live_sharpe", "value": "0.4", "inline": True},
                       {"name": "backtest_sharpe", "value": "1.1", "inline": True}],
            "timestamp": "2024-07-03T09:46:40Z",
        }],
        "allowed_mentions": {"parse": []},
    }


def test_webhook_telegram_html_when_sent_then_send_message_body_escaped(hook: Hook) -> None:
    assert webhook(hook.url("/bot123:ABC/sendMessage"), "telegram", chat_id="-1001234").send(SAMPLE).ok
    assert hook.requests[0][2] == {
        "chat_id": "-1001234",
        "text": ("<b>CRITICAL</b> <code>sharpe_drift</code>\n"
                 "scope <code>trend_ema_cross</code> · source monitor\n\n"
                 "Sharpe 0.4 &lt; 1.1 (backtest) &amp; falling: &lt;check&gt;\n\n"
                 "live_sharpe: <code>0.4</code>\nbacktest_sharpe: <code>1.1</code>\n\n"
                 "2024-07-03T09:46:40Z"),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


def test_webhook_telegram_markdown_v2_when_sent_then_reserved_characters_escaped(hook: Hook) -> None:
    sink = webhook(hook.url("/bot123:ABC/sendMessage"), "telegram", chat_id="42", parse_mode="MarkdownV2")
    assert sink.send(SAMPLE).ok
    body = hook.requests[0][2]
    assert body["parse_mode"] == "MarkdownV2"
    assert body["text"] == ("*CRITICAL* `sharpe_drift`\n"
                            "scope `trend_ema_cross` · source monitor\n\n"
                            "Sharpe 0\\.4 < 1\\.1 \\(backtest\\) & falling: <check\\>\n\n"
                            "live\\_sharpe: `0.4`\nbacktest\\_sharpe: `1.1`\n\n"
                            "2024\\-07\\-03T09:46:40Z")


def test_telegram_escape_when_every_reserved_character_then_each_backslashed() -> None:
    assert telegram_escape("_*[]()~`>#+-=|{}.!\\", "MarkdownV2") == "".join("\\" + c for c in "_*[]()~`>#+-=|{}.!\\")
    assert telegram_escape("a`b\\c_d", "MarkdownV2", code=True) == "a\\`b\\\\c_d"
    assert telegram_escape("<a href='x'>&</a>", "HTML") == "&lt;a href='x'&gt;&amp;&lt;/a&gt;"


# ---------------------------------------------------------------------------------------- retries


def test_webhook_when_500_then_retried_until_ok(hook: Hook) -> None:
    hook.plan = [(500, {}, b"boom"), (503, {}, b"busy")]
    sleeps: list[float] = []
    result = webhook(hook.url(), sleeps=sleeps).send(SAMPLE)
    assert result.ok
    assert result.attempts == 3
    assert len(hook.requests) == 3
    assert len(sleeps) == 2


def test_webhook_when_429_with_retry_after_then_waits_at_least_that_long(hook: Hook) -> None:
    hook.plan = [(429, {"Retry-After": "2"}, b"slow down")]
    sleeps: list[float] = []
    result = webhook(hook.url(), sleeps=sleeps).send(SAMPLE)
    assert result.ok
    assert result.attempts == 2
    assert sleeps == [2.0]


def test_webhook_when_429_retry_after_in_json_body_then_used(hook: Hook) -> None:
    hook.plan = [(429, {"Content-Type": "application/json"},
                  b'{"ok":false,"error_code":429,"parameters":{"retry_after":3}}')]
    sleeps: list[float] = []
    assert webhook(hook.url(), sleeps=sleeps).send(SAMPLE).ok
    assert sleeps == [3.0]


def test_webhook_when_429_retry_after_beyond_cap_then_failure_without_retry(hook: Hook) -> None:
    hook.plan = [(429, {"Retry-After": "3600"}, b"")]
    result = webhook(hook.url(), max_retry_after_s=30).send(SAMPLE)
    assert not result.ok
    assert result.status == 429
    assert result.attempts == 1
    assert len(hook.requests) == 1


def test_webhook_when_timeout_then_retried(hook: Hook) -> None:
    hook.plan = ["hang"]
    result = webhook(hook.url(), timeout_s=0.2).send(SAMPLE)
    assert result.ok
    assert result.attempts == 2


def test_webhook_when_400_then_not_retried(hook: Hook) -> None:
    hook.plan = [(400, {}, b"invalid_payload")]
    sleeps: list[float] = []
    result = webhook(hook.url(), sleeps=sleeps).send(SAMPLE)
    assert not result.ok
    assert result.status == 400
    assert result.attempts == 1
    assert len(hook.requests) == 1
    assert sleeps == []


def test_webhook_when_always_500_then_gives_up_and_reports(hook: Hook) -> None:
    hook.plan = [(500, {}, b"")] * 3
    result = webhook(hook.url(), attempts=3).send(SAMPLE)
    assert not result.ok
    assert result.attempts == 3
    assert result.status == 500
    assert result.error is not None
    assert result.error.startswith("gave up: HTTP 500")


def test_webhook_when_server_dead_then_failure_returned_not_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    router = AlertRouter([webhook(f"http://127.0.0.1:{port}/services/{SECRET}", attempts=2)], record=lambda a: None)
    delivery = router.raise_(SAMPLE)
    assert delivery is not None
    assert not delivery.ok
    assert delivery.failures[0].attempts == 2
    assert "connection failed" in (delivery.failures[0].error or "")


# -------------------------------------------------------------------------------------- redaction


def test_redaction_when_webhook_fails_then_token_in_no_log_error_or_repr(
        hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook.plan = [(500, {}, b"")] * 2 + [(404, {}, SECRET.encode())]
    url = hook.url(f"/services/{SECRET}?token=qqq{SECRET}")
    sink = webhook(url, "slack", headers={"Authorization": "Bearer hdr-s3cr3t"})
    router = AlertRouter([LogSink(), sink], record=lambda a: None)
    delivery = router.raise_(SAMPLE)
    assert delivery is not None
    assert len(delivery.failures) == 1
    texts = [caplog.text, repr(sink), sink.name, *(f.error or "" for f in delivery.failures), str(delivery)]
    assert "not delivered" in caplog.text
    for text in texts:
        assert SECRET not in text
        assert "s3cr3t" not in text
        assert "qqq" not in text
    assert redact_url(url) == f"http://127.0.0.1:{hook.port}/***"
    assert hook.requests[0][1]["Authorization"] == "Bearer hdr-s3cr3t"


def test_webhook_when_url_not_http_then_invalid_input_without_the_token() -> None:
    with pytest.raises(InvalidInput) as info:
        WebhookSink(f"ftp://hooks.example/{SECRET}")
    assert SECRET not in str(info.value)


# ----------------------------------------------------------------------------------------- config


def test_config_when_yaml_section_then_router_built_from_env(hook: Hook, tmp_path: Path) -> None:
    # Arrange
    raw = {"sinks": [{"kind": "log"},
                     {"kind": "jsonl", "path": str(tmp_path / "alerts.jsonl")},
                     {"kind": "webhook", "url_env": "EXECDESK_SLACK_WEBHOOK", "format": "slack",
                      "min_level": "CRITICAL", "to": ["risk_manager"]}],
           "repeat_after": "2h"}
    env = {"EXECDESK_SLACK_WEBHOOK": hook.url()}
    recorded: list[Alert] = []
    # Act
    router = build_router(AlertsConfig.model_validate(raw), recorded.append, env, sleep=lambda s: None)
    router.raise_(alert(WARNING, code="a"))
    router.raise_(alert(CRITICAL, code="b"))
    # Assert
    assert router.repeat_after_s == 7200
    assert [type(s).__name__ for s in router.sinks] == ["LogSink", "JsonlSink", "WebhookSink"]
    assert len(recorded) == 2
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2
    assert [body["text"].split(" ")[1] for _, _, body in hook.requests] == ["b"]


def test_config_when_defaults_then_one_log_sink_and_six_hours() -> None:
    config = AlertsConfig()
    router = build_router(config, lambda a: None, {})
    assert config.repeat_after is None  # a standing condition is sent once
    assert [type(s).__name__ for s in router.sinks] == ["LogSink"]
    assert router.escalation.recipients(WARNING) == ("execution_lead",)


def test_build_router_when_env_var_missing_then_invalid_input_names_key_and_variable() -> None:
    config = AlertsConfig.model_validate({"sinks": [{"kind": "log"}, {"kind": "webhook", "url_env": "EXECDESK_X"}]})
    with pytest.raises(InvalidInput, match=r"alerts\.sinks\[1\]\.url_env: environment variable EXECDESK_X is not set"):
        build_router(config, lambda a: None, {})


def test_build_router_when_env_holds_no_url_then_error_without_the_value() -> None:
    config = AlertsConfig.model_validate({"sinks": [{"kind": "webhook", "url_env": "HOOK"}]})
    with pytest.raises(InvalidInput, match="HOOK does not hold an http") as info:
        build_router(config, lambda a: None, {"HOOK": f"not-a-url-{SECRET}"})
    assert SECRET not in str(info.value)


def test_build_router_when_replay_then_webhooks_left_out() -> None:
    config = AlertsConfig.model_validate({"sinks": [{"kind": "log"}, {"kind": "webhook", "url_env": "UNSET"}]})
    router = build_router(config, lambda a: None, {}, webhooks=False)
    assert [type(s).__name__ for s in router.sinks] == ["LogSink"]


def test_build_router_when_telegram_chat_id_env_then_read_from_env(hook: Hook) -> None:
    config = AlertsConfig.model_validate({"sinks": [{"kind": "webhook", "url_env": "TG", "format": "telegram",
                                                     "chat_id_env": "TG_CHAT"}]})
    router = build_router(config, lambda a: None, {"TG": hook.url("/botX/sendMessage"), "TG_CHAT": "777"})
    router.raise_(SAMPLE)
    assert hook.requests[0][2]["chat_id"] == "777"


@pytest.mark.parametrize(("raw", "match"), [
    ({"sinks": [{"kind": "webhook", "url": "https://hooks.slack.com/x"}]}, "url"),
    ({"sinks": [{"kind": "pager"}]}, "kind"),
    ({"repeat_after": "6 hours"}, "repeat_after"),
    ({"repeat_after": 0}, "repeat_after"),
    ({"sinks": [{"kind": "webhook", "url_env": "X", "format": "telegram"}]}, "chat_id"),
    ({"sinks": [{"kind": "webhook", "url_env": "X", "to": ["ceo"]}]}, r"sinks\[0\]\.to: ceo"),
    ({"escalation": {"EMERGENCY": ["on_call"]}}, r"escalation\.EMERGENCY"),
    ({"sinks": [{"kind": "log", "min_level": "LOUD"}]}, "min_level"),
    ({"alerts": {}}, "alerts"),
])
def test_config_when_invalid_then_validation_error_names_the_key(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        AlertsConfig.model_validate(raw)


def test_config_when_repeat_after_never_then_none() -> None:
    assert AlertsConfig.model_validate({"repeat_after": "never"}).repeat_after is None
    assert AlertsConfig.model_validate({"repeat_after": None}).repeat_after is None
    assert AlertsConfig.model_validate({"repeat_after": "30m"}).repeat_after == 1800


def test_formats_when_message_and_evidence_huge_then_within_service_limits_and_entities_whole() -> None:
    big = Alert(T0, WARNING, "risk", "x", "portfolio", "&<>" * 5000, {f"k{i}": "&" * 500 for i in range(40)})
    slack = format_slack(big)
    section = slack["blocks"][1]["text"]["text"]
    assert len(section) <= 3000
    assert section.endswith("…")
    assert section.count("&") == section.count("&amp;") + section.count("&lt;") + section.count("&gt;")
    assert len(slack["text"]) <= 3000
    assert len(slack["blocks"][2]["fields"]) == 10
    discord = format_discord(big)["embeds"][0]
    assert len(discord["description"]) <= 4096
    assert len(discord["fields"]) == 25
    for mode in ("HTML", "MarkdownV2"):
        text = format_telegram(big, "1", mode)["text"]  # type: ignore[arg-type]
        assert len(text) <= 4096
        assert text.endswith("2024\\-07\\-03T09:46:40Z" if mode == "MarkdownV2" else "2024-07-03T09:46:40Z")


def test_config_when_url_pasted_into_file_then_refused_and_token_not_echoed() -> None:
    with pytest.raises(ValidationError, match="url") as info:
        AlertsConfig.model_validate({"sinks": [{"kind": "webhook", "url_env": "X",
                                                "url": f"https://hooks.slack.com/services/{SECRET}",
                                                "headers": {"Authorization": "Bearer hdr-s3cr3t"}}]})
    assert SECRET not in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert "hooks.slack.com/***" in str(info.value)


# ---------------------------------------------------------------------------------------- courier


class Remote(AlertSink):
    """A remote sink (as a webhook is) that keeps what it is sent, the thread it was sent on, and, when given a
    gate, waits at it before taking each alert (a sink that hangs until the test lets it go)."""

    remote = True

    def __init__(self, name: str, gate: threading.Event | None = None, fail: bool = False) -> None:
        super().__init__()
        self.name = name
        self.gate = gate
        self.fail = fail
        self.got: list[Alert] = []
        self.threads: set[str] = set()
        self.started = threading.Event()

    def send(self, alert: Alert) -> SinkResult:
        self.threads.add(threading.current_thread().name)
        self.started.set()
        if self.gate is not None:
            self.gate.wait(30)
        self.got.append(alert)
        return SinkResult(self.name, not self.fail, error="HTTP 503 (gave up)" if self.fail else None)


def settled(router: AlertRouter, count: int) -> list[tuple[Alert, SinkResult]]:
    """What the router's courier reports, taken as the loop takes it, until ``count`` deliveries have come back."""
    got: list[tuple[Alert, SinkResult]] = []
    deadline = time.monotonic() + 30
    while len(got) < count and time.monotonic() < deadline:
        got += router.collect()
        time.sleep(0.005)
    return got


def test_courier_when_alerts_put_then_each_sink_gets_them_in_order_off_the_callers_thread() -> None:
    # Arrange
    sink = Remote("hook")
    courier = AlertCourier(drain_timeout_s=30)
    alerts = [alert(code=f"c_{i}") for i in range(20)]
    # Act
    for a in alerts:
        courier.put(a, sink)
    done = courier.close()
    # Assert: all delivered, in the order put, by the courier's worker
    assert [a.code for a in sink.got] == [a.code for a in alerts]
    assert [(a.code, r.ok) for a, r in done] == [(a.code, True) for a in alerts]
    assert sink.threads == {"execdesk-alerts:hook"}
    assert (courier.stats.queued, courier.stats.delivered, courier.stats.failed, courier.stats.left) == (20, 20, 0, 0)
    assert courier.pending == 0


def test_router_when_courier_then_remote_sinks_queued_local_ones_sent_at_once_and_dedup_unchanged() -> None:
    # Arrange: the desk's own record (local) and a webhook (remote)
    recorded: list[Alert] = []
    local, remote = Collect("record"), Remote("hook")
    router = AlertRouter([local, remote], record=recorded.append)
    router.courier = AlertCourier(drain_timeout_s=30)
    # Act: a condition raised four times, escalated once
    deliveries = [router.raise_(alert(WARNING, t=T0 + i)) for i in range(3)]
    escalated = router.raise_(alert(CRITICAL, t=T0 + 3))
    done = router.close_courier()
    # Assert: recorded and sent twice (new, escalated) as without a courier; the local sink in the Delivery, at once
    assert [d.reason if d else None for d in [*deliveries, escalated]] == ["new", None, None, "escalated"]
    assert [a.level for a in recorded] == [WARNING, CRITICAL]
    assert [a.level for a in local.got] == [WARNING, CRITICAL]
    assert deliveries[0] is not None
    assert [r.sink for r in deliveries[0].results] == ["record"]
    assert [a.level for a in remote.got] == [WARNING, CRITICAL]
    assert [(a.level, r.sink, r.ok) for a, r in done] == [(WARNING, "hook", True), (CRITICAL, "hook", True)]
    assert router.stats().suppressed == 2


def test_router_when_the_courier_reports_a_failure_then_collect_tells_on_failure_on_the_callers_thread() -> None:
    # Arrange
    told: list[tuple[str, str, str | None, str]] = []
    router = AlertRouter([Remote("hook", fail=True)], record=lambda a: None)
    router.courier = AlertCourier()
    router.on_failure = lambda a, r: told.append((a.code, r.sink, r.error, threading.current_thread().name))
    # Act
    router.raise_(alert(EMERGENCY, code="portfolio_drawdown_kill"))
    assert told == []  # (sent off the caller's thread: nothing is known yet)
    done = settled(router, 1)
    # Assert: the failure came back through the queue and was settled where the loop runs
    assert [r.ok for _a, r in done] == [False]
    assert told == [("portfolio_drawdown_kill", "hook", "HTTP 503 (gave up)", threading.current_thread().name)]
    assert router.stats().sink_failures == 1
    assert router.close_courier() == []


def test_courier_when_a_sink_hangs_then_only_its_own_queue_waits() -> None:
    gate = threading.Event()
    stuck, free = Remote("stuck", gate), Remote("free")
    router = AlertRouter([stuck, free], record=lambda a: None)
    router.courier = AlertCourier(drain_timeout_s=0)
    try:
        router.raise_(alert(code="a"))
        router.raise_(alert(code="b"))
        done = settled(router, 2)
        assert [(a.code, r.sink) for a, r in done] == [("a", "free"), ("b", "free")]
        assert stuck.got == []
    finally:
        gate.set()
        router.close_courier()


def test_courier_when_closed_with_a_hanging_sink_then_waits_its_drain_and_reports_what_is_left_in_order() -> None:
    # Arrange: a sink that hangs on the first of three alerts
    gate = threading.Event()
    sink = Remote("hook", gate)
    courier = AlertCourier(drain_timeout_s=0.2)
    try:
        for code in ("a", "b", "c"):
            courier.put(alert(code=code), sink)
        assert sink.started.wait(30)  # the first is in flight
        # Act
        left = courier.close()
    finally:
        gate.set()
    # Assert: nothing dropped without a word — the one in flight (it may yet arrive), then the two never tried
    assert [(a.code, r.ok, r.attempts) for a, r in left] == [("a", False, 1), ("b", False, 0), ("c", False, 0)]
    assert left[0][1].error == "delivery unknown: still in flight when the desk stopped (waited 0.2 s for the sink)"
    assert left[1][1].error == "not sent: still queued when the desk stopped (waited 0.2 s for the sink)"
    assert (courier.stats.queued, courier.stats.left, courier.pending) == (3, 3, 0)
    assert courier.close() == []
    with pytest.raises(RuntimeError, match="closed"):
        courier.put(alert(), sink)


def test_courier_when_used_as_a_context_then_closing_logs_what_is_left(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()
    sink = Remote("hook", gate)
    try:
        with AlertCourier(drain_timeout_s=0) as courier:
            courier.put(alert(code="a"), sink)
            courier.put(alert(code="b"), sink)
    finally:
        gate.set()
    lines = [r.getMessage() for r in caplog.records if r.name == "execdesk.alerts"]
    assert len(lines) == 2
    assert all(line.startswith("alert ") and "not delivered by hook" in line for line in lines)


def test_config_drain_timeout_when_given_then_seconds_and_left_out_of_the_dump_at_its_default() -> None:
    assert AlertsConfig().drain_timeout == DRAIN_TIMEOUT_S
    assert "drain_timeout" not in AlertsConfig().model_dump(mode="json")
    assert AlertsConfig.model_validate({"drain_timeout": "30s"}).model_dump(mode="json")["drain_timeout"] == 30
    assert AlertsConfig.model_validate({"drain_timeout": 0.5}).drain_timeout == 0.5
    with pytest.raises(ValidationError, match="drain_timeout"):
        AlertsConfig.model_validate({"drain_timeout": "soon"})
    with pytest.raises(ValidationError, match="drain_timeout"):
        AlertsConfig.model_validate({"drain_timeout": -1})
