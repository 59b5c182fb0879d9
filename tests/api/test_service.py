"""The REST API on a demo home: every route behind a token and the right its role carries (the auth matrix), control
calls that answer with a command id at once and their outcome later, the event stream resumable by sequence number,
bounded and validated input, nothing secret in any answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from execdesk.api.service import MAX_BODY, create_app
from execdesk.desk.identity import PERMISSIONS, Role
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from tests.api.conftest import ROLES, bearer, make_tokens
from tests.conftest import BUNDLES


@pytest.fixture
def client(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(home)) as c:
        yield c


def outcome(client: TestClient, response: Any, token: str, wait_s: float = 60) -> dict[str, Any]:
    """A control call's outcome once the command is done."""
    assert response.status_code == 202, response.text
    command_id = response.json()["command_id"]
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = client.get(f"/api/commands/{command_id}", headers=bearer(token)).json()
        if found["status"] not in ("accepted", "running"):
            return dict(found)
        time.sleep(0.05)
    raise AssertionError(f"command {command_id} not done in {wait_s} s")


def bundle(version: int = 2, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((BUNDLES / "mean_revert_bbands.yaml").read_text())
    data.update(version=version, **changes)
    return dict(json.loads(json.dumps(data, default=str)))


# ------------------------------------------------------------------------------------------------ the auth matrix
READ_PATHS = {"/api/deployments/{deployment_id}": "/api/deployments/STR-001-v1",
              "/api/reports/{name}/{file}": None, "/api/commands/{command_id}": None}
BODIES: dict[str, dict[str, Any]] = {
    "deploy": {"inbox": "nothing-here", "reason": "matrix"},  # authorized: then 422 (no such entry), never run
    "approve": {"request_id": "dr-000000000000", "reason": "matrix"},
    "deny": {"request_id": "dr-000000000000", "reason": "matrix"},
    "pause": {"deployment": "STR-001-v1", "reason": "matrix"},
    "resume": {"deployment": "STR-001-v1", "reason": "matrix"},
    "remove": {"deployment": "NOPE-v1", "reason": "matrix"},
    "rollback": {"strategy": "NOPE", "reason": "matrix"},
    "kill": {"reason": "matrix"},
    "rearm": {"reason": "matrix", "deployment": "NOPE-v1"},
    "report": {"deployment": "NOPE-v1"},
}


def test_every_route_needs_a_token_and_the_right_its_role_carries(home: Path, client: TestClient) -> None:
    # Arrange: a token per role; a report folder and a command to name in the routes that take them
    tokens = make_tokens(home)
    report = sorted((home / "reports").iterdir())[0]
    paths = dict(READ_PATHS, **{"/api/reports/{name}/{file}": f"/api/reports/{report.name}/report.json"})
    routes = [r for r in client.app.routes if isinstance(r, APIRoute) and r.path.startswith("/api/")]
    assert {r.path.removeprefix("/api/commands/") for r in routes if "POST" in r.methods} == set(BODIES)
    checked = 0
    for route in routes:
        if route.path == "/api/health":
            assert client.get("/api/health").status_code == 200  # liveness: the one open route
            continue
        method = "POST" if "POST" in route.methods else "GET"
        action = route.path.removeprefix("/api/commands/") if method == "POST" else "read"
        path = paths.get(route.path, route.path)
        if path is None:  # /api/commands/{id}: made below, by an allowed role
            continue
        params = {"once": "true"} if route.path == "/api/stream" else None

        def call(headers: dict[str, str], path: str = path, method: str = method, action: str = action,
                 params: dict[str, str] | None = params) -> Any:
            if method == "POST":
                return client.post(path, headers=headers, json=BODIES[action])
            return client.get(path, headers=headers, params=params)

        # Act / Assert: no token, a malformed one, a revoked-looking one: 401; each role: 403 or served
        assert call({}).status_code == 401, path
        assert call({"Authorization": "Bearer edk_000000000000_" + "x" * 43}).status_code == 401, path
        for role in ROLES:
            response = call(bearer(tokens[role]))
            if Role(role) in PERMISSIONS[action]:
                expected = {200} if method == "GET" else {202, 422}  # 422: the matrix's bodies name nothing real
                assert response.status_code in expected, (path, role, response.text)
            else:
                assert response.status_code == 403, (path, role, response.text)
                assert f"may not {action}" in response.json()["detail"]
            checked += 1
    assert checked >= 25 * len(ROLES) - 5


def test_a_command_answers_with_its_id_at_once_and_its_outcome_when_applied(home: Path, client: TestClient) -> None:
    tokens = make_tokens(home, "lead", "ops:operator")
    # Act: a lead re-arms the HALTED desk, an operator pauses a deployment, then pauses it again by the same id
    rearmed = outcome(client, client.post("/api/commands/rearm", headers=bearer(tokens["lead"]),
                                          json={"reason": "shock absorbed"}), tokens["lead"])
    first = client.post("/api/commands/pause", headers=bearer(tokens["ops"]),
                        json={"deployment": "STR-002-v1", "reason": "watch it", "command_id": "ops-pause-1"})
    paused = outcome(client, first, tokens["ops"])
    again = outcome(client, client.post("/api/commands/pause", headers=bearer(tokens["ops"]), json={
        "deployment": "STR-002-v1", "reason": "watch it", "command_id": "ops-pause-1"}), tokens["ops"])
    # Assert: applied, with the ledger's seq; the second is a no-op; who is the token's identity, never free text
    assert rearmed["status"] == "applied"
    assert rearmed["result"]["state"] == "ACTIVE"
    assert first.json()["command_id"] == "ops-pause-1"
    assert paused["status"] == "applied"
    assert paused["result"]["reason"] == "paused"
    assert paused["seq"] > 0
    assert paused["result"]["by"] == "ops"
    assert again["status"] == "already_applied"
    deployment = client.get("/api/deployments/STR-002-v1", headers=bearer(tokens["ops"])).json()
    assert deployment["lifecycle"] == "paused"
    assert deployment["state"] == "REDUCING"
    with Ledger.for_home(home) as ledger:
        received = [e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})]
    assert received[-1]["identity"] == {"name": "ops", "role": "operator", "via": "token",
                                        "token_id": received[-1]["identity"]["token_id"]}
    assert received[-1]["by"] == "ops"
    assert received[-1]["command_id"] == "ops-pause-1"


