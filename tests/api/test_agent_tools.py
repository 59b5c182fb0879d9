"""The agent tools (MCP), driven with the SDK's own client: over stdio (``execdesk mcp``), over streamable HTTP at
``/mcp`` of the service, and in process. A client sees the tools its role may use; the desk authorizes every
command again, runs the gates and applies four eyes — a refusal is a tool error naming the rule or the gate."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from execdesk.api import actions
from execdesk.api.agent_tools import TOOLS, build_server
from execdesk.api.service import create_app
from execdesk.api.tokens import TokenStore
from execdesk.api.view import DeskView
from execdesk.desk.identity import Identity
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle
from tests.api.conftest import bearer, make_tokens, serving
from tests.conftest import BUNDLES

READS = {t.name for t in TOOLS.values() if t.right == "read"}
CONTROLS = set(TOOLS) - READS
DEMO = ["STR-001-v1", "STR-002-v1", "STR-003-v1", "STR-004-v1"]
EXECDESK = Path(sys.executable).with_name("execdesk")


def text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def identities(home: Path, *specs: str) -> dict[str, Identity]:
    """A token's identity per ``name:role``, authenticated as the service does."""
    store = TokenStore(home)
    return {name: store.authenticate(token) for name, token in make_tokens(home, *specs).items()}


@asynccontextmanager
async def in_process(home: Path, who: Identity) -> AsyncIterator[Client]:
    """The SDK's client on the tools of ``home`` in this process, every request as ``who``."""
    view = DeskView(home)
    try:
        async with Client(build_server(home, None, lambda _ctx: who, view)) as client:
            yield client
    finally:
        view.close()


def events(home: Path, kind: EventKind) -> list[dict[str, Any]]:
    with Ledger.for_home(home) as ledger:
        return [e.payload for e in ledger.events({kind})]


def bundle_as(strategy_id: str, version: int = 1) -> dict[str, Any]:
    spec = load_bundle(BUNDLES / "mean_revert_bbands.yaml").to_canonical_dict()
    spec.update(id=strategy_id, version=version)
    return spec


@pytest.fixture
def served(home: Path) -> Iterator[str]:
    """The service on a free port of 127.0.0.1; the URL of its agent tools."""
    with serving(home) as base:
        yield f"{base}/mcp"


@asynccontextmanager
async def over_http(url: str, token: str) -> AsyncIterator[Client]:
    async with (httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30, read=300)) as http,
                Client(streamable_http_client(url, http_client=http)) as client):
        yield client


# ------------------------------------------------------------------------------------------------ stdio
@pytest.mark.slow
def test_stdio_when_a_viewers_token_then_only_the_read_tools_and_status_shows_the_halted_desk(home: Path) -> None:
    token = make_tokens(home, "watcher:viewer")["watcher"]
    params = StdioServerParameters(command=str(EXECDESK), args=["mcp", "--home", str(home)],
                                   env={"EXECDESK_TOKEN": token, "PYTHONDONTWRITEBYTECODE": "1"})

    async def session() -> tuple[set[str], CallToolResult, CallToolResult]:
        async with Client(params) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            status, whoami = await client.call_tool("status", {}), await client.call_tool("whoami", {})
            TokenStore(home).revoke("watcher")  # a token revoked meanwhile is refused from its next request
            with pytest.raises(MCPError, match="not a live token"):
                await client.call_tool("status", {})
            return listed, status, whoami

    listed, status, whoami = anyio.run(session)
    assert listed == READS
    assert not status.is_error
    assert status.structured_content is not None
    assert status.structured_content["trading_state"] == "HALTED"
    assert [d["id"] for d in status.structured_content["deployments"]] == DEMO
    assert whoami.structured_content is not None
    assert whoami.structured_content["name"] == "watcher"
    assert (whoami.structured_content["role"], whoami.structured_content["via"]) == ("viewer", "token")
    assert (whoami.structured_content["may"], whoami.structured_content["tools"]) == (["read"], sorted(READS))


