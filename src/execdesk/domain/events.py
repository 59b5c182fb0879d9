"""Events: every state change of the desk, in the past tense, as data.

An event is appended to the ledger and folded into :class:`execdesk.domain.state.DeskState`;
current state is nothing but the fold of all events, so it can always be rebuilt from them.
Payloads are JSON-safe (Decimals as strings, times as epoch seconds), and their canonical
encoding (sorted keys, no spaces) is what the ledger stores and hashes: the same replay gives the
same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson


class EventKind(StrEnum):
    DESK_CONFIGURED = "desk.configured"
    DEPLOYMENT_CREATED = "deployment.created"
    DEPLOYMENT_STATE_CHANGED = "deployment.state_changed"
    TRADING_STATE_CHANGED = "trading_state.changed"
    ORDER_SUBMITTED = "order.submitted"
    ORDER_ACCEPTED = "order.accepted"
    ORDER_DENIED = "order.denied"
    ORDER_FILLED = "order.filled"
    ORDER_CANCELED = "order.canceled"
    ORDER_REJECTED = "order.rejected"
    ORDER_EXPIRED = "order.expired"
    RECONCILED = "venue.reconciled"
    MONITOR_BASELINE = "monitor.baseline"
    QUOTED = "market.quoted"  # a live desk's reading of the exchange's top of book per pair (the monitor's spreads)
    DRIFT_ASSESSED = "monitor.drift"
    EQUITY_SNAPSHOT = "equity.snapshot"
    ALERT_RAISED = "alert.raised"
    ALERT_DELIVERY_FAILED = "alert.delivery_failed"
    COMMAND_REFUSED = "command.refused"
    COMMAND_RECEIVED = "command.received"  # a command taken in, by its id (applied once: see store.models.commands)
    REPORT_WRITTEN = "report.written"  # the run's report (monitor.report.run_report): recorded, then written
    BREACH_DETECTED = "breach.detected"
    BREACH_CONFIRMED = "breach.confirmed"
    BREACH_AUTHORIZED = "breach.authorized"
    RISK_ASSESSED = "risk.assessed"
    LADDER_STEPPED = "risk.ladder_stepped"
    REARMED = "lead.rearmed"
    STRATEGY_REVIEWED = "lead.strategy_reviewed"
    MESSAGE_SENT = "lead.message_sent"
    MESSAGE_POSTED = "lead.message_posted"  # a command's message reached its webhook (stopped desk; see effects)
    MESSAGE_POST_FAILED = "lead.message_post_failed"  # ... or did not: tried again later (at least once)
    GATE = "lead.gate"
    APPROVAL_REQUESTED = "lead.approval_requested"
    APPROVAL_DECIDED = "lead.approval_decided"
    POSITIONS_HANDED_OVER = "lead.positions_handed_over"
    ALLOCATION_STAGED = "risk.allocation_staged"
    RUN_STARTED = "run.started"
    RUN_PROGRESS = "run.progress"
    RUN_COMPLETED = "run.completed"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():  # like floats: no "NaN" amounts in the ledger
            raise ValueError(f"Decimal {value} is not finite: not allowed in an event payload")
        return str(value)
    if isinstance(value, (set, frozenset)):  # iteration order is arbitrary: sort for one encoding
        return sorted(value, key=canonical_json)
    raise TypeError(f"not JSON-safe in an event payload: {type(value).__name__}")


#: datetimes and dataclasses go to ``_default`` (which refuses them) instead of orjson's own encoding
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def canonical_json(payload: Any) -> str:
    """The one encoding of a payload: sorted keys, compact UTF-8, Decimals as strings, enums as values.

    orjson: about ten times faster than the standard library here, and the ledger encodes every
    event. NaN and infinities are refused: a ledger holds numbers, not their absence.
    """
    try:
        text = orjson.dumps(payload, default=_default, option=_OPTIONS).decode()
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__
        if isinstance(cause, (TypeError, ValueError)):
            raise type(cause)(str(cause)) from None
        raise TypeError(f"not JSON-safe in an event payload: {exc}") from None
    if "null" in text:  # orjson writes NaN and infinities as null: refuse them instead
        _refuse_non_finite(payload)
    return text


def _refuse_non_finite(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value}")
    if isinstance(value, dict):
        for v in value.values():
            _refuse_non_finite(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _refuse_non_finite(v)


@dataclass(frozen=True, slots=True)
class Event:
    """One appended fact. ``seq`` is given by the ledger; ``time`` comes from the injected clock."""

    time: int
    kind: EventKind
    payload: dict[str, Any] = field(default_factory=dict)
    deployment_id: str | None = None
    seq: int = 0

    def content(self, payload_json: str | None = None) -> str:
        """The canonical text of the event's content (everything but ``seq``).

        Equal to ``canonical_json`` of {deployment_id, kind, payload, time}; pass the payload's
        canonical JSON if it is already encoded, to encode it once.
        """
        payload = canonical_json(self.payload) if payload_json is None else payload_json
        dep = "null" if self.deployment_id is None else orjson.dumps(self.deployment_id).decode()
        return f'{{"deployment_id":{dep},"kind":"{self.kind.value}","payload":{payload},"time":{self.time}}}'
