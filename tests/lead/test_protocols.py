"""The lead's protocols as data (execdesk.lead.protocols.Lead): its generators driven by hand on a small ledger
and a hand-made market, the way the desk's engine drives them (each decision applied before the next is asked
for), without a desk or a venue: only the Record decisions are applied here, every other one is answered None.

Market: BTC/USDT closes 100, 90, 75, 60 on four hourly bars from 2024-01-01 00:00 UTC (ETH/USDT flat at 10);
bar 3 closes at 04:00. Desk: 10,000 USDT, one deployment ``d1`` of all of it, trading BTC/USDT.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest

from execdesk.data.feed import MarketView
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO, Breach, Snapshot
from execdesk.domain.types import AlertLevel, Direction, IntentReason, Side, TradingState
from execdesk.lead.decisions import (
    CancelOpen,
    Decision,
    Decisions,
    Record,
    Reschedule,
    SendMessage,
    Submit,
    SubmitExits,
)
from execdesk.lead.protocols import Lead, LeadSettings
from execdesk.monitor.alerts import Alert
from execdesk.risk.config import RiskConfig
from execdesk.store.ledger import Ledger
from tests.kit import desk_ledger

DEP = "d1"
BTC = "BTC/USDT"
D = Decimal
G = 3  # the bar the tests act on: BTC closes at 60
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
T = TypeVar("T")


# ---------------------------------------------------------------- builders
def candles(closes: list[float]) -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=len(closes), freq="h", tz="UTC")
    close = pd.Series(closes, dtype=float)
    return pd.DataFrame({"date": dates, "open": close, "high": close, "low": close, "close": close,
                         "volume": 1000.0})


def market() -> MarketView:
    return MarketView({BTC: candles([100, 90, 75, 60]), "ETH/USDT": candles([10, 10, 10, 10])}, "1h")


def submitted(coid: str, side: str, qty: str, time: int, dep: str = DEP, pair: str = BTC) -> Event:
    return Event(time, EventKind.ORDER_SUBMITTED, {
        "client_order_id": coid, "deployment_id": dep, "pair": pair, "side": side,
        "direction": "LONG", "type": "MARKET", "qty": D(qty),
        "reason": "entry_signal" if side == "BUY" else "deployment_halt", "signal_time": time - 1,
        "ref_price": D("100")}, dep)


def filled(coid: str, qty: str, price: str, time: int, dep: str = DEP) -> Event:
    return Event(time, EventKind.ORDER_FILLED, {
        "client_order_id": coid, "fill_id": f"{coid}-1", "qty": D(qty), "price": D(price), "fee": D(0)}, dep)


def trade(ledger: Ledger, coid: str, side: str, qty: str, price: str, time: int) -> None:
    """An order submitted at ``time`` and filled whole at ``time + 1`` (long positions only)."""
    ledger.record(submitted(coid, side, qty, time))
    ledger.record(filled(coid, qty, price, time + 1))
    ledger.flush()


def set_deployment_state(ledger: Ledger, to: TradingState, reason: str, dep: str = DEP) -> None:
    ledger.record(Event(20, EventKind.DEPLOYMENT_STATE_CHANGED, {
        "deployment_id": dep, "from": ledger.state.deployments[dep].state, "to": to, "reason": reason,
        "evidence": {}}, dep))
    ledger.flush()


def set_ladder_step(ledger: Ledger, step: int, dep: str | None = DEP) -> None:
    ledger.record(Event(20, EventKind.LADDER_STEPPED, {
        "scope": dep or PORTFOLIO, "step": step, "level": ["alert", "reduce", "trim", "kill"][step - 1],
        "evidence": {}, "action": "set up by the test", "by": "risk"}, dep))
    ledger.flush()


def lead_on(ledger: Ledger, risk: RiskConfig | None = None) -> Lead:
    return Lead(ledger, market(), LeadSettings(risk or RiskConfig(), stoploss={DEP: -0.05}))


def drive(ledger: Ledger, decisions: Decisions) -> list[Decision]:
    """Every decision of a turn, in order: Records applied to the ledger as they come (the engine's order), every
    other decision answered None; a batch of exits (SubmitExits) listed as its exits, one Submit each."""
    out: list[Decision] = []
    answer: Any = None
    while True:
        try:
            decision = decisions.send(answer)
        except StopIteration:
            return out
        if isinstance(decision, SubmitExits):
            out += [Submit(intent, decision.g) for intent in decision.intents]
        else:
            out.append(decision)
        answer = ledger.record(decision.event) if isinstance(decision, Record) else None


def records(decisions: list[Decision]) -> list[Event]:
    return [d.event for d in decisions if isinstance(d, Record)]


def of_type(decisions: list[Decision], kind: type[T]) -> list[T]:
    return [d for d in decisions if isinstance(d, kind)]


def breach(scope: str, level: str, limit: float, drawdown: float, equity: float, peak: float = 10_000.0) -> Breach:
    return Breach(scope, level, limit, drawdown, equity, peak)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = desk_ledger(tmp_path, DEP, [BTC], D(10_000))
    yield led
    led.close()


@pytest.fixture
def holding(ledger: Ledger) -> Ledger:
    """The desk holding 80 BTC bought at 100 by d1: cash 2,000; equity at bar 3's close 2,000 + 80 * 60 = 6,800."""
    trade(ledger, "o1", "BUY", "80", "100", 10)
    return ledger


# ---------------------------------------------------------------- a deployment's ladder
def test_on_breaches_when_deployment_at_trim_breaches_kill_then_kill_recorded_closed_and_rescheduled(
        holding: Ledger) -> None:
    # Arrange: d1 already at its trim step; its own drawdown reaches kill at bar 3
    set_ladder_step(holding, 3)
    lead = lead_on(holding)
    t = lead.market.close_time(G)

    # Act
    decisions = drive(holding, lead.on_breaches(G, [breach(DEP, "kill", 0.25, 0.30, 7_000.0)]))

    # Assert: the kill step, REDUCING (drawdown_kill), a CRITICAL alert, its orders cancelled, its whole position
    # sold at the bar's close, the lanes rescheduled (after the flatten and at the end of the turn)
    assert [type(d) for d in decisions] == [Record, Record, Alert, CancelOpen, Submit, Reschedule, Reschedule]
    step, state = records(decisions)
    assert (step.kind, step.deployment_id, step.time) == (EventKind.LADDER_STEPPED, DEP, t)
    assert (step.payload["scope"], step.payload["step"], step.payload["level"], step.payload["by"]) == (
        DEP, 4, "kill", "risk")
    assert step.payload["evidence"]["drawdown"] == 0.30
    assert state.kind is EventKind.DEPLOYMENT_STATE_CHANGED
    assert (state.payload["to"], state.payload["reason"]) == (REDUCING, "drawdown_kill")
    alert = of_type(decisions, Alert)[0]
    assert (alert.level, alert.code, alert.scope, alert.source) == (AlertLevel.CRITICAL, "deployment_drawdown_kill",
                                                                    DEP, "risk")
    assert of_type(decisions, CancelOpen) == [CancelOpen(t, "deployment_halt", DEP)]
    exit_ = of_type(decisions, Submit)[0]
    intent = exit_.intent
    assert exit_.g == G
    assert (intent.deployment_id, intent.pair, intent.side, intent.direction, intent.reason) == (
        DEP, BTC, Side.SELL, Direction.LONG, IntentReason.DEPLOYMENT_HALT)
    assert (intent.qty, intent.ref_price, intent.signal_time) == (D(80), D(60), t)
    assert of_type(decisions, Reschedule) == [Reschedule(G), Reschedule(G)]
    dep = holding.state.deployments[DEP]
    assert (dep.state, dep.state_reason, dep.ladder_step) == (REDUCING, "drawdown_kill", 4)


def test_on_breaches_when_deployment_breaches_kill_from_no_step_then_every_step_fires_in_order(
        holding: Ledger) -> None:
    # Arrange
    lead = lead_on(holding)

    # Act
    decisions = drive(holding, lead.on_breaches(G, [breach(DEP, "kill", 0.25, 0.30, 7_000.0)]))

    # Assert: alert (WARNING), reduce (WARNING, REDUCING), trim (CRITICAL, half its position), kill (CRITICAL,
    # all of it): each step recorded before its action
    steps = [e.payload["step"] for e in records(decisions) if e.kind is EventKind.LADDER_STEPPED]
    reasons = [e.payload["reason"] for e in records(decisions) if e.kind is EventKind.DEPLOYMENT_STATE_CHANGED]
    alerts = [(a.level, a.code) for a in of_type(decisions, Alert)]
    exits = [(s.intent.reason, s.intent.qty) for s in of_type(decisions, Submit)]
    assert steps == [1, 2, 3, 4]
    assert reasons == ["drawdown_reduce", "drawdown_kill"]
    assert alerts == [(AlertLevel.WARNING, "deployment_drawdown_alert"),
                      (AlertLevel.WARNING, "deployment_drawdown_reduce"),
                      (AlertLevel.CRITICAL, "deployment_drawdown_trim"),
                      (AlertLevel.CRITICAL, "deployment_drawdown_kill")]
    # the trim's order is not applied here (no engine): the kill still finds all 80 closable
    assert exits == [(IntentReason.DEPLOYMENT_TRIM, D(40)), (IntentReason.DEPLOYMENT_HALT, D(80))]
    assert holding.state.deployments[DEP].ladder_step == 4


def test_on_breaches_when_deployment_breach_repeats_then_no_step_fires_twice(holding: Ledger) -> None:
    # Arrange: the alert step taken once
    lead = lead_on(holding)
    drive(holding, lead.on_breaches(G, [breach(DEP, "alert", 0.10, 0.11, 8_900.0)]))

    # Act
    again = drive(holding, lead.on_breaches(G, [breach(DEP, "alert", 0.10, 0.12, 8_800.0)]))

    # Assert: only the turn's reschedule
    assert again == [Reschedule(G)]


# ---------------------------------------------------------------- the portfolio ladder
def test_on_breaches_when_portfolio_breaches_reduce_then_alert_and_reduce_steps_and_desk_reducing(
        holding: Ledger) -> None:
    # Arrange
    lead = lead_on(holding)

    # Act
    decisions = drive(holding, lead.on_breaches(G, [breach(PORTFOLIO, "reduce", 0.15, 0.16, 8_400.0)]))

    # Assert
    events = records(decisions)
    assert [(e.kind, e.payload.get("step")) for e in events] == [
        (EventKind.LADDER_STEPPED, 1), (EventKind.LADDER_STEPPED, 2), (EventKind.TRADING_STATE_CHANGED, None)]
    assert all(e.deployment_id is None and e.payload.get("scope", PORTFOLIO) == PORTFOLIO for e in events)
    assert [(a.level, a.code) for a in of_type(decisions, Alert)] == [
        (AlertLevel.WARNING, "portfolio_drawdown_alert"), (AlertLevel.CRITICAL, "portfolio_drawdown_reduce")]
    assert not of_type(decisions, Submit)
    assert decisions[-1] == Reschedule(G)
    s = holding.state
    assert (s.trading_state, s.trading_reason, s.ladder_step) == (REDUCING, "drawdown_reduce", 2)


def test_on_breaches_when_portfolio_breaches_kill_then_the_circuit_breaker_path_in_order(holding: Ledger) -> None:
    # Arrange: equity 6,800 at bar 3 against a peak of 10,000: 32% down, confirmed on the ledger's numbers
    lead = lead_on(holding)
    t = lead.market.close_time(G)

    # Act
    decisions = drive(holding, lead.on_breaches(G, [breach(PORTFOLIO, "kill", 0.25, 0.32, 6_800.0)]))

    # Assert: detected (monitor) -> confirmed (risk) -> the steps -> authorized (lead) -> escalated -> closing
    events = records(decisions)
    assert [e.kind for e in events] == [
        EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED, *[EventKind.LADDER_STEPPED] * 4,
        EventKind.BREACH_AUTHORIZED, EventKind.TRADING_STATE_CHANGED, EventKind.DEPLOYMENT_STATE_CHANGED]
    detected, confirmed, *_steps, authorized, desk_state, dep_state = events
    assert detected.payload["by"] == "monitor"
    assert (confirmed.payload["by"], confirmed.payload["confirmed"], confirmed.payload["equity"],
            confirmed.payload["drawdown"]) == ("risk", True, "6800.000000", "0.320000")
    assert authorized.payload["by"] == "lead"
    assert (desk_state.payload["to"], desk_state.payload["reason"]) == (REDUCING, "circuit_breaker")
    assert (dep_state.deployment_id, dep_state.payload["to"], dep_state.payload["reason"]) == (
        DEP, REDUCING, "circuit_breaker")
    emergency = of_type(decisions, Alert)[0]
    assert (emergency.level, emergency.code, emergency.source) == (AlertLevel.EMERGENCY, "portfolio_drawdown_kill",
                                                                   "monitor")
    message = of_type(decisions, SendMessage)
    assert [(m.kind, m.subject, m.time) for m in message] == [("escalation", PORTFOLIO, t)]
    assert message[0].body["confirmation"]["confirmed"] is True
    # escalated once authorized, before anything is closed
    assert decisions.index(Record(authorized)) < decisions.index(message[0]) < decisions.index(
        CancelOpen(t, "circuit_breaker", None))
    assert of_type(decisions, CancelOpen) == [CancelOpen(t, "circuit_breaker", None)]
    assert [(s.intent.reason, s.intent.side, s.intent.qty) for s in of_type(decisions, Submit)] == [
        (IntentReason.CIRCUIT_BREAKER, Side.SELL, D(80))]
    s = holding.state
    assert (s.trading_state, s.trading_reason, s.ladder_step) == (REDUCING, "circuit_breaker", 4)


def test_on_breaches_when_portfolio_kill_with_deployment_breaches_then_the_breaker_alone_acts(
        holding: Ledger) -> None:
    # Arrange
    lead = lead_on(holding)

    # Act: the same bar also breaches d1's own kill
    decisions = drive(holding, lead.on_breaches(G, [breach(DEP, "kill", 0.25, 0.32, 6_800.0),
                                                    breach(PORTFOLIO, "kill", 0.25, 0.32, 6_800.0)]))

    # Assert: no step of d1's ladder; its position is closed once, by the circuit breaker
    assert not [e for e in records(decisions) if e.kind is EventKind.LADDER_STEPPED and e.deployment_id == DEP]
    assert [s.intent.reason for s in of_type(decisions, Submit)] == [IntentReason.CIRCUIT_BREAKER]


def test_on_breaches_when_the_ledger_does_not_confirm_the_kill_then_nothing_is_closed(ledger: Ledger) -> None:
    # Arrange: flat desk, equity 10,000; the monitor claims 30% down
    lead = lead_on(ledger)

    # Act
    decisions = drive(ledger, lead.on_breaches(G, [breach(PORTFOLIO, "kill", 0.25, 0.30, 7_000.0)]))

    # Assert: detected and rejected with the risk manager's numbers; the desk trades on
    events = records(decisions)
    assert [e.kind for e in events] == [EventKind.BREACH_DETECTED, EventKind.BREACH_CONFIRMED]
    assert (events[1].payload["confirmed"], events[1].payload["drawdown"]) == (False, "0.000000")
    assert [(a.level, a.code) for a in of_type(decisions, Alert)] == [
        (AlertLevel.EMERGENCY, "portfolio_drawdown_kill"), (AlertLevel.WARNING, "breach_not_confirmed")]
    assert not of_type(decisions, Submit)
    assert not of_type(decisions, CancelOpen)
    assert (ledger.state.trading_state, ledger.state.ladder_step) == (ACTIVE, 0)


# ---------------------------------------------------------------- the strategy-halt protocol
def test_on_drift_when_verdict_pause_then_reviewed_paused_alerted_and_revalidation_requested(
        ledger: Ledger) -> None:
    # Arrange
    lead = lead_on(ledger)
    t = lead.market.close_time(G)
    findings = [{"metric": "win_rate", "status": "critical"}]

    # Act
    decisions = drive(ledger, lead.on_drift(t, DEP, "pause", findings, 30))

    # Assert
    reviewed, paused = records(decisions)
    assert reviewed.kind is EventKind.STRATEGY_REVIEWED
    assert (reviewed.payload["verdict"], reviewed.payload["decision"], reviewed.payload["by"]) == (
        "pause", "pause", "lead")
    assert reviewed.payload["evidence"]["findings"] == findings
    assert (paused.payload["to"], paused.payload["reason"]) == (REDUCING, "drift_pause")
    alert = of_type(decisions, Alert)[0]
    assert (alert.level, alert.code, alert.scope, alert.source) == (AlertLevel.CRITICAL, "strategy_pause", DEP,
                                                                    "lead")
    message = of_type(decisions, SendMessage)
    assert [(m.kind, m.subject) for m in message] == [("revalidation_request", DEP)]
    assert message[0].body["decision"] == "pause"
    assert (ledger.state.deployments[DEP].state, ledger.state.deployments[DEP].state_reason) == (REDUCING,
                                                                                                  "drift_pause")


def test_on_drift_when_the_same_verdict_again_then_nothing(ledger: Ledger) -> None:
    # Arrange
    lead = lead_on(ledger)
    t = lead.market.close_time(G)
    drive(ledger, lead.on_drift(t, DEP, "pause", [], 30))

    # Act
    again = drive(ledger, lead.on_drift(t, DEP, "pause", [], 31))

    # Assert: decisions only escalate
    assert again == []


def test_on_drift_when_a_milder_verdict_after_pause_then_nothing(ledger: Ledger) -> None:
    # Arrange
    lead = lead_on(ledger)
    t = lead.market.close_time(G)
    drive(ledger, lead.on_drift(t, DEP, "pause", [], 30))

    # Act
    milder = drive(ledger, lead.on_drift(t, DEP, "review", [], 31))

    # Assert
    assert milder == []
    assert ledger.state.deployments[DEP].state_reason == "drift_pause"


def test_on_drift_when_a_new_lead_reads_a_recorded_review_then_it_does_not_decide_again(ledger: Ledger) -> None:
    # Arrange: one lead decided pause (recorded, flushed); the desk restarts with a new lead
    t = market().close_time(G)
    drive(ledger, lead_on(ledger).on_drift(t, DEP, "pause", [], 30))
    ledger.flush()

    # Act
    again = drive(ledger, lead_on(ledger).on_drift(t, DEP, "pause", [], 30))

    # Assert
    assert again == []


def test_on_drift_when_verdict_stop_after_pause_then_removed_and_its_position_closed(holding: Ledger) -> None:
    # Arrange
    lead = lead_on(holding)
    t = lead.market.close_time(G)
    drive(holding, lead.on_drift(t, DEP, "pause", [], 30))

    # Act
    decisions = drive(holding, lead.on_drift(t, DEP, "stop", [], 31))

    # Assert: escalated to remove: REDUCING (drift_remove), its orders cancelled and position sold
    reviewed, removed = records(decisions)
    assert reviewed.payload["decision"] == "remove"
    assert (removed.payload["to"], removed.payload["reason"]) == (REDUCING, "drift_remove")
    assert of_type(decisions, CancelOpen) == [CancelOpen(t, "deployment_halt", DEP)]
    assert [(s.intent.reason, s.intent.qty) for s in of_type(decisions, Submit)] == [
        (IntentReason.DEPLOYMENT_HALT, D(80))]
    assert [(m.kind, m.body["decision"]) for m in of_type(decisions, SendMessage)] == [
        ("revalidation_request", "remove")]


def test_on_drift_when_its_ladder_reached_trim_then_a_review_verdict_is_made_remove(ledger: Ledger) -> None:
    # Arrange: d1's own drawdown ladder at trim
    set_ladder_step(ledger, 3)
    lead = lead_on(ledger)
    t = lead.market.close_time(G)

    # Act
    decisions = drive(ledger, lead.on_drift(t, DEP, "review", [], 30))

    # Assert: the policy says adjust; the risk evidence makes it remove, and says why
    reviewed = records(decisions)[0]
    assert (reviewed.payload["by_policy"], reviewed.payload["decision"]) == ("adjust", "remove")
    assert "drawdown ladder at trim" in reviewed.payload["why"]
    assert reviewed.payload["evidence"]["risk"] == {"ladder_step": "trim", "removal_proposed": False}


def test_on_drift_when_verdict_review_then_the_allocation_in_use_is_halved(ledger: Ledger) -> None:
    # Arrange
    lead = lead_on(ledger)
    t = lead.market.close_time(G)

    # Act
    decisions = drive(ledger, lead.on_drift(t, DEP, "review", [], 30))

    # Assert: adjust: staged by the lead from 100% to 50%; a WARNING (no critical finding); no state change
    reviewed, staged = records(decisions)
    assert reviewed.payload["decision"] == "adjust"
    assert staged.kind is EventKind.ALLOCATION_STAGED
    assert (staged.payload["action"], staged.payload["by"], staged.payload["fraction_before"],
            staged.payload["fraction_after"]) == ("lead_adjust", "lead", 1.0, 0.5)
    assert [(a.level, a.code) for a in of_type(decisions, Alert)] == [(AlertLevel.WARNING, "strategy_adjust")]
    assert ledger.state.deployments[DEP].stage_fraction == D("0.5")
    assert ledger.state.deployments[DEP].state is ACTIVE


# ---------------------------------------------------------------- closing protocols finish once flat
def test_after_fills_when_a_closing_deployment_still_holds_then_nothing(holding: Ledger) -> None:
    # Arrange
    set_deployment_state(holding, REDUCING, "drawdown_kill")
    lead = lead_on(holding)

    # Act
    decisions = drive(holding, lead.after_fills(G, lead.market.close_time(G)))

    # Assert
    assert decisions == []


def test_after_fills_when_a_closing_deployment_is_flat_then_halted_with_its_reason(holding: Ledger) -> None:
    # Arrange: d1 closing by its kill; its exit fills
    set_deployment_state(holding, REDUCING, "drawdown_kill")
    trade(holding, "x1", "SELL", "80", "60", 30)
    lead = lead_on(holding)
    t = lead.market.close_time(G)

    # Act
    decisions = drive(holding, lead.after_fills(G, t))

    # Assert
    [halted] = records(decisions)
    assert len(decisions) == 1
    assert (halted.kind, halted.deployment_id) == (EventKind.DEPLOYMENT_STATE_CHANGED, DEP)
    assert (halted.payload["from"], halted.payload["to"], halted.payload["reason"]) == (REDUCING, HALTED,
                                                                                       "drawdown_kill")
    assert halted.payload["evidence"] == {"flat_at": t}
    assert holding.state.deployments[DEP].state is HALTED


def test_after_fills_when_flat_but_an_exit_order_is_open_then_not_halted(holding: Ledger) -> None:
    # Arrange: the position closed, but another order of d1 is still open
    set_deployment_state(holding, REDUCING, "drift_remove")
    trade(holding, "x1", "SELL", "80", "60", 30)
    holding.record(submitted("x2", "SELL", "1", 40))
    lead = lead_on(holding)

    # Act
    decisions = drive(holding, lead.after_fills(G, lead.market.close_time(G)))

    # Assert
    assert decisions == []


def test_after_fills_when_paused_deployment_is_flat_then_not_halted(ledger: Ledger) -> None:
    # Arrange: a pause stops entries; it is no closing protocol
    set_deployment_state(ledger, REDUCING, "drift_pause")
    lead = lead_on(ledger)

    # Act
    decisions = drive(ledger, lead.after_fills(G, lead.market.close_time(G)))

    # Assert
    assert decisions == []


def test_after_fills_when_circuit_breaker_and_everything_flat_then_desk_and_deployment_halted(
        holding: Ledger) -> None:
    # Arrange: the breaker tripped; its exit filled
    lead = lead_on(holding)
    drive(holding, lead.on_breaches(G, [breach(PORTFOLIO, "kill", 0.25, 0.32, 6_800.0)]))
    trade(holding, "x1", "SELL", "80", "60", lead.market.close_time(G))
    t = lead.market.close_time(G) + 60

    # Act
    decisions = drive(holding, lead.after_fills(G, t))

    # Assert
    assert [(e.kind, e.payload["to"], e.payload["reason"]) for e in records(decisions)] == [
        (EventKind.DEPLOYMENT_STATE_CHANGED, HALTED, "circuit_breaker"),
        (EventKind.TRADING_STATE_CHANGED, HALTED, "circuit_breaker")]
    assert (holding.state.trading_state, holding.state.trading_reason) == (HALTED, "circuit_breaker")


def test_after_fills_when_nothing_is_being_closed_then_no_decision(holding: Ledger) -> None:
    lead = lead_on(holding)
    assert lead.closing_deployments() == []
    assert drive(holding, lead.after_fills(G, lead.market.close_time(G))) == []


def test_closing_deployments_when_states_change_then_it_follows_them(holding: Ledger) -> None:
    # Arrange
    lead = lead_on(holding)
    assert lead.closing_deployments() == []

    # Act / Assert: paused is not closing; killed is; HALTED once flat is no longer
    set_deployment_state(holding, REDUCING, "drift_pause")
    assert lead.closing_deployments() == []
    set_deployment_state(holding, REDUCING, "drawdown_kill")
    assert lead.closing_deployments() == [DEP]
    set_deployment_state(holding, HALTED, "drawdown_kill")
    assert lead.closing_deployments() == []


def test_on_breaches_when_the_breaker_closes_several_positions_then_one_batch_in_the_order_they_opened(
        holding: Ledger) -> None:
    # Arrange: d1 holds 80 BTC, then 50 ETH (ETH closes at 10)
    holding.record(submitted("o2", "BUY", "50", 30, pair="ETH/USDT"))
    holding.record(filled("o2", "50", "10", 31))
    holding.flush()
    lead = lead_on(holding)
    t = lead.market.close_time(G)
    raw: list[Decision] = []
    answer: Any = None
    turn = lead.on_breaches(G, [breach(PORTFOLIO, "kill", 0.25, 0.32, 6_800.0)])

    # Act: the turn driven by hand, its batches kept whole
    while True:
        try:
            decision = turn.send(answer)
        except StopIteration:
            break
        raw.append(decision)
        answer = holding.record(decision.event) if isinstance(decision, Record) else None

    # Assert: one batch of exits, after the cancels, BTC's then ETH's, each the whole position at the bar's close
    batches = of_type(raw, SubmitExits)
    assert len(batches) == 1
    assert batches[0].g == G
    assert [(i.pair, i.side, i.qty, i.ref_price, i.signal_time, i.reason) for i in batches[0].intents] == [
        (BTC, Side.SELL, D(80), D(60), t, IntentReason.CIRCUIT_BREAKER),
        ("ETH/USDT", Side.SELL, D(50), D(10), t, IntentReason.CIRCUIT_BREAKER)]
    assert raw.index(CancelOpen(t, "circuit_breaker", None)) < raw.index(batches[0])


def test_exits_when_an_exit_is_on_its_way_or_a_fraction_asked_then_only_what_is_left_to_close(
        holding: Ledger) -> None:
    # Arrange: 30 of the 80 BTC already on their way out
    holding.record(submitted("x1", "SELL", "30", 30))
    holding.flush()
    lead = lead_on(holding)

    # Act
    whole = lead.exits(G, None, None, IntentReason.CIRCUIT_BREAKER)
    quarter = lead.exits(G, DEP, D("0.25"), IntentReason.DEPLOYMENT_TRIM)
    other = lead.exits(G, "d2", None, IntentReason.DEPLOYMENT_HALT)

    # Assert: the rest (50), a quarter of the position (20, within the 50 left), nothing of another deployment
    assert [(i.qty, i.side, i.direction) for i in whole] == [(D(50), Side.SELL, Direction.LONG)]
    assert [i.qty for i in quarter] == [D(20)]
    assert other == []


# ---------------------------------------------------------------- staged allocation
def staged_from(ledger: Ledger, since: int, equity: float) -> None:
    """d1 starts staging at 10% of its allocation, its first period from ``since`` (equity then: ``equity``)."""
    ledger.record(Event(since, EventKind.ALLOCATION_STAGED, {
        "deployment_id": DEP, "action": "start", "reason": "new deployment", "fraction_before": 0.0,
        "fraction_after": 0.1, "step": 0, "losing_streak": 0, "period_return": None, "equity": equity,
        "next_period_from": since, "by": "risk"}, DEP))
    ledger.flush()


def test_on_snapshot_when_a_profitable_period_ended_then_the_promotion_is_recorded(ledger: Ledger) -> None:
    # Arrange: the period started 7 days before bar 3 closes, at equity 10,000
    t = market().close_time(G)
    staged_from(ledger, t - 7 * 86_400, 10_000.0)
    lead = lead_on(ledger)

    # Act
    decisions = drive(ledger, lead.on_snapshot(Snapshot(G, 10_500.0, 0.0, {DEP: (10_500.0, 0.0)})))

    # Assert
    [staged] = records(decisions)
    assert len(decisions) == 1
    assert (staged.kind, staged.deployment_id, staged.time) == (EventKind.ALLOCATION_STAGED, DEP, t)
    assert (staged.payload["action"], staged.payload["period_return"], staged.payload["fraction_after"]) == (
        "promote", 0.05, 0.5)
    dep = ledger.state.deployments[DEP]
    assert (dep.stage_fraction, dep.stage_since, dep.stage_anchor) == (D("0.5"), t, 10_500.0)


def test_on_snapshot_when_the_third_losing_period_ended_then_removal_proposed_as_an_alert(ledger: Ledger) -> None:
    # Arrange: two losing periods behind it
    t = market().close_time(G)
    staged_from(ledger, t - 7 * 86_400, 10_000.0)
    ledger.record(Event(t - 7 * 86_400, EventKind.ALLOCATION_STAGED, {
        "deployment_id": DEP, "action": "hold", "reason": "losing", "fraction_before": 0.1, "fraction_after": 0.1,
        "step": 0, "losing_streak": 2, "period_return": -0.01, "equity": 10_000.0,
        "next_period_from": t - 7 * 86_400, "by": "risk"}, DEP))
    lead = lead_on(ledger)

    # Act
    decisions = drive(ledger, lead.on_snapshot(Snapshot(G, 9_900.0, 0.01, {DEP: (9_900.0, 0.01)})))

    # Assert
    assert records(decisions)[0].payload["action"] == "propose_removal"
    assert [(a.level, a.code, a.source) for a in of_type(decisions, Alert)] == [
        (AlertLevel.WARNING, "staging_removal_proposed", "risk")]


def test_on_snapshot_when_staging_disabled_then_nothing(ledger: Ledger) -> None:
    # Arrange
    t = market().close_time(G)
    staged_from(ledger, t - 7 * 86_400, 10_000.0)
    lead = lead_on(ledger, RiskConfig(staging={"enabled": False}))

    # Act
    decisions = drive(ledger, lead.on_snapshot(Snapshot(G, 10_500.0, 0.0, {DEP: (10_500.0, 0.0)})))

    # Assert
    assert decisions == []


# ---------------------------------------------------------------- queries
def test_stoploss_of_when_its_ladder_reached_reduce_then_the_stop_is_tightened(ledger: Ledger) -> None:
    # Arrange
    set_ladder_step(ledger, 2)
    lead = lead_on(ledger)

    # Act / Assert: -5% x 0.5
    assert lead.stoploss_of(DEP) == pytest.approx(-0.025)


def test_may_enter_when_desk_or_deployment_not_active_then_false(ledger: Ledger) -> None:
    # Arrange
    lead = lead_on(ledger)
    before = lead.may_enter(DEP)

    # Act
    set_deployment_state(ledger, REDUCING, "drawdown_reduce")

    # Assert
    assert (before, lead.may_enter(DEP)) == (True, False)


def test_armed_limits_when_deployment_killed_then_only_the_portfolio_ladder(holding: Ledger) -> None:
    # Arrange
    lead = lead_on(holding)
    before = lead.armed_limits()
    drive(holding, lead.on_breaches(G, [breach(DEP, "kill", 0.25, 0.30, 7_000.0)]))

    # Act
    after = lead.armed_limits()

    # Assert
    assert len(before) == 8
    assert [(limit.scope, limit.level) for limit in after] == [
        (PORTFOLIO, "alert"), (PORTFOLIO, "reduce"), (PORTFOLIO, "trim"), (PORTFOLIO, "kill")]