def test_a_refused_command_says_which_rule_and_is_recorded(home: Path, client: TestClient) -> None:
    tokens = make_tokens(home, "ops:operator")
    # Act: pausing a deployment the circuit breaker halted (the desk refuses it when the command is applied)
    refused = outcome(client, client.post("/api/commands/pause", headers=bearer(tokens["ops"]),
                                          json={"deployment": "STR-001-v1", "reason": "hold"}), tokens["ops"])
    # Assert
    assert refused["status"] == "refused"
    assert "halted" in refused["error"]
    with Ledger.for_home(home) as ledger:
        recorded = [e.payload for e in ledger.events({EventKind.COMMAND_REFUSED})]
    assert recorded[-1]["command_id"] == refused["command_id"]
    assert recorded[-1]["identity"]["name"] == "ops"


def test_a_deploy_goes_through_intake_at_once_and_the_gates_when_applied(home: Path, client: TestClient) -> None:
    tokens = make_tokens(home, "ops:operator", "lead-a:lead", "lead-b:lead")
    # Act: a bundle that does not validate; one too large; then a live deployment and its approvals
    bad = client.post("/api/commands/deploy", headers=bearer(tokens["ops"]),
                      json={"bundle": bundle(timeframe="7m"), "reason": "r"})
    huge = client.post("/api/commands/deploy", headers={**bearer(tokens["ops"]), "Content-Type": "application/json"},
                       content=b'{"bundle": {"x": "' + b"a" * MAX_BODY + b'"}}')
    live = outcome(client, client.post("/api/commands/deploy", headers=bearer(tokens["lead-a"]), json={
        "bundle": bundle(), "venue": "ccxt:binance", "live": True, "reason": "validated"}), tokens["lead-a"])
    request_id = live["result"]["approval_request"]
    waiting = client.get("/api/decisions", headers=bearer(tokens["ops"])).json()["waiting"]
    own = client.post("/api/commands/approve", headers=bearer(tokens["lead-a"]),
                      json={"request_id": request_id, "reason": "mine"})
    other = outcome(client, client.post("/api/commands/approve", headers=bearer(tokens["lead-b"]),
                                        json={"request_id": request_id, "reason": "checked"}), tokens["lead-b"])
    # Assert: intake's message as a 422 (nothing left behind); 413 over the limit; four eyes for real money
    assert bad.status_code == 422
    assert "timeframe: got '7m'" in bad.json()["detail"]
    assert not any(p.name.startswith(".tmp-") for p in (home / "uploads").iterdir())
    assert huge.status_code == 413
    assert live["status"] == "applied"
    assert live["result"]["status"] == "pending_approval"
    assert [w["request_id"] for w in waiting] == [request_id]
    assert own.status_code == 202
    mine = outcome(client, own, tokens["lead-a"])
    assert mine["status"] == "refused"
    assert "four eyes" in mine["error"]
    # lead-b's approval is taken (the approval gate passes); this paper desk then cannot host a live venue: the
    # deploy gate refuses it — every gate runs, whoever approves
    assert other["status"] == "refused"
    assert "the deploy gate refused it" in other["error"]
    with Ledger.for_home(home) as ledger:
        decided = [e.payload for e in ledger.events({EventKind.APPROVAL_DECIDED})]
        refusals = [e.payload for e in ledger.events({EventKind.COMMAND_REFUSED})]
    assert [(d["decision"], d["by"]) for d in decided] == [("approved", "lead-b")]
    assert any("four eyes" in r["error"] and r["identity"]["name"] == "lead-a" for r in refusals)