def test_stdio_when_no_live_token_then_it_refuses_to_start_with_one_line_and_exit_2(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EXECDESK_TOKEN"}
    for extra in ([], ["--token", "edk_000000000000_" + "x" * 43]):
        done = subprocess.run([EXECDESK, "mcp", "--home", str(home), *extra], capture_output=True, text=True,
                              env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.strip().splitlines()) == 1
        assert "token" in done.stderr


# ------------------------------------------------------------------------------------------------ the desk's limits
@pytest.mark.slow
def test_deploy_when_the_risk_gate_refuses_then_a_tool_error_with_its_reason_and_the_ledger_has_it(
        home: Path) -> None:
    # Arrange: the lead re-arms the desk, whose four deployments then hold all of its capital
    who = identities(home, "lead:lead", "ops:operator")

    async def scenario() -> tuple[CallToolResult, CallToolResult]:
        async with in_process(home, who["lead"]) as lead:
            rearmed = await lead.call_tool("rearm", {"reason": "the crash is over"})
        async with in_process(home, who["ops"]) as ops:
            # Act: a new strategy (the bundle itself), asked for all of the equity
            deployed = await ops.call_tool("deploy", {"bundle": bundle_as("STR-009"), "allocation": 1.0,
                                                      "reason": "new idea", "command_id": "agent-deploy-1"})
        return rearmed, deployed

    rearmed, deployed = anyio.run(scenario)
    # Assert: refused by the risk gate, with its reason, and recorded with the operator's identity
    assert not rearmed.is_error
    assert rearmed.structured_content is not None
    assert rearmed.structured_content["outcome"] == "applied"
    assert deployed.is_error
    # (the demo leaves 1% unallocated, the refused STR-005's: the whole equity asked is over the deployed cap, and
    # the bundle, a copy of STR-002, correlates 1.0 with it)
    assert "STR-009-v1: the risk gate refused it: REJECTED: deployed_fraction" in text(deployed)
    assert "correlate 1.0000 with live deployment STR-002-v1" in text(deployed)
    gates = [g for g in events(home, EventKind.GATE) if g["deployment_id"] == "STR-009-v1"]
    assert [(g["gate"], g["outcome"]) for g in gates][-1] == ("risk", "refused")
    assert gates[-1]["by"] == "ops"
    assert gates[-1]["reason"] in text(deployed)
    received = [c for c in events(home, EventKind.COMMAND_RECEIVED) if c["command_id"] == "agent-deploy-1"]
    assert [(c["action"], c["by"], c["identity"]["role"]) for c in received] == [("deploy", "ops", "operator")]
    with Ledger.for_home(home) as ledger:
        assert "STR-009-v1" not in ledger.state.deployments


def test_pause_when_a_viewer_calls_it_by_name_then_refused_naming_the_rule_and_an_operator_may_after_a_rearm(
        home: Path) -> None:
    who = identities(home, "watcher:viewer", "ops:operator", "lead:lead")
    pause = {"deployment": "STR-001-v1", "reason": "too many losses"}

    async def scenario() -> list[CallToolResult]:
        async with in_process(home, who["watcher"]) as viewer:
            refused = await viewer.call_tool("pause", pause)
        async with in_process(home, who["ops"]) as ops:
            no_rearm = await ops.call_tool("rearm", {"reason": "let me trade"})  # lifting a HALT is not its right
            no_kill = await ops.call_tool("kill", {"reason": "panic"})
        async with in_process(home, who["lead"]) as lead:
            rearmed = await lead.call_tool("rearm", {"reason": "the crash is over"})
        async with in_process(home, who["ops"]) as ops:
            paused = await ops.call_tool("pause", pause)
        return [refused, no_rearm, no_kill, rearmed, paused]

    refused, no_rearm, no_kill, rearmed, paused = anyio.run(scenario)
    # the viewer's call is refused before anything reaches the desk, naming the rule
    assert refused.is_error
    assert text(refused) == ("not allowed: watcher (viewer) may not pause: the pause right is admin, lead, operator, "
                             "risk's")
    assert no_rearm.is_error
    assert "ops (operator) may not rearm: the rearm right is admin, lead, risk's" in text(no_rearm)
    assert no_kill.is_error
    assert "ops (operator) may not kill" in text(no_kill)
    assert not (home / "control").exists() or list((home / "control").glob("*.json")) == []  # no request was left
    commands = events(home, EventKind.COMMAND_RECEIVED) + events(home, EventKind.COMMAND_REFUSED)
    assert [c for c in commands if c["by"] == "watcher" or (c["by"] == "ops" and c["action"] != "pause")] == []
    # after the lead's rearm, the operator's pause is applied, as the operator
    assert not rearmed.is_error, text(rearmed)
    assert not paused.is_error, text(paused)
    assert paused.structured_content is not None
    assert paused.structured_content["outcome"] == "applied"
    assert paused.structured_content["command_id"]
    received = {c["command_id"]: c for c in events(home, EventKind.COMMAND_RECEIVED)}
    assert received[paused.structured_content["command_id"]]["by"] == "ops"
    status = {d["id"]: d for d in actions.status(home)["deployments"]}
    assert status["STR-001-v1"]["lifecycle"] == "paused"


# ------------------------------------------------------------------------------------------------ streamable HTTP
def test_http_when_no_token_then_401_and_a_leads_token_lists_the_control_tools_and_reads_status(
        home: Path, served: str) -> None:
    tokens = make_tokens(home, "lead:lead", "watcher:viewer")
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer edk_000000000000_" + "x" * 43}, {"Authorization": "Basic x"}):
        answer = httpx2.post(served, json=initialize, headers={**accept, **headers})
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")

    async def sessions() -> tuple[set[str], CallToolResult, set[str]]:
        async with over_http(served, tokens["lead"]) as lead:
            listed = {t.name for t in (await lead.list_tools()).tools}
            status = await lead.call_tool("status", {})
        async with over_http(served, tokens["watcher"]) as viewer:
            viewer_listed = {t.name for t in (await viewer.list_tools()).tools}
        return listed, status, viewer_listed

    listed, status, viewer_listed = anyio.run(sessions)
    assert listed == READS | CONTROLS
    assert viewer_listed == READS
    assert not status.is_error
    assert status.structured_content is not None
    assert status.structured_content["trading_state"] == "HALTED"
    assert [d["id"] for d in status.structured_content["deployments"]] == DEMO


def test_http_when_the_docs_client_runs_as_written_then_it_prints_the_desks_status(
        home: Path, served: str, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/AGENTS.md's client, its text as the doc shows it (only the port: the test's, not 8765)."""
    import ast
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "AGENTS.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", doc, re.DOTALL)
    assert block is not None
    assert "http://127.0.0.1:8765/mcp" in block.group(1)
    code = compile(block.group(1).replace("http://127.0.0.1:8765/mcp", served), "docs/AGENTS.md", "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    token = make_tokens(home, "agent:viewer")["agent"]

    async def run() -> None:
        awaited = eval(code, {"token": token})  # top-level await: a coroutine to await
        if awaited is not None:
            await awaited

    anyio.run(run)
    printed = capsys.readouterr().out
    assert "is_error=False" in printed, printed
    assert "HALTED" in printed
    assert "STR-004-v1" in printed


@pytest.mark.slow
def test_http_four_eyes_when_a_lead_approves_its_own_live_deploy_then_refused_and_another_leads_is_accepted(
        home: Path, served: str) -> None:
    tokens = make_tokens(home, "lead-a:lead", "lead-b:lead")
    deploy = {"bundle": bundle_as("STR-002", version=2), "venue": "ccxt:binance", "live": True,
              "allocation": 0.1, "reason": "v2 on real money"}

    async def sessions() -> tuple[CallToolResult, CallToolResult, CallToolResult]:
        async with over_http(served, tokens["lead-a"]) as a:
            pending = await a.call_tool("deploy", deploy)
            assert not pending.is_error, text(pending)
            assert pending.structured_content is not None
            request = pending.structured_content["approval_request"]
            own = await a.call_tool("approve", {"request_id": request, "reason": "mine, and fine"})
        async with over_http(served, tokens["lead-b"]) as b:
            other = await b.call_tool("approve", {"request_id": request, "reason": "checked it"})
        return pending, own, other

    pending, own, other = anyio.run(sessions)
    assert pending.structured_content is not None
    assert pending.structured_content["status"] == "pending_approval"
    assert pending.structured_content["outcome"] == "applied"
    # the requester's own approval: four eyes
    assert own.is_error
    assert "four eyes for real money: lead-a requested this live deployment and cannot approve it" in text(own)
    # another lead's approval is taken (recorded as theirs); the deploy then runs its gates again — and this paper
    # desk's deploy gate will not put real money on it: that refusal, not four eyes, is what comes back
    assert "four eyes" not in text(other)
    decided = [d for d in events(home, EventKind.APPROVAL_DECIDED) if d["deployment_id"] == "STR-002-v2"]
    assert [(d["decision"], d["by"]) for d in decided] == [("approved", "lead-b")]
    gates = [(g["gate"], g["outcome"]) for g in events(home, EventKind.GATE) if g["deployment_id"] == "STR-002-v2"]
    assert gates[:4] == [("intake", "passed"), ("signal_generator", "passed"), ("risk", gates[2][1]),
                         ("approval", "pending")]
    assert ("approval", "approved") in gates[4:]
    if other.is_error:
        assert "the deploy gate refused it" in text(other)
        assert gates[-1] == ("deploy", "refused")


def test_mounted_when_the_app_runs_without_its_lifespan_then_503_and_its_lifespan_may_run_twice(home: Path) -> None:
    token = make_tokens(home, "lead:lead")["lead"]
    app = create_app(home)
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {**bearer(token), "Accept": "application/json, text/event-stream"}
    assert TestClient(app).post("/mcp", json=body, headers=headers).status_code == 503  # (no lifespan: not started)
    for _ in range(2):  # a session manager runs once: each start of the app gets its own
        with TestClient(app) as client:
            assert client.post("/mcp", json=body).status_code == 401
            assert client.get("/api/health").json()["ok"] is True
            assert client.post("/mcp", json=body, headers=headers).status_code != 503
