"""Team performance: how each role did, from the ledger alone (``execdesk team``).

* signal generator — strategies generated for the pipeline and refused by their review (the
  ``signal_generator`` gate), intents its lanes produced (entries and exits), and how many the risk manager
  refused;
* risk manager — assessments made (``execdesk assess`` and the pipeline's risk gate) and their verdict
  mix, orders approved and denied (by rule), and the breaches its caps prevented (entries denied or cut by
  an exposure, cash or position cap), ladder steps and circuit breakers;
* order executor — orders sent, fill ratio, rejects, slippage against each deployment's budget, fees,
  submit-to-fill latency;
* monitor — alerts raised by level, drift conditions it flagged, and how many of them later cleared on
  their own with no decision by the lead (judged false: the deployment went back to "continue");
* capacity flags — a role saturated: orders denied by the throttle, venue calls that failed after their
  retries, reconciliations that could not reach the venue, a venue that rate-limited the desk, a monitoring
  cycle over its budget (``monitor.cycle_budget`` of a bar).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from execdesk.domain.events import EventKind
from execdesk.monitor.quality import execution_quality
from execdesk.store.ledger import Ledger

#: cap rules whose denial (or cut) kept the desk inside a limit it would otherwise have broken
_CAP_RULES = {"max_order_notional", "max_open_positions", "deployment_exposure", "gross_exposure",
              "correlated_exposure", "free_cash"}


def team_performance(ledger: Ledger) -> dict[str, Any]:
    """Per role, the figures in the module docstring; and the capacity flags."""
    state = ledger.state
    kinds = {EventKind.ORDER_SUBMITTED, EventKind.ORDER_DENIED, EventKind.RISK_ASSESSED, EventKind.ALERT_RAISED,
             EventKind.LADDER_STEPPED, EventKind.BREACH_AUTHORIZED, EventKind.DRIFT_ASSESSED,
             EventKind.STRATEGY_REVIEWED, EventKind.RECONCILED, EventKind.GATE, EventKind.MESSAGE_SENT}
    submitted: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    cut: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    alerts: Counter[str] = Counter()
    flagged: dict[str, str] = {}
    cleared = 0
    decided: set[str] = set()
    ladder = breakers = unreachable = 0
    generated: Counter[str] = Counter()
    raised: set[str] = set()  # capacity flags sent to HR, and saturation alerts
    for e in ledger.events(kinds):
        p = e.payload
        if e.kind is EventKind.GATE:
            if p["gate"] == "signal_generator":
                generated["refused" if p["outcome"] == "refused" else "passed"] += 1
            elif p["gate"] == "risk" and "verdict" in p.get("evidence", {}):
                verdicts[str(p["evidence"]["verdict"])] += 1
        elif e.kind is EventKind.MESSAGE_SENT:
            if p["kind"] == "capacity_flag":
                raised.add("venue_rate_limited" if p["subject"] == "executor" else f"{p['subject']}_saturated")
        elif e.kind is EventKind.ORDER_SUBMITTED:
            submitted["exit" if p["reason"] != "entry_signal" else "entry"] += 1
            for cap in (p.get("verdict") or {}).get("sizing", {}).get("caps_applied", []):
                rule = str(cap).split(":")[0]
                if rule in _CAP_RULES:
                    cut[rule] += 1
        elif e.kind is EventKind.ORDER_DENIED:
            denied[p["verdict"]["rule"]] += 1
        elif e.kind is EventKind.RISK_ASSESSED:
            verdicts[str(p.get("verdict", "unknown"))] += 1
        elif e.kind is EventKind.ALERT_RAISED:
            alerts[p["level"]] += 1
            if p["code"] == "monitor_cycle_over_budget":
                raised.add("monitor_cycle_over_budget")
        elif e.kind is EventKind.LADDER_STEPPED:
            ladder += 1
        elif e.kind is EventKind.BREACH_AUTHORIZED:
            breakers += 1
        elif e.kind is EventKind.STRATEGY_REVIEWED:
            decided.add(p["deployment_id"])
        elif e.kind is EventKind.DRIFT_ASSESSED:
            dep = p["deployment_id"]
            if p["verdict"] == "continue" and dep in flagged and dep not in decided:
                cleared += 1  # flagged, then back to continue with no decision: judged false
                del flagged[dep]
            elif p["verdict"] != "continue":
                flagged[dep] = p["verdict"]
        elif e.kind is EventKind.RECONCILED and p.get("venue_unavailable"):
            unreachable += 1
    quality = execution_quality(ledger)
    orders = sum(q["orders"] for q in quality.values())
    rejected = sum(round((q["reject_rate"] or 0) * q["orders"]) for q in quality.values())
    budgets = {e.payload["deployment_id"]: float(e.payload.get("validation", {}).get("slippage_budget_bps", 0) or 0)
               for e in ledger.events({EventKind.DEPLOYMENT_CREATED})}
    over_budget = sorted(d for d, q in quality.items()
                         if q["slippage_bps_mean"] is not None and budgets.get(d, 0) > 0
                         and q["slippage_bps_mean"] > budgets[d])
    drift_flags = sum(1 for _ in ledger.events({EventKind.DRIFT_ASSESSED}))
    throttled = denied.get("throttle", 0)
    venue_errors = sum(1 for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "venue_errors")
    flags = [f for f, on in (("order_throttle_hit", throttled > 0), ("venue_errors", venue_errors > 0),
                             ("venue_unreachable_at_reconciliation", unreachable > 0),
                             ("venue_rate_limited", "venue_rate_limited" in raised),
                             ("monitor_cycle_over_budget", "monitor_cycle_over_budget" in raised)) if on]
    return {
        "signal_generator": {"strategies_generated": generated["passed"] + generated["refused"],
                             "strategies_refused_by_review": generated["refused"],
                             "intents": sum(submitted.values()) + sum(denied.values()),
                             "entries_sent": submitted["entry"], "exits_sent": submitted["exit"],
                             "refused_by_risk": sum(denied.values())},
        "risk_manager": {"assessments": sum(verdicts.values()), "verdicts": dict(verdicts),
                         "orders_approved": sum(submitted.values()), "orders_denied": sum(denied.values()),
                         "denied_by_rule": dict(denied),
                         "breaches_prevented": sum(v for k, v in denied.items() if k in _CAP_RULES) + sum(cut.values()),
                         "entries_cut_by_cap": dict(cut), "ladder_steps": ladder, "circuit_breakers": breakers},
        "order_executor": {"orders": orders, "rejects": rejected,
                           "fill_ratio": _mean([q["fill_ratio"] for q in quality.values()]),
                           "slippage_bps_mean": _mean([q["slippage_bps_mean"] for q in quality.values()]),
                           "deployments_over_slippage_budget": over_budget,
                           "fees": round(sum(q["fees"] for q in quality.values()), 6),
                           "latency_s_mean": _mean([q["latency_s_mean"] for q in quality.values()])},
        "monitor": {"alerts": dict(alerts), "drift_verdict_changes": drift_flags,
                    "flagged_then_cleared_without_decision": cleared,
                    "deployments_flagged_now": sorted(flagged)},
        "capacity_flags": flags,
        "deployments": len(state.deployments),
    }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def lead_performance(ledger: Ledger) -> dict[str, Any]:
    """The execution lead's own figures (for ``execdesk team`` and the API; not in the HR message, whose recorded
    shape stays as it was): requests taken through the gates and how they ended, decisions asked of and given by
    humans, strategy reviews and what the lead decided, kill switches and re-arms, and the messages it sent."""
    from execdesk.lead.outbox import KINDS

    requests: Counter[str] = Counter()
    refused_at: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    reviewed: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    asked = rearms = 0
    kinds = {EventKind.GATE, EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED, EventKind.STRATEGY_REVIEWED,
             EventKind.MESSAGE_SENT, EventKind.REARMED}
    for e in ledger.events(kinds):
        p = e.payload
        if e.kind is EventKind.GATE:
            if p["gate"] == "intake":
                requests["taken"] += 1
            if p["outcome"] == "refused":
                requests["refused"] += 1
                refused_at[str(p["gate"])] += 1
            elif p["gate"] == "monitor" and p["outcome"] == "passed":
                requests["deployed"] += 1
        elif e.kind is EventKind.APPROVAL_REQUESTED:
            asked += 1
        elif e.kind is EventKind.APPROVAL_DECIDED:
            decisions[str(p.get("decision"))] += 1
        elif e.kind is EventKind.STRATEGY_REVIEWED:
            reviewed[str(p.get("decision"))] += 1
        elif e.kind is EventKind.MESSAGE_SENT:
            messages[KINDS.get(str(p.get("kind")), "other")] += 1
        elif e.kind is EventKind.REARMED:
            rearms += 1
    return {"requests_through_the_gates": requests["taken"], "deployed": requests["deployed"],
            "refused": requests["refused"], "refused_by_gate": dict(sorted(refused_at.items())),
            "asked_a_human": asked, "human_decisions": dict(sorted(decisions.items())),
            "strategy_reviews": dict(sorted(reviewed.items())), "rearms": rearms,
            "messages_sent": {r: messages.get(r, 0) for r in ("validation", "orchestrator", "hr")}}
