"""Deployments after the gates: their lifecycle, versions and positions.

* **lifecycle** — what ``execdesk status`` calls a deployment (scheduled, live, paused, reducing, closing,
  removed, retired, halted) from its risk state and the reason for it;
* **pause / resume / remove** (:func:`lifecycle_event`) — a human's decision, refused with the reason when
  the deployment's state does not allow it;
* **versions** — a new version supersedes the one trading (:func:`supersede`), its positions handed over at
  their entry price (:func:`hand_over`) or closed; :func:`rollback` goes back to the previous version.

Closing is the order executor's, driven by the lead (``Lead.settle``): a deployment REDUCING for one of
:data:`RETIRING` is flattened, then HALTED once flat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import TradingState
from execdesk.errors import InvalidInput, Refused

if TYPE_CHECKING:
    from execdesk.domain.state import DeploymentRecord, DeskState
    from execdesk.store.ledger import Ledger

PositionsPolicy = Literal["hand_over", "close"]
POLICIES: tuple[str, ...] = ("hand_over", "close")
#: deployment state reasons of the lifecycle (the risk manager's reasons live in lead.protocols)
SCHEDULED, STARTED, PAUSED, RESUMED, REMOVED = "scheduled", "schedule", "paused", "resumed", "removed"
SUPERSEDED, ROLLED_BACK, RESTORED = "superseded", "rolled_back", "rollback"
#: reasons under which a deployment is being closed: REDUCING until flat, then HALTED
RETIRING = (REMOVED, SUPERSEDED, ROLLED_BACK)
LIFECYCLE_REASONS = (SCHEDULED, STARTED, PAUSED, RESUMED, REMOVED, SUPERSEDED, ROLLED_BACK, RESTORED)

def trading_version(state: DeskState, strategy_id: str) -> DeploymentRecord | None:
    """The strategy's deployment that is not retired (the newest if several), if any."""
    live = [d for d in state.deployments.values() if d.strategy_id == strategy_id
            and not (d.state_reason in RETIRING or (d.state is TradingState.HALTED and d.state_reason == SUPERSEDED))]
    return max(live, key=lambda d: d.version) if live else None


def lifecycle(dep: DeploymentRecord) -> str:
    """The deployment's lifecycle, in words: scheduled, live, reducing, paused, closing, removed, retired, halted."""
    state, reason = dep.state, dep.state_reason
    if reason == SCHEDULED:
        return "scheduled"
    if state is TradingState.ACTIVE:
        return "live"
    if state is TradingState.REDUCING:
        if reason in (PAUSED, "drift_pause"):
            return "paused"
        return "closing" if reason in (*RETIRING, "drift_remove", "drawdown_kill", "circuit_breaker") else "reducing"
    if reason in (REMOVED, "drift_remove"):
        return "removed"
    if reason in (SUPERSEDED, ROLLED_BACK):
        return "retired"
    return "halted"


def lifecycle_event(state: DeskState, action: str, deployment: str, by: str, reason: str, t: int
                    ) -> list[Event]:
    """The events of ``pause``, ``resume`` or ``remove`` of a deployment by a human (refused with the reason
    when the deployment's state does not allow it)."""
    if deployment not in state.deployments:
        known = ", ".join(sorted(state.deployments)) or "none"
        raise InvalidInput(f"{action}: no deployment {deployment!r} (deployments: {known})")
    if not by.strip() or not reason.strip():
        raise InvalidInput(f"{action}: who and --reason (why) are both required")
    dep = state.deployments[deployment]
    now = lifecycle(dep)
    evidence = {"by": by, "reason": reason, "was": now}
    if action == "pause":
        if now not in ("live", "scheduled"):
            raise Refused(f"pause: {deployment} is {now} ({dep.state.value}, {dep.state_reason}); only a live or "
                          "scheduled deployment pauses")
        to, why = TradingState.REDUCING, PAUSED
    elif action == "resume":
        if now != "paused":
            hint = "; a halted one is re-armed with `execdesk rearm --deployment`" if now == "halted" else ""
            raise Refused(f"resume: {deployment} is {now} ({dep.state.value}, {dep.state_reason}); only a paused "
                          f"deployment resumes{hint}")
        to, why = TradingState.ACTIVE, RESUMED
        if dep.start_at is not None and dep.start_at > t:  # paused before its start: scheduled again
            to, why = TradingState.REDUCING, SCHEDULED
    elif action == "remove":
        if now in ("removed", "retired") or dep.state_reason in RETIRING:
            raise Refused(f"remove: {deployment} is {now} already ({dep.state_reason})")
        to, why = TradingState.REDUCING, REMOVED
    else:
        raise InvalidInput(f"unknown lifecycle action {action!r}")
    return [Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {"deployment_id": deployment, "from": dep.state, "to": to,
                                                          "reason": why, "evidence": evidence}, deployment)]


