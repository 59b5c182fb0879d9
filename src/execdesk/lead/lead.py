"""The execution lead's reactions inside the loop: drawdown steps and the circuit breaker.

Policy (limits from :class:`~execdesk.risk.config.RiskConfig`):

* a deployment's drawdown reaches ``deployment_halt_drawdown``: it stops opening positions
  (REDUCING, reason ``drawdown_halt``; WARNING alert);
* it reaches ``deployment_close_drawdown``: its orders are cancelled and its positions closed
  (REDUCING, ``drawdown_close``; CRITICAL), then it is HALTED once flat;
* the portfolio reaches ``portfolio_halt_drawdown``: the desk opens nothing more (REDUCING,
  ``drawdown_halt``; CRITICAL);
* the portfolio reaches ``portfolio_close_drawdown``: the circuit breaker — the monitor detects
  (``breach.detected``), the risk manager confirms on fresh equity (``breach.confirmed``), the lead
  authorises (``breach.authorized``, automatic at EMERGENCY), the order executor cancels every open
  order and closes every position; the desk is HALTED once flat and stays so until re-armed by hand.

Every step is an event with its evidence. States only tighten inside a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import AlertLevel, Direction, IntentReason, OrderIntent, TradingState, dec
from execdesk.monitor.equity import PORTFOLIO, Breach, Limit
from execdesk.risk.drawdown import confirm_breach

if TYPE_CHECKING:
    from execdesk.lead.loop import DeskLoop

CIRCUIT_BREAKER = "circuit_breaker"
DRAWDOWN_HALT = "drawdown_halt"
DRAWDOWN_CLOSE = "drawdown_close"
_SEVERITY = {("portfolio", "close"): 0, ("portfolio", "halt"): 1, ("deployment", "close"): 2,
             ("deployment", "halt"): 3}


class Lead:
    """Decides what a breach means and drives the protocol (see module docstring)."""

    def __init__(self, loop: DeskLoop) -> None:
        self.loop = loop
        self._stoploss = {lane.deployment_id: float(lane.bundle.stoploss) for lane in loop.lanes}
        self._limits: tuple[int, list[Limit]] | None = None

    @property
    def state(self) -> Any:
        return self.loop.ledger.state

    # ---------------------------------------------------------------- queries for the loop
    def may_enter(self, deployment_id: str) -> bool:
        dep = self.state.deployments[deployment_id]
        return bool(self.state.trading_state is TradingState.ACTIVE and dep.state is TradingState.ACTIVE)

    def stoploss_of(self, deployment_id: str) -> float:
        return self._stoploss[deployment_id]

    def armed_limits(self) -> list[Limit]:
        """The drawdown limits that can still fire, given the current states (cached per state change)."""
        if self._limits is not None and self._limits[0] == self.state.states_version:
            return self._limits[1]
        limits = self._armed_limits()
        self._limits = (self.state.states_version, limits)
        return limits

    def _armed_limits(self) -> list[Limit]:
        cfg = self.loop.risk
        s = self.state
        limits: list[Limit] = []
        if s.trading_state is TradingState.ACTIVE:
            limits.append(Limit(PORTFOLIO, "halt", cfg.portfolio_halt_drawdown))
        if s.trading_state is TradingState.ACTIVE or s.trading_reason == DRAWDOWN_HALT:
            limits.append(Limit(PORTFOLIO, "close", cfg.portfolio_close_drawdown))
        if s.trading_state is TradingState.HALTED or s.trading_reason == CIRCUIT_BREAKER:
            return limits
        for dep in s.deployments.values():
            if dep.state is TradingState.ACTIVE:
                limits.append(Limit(dep.id, "halt", cfg.deployment_halt_drawdown))
            if dep.state is TradingState.ACTIVE or dep.state_reason == DRAWDOWN_HALT:
                limits.append(Limit(dep.id, "close", cfg.deployment_close_drawdown))
        return limits

    # ---------------------------------------------------------------- reactions
    def on_breaches(self, g: int, breaches: list[Breach]) -> None:
        t = self.loop.market.close_time(g)
        ordered = sorted(breaches, key=lambda b: (_SEVERITY[(_kind(b), b.level)], b.scope))
        for breach in ordered:
            if _kind(breach) == "portfolio" and breach.level == "close":
                self._circuit_breaker(g, breach)
                return
        for breach in ordered:
            if _kind(breach) == "portfolio":
                self._set_trading_state(t, TradingState.REDUCING, DRAWDOWN_HALT, breach.evidence())
                self._alert(g, AlertLevel.CRITICAL, "portfolio_drawdown_halt",
                            f"portfolio drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}: no new positions",
                            breach.evidence())
            elif breach.level == "close":
                self._close_deployment(g, breach)
            elif self.state.deployments[breach.scope].state is TradingState.ACTIVE:
                self._set_deployment_state(t, breach.scope, TradingState.REDUCING, DRAWDOWN_HALT, breach.evidence())
                self._alert(g, AlertLevel.WARNING, "deployment_drawdown_halt",
                            f"{breach.scope} drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}: "
                            "no new positions", breach.evidence(), breach.scope)
        self.loop.reschedule_all(g)

    def after_fills(self, g: int, t: int) -> None:
        """Finish protocols whose positions are now closed (at time ``t``): REDUCING -> HALTED once flat."""
        s = self.state
        open_deps = {p.deployment_id for p in s.open_positions()} | {o.deployment_id for o in s.open_orders()}
        for dep in s.deployments.values():
            if (dep.state is TradingState.REDUCING and dep.state_reason in (DRAWDOWN_CLOSE, CIRCUIT_BREAKER)
                    and dep.id not in open_deps):
                self._set_deployment_state(t, dep.id, TradingState.HALTED, dep.state_reason, {"flat_at": t})
        if s.trading_state is TradingState.REDUCING and s.trading_reason == CIRCUIT_BREAKER and not open_deps:
            self._set_trading_state(t, TradingState.HALTED, CIRCUIT_BREAKER, {"flat_at": t, "rearm": "by hand"})

    # ---------------------------------------------------------------- protocols
    def _circuit_breaker(self, g: int, breach: Breach) -> None:
        loop = self.loop
        t = loop.market.close_time(g)
        evidence = breach.evidence()
        loop.record(Event(t, EventKind.BREACH_DETECTED, {"by": "monitor", **evidence}))
        self._alert(g, AlertLevel.EMERGENCY, "portfolio_drawdown_close",
                    f"portfolio drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}", evidence)
        closes = {p: float(track.close[g]) for p, track in loop.market.pairs.items()}
        confirmation = confirm_breach(self.state, closes, breach)
        loop.record(Event(t, EventKind.BREACH_CONFIRMED, {"by": "risk", **confirmation.as_dict()}))
        if not confirmation.confirmed:
            self._alert(g, AlertLevel.WARNING, "breach_not_confirmed",
                        "the risk manager did not confirm the monitor's breach on fresh equity",
                        confirmation.as_dict())
            return
        loop.record(Event(t, EventKind.BREACH_AUTHORIZED, {
            "by": "lead", "policy": "automatic at EMERGENCY", "action": "cancel all orders, close all positions"}))
        self._set_trading_state(t, TradingState.REDUCING, CIRCUIT_BREAKER, evidence)
        for dep in list(self.state.deployments.values()):
            if dep.state is not TradingState.HALTED:
                self._set_deployment_state(t, dep.id, TradingState.REDUCING, CIRCUIT_BREAKER, evidence)
        self._flatten(g, None, IntentReason.CIRCUIT_BREAKER)

    def _close_deployment(self, g: int, breach: Breach) -> None:
        t = self.loop.market.close_time(g)
        self._set_deployment_state(t, breach.scope, TradingState.REDUCING, DRAWDOWN_CLOSE, breach.evidence())
        self._alert(g, AlertLevel.CRITICAL, "deployment_drawdown_close",
                    f"{breach.scope} drawdown {breach.drawdown:.2%} reached {breach.limit:.0%}: closing it",
                    breach.evidence(), breach.scope)
        self._flatten(g, breach.scope, IntentReason.DEPLOYMENT_HALT)

    def _flatten(self, g: int, deployment_id: str | None, reason: IntentReason) -> None:
        loop = self.loop
        t = loop.market.close_time(g)
        loop.oms.cancel_open(t, reason.value, deployment_id)
        for pos in list(self.state.open_positions()):
            if deployment_id is not None and pos.deployment_id != deployment_id:
                continue
            direction = Direction.LONG if pos.qty > 0 else Direction.SHORT
            price = dec(float(loop.market.pairs[pos.pair].close[g]))
            loop.submit(OrderIntent(pos.deployment_id, pos.pair, direction.exit_side, direction, reason, t, price,
                                    abs(pos.qty)), g)
        loop.reschedule_all(g)
        self.after_fills(g, t)

    # ---------------------------------------------------------------- records
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
               deployment_id: str | None = None) -> None:
        self.loop.record(Event(self.loop.market.close_time(g), EventKind.ALERT_RAISED, {
            "level": level, "source": "monitor", "code": code, "message": message, "evidence": evidence},
            deployment_id))


def _kind(breach: Breach) -> str:
    return "portfolio" if breach.scope == PORTFOLIO else "deployment"
