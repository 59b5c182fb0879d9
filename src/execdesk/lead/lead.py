"""The execution lead's reactions inside the loop: the drawdown ladders, the circuit breaker, staged allocation.

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

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import QUANTUM, AlertLevel, Direction, IntentReason, OrderIntent, TradingState, dec
from execdesk.lead.lifecycle import RETIRING, SCHEDULED, STARTED, supersede
from execdesk.monitor.alerts import Alert
from execdesk.monitor.equity import PORTFOLIO, Breach, Limit, Snapshot
from execdesk.risk.config import LADDER_STEPS, DrawdownLadder
from execdesk.risk.drawdown import confirm_breach, fresh_equity
from execdesk.risk.pretrade import Context
from execdesk.risk.staging import next_stage

if TYPE_CHECKING:
    from execdesk.domain.state import DeploymentRecord, DeskState
    from execdesk.execution.oms import ReconcileReport
    from execdesk.lead.loop import DeskLoop

CIRCUIT_BREAKER = "circuit_breaker"
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
KILL = len(LADDER_STEPS)  # the kill switch is the ladder's last step
_STEP = {name: i for i, name in enumerate(LADDER_STEPS, start=1)}
_DAY = 86_400


class Lead:
    """Decides what a breach means and drives the protocol (see module docstring)."""

    def __init__(self, loop: DeskLoop, ladders: Mapping[str, DrawdownLadder] | None = None) -> None:
        self.loop = loop
        self._stoploss = {lane.deployment_id: float(lane.bundle.stoploss) for lane in loop.lanes}
        self._ladders = dict(ladders or {})
        self._limits: tuple[int, list[Limit]] | None = None
        self._decided: dict[str, str] = {}  # deployment -> the strategy-halt decision taken so far
        self._drift: dict[str, tuple[str, list[dict[str, Any]], int]] = {}  # the monitor's last verdict, evidence
        self._proposed: set[str] = set()  # deployments the risk manager proposed to remove (staging)
        # ladder steps waiting for a human: decision request id -> (deployment or None, step, action, evidence)
        self._awaiting: dict[str, tuple[str | None, str, str, dict[str, Any]]] = {}
        for e in loop.ledger.events({EventKind.STRATEGY_REVIEWED, EventKind.DRIFT_ASSESSED,
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
        return self.loop.ledger.state

    # ---------------------------------------------------------------- queries for the loop
    def ladder_of(self, deployment_id: str) -> DrawdownLadder:
        return self._ladders.get(deployment_id, self.loop.risk.deployment_drawdown)

    def may_enter(self, deployment_id: str) -> bool:
        dep = self.state.deployments[deployment_id]
        return bool(self.state.trading_state is TradingState.ACTIVE and dep.state is TradingState.ACTIVE)

    def stoploss_of(self, deployment_id: str) -> float:
        """The deployment's stoploss as its exits use it now: the bundle's, tightened by a ladder at reduce."""
        dep = self.state.deployments[deployment_id]
        tighten = min(self.loop.risk.portfolio_drawdown.stop_multiplier(self.state.ladder_step),
                      self.ladder_of(deployment_id).stop_multiplier(dep.ladder_step))
        return self._stoploss[deployment_id] * tighten

    def context(self, deployment_id: str) -> Context:
        """What the risk manager's pre-trade check needs to know about the deployment now."""
        s = self.state
        dep = s.deployments[deployment_id]
        marks = self.loop.monitor.marks.last_equity
        size = min(self.loop.risk.portfolio_drawdown.size_multiplier(s.ladder_step),
                   self.ladder_of(deployment_id).size_multiplier(dep.ladder_step))
        return Context(s.trading_state, dep.state, marks.get(PORTFOLIO, float(s.cash())),
                       marks.get(dep.id, float(dep.capital)), abs(self._stoploss[deployment_id]), size,
                       float(dep.stage_fraction))

    def armed_limits(self) -> list[Limit]:
        """The drawdown steps that can still fire, given the current states (cached per state change)."""
        if self._limits is not None and self._limits[0] == self.state.states_version:
            return self._limits[1]
        limits = self._armed_limits()
        self._limits = (self.state.states_version, limits)
        return limits

    def _armed_limits(self) -> list[Limit]:
        s = self.state
        if s.trading_state is TradingState.HALTED or s.trading_reason == CIRCUIT_BREAKER:
            return []
        limits = [Limit(PORTFOLIO, name, level) for step, name, level in self.loop.risk.portfolio_drawdown.levels()
                  if step > s.ladder_step]
        for dep in s.deployments.values():
            if dep.state is TradingState.HALTED or dep.state_reason in (DRAWDOWN_KILL, DRIFT_REMOVE):
                continue
            limits.extend(Limit(dep.id, name, level) for step, name, level in self.ladder_of(dep.id).levels()
                          if step > dep.ladder_step)
        return limits

    # ---------------------------------------------------------------- reactions
    def on_breaches(self, g: int, breaches: list[Breach]) -> None:
        """Climb each scope's ladder to the deepest step its drawdown reached at bar ``g``."""
        deepest: dict[str, Breach] = {}
        for b in breaches:
            if b.scope not in deepest or _STEP[b.level] > _STEP[deepest[b.scope].level]:
                deepest[b.scope] = b
        portfolio = deepest.pop(PORTFOLIO, None)
        if portfolio is not None:
            if _STEP[portfolio.level] == KILL:
                self._circuit_breaker(g, portfolio)
                return
            self._climb_portfolio(g, portfolio)
        for scope in sorted(deepest):
            self._climb_deployment(g, deepest[scope])
        self.loop.reschedule_all(g)

    def _climb_portfolio(self, g: int, breach: Breach) -> None:
        t = self.loop.market.close_time(g)
        ladder = self.loop.risk.portfolio_drawdown
        for step, name, level in self._crossed(ladder, self.state.ladder_step, breach):
            evidence = {**breach.evidence(), "level": name, "limit": level}
            what = f"portfolio drawdown {breach.drawdown:.2%} reached {level:.0%}"
            if name == "alert":
                action = f"new positions sized x {ladder.alert_size_multiplier}"
                self._step(t, None, step, name, evidence, action)
                self._alert(g, AlertLevel.WARNING, "portfolio_drawdown_alert", f"{what}: {action}", evidence)
                continue
            action = (f"REDUCING: no new positions; stops tightened to x {ladder.reduce_stop_multiplier}"
                      if name == "reduce" else f"close {ladder.trim_fraction:.0%} of every position")
            if self._ask_human(g, t, None, step, name, action, evidence, what):
                continue
            self._step(t, None, step, name, evidence, action)
            self._alert(g, AlertLevel.CRITICAL, f"portfolio_drawdown_{name}", f"{what}: {action}", evidence)
            self._take_step(g, None, name, evidence)

    def _climb_deployment(self, g: int, breach: Breach) -> None:
        t = self.loop.market.close_time(g)
        dep_id = breach.scope
        dep = self.state.deployments[dep_id]
        ladder = self.ladder_of(dep_id)
        crossed = self._crossed(ladder, dep.ladder_step, breach)
        self._climb_steps(g, t, dep_id, ladder, breach, crossed)
        if crossed and crossed[-1][0] >= _STEP["reduce"]:
            self._review_again(t, dep_id)

    def _climb_steps(self, g: int, t: int, dep_id: str, ladder: DrawdownLadder, breach: Breach,
                     crossed: list[tuple[int, str, float]]) -> None:
        for step, name, level in crossed:
            evidence = {**breach.evidence(), "level": name, "limit": level}
            what = f"{dep_id} drawdown {breach.drawdown:.2%} reached {level:.0%}"
            if name == "alert":
                action = f"new positions sized x {ladder.alert_size_multiplier}"
                self._step(t, dep_id, step, name, evidence, action)
                self._alert(g, AlertLevel.WARNING, "deployment_drawdown_alert", f"{what}: {action}", evidence, dep_id)
            elif name in ("reduce", "trim"):
                action = (f"REDUCING: no new positions; stops tightened to x {ladder.reduce_stop_multiplier}"
                          if name == "reduce" else f"close {ladder.trim_fraction:.0%} of each of its positions")
                if self._ask_human(g, t, dep_id, step, name, action, evidence, what):
                    continue
                self._step(t, dep_id, step, name, evidence, action)
                level_of = AlertLevel.WARNING if name == "reduce" else AlertLevel.CRITICAL
                self._alert(g, level_of, f"deployment_drawdown_{name}", f"{what}: {action}", evidence, dep_id)
                self._take_step(g, dep_id, name, evidence)
            else:
                action = "close everything; HALTED once flat, until re-armed by hand"
                self._step(t, dep_id, step, name, evidence, action)
                self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRAWDOWN_KILL, evidence)
                self._alert(g, AlertLevel.CRITICAL, "deployment_drawdown_kill", f"{what}: {action}", evidence, dep_id)
                self._flatten(g, dep_id, IntentReason.DEPLOYMENT_HALT)

    def _take_step(self, g: int, dep_id: str | None, name: str, evidence: dict[str, Any]) -> None:
        """What a ladder's reduce or trim step does, to the desk (``dep_id`` None) or one deployment."""
        t = self.loop.market.close_time(g)
        if dep_id is None:
            if name == "reduce":
                self._set_trading_state(t, TradingState.REDUCING, DRAWDOWN_REDUCE, evidence)
            else:
                self._trim(g, None, self.loop.risk.portfolio_drawdown.trim_fraction, IntentReason.PORTFOLIO_TRIM)
        elif name == "reduce":
            if self.state.deployments[dep_id].state is TradingState.ACTIVE:
                self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRAWDOWN_REDUCE, evidence)
        else:
            self._trim(g, dep_id, self.ladder_of(dep_id).trim_fraction, IntentReason.DEPLOYMENT_TRIM)

    # ---------------------------------------------------------------- a human authorizes below EMERGENCY
    def _ask_human(self, g: int, t: int, dep_id: str | None, step: int, name: str, action: str,
                   evidence: dict[str, Any], what: str) -> bool:
        """A step the desk's policy leaves to a human (``lead.human_authorizes``): the step is recorded as
        reached, the Orchestrator gets an emergency decision request, and the action waits for
        ``execdesk approve|deny`` (:meth:`check_answers`). False when the policy authorizes it itself."""
        if name not in self.loop.human_authorizes or self.loop.liaison is None:
            return False
        from execdesk.lead.liaison import DecisionRequests

        scope = dep_id or PORTFOLIO
        question = f"{what}: authorize the {name} step ({action})?"
        request_id = DecisionRequests(self.loop.liaison).request(t, scope, question, {**evidence, "action": action})
        self._step(t, dep_id, step, name, evidence, f"waiting for a human to authorize: {action} ({request_id})")
        self.loop.record(Event(t, EventKind.APPROVAL_REQUESTED, {
            "request_id": request_id, "kind": "ladder_step", "scope": scope, "step": name, "action": action,
            "question": question, "evidence": evidence}, dep_id))
        self._awaiting[request_id] = (dep_id, name, action, evidence)
        self._alert(g, AlertLevel.CRITICAL, "authorization_requested", f"{what}: the {name} step waits for a human "
                    f"(execdesk approve {request_id})", {**evidence, "request_id": request_id}, dep_id, "lead")
        return True

    def check_answers(self, g: int) -> None:
        """Act on the answers given to the decision requests the ladders are waiting on."""
        if not self._awaiting or self.loop.liaison is None:
            return
        from execdesk.lead.liaison import DecisionRequests

        requests = DecisionRequests(self.loop.liaison.outbox)
        t = self.loop.market.close_time(g)
        for request_id, (dep_id, name, action, evidence) in list(self._awaiting.items()):
            answer = requests.answer_of(request_id)
            if answer is None:
                continue
            del self._awaiting[request_id]
            decided = "approved" if answer.decision == "approve" else "denied"
            self.loop.record(Event(t, EventKind.APPROVAL_DECIDED, {
                "request_id": request_id, "kind": "ladder_step", "scope": dep_id or PORTFOLIO, "step": name,
                "decision": decided, "by": answer.by, "answered_at": answer.time}, dep_id))
            if decided == "denied":
                self.raise_alert(t, AlertLevel.WARNING, "authorization_denied", f"{answer.by} denied the {name} "
                                 f"step for {dep_id or PORTFOLIO}: not done", {"request_id": request_id}, dep_id)
                continue
            self.loop.record(Event(t, EventKind.BREACH_AUTHORIZED, {
                "by": answer.by, "policy": "a human authorizes below EMERGENCY (lead.human_authorizes)",
                "action": action, "scope": dep_id or PORTFOLIO, "step": name, "request_id": request_id}, dep_id))
            self._take_step(g, dep_id, name, evidence)
        self.loop.reschedule_all(g)

    @staticmethod
    def _crossed(ladder: DrawdownLadder, current: int, breach: Breach) -> list[tuple[int, str, float]]:
        """The steps above ``current`` up to the breach's, mildest first."""
        reached = _STEP[breach.level]
        return [(step, name, level) for step, name, level in ladder.levels() if current < step <= reached]

    def after_fills(self, g: int, t: int) -> None:
        """Finish protocols whose positions are now closed (at time ``t``): REDUCING -> HALTED once flat."""
        s = self.state
        open_deps = {p.deployment_id for p in s.open_positions()} | {o.deployment_id for o in s.open_orders()}
        for dep in s.deployments.values():
            closing = dep.state_reason in CLOSING
            if dep.state is TradingState.REDUCING and closing and dep.id not in open_deps:
                self._set_deployment_state(t, dep.id, TradingState.HALTED, dep.state_reason, {"flat_at": t})
        if s.trading_state is TradingState.REDUCING and s.trading_reason == CIRCUIT_BREAKER and not open_deps:
            self._set_trading_state(t, TradingState.HALTED, CIRCUIT_BREAKER, {"flat_at": t, "rearm": "by hand"})

    def on_snapshot(self, snap: Snapshot) -> None:
        """Staged allocation: judge each deployment's period that ended by this snapshot."""
        cfg = self.loop.risk.staging
        if not cfg.enabled:
            return
        period = cfg.period_days * _DAY
        t = self.loop.market.close_time(snap.g)
        for dep in list(self.state.deployments.values()):
            if (dep.stage_since is None or t < dep.stage_since + period or dep.id not in snap.deployments
                    or dep.state is TradingState.HALTED):
                continue
            equity = snap.deployments[dep.id][0]
            ret = equity / dep.stage_anchor - 1.0 if dep.stage_anchor > 0 else 0.0
            self._stage(t, dep, ret, equity)

    def _stage(self, t: int, dep: DeploymentRecord, ret: float, equity: float) -> None:
        cfg = self.loop.risk.staging
        step, _streak, decision = next_stage(dep.stage_step, dep.stage_streak, _utc(t), ret, cfg)
        payload = {"deployment_id": dep.id, **decision.as_dict(), "step": step, "period_from": dep.stage_since,
                   "period_to": t, "equity": round(equity, 6), "anchor_equity": round(dep.stage_anchor, 6),
                   "next_period_from": t, "by": "risk"}
        self.loop.record(Event(t, EventKind.ALLOCATION_STAGED, payload, dep.id))
        if decision.action == "propose_removal":
            self.raise_alert(t, AlertLevel.WARNING, "staging_removal_proposed", f"{dep.id}: {decision.reason}",
                             payload, dep.id, "risk")
            self._proposed.add(dep.id)
            self._review_again(t, dep.id)

    def on_drift(self, t: int, dep_id: str, verdict: str, findings: list[dict[str, Any]], trades: int) -> None:
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
        policy = {**DRIFT_POLICY, **self.loop.drift_policy}
        by_policy = policy.get(verdict, "continue")
        risk = {"ladder_step": _ladder_name(dep.ladder_step), "removal_proposed": dep_id in self._proposed}
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
        self.loop.record(Event(t, EventKind.STRATEGY_REVIEWED, {
            "deployment_id": dep_id, "verdict": verdict, "decision": decision, "policy": policy,
            "by_policy": by_policy, "why": why, "by": "lead", "evidence": evidence}, dep_id))
        g = self.loop.bar_of(t)
        if decision == "adjust":
            before = float(dep.stage_fraction)
            after = before / 2
            self.loop.record(Event(t, EventKind.ALLOCATION_STAGED, {
                "deployment_id": dep_id, "action": "lead_adjust", "by": "lead",
                "reason": f"drift verdict {verdict}: allocation in use halved ({before:.0%} -> {after:.0%})",
                "fraction_before": before, "fraction_after": after, "step": dep.stage_step,
                "losing_streak": dep.stage_streak, "period_return": None, "equity": dep.stage_anchor,
                "next_period_from": dep.stage_since if dep.stage_since is not None else t}, dep_id))
        elif decision == "pause":
            if dep.state is TradingState.ACTIVE or dep.state_reason == DRAWDOWN_REDUCE:
                self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRIFT_PAUSE, evidence)
        else:
            self._set_deployment_state(t, dep_id, TradingState.REDUCING, DRIFT_REMOVE, evidence)
            if g is not None:
                self._flatten(g, dep_id, IntentReason.DEPLOYMENT_HALT)
        level = AlertLevel.CRITICAL if critical or decision != "adjust" else AlertLevel.WARNING
        self.raise_alert(t, level, f"strategy_{decision}", f"{dep_id}: drift verdict {verdict} -> the lead decides "
                         f"to {decision} ({why}); revalidation requested", evidence, dep_id, "lead")
        self.loop.send_message(t, "revalidation_request", dep_id,
                               f"{dep.strategy_id} v{dep.version}: live drift ({verdict}); the desk decided to "
                               f"{decision}; please revalidate", {**evidence, "decision": decision, "why": why,
                                                                  "strategy_id": dep.strategy_id,
                                                                  "version": dep.version})

    def _review_again(self, t: int, dep_id: str) -> None:
        """New risk evidence on a deployment the monitor has flagged: the lead reviews it again."""
        last = self._drift.get(dep_id)
        if last is not None and last[0] != "continue":
            self.on_drift(t, dep_id, *last)

    def on_reconciled(self, report: ReconcileReport, t: int) -> None:
        """Stop what reconciliation could not square: a deployment whose position differs from the
        venue's is HALTED (not traded until a human looks); a cash difference stops new positions."""
        if report.venue_unavailable:
            self.raise_alert(t, AlertLevel.CRITICAL, "venue_unavailable",
                             f"reconciliation could not reach the venue: {report.venue_unavailable}", {},
                             source="executor")
        for mismatch in report.position_mismatches:
            for dep_id in filter(None, mismatch["deployments"].split(",")):
                if dep_id in self.state.deployments:
                    self._set_deployment_state(t, dep_id, TradingState.HALTED, RECONCILIATION, mismatch)
        if report.position_mismatches:
            pairs = ", ".join(f"{m['pair']} (ledger {m['ledger']}, venue {m['venue']})"
                              for m in report.position_mismatches)
            self.raise_alert(t, AlertLevel.CRITICAL, "position_mismatch",
                             f"positions differ from the venue's: {pairs}; their deployments are not traded",
                             {"mismatches": report.position_mismatches}, source="executor")
        if report.cash_mismatch is not None and self.state.trading_state is TradingState.ACTIVE:
            self._set_trading_state(t, TradingState.REDUCING, RECONCILIATION, report.cash_mismatch)
            self.raise_alert(t, AlertLevel.CRITICAL, "cash_mismatch",
                             f"cash: ledger {report.cash_mismatch['ledger']} vs venue "
                             f"{report.cash_mismatch['venue']}; no new positions", dict(report.cash_mismatch),
                             source="executor")

    # ---------------------------------------------------------------- deployments
    def scheduled_starts(self) -> list[tuple[int, str]]:
        """The scheduled deployments' start times, soonest first."""
        return sorted((d.start_at or 0, d.id) for d in self.state.deployments.values()
                      if d.state is TradingState.REDUCING and d.state_reason == SCHEDULED)

    def start_due(self, g: int, starts: list[tuple[int, str]]) -> None:
        """Scheduled deployments whose start time has come by bar ``g``'s close go live (taken off ``starts``); a
        new version takes over from the one it replaces now, by its positions policy."""
        t = self.loop.market.close_time(g)
        seq_before = self.state.last_seq
        while starts and starts[0][0] <= t:
            start_at, dep_id = starts.pop(0)
            dep = self.state.deployments[dep_id]
            if dep.state is TradingState.REDUCING and dep.state_reason == SCHEDULED:
                self._set_deployment_state(t, dep_id, TradingState.ACTIVE, STARTED, {"start_at": start_at})
                if dep.replaces is not None:
                    supersede(self.loop.ledger, dep.replaces, dep_id, t, dep.positions_policy, "lead")
        self.loop.after_handovers(seq_before, g)
        self.settle(g)

    def needs_settling(self) -> bool:
        """Whether a deployment (or the desk) is being closed: :meth:`settle` has work at the run's first bar."""
        s = self.state
        return (s.trading_state is TradingState.REDUCING and s.trading_reason == CIRCUIT_BREAKER) or any(
            d.state is TradingState.REDUCING and d.state_reason in CLOSING for d in s.deployments.values())

    def settle(self, g: int) -> None:
        """Deployments being closed (removed, superseded, rolled back by a human; or a protocol a stopped desk did
        not finish): their entry orders cancelled, an exit for whatever of their positions no exit on its way
        covers; those already flat are HALTED. Idempotent: a desk that settles again sends nothing twice."""
        s = self.state
        t = self.loop.market.close_time(g)
        for dep in list(s.deployments.values()):
            if dep.state is not TradingState.REDUCING or dep.state_reason not in CLOSING:
                continue
            if any(o.reason == IntentReason.ENTRY_SIGNAL.value for p in dep.pairs for o in s.open_orders_of(dep.id, p)):
                self.loop.oms.cancel_open(t, IntentReason.DEPLOYMENT_HALT.value, dep.id, entries_only=True)
                self.loop.after_cancels()
            if any(p.deployment_id == dep.id for p in s.open_positions()):
                self._reduce_positions(g, dep.id, None, IntentReason.DEPLOYMENT_HALT)  # the uncovered rest only
        self.loop.reschedule_all(g)
        self.after_fills(g, t)

    # ---------------------------------------------------------------- protocols
    def manual_kill(self, g: int, by: str, reason: str) -> None:
        """The kill switch pulled by hand (``execdesk kill``): the circuit breaker's path, each step recorded —
        requested by a human (in place of the monitor's detection), the risk manager records equity as it
        is, the human's request is the authorization, then everything is cancelled and closed, HALTED once
        flat until re-armed by hand."""
        loop = self.loop
        t = loop.market.close_time(g)
        s = self.state
        if s.trading_state is TradingState.HALTED or s.trading_reason == CIRCUIT_BREAKER:
            return  # already killed
        equity = fresh_equity(s, loop.closes(g), PORTFOLIO)
        evidence = {"by": by, "reason": reason, "kind": "manual kill switch"}
        loop.record(Event(t, EventKind.BREACH_DETECTED, {"by": "human", "by_name": by, "reason": reason,
                                                          "kind": "manual kill switch", "scope": PORTFOLIO}))
        self._alert(g, AlertLevel.EMERGENCY, "manual_kill", f"kill switch pulled by {by}: {reason}", evidence,
                    source="lead")
        loop.record(Event(t, EventKind.BREACH_CONFIRMED, {"by": "risk", "confirmed": True, "scope": PORTFOLIO,
                                                           "level": "kill", "equity": f"{equity:.6f}",
                                                           "peak": f"{equity:.6f}", "drawdown": "0",
                                                           "limit": "manual"}))
        loop.record(Event(t, EventKind.BREACH_AUTHORIZED, {
            "by": by, "policy": "manual kill switch", "action": "cancel all orders, close all positions"}))
        loop.send_message(t, "escalation", PORTFOLIO, f"kill switch pulled by {by}: {reason}; everything is "
                          "being closed; the desk stays HALTED until re-armed by hand", evidence)
        self._close_everything(g, t, evidence)

    def _circuit_breaker(self, g: int, breach: Breach) -> None:
        loop = self.loop
        t = loop.market.close_time(g)
        evidence = breach.evidence()
        loop.record(Event(t, EventKind.BREACH_DETECTED, {"by": "monitor", **evidence}))
        self._alert(g, AlertLevel.EMERGENCY, "portfolio_drawdown_kill",
                    f"portfolio drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}", evidence, source="monitor")
        confirmation = confirm_breach(self.state, loop.closes(g), breach)
        loop.record(Event(t, EventKind.BREACH_CONFIRMED, {"by": "risk", **confirmation.as_dict()}))
        if not confirmation.confirmed:
            self._alert(g, AlertLevel.WARNING, "breach_not_confirmed",
                        "the risk manager did not confirm the monitor's breach on fresh equity",
                        confirmation.as_dict())
            return
        for step, name, level in self._crossed(loop.risk.portfolio_drawdown, self.state.ladder_step, breach):
            self._step(t, None, step, name, {**evidence, "level": name, "limit": level},
                       "circuit breaker: close everything, HALTED until re-armed by hand" if step == KILL
                       else "superseded by the kill step")
        loop.record(Event(t, EventKind.BREACH_AUTHORIZED, {
            "by": "lead", "policy": "automatic at EMERGENCY", "action": "cancel all orders, close all positions"}))
        loop.send_message(t, "escalation", PORTFOLIO,
                          f"circuit breaker: portfolio drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}; "
                          "everything is being closed; the desk stays HALTED until re-armed by hand",
                          {**evidence, "confirmation": confirmation.as_dict()})
        self._close_everything(g, t, evidence)

    def _close_everything(self, g: int, t: int, evidence: dict[str, Any]) -> None:
        """The executor's part of the circuit breaker (and of the kill switch): the desk and every deployment
        REDUCING, every order cancelled, every position closed; HALTED once flat (:meth:`after_fills`)."""
        self._set_trading_state(t, TradingState.REDUCING, CIRCUIT_BREAKER, evidence)
        for dep in list(self.state.deployments.values()):
            if dep.state is not TradingState.HALTED:
                self._set_deployment_state(t, dep.id, TradingState.REDUCING, CIRCUIT_BREAKER, evidence)
        self._flatten(g, None, IntentReason.CIRCUIT_BREAKER)
        on_bots = [d.id for d in self.state.deployments.values() if d.venue == "freqtrade"]
        if on_bots and self.loop.control is not None:  # every venue: the Freqtrade bots close theirs too
            from execdesk.lead.fleet import close_all_bots

            told = close_all_bots(self.loop.control.parent, on_bots, "circuit_breaker")
            self.raise_alert(t, AlertLevel.CRITICAL, "bots_closed", f"the circuit breaker told {len(told)} "
                             "Freqtrade bot(s) to close everything", {"bots": told}, source="executor")

    def _flatten(self, g: int, deployment_id: str | None, reason: IntentReason) -> None:
        loop = self.loop
        t = loop.market.close_time(g)
        loop.oms.cancel_open(t, reason.value, deployment_id)
        loop.after_cancels()
        self._reduce_positions(g, deployment_id, None, reason)
        loop.reschedule_all(g)
        self.after_fills(g, t)

    def _trim(self, g: int, deployment_id: str | None, fraction: float, reason: IntentReason) -> None:
        self._reduce_positions(g, deployment_id, dec(fraction), reason)

    def _reduce_positions(self, g: int, deployment_id: str | None, fraction: Decimal | None,
                          reason: IntentReason) -> None:
        """Exit orders for every position (of one deployment, or all): all of it, or ``fraction`` of it."""
        loop = self.loop
        t = loop.market.close_time(g)
        for pos in list(self.state.open_positions()):
            if deployment_id is not None and pos.deployment_id != deployment_id:
                continue
            closable = abs(loop.closable(pos.deployment_id, pos.pair))
            qty = closable if fraction is None else (abs(pos.qty) * fraction).quantize(QUANTUM, ROUND_DOWN)
            qty = min(qty, closable)
            if qty <= 0:
                continue
            direction = Direction.LONG if pos.qty > 0 else Direction.SHORT
            price = dec(float(loop.market.pairs[pos.pair].close[g]))
            loop.submit(OrderIntent(pos.deployment_id, pos.pair, direction.exit_side, direction, reason, t, price,
                                    qty), g)

    # ---------------------------------------------------------------- records
    def _step(self, t: int, dep_id: str | None, step: int, name: str, evidence: dict[str, Any], action: str) -> None:
        self.loop.record(Event(t, EventKind.LADDER_STEPPED, {
            "scope": dep_id or PORTFOLIO, "step": step, "level": name, "evidence": evidence, "action": action,
            "by": "risk"}, dep_id))

    def _set_trading_state(self, t: int, to: TradingState, reason: str, evidence: dict[str, Any]) -> None:
        s = self.state
        if s.trading_state is to and s.trading_reason == reason:
            return
        self.loop.record(Event(t, EventKind.TRADING_STATE_CHANGED, {
            "from": s.trading_state, "to": to, "reason": reason, "evidence": evidence}))

    def _set_deployment_state(self, t: int, dep_id: str, to: TradingState, reason: str,
                              evidence: dict[str, Any]) -> None:
        dep = self.state.deployments[dep_id]
        if dep.state is to and dep.state_reason == reason:
            return
        self.loop.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
            "deployment_id": dep_id, "from": dep.state, "to": to, "reason": reason, "evidence": evidence}, dep_id))

    def _alert(self, g: int, level: AlertLevel, code: str, message: str, evidence: dict[str, Any],
               deployment_id: str | None = None, source: str = "risk") -> None:
        self.raise_alert(self.loop.market.close_time(g), level, code, message, evidence, deployment_id, source)

    def raise_alert(self, t: int, level: AlertLevel, code: str, message: str, evidence: dict[str, Any],
                    deployment_id: str | None = None, source: str = "lead") -> None:
        """Through the alert router: recorded in the ledger (``alert.raised``) and sent to the sinks,
        unless it repeats a standing alert (de-duplicated there)."""
        self.loop.router.raise_(Alert(t, level, source, code, deployment_id or PORTFOLIO, message, evidence))


def _ladder_name(step: int) -> str | None:
    return LADDER_STEPS[step - 1] if step > 0 else None


def _risk_words(risk: dict[str, Any]) -> str:
    words = [f"drawdown ladder at {risk['ladder_step']}"] if risk["ladder_step"] else []
    if risk["removal_proposed"]:
        words.append("the risk manager proposed its removal")
    return ", ".join(words)


def _utc(t: int) -> datetime:
    return datetime.fromtimestamp(t, UTC)
