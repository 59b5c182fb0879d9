"""The execution lead's protocols inside the loop: what the ladders' steps do, the circuit breaker, the
strategy-halt protocol, staged allocation's outcomes, reconciliation's stops and scheduled starts.

The lead reads the ledger (:class:`~execdesk.domain.reader.LedgerReader`) and the market, and answers each fact
the desk's engine gives it with its decisions, yielded one by one (:mod:`execdesk.lead.decisions`); the engine
applies each before asking for the next. The numbers are the risk manager's: which ladder steps a breach
crosses and what each does (:mod:`execdesk.risk.ladder`), the breach's confirmation on fresh equity
(:mod:`execdesk.risk.drawdown`), the staging decisions (:mod:`execdesk.risk.staging`).

Policy (levels from :class:`~execdesk.risk.config.RiskConfig`; each step fires once and holds):

* **Portfolio ladder** (``portfolio_drawdown``, on portfolio equity including unrealised P&L):
  alert — WARNING, new positions sized at ``alert_size_multiplier``; reduce — the desk is REDUCING
  (reason ``drawdown_reduce``: only orders that reduce), stops tightened; trim — ``trim_fraction`` of
  every position closed; kill — the circuit breaker: the monitor detects (``breach.detected``), the
  risk manager confirms on fresh equity (``breach.confirmed``), the lead authorises
  (``breach.authorized``, automatic at EMERGENCY), the order executor cancels every open order and
  closes every position; the desk is HALTED once flat and stays so until re-armed by hand.
* **Deployment ladder** (``deployment_drawdown``, or the strategy's own ``drawdown:``, on the
  deployment's own equity): the same four steps for one deployment — its sizes cut, then REDUCING
  (``drawdown_reduce``) with tighter stops, then half its positions closed, then everything closed
  (``drawdown_kill``) and HALTED once flat.
* **Staged allocation** (``staging``): at each period's end, from the deployment's equity in the
  monitor's snapshots, the risk manager's staging decision (promote, hold, fall back, propose removal)
  is recorded and sizes follow it; a proposed removal is an alert to the lead.

Every step is an event with its evidence (``risk.ladder_stepped`` holds the step, the level, the
drawdown and what was done). States and ladder steps only tighten inside a run.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from execdesk.data.feed import MarketView
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO, Breach, Limit, Snapshot, step_name
from execdesk.domain.reader import LedgerReader
from execdesk.domain.types import QUANTUM, AlertLevel, Direction, IntentReason, OrderIntent, TradingState, dec
from execdesk.lead.decisions import (
    CancelOpen,
    CloseBots,
    Decision,
    Decisions,
    HandedOver,
    Record,
    Reschedule,
    SendMessage,
    SubmitExits,
    Supersede,
)
from execdesk.lead.liaison import Liaison
from execdesk.lead.lifecycle import RETIRING, SCHEDULED, STARTED
from execdesk.lead.outbox import DecisionRequests, decision_request
from execdesk.monitor.alerts import Alert
from execdesk.risk import ladder
from execdesk.risk.config import DrawdownLadder, RiskConfig
from execdesk.risk.drawdown import confirm_breach, fresh_equity
from execdesk.risk.pretrade import Context
from execdesk.risk.staging import StagedDeployment, due_decision

if TYPE_CHECKING:
    from execdesk.domain.state import DeploymentRecord, DeskState
    from execdesk.execution.oms import ReconcileReport

CIRCUIT_BREAKER = ladder.CIRCUIT_BREAKER
DRAWDOWN_REDUCE = "drawdown_reduce"
DRAWDOWN_KILL = "drawdown_kill"
RECONCILIATION = "reconciliation"
DRIFT_PAUSE = "drift_pause"
DRIFT_REMOVE = "drift_remove"
#: reasons under which a deployment's positions are closed, HALTED once flat
CLOSING = (DRAWDOWN_KILL, CIRCUIT_BREAKER, DRIFT_REMOVE, *RETIRING)
#: the strategy-halt policy: the monitor's verdict -> what the lead decides (each with a revalidation request)
DRIFT_POLICY = {"review": "adjust", "pause": "pause", "stop": "remove"}
_SEVERITY_OF = {"continue": 0, "adjust": 1, "pause": 2, "remove": 3}
KILL = ladder.KILL
_STEP = ladder.STEP


@dataclass(frozen=True, slots=True)
class LeadSettings:
    """What the lead decides by: the desk's risk config (its ladders), each deployment's own ladder and the
    stoploss its bundle trades with, the ladder steps a human authorizes (``lead.human_authorizes``) and the
    strategy-halt policy over :data:`DRIFT_POLICY` (``lead.drift_policy``)."""

    risk: RiskConfig
    ladders: Mapping[str, DrawdownLadder] = field(default_factory=dict)
    stoploss: Mapping[str, float] = field(default_factory=dict)
    human_authorizes: frozenset[str] = frozenset()
    drift_policy: Mapping[str, str] = field(default_factory=dict)


class Lead:
    """Decides what a breach, a verdict or a reconciliation means, and drives the protocols (see the module
    docstring). ``liaison``: where its decision requests go (None: no human can be asked)."""

    def __init__(self, ledger: LedgerReader, market: MarketView, settings: LeadSettings,
                 liaison: Liaison | None = None) -> None:
        self.ledger = ledger
        self.market = market
        self.settings = settings
        self.risk = settings.risk
        self.liaison = liaison
        self._stoploss = dict(settings.stoploss)
        self._ladders = dict(settings.ladders)
        self._limits: tuple[int, list[Limit]] | None = None
        self._closing: tuple[int, list[str]] | None = None  # (states_version, the deployments being closed)
        self._decided: dict[str, str] = {}  # deployment -> the strategy-halt decision taken so far
        self._drift: dict[str, tuple[str, list[dict[str, Any]], int]] = {}  # the monitor's last verdict, evidence
        self._proposed: set[str] = set()  # deployments the risk manager proposed to remove (staging)
        # ladder steps waiting for a human: decision request id -> (deployment or None, step, action, evidence)
        self._awaiting: dict[str, tuple[str | None, str, str, dict[str, Any]]] = {}
        for e in ledger.events({EventKind.STRATEGY_REVIEWED, EventKind.DRIFT_ASSESSED,
                                EventKind.ALLOCATION_STAGED, EventKind.APPROVAL_REQUESTED,
                                EventKind.APPROVAL_DECIDED}):
            p = e.payload
            if p.get("kind") == "ladder_step":
                if e.kind is EventKind.APPROVAL_REQUESTED:
                    self._awaiting[p["request_id"]] = (e.deployment_id, p["step"], p["action"], p["evidence"])
                else:
                    self._awaiting.pop(p["request_id"], None)
            elif e.kind is EventKind.STRATEGY_REVIEWED:
                self._decided[p["deployment_id"]] = p["decision"]
            elif e.kind is EventKind.DRIFT_ASSESSED:
                self._drift[p["deployment_id"]] = (p["verdict"], p["findings"], int(p["trades"]))
            elif e.kind is EventKind.ALLOCATION_STAGED and p["action"] == "propose_removal":
                self._proposed.add(p["deployment_id"])

    @property
    def state(self) -> DeskState:
        return self.ledger.state

    # ---------------------------------------------------------------- questions the engine asks
    def ladder_of(self, deployment_id: str) -> DrawdownLadder:
        return self._ladders.get(deployment_id, self.risk.deployment_drawdown)

    def may_enter(self, deployment_id: str) -> bool:
        dep = self.state.deployments[deployment_id]
        return bool(self.state.trading_state is TradingState.ACTIVE and dep.state is TradingState.ACTIVE)

    def stoploss_of(self, deployment_id: str) -> float:
        """The deployment's stoploss as its exits use it now: the bundle's, tightened by a ladder at reduce."""
        dep = self.state.deployments[deployment_id]
        tighten = ladder.stop_multiplier(self.risk.portfolio_drawdown, self.state.ladder_step,
                                         self.ladder_of(deployment_id), dep.ladder_step)
        return self._stoploss[deployment_id] * tighten

    def context(self, deployment_id: str, last_equity: Mapping[str, float]) -> Context:
        """What the risk manager's pre-trade check needs to know about the deployment now (``last_equity``: the
        monitor's last marks per scope)."""
        s = self.state
        dep = s.deployments[deployment_id]
        size = ladder.size_multiplier(self.risk.portfolio_drawdown, s.ladder_step, self.ladder_of(deployment_id),
                                      dep.ladder_step)
        return Context(s.trading_state, dep.state, last_equity.get(PORTFOLIO, float(s.cash())),
                       last_equity.get(dep.id, float(dep.capital)), abs(self._stoploss[deployment_id]), size,
                       float(dep.stage_fraction))

    def armed_limits(self) -> list[Limit]:
        """The drawdown steps that can still fire, given the current states (cached per state change)."""
        if self._limits is not None and self._limits[0] == self.state.states_version:
            return self._limits[1]
        s = self.state
        limits = ladder.armed_limits(
            self.risk.portfolio_drawdown, ladder.ScopeSteps(PORTFOLIO, s.trading_state, s.trading_reason,
                                                            s.ladder_step),
            [ladder.ScopeSteps(d.id, d.state, d.state_reason, d.ladder_step) for d in s.deployments.values()],
            self.ladder_of)
        self._limits = (self.state.states_version, limits)
        return limits

    def scheduled_starts(self) -> list[tuple[int, str]]:
        """The scheduled deployments' start times, soonest first."""
        return sorted((d.start_at or 0, d.id) for d in self.state.deployments.values()
                      if d.state is TradingState.REDUCING and d.state_reason == SCHEDULED)

    def needs_settling(self) -> bool:
        """Whether a deployment (or the desk) is being closed: :meth:`settle` has work at the run's first bar."""
        s = self.state
        return (s.trading_state is TradingState.REDUCING and s.trading_reason == CIRCUIT_BREAKER) or any(
            d.state is TradingState.REDUCING and d.state_reason in CLOSING for d in s.deployments.values())

    # ---------------------------------------------------------------- the ladders' steps
    def on_breaches(self, g: int, breaches: list[Breach]) -> Decisions:
        """Climb each scope's ladder to the deepest step its drawdown reached at bar ``g``."""
        deepest = ladder.deepest(breaches)
        portfolio = deepest.pop(PORTFOLIO, None)
        if portfolio is not None:
            if _STEP[portfolio.level] == KILL:
                yield from self._circuit_breaker(g, portfolio)
                return
            yield from self._climb_portfolio(g, portfolio)
        for scope in sorted(deepest):
            yield from self._climb_deployment(g, deepest[scope])
        yield Reschedule(g)

    def _climb_portfolio(self, g: int, breach: Breach) -> Decisions:
        t = self.market.close_time(g)
        steps = self.risk.portfolio_drawdown
        for step in ladder.crossed(steps, self.state.ladder_step, breach.level):
            name = step.name
            evidence = {**breach.evidence(), "level": name, "limit": step.level}
            what = f"portfolio drawdown {breach.drawdown:.2%} reached {step.level:.0%}"
            action = ladder.step_action(steps, name, portfolio=True)
            if name == "alert":
                yield self._step(t, None, step, evidence, action)
                yield self._alert(g, AlertLevel.WARNING, "portfolio_drawdown_alert", f"{what}: {action}", evidence)
                continue
            if (yield from self._ask_human(g, t, None, step, action, evidence, what)):
                continue
            yield self._step(t, None, step, evidence, action)
            yield self._alert(g, AlertLevel.CRITICAL, f"portfolio_drawdown_{name}", f"{what}: {action}", evidence)
            yield from self._take_step(g, None, name, evidence)

    def _climb_deployment(self, g: int, breach: Breach) -> Decisions:
        t = self.market.close_time(g)
        dep_id = breach.scope
        dep = self.state.deployments[dep_id]
        crossed = ladder.crossed(self.ladder_of(dep_id), dep.ladder_step, breach.level)
        yield from self._climb_steps(g, t, dep_id, breach, crossed)
        if crossed and crossed[-1].step >= _STEP["reduce"]:
            yield from self._review_again(t, dep_id)

    def _climb_steps(self, g: int, t: int, dep_id: str, breach: Breach, crossed: list[ladder.LadderStep]
                     ) -> Decisions:
        steps = self.ladder_of(dep_id)
        for step in crossed:
            name = step.name
            evidence = {**breach.evidence(), "level": name, "limit": step.level}
            what = f"{dep_id} drawdown {breach.drawdown:.2%} reached {step.level:.0%}"
            action = ladder.step_action(steps, name, portfolio=False)
            if name == "alert":
                yield self._step(t, dep_id, step, evidence, action)
                yield self._alert(g, AlertLevel.WARNING, "deployment_drawdown_alert", f"{what}: {action}", evidence,
                                  dep_id)
            elif name in ("reduce", "trim"):
                if (yield from self._ask_human(g, t, dep_id, step, action, evidence, what)):
                    continue
                yield self._step(t, dep_id, step, evidence, action)
                level_of = AlertLevel.WARNING if name == "reduce" else AlertLevel.CRITICAL
                yield self._alert(g, level_of, f"deployment_drawdown_{name}", f"{what}: {action}", evidence, dep_id)
                yield from self._take_step(g, dep_id, name, evidence)
            else:
                yield self._step(t, dep_id, step, evidence, action)
                yield from self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRAWDOWN_KILL, evidence)
                yield self._alert(g, AlertLevel.CRITICAL, "deployment_drawdown_kill", f"{what}: {action}", evidence,
                                  dep_id)
                yield from self._flatten(g, dep_id, IntentReason.DEPLOYMENT_HALT)

    def _take_step(self, g: int, dep_id: str | None, name: str, evidence: dict[str, Any]) -> Decisions:
        """What a ladder's reduce or trim step does, to the desk (``dep_id`` None) or one deployment."""
        t = self.market.close_time(g)
        if dep_id is None:
            if name == "reduce":
                yield from self._set_trading_state(t, TradingState.REDUCING, DRAWDOWN_REDUCE, evidence)
            else:
                yield from self._trim(g, None, self.risk.portfolio_drawdown.trim_fraction, IntentReason.PORTFOLIO_TRIM)
        elif name == "reduce":
            if self.state.deployments[dep_id].state is TradingState.ACTIVE:
                yield from self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRAWDOWN_REDUCE, evidence)
        else:
            yield from self._trim(g, dep_id, self.ladder_of(dep_id).trim_fraction, IntentReason.DEPLOYMENT_TRIM)

    # ---------------------------------------------------------------- a human authorizes below EMERGENCY
    def _ask_human(self, g: int, t: int, dep_id: str | None, step: ladder.LadderStep, action: str,
                   evidence: dict[str, Any], what: str) -> Generator[Decision, Any, bool]:
        """A step the desk's policy leaves to a human (``lead.human_authorizes``): the step is recorded as
        reached, the Orchestrator gets an emergency decision request, and the action waits for
        ``execdesk approve|deny`` (:meth:`check_answers`). Returns False when the policy authorizes it itself."""
        name = step.name
        if name not in self.settings.human_authorizes or self.liaison is None:
            return False
        scope = dep_id or PORTFOLIO
        question = f"{what}: authorize the {name} step ({action})?"
        request = decision_request(t, scope, question, {**evidence, "action": action})
        request_id = str(request.request_id)
        yield SendMessage(t, request.kind, scope, question, dict(request.body), request.options, request.key)
        yield self._step(t, dep_id, step, evidence, f"waiting for a human to authorize: {action} ({request_id})")
        yield Record(Event(t, EventKind.APPROVAL_REQUESTED, {
            "request_id": request_id, "kind": "ladder_step", "scope": scope, "step": name, "action": action,
            "question": question, "evidence": evidence}, dep_id))
        self._awaiting[request_id] = (dep_id, name, action, evidence)
        yield self._alert(g, AlertLevel.CRITICAL, "authorization_requested", f"{what}: the {name} step waits for a "
                          f"human (execdesk approve {request_id})", {**evidence, "request_id": request_id}, dep_id,
                          "lead")
        return True

    def check_answers(self, g: int) -> Decisions:
        """Act on the answers given to the decision requests the ladders are waiting on."""
        if not self._awaiting or self.liaison is None:
            return
        requests = DecisionRequests(self.liaison.outbox)
        t = self.market.close_time(g)
        for request_id, (dep_id, name, action, evidence) in list(self._awaiting.items()):
            answer = requests.given(request_id)
            if answer is None:
                continue
            del self._awaiting[request_id]
            decided = "approved" if answer.decision == "approve" else "denied"
            yield Record(Event(t, EventKind.APPROVAL_DECIDED, {
                "request_id": request_id, "kind": "ladder_step", "scope": dep_id or PORTFOLIO, "step": name,
                "decision": decided, "by": answer.by, "answered_at": answer.time}, dep_id))
            if decided == "denied":
                yield self.alert(t, AlertLevel.WARNING, "authorization_denied", f"{answer.by} denied the {name} "
                                 f"step for {dep_id or PORTFOLIO}: not done", {"request_id": request_id}, dep_id)
                continue
            yield Record(Event(t, EventKind.BREACH_AUTHORIZED, {
                "by": answer.by, "policy": "a human authorizes below EMERGENCY (lead.human_authorizes)",
                "action": action, "scope": dep_id or PORTFOLIO, "step": name, "request_id": request_id}, dep_id))
            yield from self._take_step(g, dep_id, name, evidence)
        yield Reschedule(g)

    def after_fills(self, g: int, t: int) -> Decisions:
        """Finish protocols whose positions are now closed (at time ``t``): REDUCING -> HALTED once flat.

        Asked after every bar's fills: with nothing being closed it answers at once (the deployments being closed
        are kept per change of the states); else a deployment is flat when none of the ledger's open positions and
        open orders is its — read from their keys, once per call, not per fill or per deployment."""
        s = self.state
        closing = self.closing_deployments()
        desk = s.trading_state is TradingState.REDUCING and s.trading_reason == CIRCUIT_BREAKER
        if not closing and not desk:
            return
        open_deps = {dep_id for dep_id, _pair in s.open_position_keys}
        open_deps.update(dep_id for dep_id, _pair in s.open_orders_by_key)
        for dep_id in closing:
            if dep_id not in open_deps:  # (each still REDUCING: only its own turn changes its state)
                yield from self._set_deployment_state(t, dep_id, TradingState.HALTED,
                                                      s.deployments[dep_id].state_reason, {"flat_at": t})
        if s.trading_state is TradingState.REDUCING and s.trading_reason == CIRCUIT_BREAKER and not open_deps:
            yield from self._set_trading_state(t, TradingState.HALTED, CIRCUIT_BREAKER,
                                               {"flat_at": t, "rearm": "by hand"})

    def closing_deployments(self) -> list[str]:
        """The deployments being closed (REDUCING for a reason in :data:`CLOSING`), in the ledger's order; kept
        until a trading state or the set of deployments changes (``states_version``)."""
        version = self.state.states_version
        if self._closing is None or self._closing[0] != version:
            self._closing = (version, [d.id for d in self.state.deployments.values()
                                       if d.state is TradingState.REDUCING and d.state_reason in CLOSING])
        return self._closing[1]

    # ---------------------------------------------------------------- staged allocation
    def on_snapshot(self, snap: Snapshot) -> Decisions:
        """Staged allocation: the risk manager's decision on each deployment's period that ended by this
        snapshot, recorded; a proposed removal is an alert, and new risk evidence for the strategy-halt review."""
        cfg = self.risk.staging
        if not cfg.enabled:
            return
        t = self.market.close_time(snap.g)
        equities = {dep: equity for dep, (equity, _dd) in snap.deployments.items()}
        for dep in list(self.state.deployments.values()):
            payload = due_decision(_staged(dep), equities, t, cfg)
            if payload is None:
                continue
            yield Record(Event(t, EventKind.ALLOCATION_STAGED, payload, dep.id))
            if payload["action"] == "propose_removal":
                yield self.alert(t, AlertLevel.WARNING, "staging_removal_proposed", f"{dep.id}: {payload['reason']}",
                                 payload, dep.id, "risk")
                self._proposed.add(dep.id)
                yield from self._review_again(t, dep.id)

    # ---------------------------------------------------------------- the strategy-halt protocol
    def on_drift(self, t: int, dep_id: str, verdict: str, findings: list[dict[str, Any]], trades: int) -> Decisions:
        """The strategy-halt protocol: the monitor flagged drift -> the lead reviews the verdict against its
        policy and the evidence -> decides, records the decision with its evidence (``lead.strategy_reviewed``),
        acts, and sends Validation a revalidation request with the drift evidence. Decisions only escalate.

        The policy (:data:`DRIFT_POLICY`, or the desk's ``lead.drift_policy``): review -> adjust, pause -> pause,
        stop -> remove. The risk evidence can only make it stricter: a flagged deployment whose own drawdown
        ladder has reached reduce (the risk manager stopped its entries) is paused at least, one whose ladder
        reached trim is removed; a ladder step or a staging removal proposal arriving later brings a flagged
        deployment back to review (:meth:`_review_again`). The evidence names both.

        adjust: the deployment's allocation in use is halved (a staging decision by the lead); pause: no new
        positions (REDUCING, ``drift_pause``), exits as planned; remove: its orders cancelled and positions
        closed (``drift_remove``), HALTED once flat.
        """
        self._drift[dep_id] = (verdict, findings, trades)
        dep = self.state.deployments[dep_id]
        policy = {**DRIFT_POLICY, **self.settings.drift_policy}
        by_policy = policy.get(verdict, "continue")
        risk = {"ladder_step": step_name(dep.ladder_step), "removal_proposed": dep_id in self._proposed}
        floor = ("remove" if dep.ladder_step >= _STEP["trim"] else
                 "pause" if dep.ladder_step >= _STEP["reduce"] else "continue")
        decision = by_policy if by_policy == "continue" or _SEVERITY_OF[by_policy] >= _SEVERITY_OF[floor] else floor
        done = self._decided.get(dep_id, "continue")
        if _SEVERITY_OF[decision] <= _SEVERITY_OF[done] or dep.state is TradingState.HALTED:
            return
        self._decided[dep_id] = decision
        critical = [f for f in findings if f.get("status") == "critical"]
        evidence = {"verdict": verdict, "trades": trades, "findings": findings, "risk": risk}
        why = (f"policy: {verdict} -> {by_policy}" if decision == by_policy else
               f"policy: {verdict} -> {by_policy}, made stricter by the risk evidence ({_risk_words(risk)})")
        yield Record(Event(t, EventKind.STRATEGY_REVIEWED, {
            "deployment_id": dep_id, "verdict": verdict, "decision": decision, "policy": policy,
            "by_policy": by_policy, "why": why, "by": "lead", "evidence": evidence}, dep_id))
        g = self.market.bar_of(t)
        if decision == "adjust":
            before = float(dep.stage_fraction)
            after = before / 2
            yield Record(Event(t, EventKind.ALLOCATION_STAGED, {
                "deployment_id": dep_id, "action": "lead_adjust", "by": "lead",
                "reason": f"drift verdict {verdict}: allocation in use halved ({before:.0%} -> {after:.0%})",
                "fraction_before": before, "fraction_after": after, "step": dep.stage_step,
                "losing_streak": dep.stage_streak, "period_return": None, "equity": dep.stage_anchor,
                "next_period_from": dep.stage_since if dep.stage_since is not None else t}, dep_id))
        elif decision == "pause":
            if dep.state is TradingState.ACTIVE or dep.state_reason == DRAWDOWN_REDUCE:
                yield from self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRIFT_PAUSE, evidence)
        else:
            yield from self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRIFT_REMOVE, evidence)
            if g is not None:
                yield from self._flatten(g, dep_id, IntentReason.DEPLOYMENT_HALT)
        level = AlertLevel.CRITICAL if critical or decision != "adjust" else AlertLevel.WARNING
        yield self.alert(t, level, f"strategy_{decision}", f"{dep_id}: drift verdict {verdict} -> the lead decides "
                         f"to {decision} ({why}); revalidation requested", evidence, dep_id, "lead")
        yield SendMessage(t, "revalidation_request", dep_id,
                          f"{dep.strategy_id} v{dep.version}: live drift ({verdict}); the desk decided to "
                          f"{decision}; please revalidate", {**evidence, "decision": decision, "why": why,
                                                             "strategy_id": dep.strategy_id, "version": dep.version})

    def _review_again(self, t: int, dep_id: str) -> Decisions:
        """New risk evidence on a deployment the monitor has flagged: the lead reviews it again."""
        last = self._drift.get(dep_id)
        if last is not None and last[0] != "continue":
            yield from self.on_drift(t, dep_id, *last)

    # ---------------------------------------------------------------- reconciliation
    def on_reconciled(self, report: ReconcileReport, t: int) -> Decisions:
        """Stop what reconciliation could not square: a deployment whose position differs from the
        venue's is HALTED (not traded until a human looks); a cash difference stops new positions."""
        if report.venue_unavailable:
            yield self.alert(t, AlertLevel.CRITICAL, "venue_unavailable",
                             f"reconciliation could not reach the venue: {report.venue_unavailable}", {},
                             source="executor")
        for mismatch in report.position_mismatches:
            for dep_id in filter(None, mismatch["deployments"].split(",")):
                if dep_id in self.state.deployments:
                    yield from self._set_deployment_state(t, dep_id, TradingState.HALTED, RECONCILIATION, mismatch)
        if report.position_mismatches:
            pairs = ", ".join(f"{m['pair']} (ledger {m['ledger']}, venue {m['venue']})"
                              for m in report.position_mismatches)
            yield self.alert(t, AlertLevel.CRITICAL, "position_mismatch",
                             f"positions differ from the venue's: {pairs}; their deployments are not traded",
                             {"mismatches": report.position_mismatches}, source="executor")
        if report.cash_mismatch is not None and self.state.trading_state is TradingState.ACTIVE:
            yield from self._set_trading_state(t, TradingState.REDUCING, RECONCILIATION, report.cash_mismatch)
            yield self.alert(t, AlertLevel.CRITICAL, "cash_mismatch",
                             f"cash: ledger {report.cash_mismatch['ledger']} vs venue "
                             f"{report.cash_mismatch['venue']}; no new positions", dict(report.cash_mismatch),
                             source="executor")

    # ---------------------------------------------------------------- deployments
    def start_due(self, g: int, starts: list[tuple[int, str]]) -> Decisions:
        """Scheduled deployments whose start time has come by bar ``g``'s close go live (taken off ``starts``); a
        new version takes over from the one it replaces now, by its positions policy."""
        t = self.market.close_time(g)
        seq_before = self.state.last_seq
        while starts and starts[0][0] <= t:
            start_at, dep_id = starts.pop(0)
            dep = self.state.deployments[dep_id]
            if dep.state is TradingState.REDUCING and dep.state_reason == SCHEDULED:
                yield from self._set_deployment_state(t, dep_id, TradingState.ACTIVE, STARTED, {"start_at": start_at})
                if dep.replaces is not None:
                    yield Supersede(dep.replaces, dep_id, t, dep.positions_policy, "lead")
        yield HandedOver(seq_before, g)
        yield from self.settle(g)

    def settle(self, g: int) -> Decisions:
        """Deployments being closed (removed, superseded, rolled back by a human; or a protocol a stopped desk did
        not finish): their entry orders cancelled, an exit for whatever of their positions no exit on its way
        covers; those already flat are HALTED. Idempotent: a desk that settles again sends nothing twice."""
        s = self.state
        t = self.market.close_time(g)
        held = {dep_id for dep_id, _pair in s.open_position_keys}  # (cancels and exits sent here move no position)
        for dep in list(s.deployments.values()):
            if dep.state is not TradingState.REDUCING or dep.state_reason not in CLOSING:
                continue
            if any(o.reason == IntentReason.ENTRY_SIGNAL.value for p in dep.pairs for o in s.open_orders_of(dep.id, p)):
                yield CancelOpen(t, IntentReason.DEPLOYMENT_HALT.value, dep.id, entries_only=True)
            if dep.id in held:
                yield from self._reduce_positions(g, dep.id, None, IntentReason.DEPLOYMENT_HALT)  # the uncovered rest
        yield Reschedule(g)
        yield from self.after_fills(g, t)

    # ---------------------------------------------------------------- the circuit breaker and the kill switch
    def manual_kill(self, g: int, by: str, reason: str) -> Decisions:
        """The kill switch pulled by hand (``execdesk kill``): the circuit breaker's path, each step recorded —
        requested by a human (in place of the monitor's detection), the risk manager records equity as it
        is, the human's request is the authorization, then everything is cancelled and closed, HALTED once
        flat until re-armed by hand."""
        t = self.market.close_time(g)
        s = self.state
        if s.trading_state is TradingState.HALTED or s.trading_reason == CIRCUIT_BREAKER:
            return  # already killed
        equity = fresh_equity(s, self.market.closes(g), PORTFOLIO)
        evidence = {"by": by, "reason": reason, "kind": "manual kill switch"}
        yield Record(Event(t, EventKind.BREACH_DETECTED, {"by": "human", "by_name": by, "reason": reason,
                                                           "kind": "manual kill switch", "scope": PORTFOLIO}))
        yield self._alert(g, AlertLevel.EMERGENCY, "manual_kill", f"kill switch pulled by {by}: {reason}", evidence,
                          source="lead")
        yield Record(Event(t, EventKind.BREACH_CONFIRMED, {"by": "risk", "confirmed": True, "scope": PORTFOLIO,
                                                            "level": "kill", "equity": f"{equity:.6f}",
                                                            "peak": f"{equity:.6f}", "drawdown": "0",
                                                            "limit": "manual"}))
        yield Record(Event(t, EventKind.BREACH_AUTHORIZED, {
            "by": by, "policy": "manual kill switch", "action": "cancel all orders, close all positions"}))
        yield SendMessage(t, "escalation", PORTFOLIO, f"kill switch pulled by {by}: {reason}; everything is "
                          "being closed; the desk stays HALTED until re-armed by hand", evidence)
        yield from self._close_everything(g, t, evidence)

    def _circuit_breaker(self, g: int, breach: Breach) -> Decisions:
        t = self.market.close_time(g)
        evidence = breach.evidence()
        yield Record(Event(t, EventKind.BREACH_DETECTED, {"by": "monitor", **evidence}))
        yield self._alert(g, AlertLevel.EMERGENCY, "portfolio_drawdown_kill",
                          f"portfolio drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}", evidence,
                          source="monitor")
        confirmation = confirm_breach(self.state, self.market.closes(g), breach)
        yield Record(Event(t, EventKind.BREACH_CONFIRMED, {"by": "risk", **confirmation.as_dict()}))
        if not confirmation.confirmed:
            yield self._alert(g, AlertLevel.WARNING, "breach_not_confirmed",
                              "the risk manager did not confirm the monitor's breach on fresh equity",
                              confirmation.as_dict())
            return
        for step in ladder.crossed(self.risk.portfolio_drawdown, self.state.ladder_step, breach.level):
            yield self._step(t, None, step, {**evidence, "level": step.name, "limit": step.level},
                             "circuit breaker: close everything, HALTED until re-armed by hand" if step.step == KILL
                             else "superseded by the kill step")
        yield Record(Event(t, EventKind.BREACH_AUTHORIZED, {
            "by": "lead", "policy": "automatic at EMERGENCY", "action": "cancel all orders, close all positions"}))
        yield SendMessage(t, "escalation", PORTFOLIO,
                          f"circuit breaker: portfolio drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}; "
                          "everything is being closed; the desk stays HALTED until re-armed by hand",
                          {**evidence, "confirmation": confirmation.as_dict()})
        yield from self._close_everything(g, t, evidence)

    def _close_everything(self, g: int, t: int, evidence: dict[str, Any]) -> Decisions:
        """The executor's part of the circuit breaker (and of the kill switch): the desk and every deployment
        REDUCING, every order cancelled, every position closed; HALTED once flat (:meth:`after_fills`)."""
        yield from self._set_trading_state(t, TradingState.REDUCING, CIRCUIT_BREAKER, evidence)
        for dep in list(self.state.deployments.values()):
            if dep.state is not TradingState.HALTED:
                yield from self._set_deployment_state(t, dep.id, TradingState.REDUCING, CIRCUIT_BREAKER, evidence)
        yield from self._flatten(g, None, IntentReason.CIRCUIT_BREAKER)
        on_bots = tuple(d.id for d in self.state.deployments.values() if d.venue == "freqtrade")
        if on_bots:  # every venue: the Freqtrade bots close theirs too
            told = yield CloseBots(on_bots, "circuit_breaker")
            if told is not None:
                yield self.alert(t, AlertLevel.CRITICAL, "bots_closed", f"the circuit breaker told {len(told)} "
                                 "Freqtrade bot(s) to close everything", {"bots": told}, source="executor")

    def _flatten(self, g: int, deployment_id: str | None, reason: IntentReason) -> Decisions:
        t = self.market.close_time(g)
        yield CancelOpen(t, reason.value, deployment_id)
        yield from self._reduce_positions(g, deployment_id, None, reason)
        yield Reschedule(g)
        yield from self.after_fills(g, t)

    def _trim(self, g: int, deployment_id: str | None, fraction: float, reason: IntentReason) -> Decisions:
        yield from self._reduce_positions(g, deployment_id, dec(fraction), reason)

    def _reduce_positions(self, g: int, deployment_id: str | None, fraction: Decimal | None,
                          reason: IntentReason) -> Decisions:
        """Exit orders for every position (of one deployment, or all): all of it, or ``fraction`` of it; one batch
        (:class:`SubmitExits`) in the order the positions opened. Each exit is worked out before any is sent: an
        exit sent changes no other position's closable quantity (its own key only), so they are the same as one by
        one."""
        intents = self.exits(g, deployment_id, fraction, reason)
        if intents:
            yield SubmitExits(tuple(intents), g)

    def exits(self, g: int, deployment_id: str | None, fraction: Decimal | None, reason: IntentReason
              ) -> list[OrderIntent]:
        """The exits :meth:`_reduce_positions` sends at bar ``g``: per open position (of one deployment, or all),
        in the order they opened, what no exit on its way covers — all of it, or ``fraction`` of the position —
        at market, referenced at the pair's close; none for a position with nothing left to close."""
        s = self.state
        t = self.market.close_time(g)
        prices: dict[str, Decimal] = {}
        out = []
        for key in list(s.open_position_keys):
            if deployment_id is not None and key[0] != deployment_id:
                continue
            pos = s.positions[key]
            closable = abs(s.closable(pos.deployment_id, pos.pair))
            qty = closable if fraction is None else (abs(pos.qty) * fraction).quantize(QUANTUM, ROUND_DOWN)
            qty = min(qty, closable)
            if qty <= 0:
                continue
            direction = Direction.LONG if pos.qty > 0 else Direction.SHORT
            price = prices.get(pos.pair)
            if price is None:
                price = prices[pos.pair] = dec(float(self.market.pairs[pos.pair].close[g]))
            out.append(OrderIntent(pos.deployment_id, pos.pair, direction.exit_side, direction, reason, t, price, qty))
        return out

    # ---------------------------------------------------------------- records
    @staticmethod
    def _step(t: int, dep_id: str | None, step: ladder.LadderStep, evidence: dict[str, Any], action: str) -> Record:
        return Record(Event(t, EventKind.LADDER_STEPPED, ladder.step_payload(dep_id, step, evidence, action), dep_id))

    def _set_trading_state(self, t: int, to: TradingState, reason: str, evidence: dict[str, Any]) -> Decisions:
        s = self.state
        if s.trading_state is to and s.trading_reason == reason:
            return
        yield Record(Event(t, EventKind.TRADING_STATE_CHANGED, {
            "from": s.trading_state, "to": to, "reason": reason, "evidence": evidence}))

    def _set_deployment_state(self, t: int, dep_id: str, to: TradingState, reason: str,
                              evidence: dict[str, Any]) -> Decisions:
        dep = self.state.deployments[dep_id]
        if dep.state is to and dep.state_reason == reason:
            return
        yield Record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
            "deployment_id": dep_id, "from": dep.state, "to": to, "reason": reason, "evidence": evidence}, dep_id))

    def _alert(self, g: int, level: AlertLevel, code: str, message: str, evidence: dict[str, Any],
               deployment_id: str | None = None, source: str = "risk") -> Alert:
        return self.alert(self.market.close_time(g), level, code, message, evidence, deployment_id, source)

    @staticmethod
    def alert(t: int, level: AlertLevel, code: str, message: str, evidence: dict[str, Any],
              deployment_id: str | None = None, source: str = "lead") -> Alert:
        """An alert (the engine routes it: recorded as ``alert.raised`` and sent to the sinks, unless it repeats
        a standing alert)."""
        return Alert(t, level, source, code, deployment_id or PORTFOLIO, message, evidence)


def _staged(dep: DeploymentRecord) -> StagedDeployment:
    return StagedDeployment(dep.id, dep.stage_step, dep.stage_streak, dep.stage_since, dep.stage_anchor,
                            dep.state is TradingState.HALTED)


def _risk_words(risk: dict[str, Any]) -> str:
    words = [f"drawdown ladder at {risk['ladder_step']}"] if risk["ladder_step"] else []
    if risk["removal_proposed"]:
        words.append("the risk manager proposed its removal")
    return ", ".join(words)
