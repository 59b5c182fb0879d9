"""The drawdown ladders and staged allocation on the replay loop with the paper venue, end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import QUANTUM
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES
from tests.kit import token_identity

NO_STAGING = {"enabled": False}
# low levels, so that a 45-day run on generated candles climbs the portfolio ladder: alert on day 1,
# reduce on day 7 (after which the tightened stops close the losers and the drawdown deepens no more)
LOW_LADDER = {"alert": 0.002, "reduce": 0.008, "trim": 0.5, "kill": 0.9}
TRIM_ONLY = {"alert": None, "reduce": None, "trim": 0.01, "kill": None}
NO_DEPLOYMENT_LADDER = {"alert": None, "reduce": None, "trim": None, "kill": None}


def _risk(**extra: Any) -> dict[str, Any]:
    return {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": NO_STAGING,
            "deployment_drawdown": NO_DEPLOYMENT_LADDER, **extra}


def _events(home: Path, *kinds: EventKind) -> list[Event]:
    with Ledger.for_home(home) as ledger:
        return list(ledger.events(set(kinds)))


def test_portfolio_ladder_when_drawdown_deepens_then_each_step_fires_once_in_order_with_its_action(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    run_desk(load_desk_config(write_config(risk=_risk(portfolio_drawdown=LOW_LADDER))), tmp_path)
    events = _events(tmp_path, EventKind.LADDER_STEPPED, EventKind.ORDER_SUBMITTED, EventKind.TRADING_STATE_CHANGED,
                     EventKind.ORDER_FILLED)
    steps = [e for e in events if e.kind is EventKind.LADDER_STEPPED]
    assert [s.payload["level"] for s in steps] == ["alert", "reduce"]
    assert all(s.deployment_id is None and s.payload["scope"] == "portfolio" for s in steps)
    assert all(s.payload["evidence"]["drawdown"] >= s.payload["evidence"]["limit"] for s in steps)
    alert, reduce = (s.seq for s in steps)

    entries = [e for e in events if e.kind is EventKind.ORDER_SUBMITTED and e.payload["reason"] == "entry_signal"]
    # alert: every entry from then on is sized at half, and the cut is named with its numbers
    after_alert = [e for e in entries if alert < e.seq]
    assert after_alert
    assert all(any(c.startswith("drawdown_ladder:") and "x 0.5" in c
                   for c in e.payload["verdict"]["sizing"]["caps_applied"]) for e in after_alert)
    assert not any("drawdown_ladder" in str(e.payload["verdict"]) for e in entries if e.seq < alert)
    # reduce: the desk is REDUCING and opens nothing more
    states = [e for e in events if e.kind is EventKind.TRADING_STATE_CHANGED]
    assert [(e.payload["to"], e.payload["reason"]) for e in states] == [("REDUCING", "drawdown_reduce")]
    assert states[0].seq > reduce - 1
    assert not [e for e in entries if e.seq > reduce]


def test_portfolio_ladder_when_trim_then_half_of_every_open_position_is_closed(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    run_desk(load_desk_config(write_config(risk=_risk(portfolio_drawdown=TRIM_ONLY))), tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        trim = next(e for e in ledger.events({EventKind.LADDER_STEPPED}) if e.payload["level"] == "trim")
        # the positions open when the trim step fired, from the fills before it
        held: dict[tuple[str, str], Decimal] = {}
        for e in ledger.events({EventKind.ORDER_FILLED}):
            if e.seq > trim.seq:
                break
            order = ledger.state.orders[e.payload["client_order_id"]]
            sign = 1 if order.side == "BUY" else -1
            key = (order.deployment_id, order.pair)
            held[key] = held.get(key, Decimal(0)) + sign * Decimal(e.payload["qty"])
        trims = {(e.payload["deployment_id"], e.payload["pair"]): Decimal(e.payload["qty"])
                 for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.payload["reason"] == "portfolio_trim"}
        assert trims  # positions were open
        assert trims == {k: (abs(q) / 2).quantize(QUANTUM, ROUND_DOWN) for k, q in held.items() if q != 0}
        assert all(e.time == trim.time for e in ledger.events({EventKind.ORDER_SUBMITTED})
                   if e.payload["reason"] == "portfolio_trim")


def test_deployment_ladder_when_kill_step_then_that_deployment_is_closed_and_halted_and_the_other_trades_on(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    strategies = [
        {"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5,
         "drawdown": {"alert": None, "reduce": None, "trim": None, "kill": 0.01}},
        {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3},
    ]
    summary = run_desk(load_desk_config(write_config(risk=_risk(), strategies=strategies)), tmp_path)
    states = {d.strategy: d for d in summary.deployments}
    killed = states["STR-001"]
    assert killed.state == "HALTED"
    assert killed.path == "ACTIVE -> REDUCING (drawdown_kill) -> HALTED (drawdown_kill)"
    assert states["STR-004"].state == "ACTIVE"
    with Ledger.for_home(tmp_path) as ledger:
        halted = next(e for e in ledger.events({EventKind.DEPLOYMENT_STATE_CHANGED}, deployment_id=killed.id)
                      if e.payload["to"] == "HALTED")
        step = next(iter(ledger.events({EventKind.LADDER_STEPPED}, deployment_id=killed.id)))
        assert (step.payload["level"], step.payload["step"]) == ("kill", 4)
        assert all(p.deployment_id != killed.id for p in ledger.state.open_positions())
        after = [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.seq > halted.seq]
        assert after, "the other deployment trades on"
        assert all(e.deployment_id != killed.id for e in after)


def test_ladder_when_run_is_split_then_steps_fire_once_and_the_result_equals_one_run(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    risk = _risk(portfolio_drawdown=LOW_LADDER)
    run_desk(load_desk_config(write_config(risk=risk)), tmp_path / "whole")
    steps = _events(tmp_path / "whole", EventKind.LADDER_STEPPED)
    # stop the first run between the alert and the reduce step, then carry on to the end
    cut = steps[0].time + 3600 * 6
    assert cut < steps[1].time
    end = datetime.fromtimestamp(cut, UTC).isoformat()
    run_desk(load_desk_config(write_config(risk=risk, market__end=end)), tmp_path / "split")
    run_desk(load_desk_config(write_config(risk=risk)), tmp_path / "split")
    with Ledger.for_home(tmp_path / "whole") as a, Ledger.for_home(tmp_path / "split") as b:
        keep = {k.value for k in (EventKind.LADDER_STEPPED, EventKind.ORDER_SUBMITTED, EventKind.ORDER_DENIED,
                                  EventKind.ORDER_FILLED, EventKind.TRADING_STATE_CHANGED)}
        assert ([c for _s, c, _h in a.event_contents() if c.split("|")[1] in keep]
                == [c for _s, c, _h in b.event_contents() if c.split("|")[1] in keep])
        assert b.state.ladder_step == a.state.ladder_step == 2
        assert len(list(b.events({EventKind.LADDER_STEPPED}))) == 2


def test_staging_when_enabled_then_deployments_start_at_ten_percent_and_sizes_follow_the_fraction(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    risk = {"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": {"period_days": 7}}
    run_desk(load_desk_config(write_config(risk=risk)), tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        staged = list(ledger.events({EventKind.ALLOCATION_STAGED}))
        starts = [e for e in staged if e.payload["action"] == "start"]
        assert {e.deployment_id for e in starts} == set(ledger.state.deployments)
        assert all(e.payload["fraction_after"] == 0.1 for e in starts)
        # each judged period is a whole week long, judged on the deployment's equity at its end
        judged = [e for e in staged if e.payload["action"] not in ("start", "lead_adjust")]
        assert judged
        assert all(e.payload["period_to"] - e.payload["period_from"] >= 7 * 86_400 for e in judged)
        for e in judged:
            p = e.payload
            assert abs(p["period_return"] - (p["equity"] / p["anchor_equity"] - 1)) < 1e-6
        # the fraction in force when each entry was sized is in its verdict
        fraction = {d: 0.1 for d in ledger.state.deployments}
        for e in ledger.events({EventKind.ALLOCATION_STAGED, EventKind.ORDER_SUBMITTED}):
            if e.kind is EventKind.ALLOCATION_STAGED:
                fraction[e.deployment_id or ""] = e.payload["fraction_after"]
            elif e.payload["reason"] == "entry_signal":
                numbers = e.payload["verdict"]["numbers"]
                assert float(numbers["allocation_fraction"]) == fraction[e.deployment_id or ""]
                in_use = float(numbers["deployment_equity"]) * fraction[e.deployment_id or ""]
                assert abs(float(numbers["equity_in_use"]) - in_use) < 0.02


def test_portfolio_ladder_when_a_human_authorizes_trim_then_it_waits_for_approve_and_trims_at_the_next_bar(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from execdesk.api import actions
    from execdesk.lead.outbox import DecisionRequests, Outbox

    # Arrange: the trim step is left to a human; the desk runs past it
    risk = _risk(portfolio_drawdown=TRIM_ONLY)
    run_desk(load_desk_config(write_config(risk=risk, lead={"human_authorizes": ["trim"]})), tmp_path)
    requested = _events(tmp_path, EventKind.APPROVAL_REQUESTED)
    assert [e.payload["step"] for e in requested] == ["trim"]
    request_id = requested[0].payload["request_id"]
    assert not [e for e in _events(tmp_path, EventKind.ORDER_SUBMITTED) if e.payload["reason"] == "portfolio_trim"]
    pending = DecisionRequests(Outbox(tmp_path / "outbox")).pending()
    assert [m.request_id for m in pending] == [request_id]
    assert pending[0].body["evidence"]["drawdown"] >= 0.01
    # Act: a human approves; the desk carries on
    officer = token_identity(tmp_path, "risk-officer", "risk")
    answer = actions.decide(tmp_path, request_id, "approve", "trim it", 1_900_000_000, identity=officer)
    run_desk(load_desk_config(write_config(risk=risk, lead={"human_authorizes": ["trim"]},
                                           market__end="2024-04-20T00:00:00Z")), tmp_path)
    # Assert: authorized by the human, the trim done at the first bar of the run that saw the answer
    assert answer["decision"] == "approve"
    with Ledger.for_home(tmp_path) as ledger:
        decided = [e.payload for e in ledger.events({EventKind.APPROVAL_DECIDED})]
        authorized = [e for e in ledger.events({EventKind.BREACH_AUTHORIZED})]
        trims = [e for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.payload["reason"] == "portfolio_trim"]
        started = [e for e in ledger.events({EventKind.RUN_STARTED})][-1]
    assert [(d["decision"], d["by"]) for d in decided] == [("approved", "risk-officer")]
    assert [(a.payload["by"], a.payload["step"]) for a in authorized] == [("risk-officer", "trim")]
    assert trims
    assert {e.time for e in trims} == {authorized[0].time}
    assert authorized[0].time == started.time + 3600  # the close of the first bar of that run


def test_portfolio_ladder_when_a_human_denies_trim_then_nothing_is_closed(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from execdesk.api import actions

    risk = _risk(portfolio_drawdown=TRIM_ONLY)
    run_desk(load_desk_config(write_config(risk=risk, lead={"human_authorizes": ["trim"]})), tmp_path)
    request_id = _events(tmp_path, EventKind.APPROVAL_REQUESTED)[0].payload["request_id"]
    actions.decide(tmp_path, request_id, "deny", "the drawdown is noise", 1_900_000_000)
    run_desk(load_desk_config(write_config(risk=risk, lead={"human_authorizes": ["trim"]},
                                           market__end="2024-04-20T00:00:00Z")), tmp_path)
    decided = _events(tmp_path, EventKind.APPROVAL_DECIDED)
    assert [e.payload["decision"] for e in decided] == ["denied"]
    assert not [e for e in _events(tmp_path, EventKind.ORDER_SUBMITTED) if e.payload["reason"] == "portfolio_trim"]
    assert not _events(tmp_path, EventKind.BREACH_AUTHORIZED)
