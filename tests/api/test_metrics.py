"""Prometheus ``/metrics`` on a demo home: the figures equal what the ledger and the rest of the API say, parsed by
prometheus_client's own parser; a token with the read right; denials and alerts counted from the new events only;
the loop's bar-latency histogram, which the desk's loop left in its home."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event as sa_event

from execdesk.api.metrics import CONTENT_TYPE, DeskCollector
from execdesk.api.service import create_app
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import OrderStatus, TradingState
from execdesk.store.ledger import Ledger
from tests.api.conftest import ROLES, bearer, make_tokens


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(home)) as c:
        yield c


def scrape(client: TestClient, token: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """``/metrics`` parsed: per family, each sample's value by (sample name, labels)."""
    response = client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("execdesk_"), family.name
        assert family.documentation, f"{family.name} has no HELP text"
        out[family.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return out


def by_label(family: dict[tuple[str, tuple[tuple[str, str], ...]], float], label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (_name, labels), value in family.items()}


def value(family: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    (only,) = family.values()
    return only


def test_metrics_equal_what_the_ledger_and_the_api_say(home: Path, client: TestClient) -> None:
    # Arrange: a viewer token; the ledger's own figures
    token = make_tokens(home, "viewer")["viewer"]
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        alerts = Counter(e.payload["level"] for e in ledger.events({EventKind.ALERT_RAISED}))
        denied = Counter(e.payload["verdict"]["rule"] for e in ledger.events({EventKind.ORDER_DENIED}))
        orders = Counter(o.status.value for o in state.orders.values())
        n_orders, n_fills, last_seq = len(state.orders), len(state.fills), state.last_seq
        deployments = sorted(state.deployments)
    portfolio = client.get("/api/portfolio", headers=bearer(token)).json()

    # Act
    m = scrape(client, token)

    # Assert: the portfolio as /api/portfolio has it
    assert value(m["execdesk_equity"]) == pytest.approx(portfolio["equity"])
    assert value(m["execdesk_drawdown"]) == pytest.approx(portfolio["drawdown"])
    assert value(m["execdesk_peak_equity"]) == pytest.approx(portfolio["peak"])
    assert value(m["execdesk_cash"]) == pytest.approx(portfolio["cash"])
    assert value(m["execdesk_exposure"]) == pytest.approx(portfolio["exposure"])
    assert value(m["execdesk_open_positions"]) == portfolio["open_positions"]
    # the demo's story: the circuit breaker tripped, the desk HALTED, every deployment HALTED
    assert by_label(m["execdesk_trading_state"], "state") == {s.value: float(s is TradingState.HALTED)
                                                             for s in TradingState}
    assert by_label(m["execdesk_deployments"], "state") == {"ACTIVE": 0, "REDUCING": 0, "HALTED": len(deployments)}
    assert sum(by_label(m["execdesk_deployments_by_lifecycle"], "lifecycle").values()) == len(deployments)
    assert sorted(by_label(m["execdesk_deployment_open_positions"], "deployment")) == deployments
    # orders, fills, denials, alerts, events: as the ledger counts them
    statuses = by_label(m["execdesk_orders"], "status")
    assert set(statuses) == {s.value for s in OrderStatus}
    assert sum(statuses.values()) == n_orders > 0
    assert {k: v for k, v in statuses.items() if v} == orders
    assert value(m["execdesk_fills"]) == n_fills > 0
    assert by_label(m["execdesk_alerts"], "level") == {"INFO": 0, "WARNING": 0, "CRITICAL": 0, "EMERGENCY": 0,
                                                      **alerts}
    assert sum(by_label(m["execdesk_alerts"], "level").values()) == sum(alerts.values()) > 0
    assert by_label(m["execdesk_orders_denied"], "rule") == dict(denied)
    assert value(m["execdesk_ledger_events"]) == last_seq
    assert value(m["execdesk_command_queue_depth"]) == 0


def test_metrics_needs_a_token_with_the_read_right(home: Path, client: TestClient) -> None:
    tokens = make_tokens(home)
    bad = "edk_000000000000_" + "A" * 43

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": tokens["viewer"]}).status_code == 401  # no "Bearer "
    assert client.get("/metrics", headers=bearer(bad)).status_code == 401
    for role in ROLES:  # every role carries the read right
        assert client.get("/metrics", headers=bearer(tokens[role])).status_code == 200, role
    client.app.state.tokens.revoke("viewer")
    assert client.get("/metrics", headers=bearer(tokens["viewer"])).status_code == 401
    # the global registry is not used: nothing of this app's is in it
    from prometheus_client import REGISTRY, generate_latest

    assert b"execdesk_" not in generate_latest(REGISTRY)


def test_the_loops_bar_latency_histogram_is_there_after_a_run(home: Path, client: TestClient) -> None:
    # Arrange: the loop's file the demo's run left (the session's demo ran with this code)
    token = make_tokens(home, "viewer")["viewer"]
    loop = json.loads((home / "metrics" / "loop.json").read_text())
    assert loop["final"] is True

    # Act
    m = scrape(client, token)

    # Assert: a histogram (buckets cumulative, +Inf = count), the loop's bars
    hist = m["execdesk_loop_bar_seconds"]
    buckets = sorted(((float(dict(labels)["le"]), v) for (name, labels), v in hist.items()
                      if name.endswith("_bucket")))
    counts = [v for _le, v in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert buckets[-1] == (float("inf"), hist[("execdesk_loop_bar_seconds_count", ())])
    assert hist[("execdesk_loop_bar_seconds_count", ())] == loop["bar_seconds"]["count"] > 0
    assert hist[("execdesk_loop_bar_seconds_sum", ())] == pytest.approx(loop["bar_seconds"]["sum"])
    assert 0 < loop["bar_seconds"]["sum"] < loop["run_seconds"]
    assert value(m["execdesk_loop_bars_done"]) == value(m["execdesk_loop_bars"]) == loop["bars"] > 0


def test_denials_and_alerts_are_counted_from_the_new_events_only(home: Path, client: TestClient) -> None:
    # Arrange: a first scrape counts the ledger; then the desk records a denial and an alert
    token = make_tokens(home, "viewer")["viewer"]
    first = scrape(client, token)
    collector: DeskCollector = client.app.state.metrics
    counted = collector.counts.seq
    assert counted == value(first["execdesk_ledger_events"])
    with Ledger.for_home(home) as writer:
        t = writer.state.last_bar_time or 0
        writer.record(Event(t, EventKind.ORDER_DENIED, {
            "deployment_id": "STR-001-v1", "pair": "BTC/USDT", "side": "buy", "direction": "long",
            "reason": "entry_signal", "signal_time": t, "ref_price": "1",
            "verdict": {"approved": False, "rule": "max_open_positions", "reason": "test", "qty": "0"}},
            "STR-001-v1"))
        writer.record(Event(t, EventKind.ALERT_RAISED, {"level": "WARNING", "source": "test", "code": "test",
                                                       "scope": "portfolio", "message": "test", "evidence": {}}))
    client.app.state.view.refresh(force=True)
    queries: list[Any] = []

    def spy(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FROM events" in statement and EventKind.ORDER_DENIED.value in tuple(parameters):  # (the counting's)
            queries.append(parameters)

    engine = client.app.state.view.ledger.engine
    sa_event.listen(engine, "before_cursor_execute", spy)
    try:
        # Act
        second = scrape(client, token)
        third = scrape(client, token)  # the ledger did not move: nothing read
    finally:
        sa_event.remove(engine, "before_cursor_execute", spy)

    # Assert: one query, for the events after the last counted; the two new events counted once
    assert len(queries) == 1
    assert counted in tuple(queries[0])  # seq > counted
    assert counted + 2 in tuple(queries[0])  # seq <= the ledger's last
    assert collector.counts.seq == counted + 2
    assert by_label(second["execdesk_orders_denied"], "rule") == {"max_open_positions": 1}
    alerts_before = by_label(first["execdesk_alerts"], "level")
    assert by_label(second["execdesk_alerts"], "level") == {**alerts_before,
                                                           "WARNING": alerts_before["WARNING"] + 1}
    assert value(second["execdesk_ledger_events"]) == counted + 2
    assert third == second
