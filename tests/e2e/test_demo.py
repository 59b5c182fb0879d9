"""`execdesk demo` end to end, as a user runs it, and what it leaves in the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from execdesk.store.projections import all_projection_rows
from tests.kit import replay_fills

pytestmark = pytest.mark.slow

SHOCK = int(pd.Timestamp("2024-09-20T14:00:00Z").timestamp())


def _demo(home: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "execdesk.cli", "demo", "--home", str(home), "--json", *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    home = tmp_path_factory.mktemp("demo")
    data = _demo(home)
    return data, Path(data["ledger"]).parent


def test_demo_when_run_then_json_lists_every_deployment_with_its_figures(demo_run: tuple[dict[str, Any], Path]) -> None:
    data, _home = demo_run
    assert data["ok"] is True
    deployments = {d["strategy"]: d for d in data["deployments"]}
    assert set(deployments) == {"STR-001", "STR-002", "STR-003", "STR-004"}
    for d in deployments.values():
        assert {"id", "strategy", "trades", "pnl", "max_drawdown", "state"} <= set(d)
        assert d["trades"] > 0
    # the report: report.md, its JSON/YAML, the comparison, a PNG per deployment — each a file
    assert {Path(p).name for p in data["reports"]} >= {"report.md", "comparison.md", "dashboard-STR-001-v1.png"}
    assert all(Path(p).is_file() for p in data["reports"])


def test_demo_when_market_shock_then_circuit_breaker_leaves_the_desk_flat_and_halted(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    data, home = demo_run
    assert data["trading_state"] == "HALTED"
    assert all(d["state"] == "HALTED" for d in data["deployments"])
    with Ledger.for_home(home) as ledger:
        kinds = [e.kind for e in ledger.events({EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED,
                                                EventKind.BREACH_AUTHORIZED, EventKind.TRADING_STATE_CHANGED})]
        # the seed's protocol, in order: monitor detects, risk confirms, lead authorizes, then flat and HALTED
        assert kinds == [EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED, EventKind.BREACH_AUTHORIZED,
                         EventKind.TRADING_STATE_CHANGED, EventKind.TRADING_STATE_CHANGED]
        detected = next(iter(ledger.events({EventKind.BREACH_DETECTED})))
        assert SHOCK <= detected.time <= SHOCK + 3 * 3600
        assert not ledger.state.open_positions()
        assert not ledger.state.open_orders()
        halted_at = max(e.seq for e in ledger.events({EventKind.TRADING_STATE_CHANGED}))
        after = [e for e in ledger.events({EventKind.ORDER_SUBMITTED, EventKind.ORDER_FILLED}) if e.seq > halted_at]
        assert after == [], "nothing trades while HALTED"


def test_demo_when_strategy_degrades_then_its_drawdown_stops_it_before_the_shock(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    data, home = demo_run
    degrading = next(d for d in data["deployments"] if d["strategy"] == "STR-002")
    assert degrading["path"].startswith("ACTIVE -> REDUCING (drawdown_reduce")
    assert degrading["pnl"] < 0
    with Ledger.for_home(home) as ledger:
        reduce = [e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id=degrading["id"])
                  if e.payload["reason"] == "drawdown_reduce"]
        assert reduce
        assert reduce[0].time < SHOCK
        assert reduce[0].payload["evidence"]["drawdown"] >= 0.12  # the demo's deployment ladder: reduce at 12%
        # the ladder's steps, mildest first, each recorded by the risk manager with its level
        steps = [e.payload for e in ledger.events({EventKind.LADDER_STEPPED}, deployment_id=degrading["id"])]
        assert [s["level"] for s in steps][:2] == ["alert", "reduce"]
        assert all(s["evidence"]["drawdown"] >= s["evidence"]["limit"] for s in steps)


DOWNTREND = int(pd.Timestamp("2024-07-12T00:00:00Z").timestamp())  # SOL's forced downtrend (demo.yaml)
RETURN_RULES = {"drift_sharpe", "drift_psr", "drift_page_hinkley", "drift_win_rate", "drift_ks"}


def test_demo_when_strategy_degrades_then_the_monitor_flags_it_within_a_bounded_number_of_trades(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    _data, home = demo_run
    with Ledger.for_home(home) as ledger:
        dep = "STR-002-v1"
        alerts = [e for e in ledger.events({EventKind.ALERT_RAISED}, deployment_id=dep)
                  if e.payload["code"].startswith("drift_")]
        # first, the drawdown rule (no minimum sample); then the trade-return rules once they have evidence
        first_drawdown = next(e for e in alerts if e.payload["code"] == "drift_max_drawdown")
        first_returns = next(e for e in alerts if e.payload["code"] in RETURN_RULES)
        assert DOWNTREND < first_drawdown.time < SHOCK
        assert first_returns.time < SHOCK
        # bounded: the trades it took to flag the trade returns, counted from the start of the downtrend
        trades = first_returns.payload["evidence"]["n"]
        assert 20 <= trades <= 30, trades  # the minimum sample is 20: flagged as soon as it may speak
        # and the verdict moved off "continue", recorded with its findings
        verdicts = [e.payload["verdict"] for e in ledger.events({EventKind.DRIFT_ASSESSED}, deployment_id=dep)]
        assert verdicts
        assert verdicts[0] in ("review", "pause", "stop")


def test_demo_when_run_then_allocations_are_staged_from_half_and_promoted_by_profitable_weeks(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    _data, home = demo_run
    with Ledger.for_home(home) as ledger:
        staged = [e.payload for e in ledger.events({EventKind.ALLOCATION_STAGED})]
        starts = [s for s in staged if s["action"] == "start"]
        assert len(starts) == 4
        assert all(s["fraction_after"] == 0.5 for s in starts)
        promoted = [s for s in staged if s["action"] == "promote"]
        assert promoted
        assert all(s["period_return"] > 0 and s["fraction_after"] == 1.0 for s in promoted)
        assert all(s["period_return"] <= 0 for s in staged if s["action"] == "fall_back")


def test_demo_when_run_then_ledger_positions_and_cash_agree_with_fills(demo_run: tuple[dict[str, Any], Path]) -> None:
    data, home = demo_run
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        positions, cash = replay_fills(state, Decimal(100_000))
        assert all(pos.qty == positions[key] for key, pos in state.positions.items())
        assert state.cash() == cash
        # flat at the end: equity is the cash, and the reported P&L adds up to it
        assert data["equity"] == pytest.approx(float(cash), abs=0.01)
        assert sum(d["pnl"] for d in data["deployments"]) == pytest.approx(float(cash) - 100_000, abs=0.05)
        assert ledger.read_projections() == all_projection_rows(ledger.rebuild_state())
        assert ledger.verify_chain() is None


def test_demo_when_same_seed_then_same_ledger_content_and_other_seed_differs(
        demo_run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    _data, home = demo_run
    again = Path(_demo(tmp_path / "again")["ledger"]).parent
    other = Path(_demo(tmp_path / "other", "--seed", "8")["ledger"]).parent
    with Ledger.for_home(home) as a, Ledger.for_home(again) as b, Ledger.for_home(other) as c:
        assert a.event_contents() == b.event_contents()
        assert a.event_contents() != c.event_contents()


def test_demo_when_run_again_then_it_carries_on_from_the_complete_ledger(demo_run: tuple[dict[str, Any], Path],
                                                                        ) -> None:
    data, home = demo_run
    again = _demo(home.parent.parent)
    assert again["already_complete"] is True
    assert again["equity"] == data["equity"]


def test_demo_when_run_then_the_outbox_holds_the_revalidation_requests_the_escalation_and_the_status(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    _data, home = demo_run
    outbox = home / "outbox"
    validation = sorted((outbox / "validation").glob("*-revalidation_request-*.json"))
    orchestrator = sorted((outbox / "orchestrator").glob("*.json"))
    # the degrading strategy was reviewed by the lead and Validation asked to revalidate it
    requests = [json.loads(p.read_text()) for p in validation]
    assert any(r["subject"] == "STR-002-v1" and r["body"]["findings"] for r in requests)
    # the circuit breaker escalated to the Orchestrator; each run ends with the portfolio's status
    kinds = [json.loads(p.read_text())["kind"] for p in orchestrator]
    assert kinds.count("escalation") == 1
    assert "portfolio_status" in kinds
    # Validation hears how each strategy did live, rule by rule against its backtest
    feedback = [json.loads(p.read_text()) for p in sorted((outbox / "validation").glob("*-live_feedback-*.json"))]
    assert sorted(f["subject"] for f in feedback) == [f"STR-00{i}-v1" for i in range(1, 5)]
    assert all(f["body"]["findings"] and f["body"]["trades"] > 0 for f in feedback)
    validation = sorted((outbox / "validation").glob("*.json"))
    # and HR hears how the team did
    hr = sorted((outbox / "hr").glob("*.json"))
    team = [json.loads(p.read_text()) for p in hr if json.loads(p.read_text())["kind"] == "team_performance"]
    assert len(team) == 1
    assert team[0]["body"]["signal_generator"]["strategies_generated"] == 5  # STR-005 too: refused after it
    assert all(p.with_suffix(".md").is_file() for p in validation + orchestrator + hr)
    with Ledger.for_home(home) as ledger:
        sent = {e.payload["files"][0] for e in ledger.events({EventKind.MESSAGE_SENT})}
    assert sent == {p.relative_to(outbox).as_posix() for p in validation + orchestrator + hr}


def test_demo_when_strategy_degrades_then_the_lead_halts_it_with_a_revalidation_request_before_the_shock(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    data, home = demo_run
    with Ledger.for_home(home) as ledger:
        reviews = [e for e in ledger.events({EventKind.STRATEGY_REVIEWED}, deployment_id="STR-002-v1")]
        # first the policy's answer to the drift verdict; then, its drawdown ladder at reduce, a halt
        assert [e.payload["decision"] for e in reviews] == ["adjust", "pause"]
        halt = reviews[-1]
        assert halt.time < SHOCK
        assert halt.payload["evidence"]["risk"]["ladder_step"] == "reduce"
        assert halt.payload["evidence"]["findings"], "the decision names the drift evidence"
        paused = [e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id="STR-002-v1")
                  if e.payload["reason"] == "drift_pause"]
        assert [e.time for e in paused] == [halt.time]
        later = [o for o in ledger.state.orders.values() if o.deployment_id == "STR-002-v1"
                 and o.reason == "entry_signal" and o.signal_time > halt.time]
        assert later == [], "halted: no new positions"
    requests = [json.loads(p.read_text()) for p in (home / "outbox" / "validation").glob("*revalidation*.json")]
    assert any(r["subject"] == "STR-002-v1" and r["body"]["decision"] == "pause" for r in requests)
    # the summary says it in order: deployed through the gates, halted, then the circuit breaker
    what = [step["what"] for step in data["timeline"]]
    deployed = [i for i, w in enumerate(what) if w.startswith("lead deploys")]
    halted = next(i for i, w in enumerate(what) if "STR-002-v1: drift verdict" in w and "to pause" in w)
    breaker = next(i for i, w in enumerate(what) if w.startswith("monitor detects portfolio drawdown"))
    assert len(deployed) == 4
    assert max(deployed) < halted < breaker


def test_demo_when_run_then_every_strategy_passed_the_six_gates_in_order_but_the_copy_refused_for_correlation(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    _data, home = demo_run
    with Ledger.for_home(home) as ledger:
        gates: dict[str, list[str]] = {}
        outcomes: dict[str, list[str]] = {}
        for e in ledger.events({EventKind.GATE}):
            gates.setdefault(e.payload["deployment_id"], []).append(e.payload["gate"])
            outcomes.setdefault(e.payload["deployment_id"], []).append(e.payload["outcome"])
            if e.payload["outcome"] == "refused":
                refusal = e.payload
        deployed = set(ledger.state.deployments)
    live = {f"STR-00{i}-v1" for i in range(1, 5)}
    assert {d: gates[d] for d in live} == {d: ["intake", "signal_generator", "risk", "approval", "deploy", "monitor"]
                                           for d in live}
    assert all(o in ("passed", "conditional", "not_required") for d in live for o in outcomes[d])
    # the second team's copy of STR-001: measured on the same dates, correlation 1.0 > 0.30, refused at the risk gate
    assert gates["STR-005-v1"] == ["intake", "signal_generator", "risk"]
    assert refusal["deployment_id"] == "STR-005-v1"
    assert refusal["evidence"]["rules"]["pairwise_correlation"]["value"] > 0.95
    assert "correlate 1.0000 with live deployment STR-001-v1" in refusal["reason"]
    assert deployed == live


def test_demo_when_done_then_the_next_commands_it_prints_run_as_printed(demo_run: tuple[dict[str, Any], Path],
                                                                       tmp_path: Path) -> None:
    import shlex
    import shutil

    # Arrange: a copy of the demo's root (the commands change the desk); the demo again there, as a person reads it
    _data, home = demo_run
    root = tmp_path / "root"
    shutil.copytree(home.parent.parent, root, symlinks=True)
    shown = subprocess.run([sys.executable, "-m", "execdesk.cli", "demo", "--home", str(root)], capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    lines = [line.strip() for line in shown.stdout.splitlines() if line.startswith("  execdesk ")]
    # Act: each one as printed (but serve, which runs until stopped)
    ran = {line: subprocess.run([sys.executable, "-m", "execdesk.cli", *shlex.split(line)[1:]], capture_output=True,
                                text=True, timeout=300) for line in lines if not line.startswith("execdesk serve")}
    # Assert: status, report, rearm (the demo ends HALTED), deploy of STR-001 v2; each exit 0
    assert [line.split()[1] for line in lines] == ["status", "report", "rearm", "deploy", "demo", "serve"]
    assert all(f"--home {root / 'demo' / 'seed-7'}" in line for line in lines if not line.startswith("execdesk demo"))
    assert f"execdesk demo --until 2024-10-15 --home {root}" in lines
    for line, result in ran.items():
        assert result.returncode == 0, (line, result.stderr)
    with Ledger.for_home(root / "demo" / "seed-7") as ledger:
        v2 = ledger.state.deployments["STR-001-v2"]
        assert any(f.deployment_id == "STR-001-v2" for f in ledger.state.fills.values()), "v2 traded the two weeks"
        assert v2.state.value == "ACTIVE"


def test_demo_report_when_read_then_each_figure_is_named_once_and_agrees_across_files(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    import re

    from execdesk.api import actions

    # Arrange: the report's files and the status of the same desk
    data, home = demo_run
    files = {Path(p).name: Path(p) for p in data["reports"]}
    report = json.loads(files["report.json"].read_text())
    comparison = json.loads(files["comparison.json"].read_text())
    report_md, comparison_md = files["report.md"].read_text(), files["comparison.md"].read_text()
    status = {d["id"]: d for d in actions.status(home)["deployments"]}
    for d in report["deployments"]:
        # P&L: the report's (equity less capital, net of fees) is status's realised P&L net of fees (flat at the end)
        assert float(status[d["id"]]["realized_pnl_net"]) == pytest.approx(d["pnl"], abs=0.01)
        row = next(line for line in report_md.splitlines() if line.startswith(f"| {d['id']} "))
        assert f"{d['pnl']:,.2f}" in row
        assert f"{d['max_drawdown']:.2%}" in row  # "equity max DD"
    # each comparison row under what it measures; PSR a probability, not the Sharpe figures again
    assert "| equity max DD |" in report_md
    assert "| max_drawdown |" not in comparison_md
    assert "| sharpe |" not in comparison_md
    for c in comparison["deployments"]:
        psr = next(r for r in c["rows"] if r["metric"] == "psr")
        section = comparison_md.split(f"## {c['id']} ")[1].split("\n## ")[0]
        line = next(x for x in section.splitlines() if x.startswith("| PSR "))
        cells = [x.strip() for x in line.strip("|").split("|")]
        assert cells[1] == f"SR* {psr['backtest']:.3f}"
        if psr["p_value"] is not None:
            assert 0.0 <= psr["p_value"] <= 1.0
            assert cells[2] == f"{psr['p_value']:.3g}"
        assert re.search(r"\| Sharpe per trade \| ", section)


def test_demo_when_run_then_its_story_shows_a_stop_resting_at_the_venue_and_the_copy_refused_for_correlation(
        demo_run: tuple[dict[str, Any], Path]) -> None:
    data, home = demo_run
    what = [t["what"] for t in data["timeline"]]
    assert any(w.startswith("STR-002-v1: its stop rests at the venue: SOL/USDT sell") for w in what)
    assert any(w.startswith("STR-002-v1: the stop resting at the venue filled inside the bar") for w in what)
    assert any(w.startswith("lead: STR-005-v1 -> paper refused at the risk gate: REJECTED: pairwise_correlation")
               for w in what)
    with Ledger.for_home(home) as ledger:
        stops = [o for o in ledger.state.orders.values() if o.type == "STOP_MARKET"]
    assert {o.deployment_id for o in stops} == {"STR-002-v1"}
    assert any(o.status.value == "FILLED" for o in stops)