def rollback(ledger: Ledger, strategy_id: str, by: str, reason: str, positions: str, t: int) -> dict[str, Any]:
    """Back to the previous version of ``strategy_id``: the version trading now is rolled back (its positions
    handed over to the previous version or closed, by ``positions``) and the previous one trades again."""
    if positions not in POLICIES:
        raise InvalidInput(f"--positions: got {positions!r}; expected one of {', '.join(POLICIES)}")
    if not by.strip() or not reason.strip():
        raise InvalidInput("rollback: --by (who) and --reason (why) are both required")
    state = ledger.state
    versions = sorted((d for d in state.deployments.values() if d.strategy_id == strategy_id), key=lambda d: d.version)
    if not versions:
        known = ", ".join(sorted({d.strategy_id for d in state.deployments.values()})) or "none"
        raise InvalidInput(f"rollback: no strategy {strategy_id!r} is deployed (strategies: {known})")
    current = trading_version(state, strategy_id)
    if current is None:
        raise Refused(f"rollback: no version of {strategy_id} is trading (versions: "
                      f"{', '.join(f'{d.id} {lifecycle(d)}' for d in versions)})")
    previous = [d for d in versions if d.version < current.version]
    if not previous:
        raise Refused(f"rollback: {current.id} is the first version of {strategy_id}; there is none to go back to")
    target = previous[-1]
    if target.state_reason not in (SUPERSEDED, ROLLED_BACK):
        raise Refused(f"rollback: {target.id} was stopped by {target.state_reason} ({target.state.value}), not "
                      f"replaced; re-arm it (execdesk rearm --deployment {target.id}) or deploy it anew")
    others = sum(float(d.allocation) for d in state.deployments.values()
                 if d.id not in (current.id, target.id) and d.state is not TradingState.HALTED
                 and d.state_reason not in RETIRING)
    if others + float(target.allocation) > 1 + 1e-9:
        raise Refused(f"rollback: {target.id}'s allocation {float(target.allocation):g} does not fit: the other "
                      f"deployments hold {others:.0%} of equity")
    evidence = {"by": by, "reason": reason, "from": current.id, "to": target.id, "positions": positions}
    ledger.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
        "deployment_id": current.id, "from": current.state, "to": TradingState.REDUCING, "reason": ROLLED_BACK,
        "evidence": evidence}, current.id))
    ledger.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
        "deployment_id": target.id, "from": target.state, "to": TradingState.ACTIVE, "reason": RESTORED,
        "evidence": evidence}, target.id))
    handed = hand_over(ledger, current.id, target.id, t, by) if positions == "hand_over" else []
    ledger.flush()
    return {"strategy": strategy_id, "from": current.id, "to": target.id, "positions": positions,
            "handed_over": handed, "by": by, "reason": reason}


def supersede(ledger: Ledger, old: str, new: str, t: int, positions: str, by: str) -> None:
    """``new`` takes over from ``old``: ``old`` is being closed (``superseded``: REDUCING, HALTED once flat) after
    handing its positions over to ``new`` (``positions`` hand_over; the rest are closed) or closing them all."""
    dep = ledger.state.deployments[old]
    if dep.state_reason in RETIRING or dep.state is TradingState.HALTED:
        return  # it stopped trading meanwhile
    ledger.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
        "deployment_id": old, "from": dep.state, "to": TradingState.REDUCING, "reason": SUPERSEDED,
        "evidence": {"by": by, "new_version": new, "positions": positions}}, old))
    if positions == "hand_over":
        hand_over(ledger, old, new, t, by)


def hand_over(ledger: Ledger, source: str, target: str, t: int, by: str) -> list[str]:
    """Hand ``source``'s positions in the pairs ``target`` trades over to it (one event); the pairs handed."""
    state = ledger.state
    pairs = set(state.deployments[target].pairs)
    busy = {o.pair for o in state.open_orders() if o.deployment_id in (source, target)}

    def flat(pair: str) -> bool:
        held = state.position(target, pair)
        return held is None or held.qty == 0

    moving = [p for p in state.open_positions()
              if p.deployment_id == source and p.pair in pairs and p.pair not in busy and flat(p.pair)]
    if not moving:
        return []
    ledger.record(Event(t, EventKind.POSITIONS_HANDED_OVER, {
        "from": source, "to": target, "by": by,
        "positions": [{"pair": p.pair, "qty": p.qty, "avg_price": p.avg_price, "opened_at": p.opened_at}
                      for p in moving]}, target))
    return [p.pair for p in moving]