def test_a_deploy_whose_sizing_block_is_invalid_is_refused_at_once_naming_the_field(home: Path,
                                                                                   client: TestClient) -> None:
    tokens = make_tokens(home, "ops:operator")

    bad = client.post("/api/commands/deploy", headers=bearer(tokens["ops"]), json={
        "bundle": bundle(), "reason": "r", "sizing": {"method": "kelly", "fraction": 1.5}})

    assert bad.status_code == 422
    assert ["body", "sizing", "fraction"] in [e["loc"] for e in bad.json()["detail"]]


def test_the_event_stream_resumes_from_a_sequence_number(home: Path, client: TestClient) -> None:
    tokens = make_tokens(home, "viewer")

    def stream(params: dict[str, str], headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        with client.stream("GET", "/api/stream", params=params,
                           headers={**bearer(tokens["viewer"]), **(headers or {})}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events, current = [], {}
            for line in response.iter_lines():
                if line.startswith("id: "):
                    current["id"] = int(line[4:])
                elif line.startswith("event: "):
                    current["event"] = line[7:]
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[6:])
                elif not line and current:
                    events.append(current)
                    current = {}
            return events

    # Act: the whole stream, then from the middle by Last-Event-ID, then by ?after=
    everything = stream(params={"once": "true"})
    middle = everything[len(everything) // 2]["id"]
    resumed = stream(params={"once": "true"}, headers={"Last-Event-ID": str(middle)})
    after = stream(params={"once": "true", "after": str(middle)})
    # Assert: ids are the ledger's seqs, in order; resuming gives exactly the rest
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids)
    assert len(ids) > 100
    assert [e["id"] for e in resumed] == [i for i in ids if i > middle] == [e["id"] for e in after]
    assert {e["event"] for e in everything} >= {"order.filled", "alert.raised", "lead.gate", "trading_state.changed"}
    assert all(e["data"]["seq"] == e["id"] and e["data"]["kind"] == e["event"] for e in everything)


def test_reads_follow_a_desk_writing_the_ledger(home: Path, client: TestClient) -> None:
    from execdesk.desk.commands import apply_rearm

    tokens = make_tokens(home, "viewer")
    before = client.get("/api/portfolio", headers=bearer(tokens["viewer"])).json()
    # Act: another process (the desk, here a writer on the same home) commits events
    with Ledger.for_home(home) as ledger:
        apply_rearm(ledger, {"by": "desk head", "reason": "absorbed"}, ledger.state.last_bar_time or 0)
    time.sleep(0.25)
    after = client.get("/api/portfolio", headers=bearer(tokens["viewer"])).json()
    # Assert
    assert before["trading_state"] == "HALTED"
    assert after["trading_state"] == "ACTIVE"
    assert after["events"] > before["events"]


def test_reads_are_paged_and_validated(home: Path, client: TestClient) -> None:
    token = bearer(make_tokens(home, "viewer")["viewer"])
    first = client.get("/api/events", params={"limit": 10}, headers=token).json()
    second = client.get("/api/events", params={"limit": 10, "after": first["next_after"]}, headers=token).json()
    fills = client.get("/api/fills", params={"limit": 5, "deployment": "STR-001-v1"}, headers=token).json()
    assert [e["seq"] for e in first["events"]] == list(range(1, 11))
    assert [e["seq"] for e in second["events"]] == list(range(11, 21))
    assert len(fills["fills"]) == 5
    assert fills["total"] > 5
    assert {f["deployment_id"] for f in fills["fills"]} == {"STR-001-v1"}
    assert client.get("/api/events", params={"limit": 0}, headers=token).status_code == 422
    assert client.get("/api/events", params={"kind": "no.such"}, headers=token).status_code == 422
    assert client.get("/api/deployments/NOPE-v1", headers=token).status_code == 404
    assert client.get("/api/reports/..%2F..%2Fetc/passwd", headers=token).status_code == 404
    assert client.get("/api/commands/unknown-command", headers=token).status_code == 404


def test_plans_are_each_requests_way_through_the_gates(home: Path, client: TestClient) -> None:
    token = bearer(make_tokens(home, "viewer")["viewer"])
    every = client.get("/api/plans", headers=token).json()["plans"]
    one = client.get("/api/plans", params={"deployment": "STR-001-v1"}, headers=token).json()["plans"]
    # the demo's four, and the fifth the risk gate refused (a second team's copy of STR-001: correlation 1.0)
    assert sorted({p["deployment"] for p in every}) == ["STR-001-v1", "STR-002-v1", "STR-003-v1", "STR-004-v1",
                                                          "STR-005-v1"]
    refused = next(p for p in every if p["deployment"] == "STR-005-v1")
    assert [(g["gate"], g["outcome"]) for g in refused["plan"]["gates"]][-1] == ("risk", "refused")
    assert [p["deployment"] for p in one] == ["STR-001-v1"]
    assert [g["gate"] for g in one[0]["plan"]["gates"]] == ["intake", "signal_generator", "risk", "approval",
                                                             "deploy", "monitor"]
    assert client.get("/api/plans", params={"deployment": "../x"}, headers=token).status_code == 422


def test_no_secret_in_any_answer(home: Path, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = make_tokens(home)
    secrets = [*tokens.values(), (home / "command.key").read_text().strip() if (home / "command.key").exists() else ""]
    bodies = []
    for path in ("/api/status", "/api/portfolio", "/api/deployments", "/api/alerts", "/api/events?limit=1000",
                 "/api/team", "/api/whoami", "/api/roles", "/api/gates", "/api/plans", "/openapi.json"):
        bodies.append(client.get(path, headers=bearer(tokens["admin"])).text)
    text = "\n".join(bodies)
    assert not [s for s in secrets if s and s in text]
    stored = (home / "tokens.json").read_text()
    assert not [t for t in tokens.values() if t in stored or t.split("_", 2)[2] in stored]  # (a secret may hold "_")
    assert (home / "tokens.json").stat().st_mode & 0o777 == 0o600


def test_a_command_for_a_running_desk_is_queued_then_its_outcome_is_the_desks(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a small desk run up to mid-March; the API beside it while it "runs" (its lock held)
    from execdesk.api import actions
    from tests.kit import desk_running
    from tests.lead.test_deploy import _desk, _extend

    config, home = _desk(write_config, tmp_path)
    tokens = make_tokens(home, "ops:operator", "vic:viewer")
    with TestClient(create_app(home)) as client:
        with desk_running(home):
            queued = outcome(client, client.post("/api/commands/pause", headers=bearer(tokens["ops"]), json={
                "deployment": "STR-001-v1", "reason": "news pending", "command_id": "ops-pause-running"}),
                tokens["ops"])
            denied = client.post("/api/commands/pause", headers=bearer(tokens["vic"]),
                                 json={"deployment": "STR-001-v1", "reason": "curious"})
        requests = sorted(p.name for p in (home / "control").glob("*.json"))
        # Act: the desk carries on; its first bar applies the signed request
        actions.run_config(_extend(config, "2024-03-25T00:00:00Z"), home, report=False)
        applied = client.get("/api/commands/ops-pause-running", headers=bearer(tokens["vic"])).json()
        deployment = client.get("/api/deployments/STR-001-v1", headers=bearer(tokens["vic"])).json()
    # Assert: queued at once (one signed request file), applied by the desk with the ledger's seq; the viewer
    # refused before anything was queued
    assert queued["status"] == "queued"
    assert denied.status_code == 403
    assert len(requests) == 1
    assert applied["status"] == "applied"
    assert applied["seq"] > 0
    assert deployment["lifecycle"] == "paused"
    with Ledger.for_home(home) as ledger:
        received = [e.payload for e in ledger.events({EventKind.COMMAND_RECEIVED})
                    if e.payload["command_id"] == "ops-pause-running"]
    assert [(r["identity"]["name"], r["identity"]["role"]) for r in received] == [("ops", "operator")]
