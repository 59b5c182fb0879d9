"""Events: every state change of the desk, in the past tense, as data.

An event is appended to the ledger and folded into :class:`execdesk.domain.state.DeskState`;
current state is nothing but the fold of all events, so it can always be rebuilt from them.
Payloads are JSON-safe (Decimals as strings, times as epoch seconds), and their canonical
encoding (sorted keys, no spaces) is what the ledger stores and hashes: the same replay gives the
same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    DESK_CONFIGURED = "desk.configured"
    DEPLOYMENT_CREATED = "deployment.created"
    DEPLOYMENT_STATE_CHANGED = "deployment.state_changed"
    TRADING_STATE_CHANGED = "trading_state.changed"
    ORDER_SUBMITTED = "order.submitted"
    ORDER_DENIED = "order.denied"
    ORDER_FILLED = "order.filled"
    ORDER_CANCELED = "order.canceled"
    ORDER_REJECTED = "order.rejected"
    EQUITY_SNAPSHOT = "equity.snapshot"
    ALERT_RAISED = "alert.raised"
    BREACH_DETECTED = "breach.detected"
    BREACH_CONFIRMED = "breach.confirmed"
    BREACH_AUTHORIZED = "breach.authorized"
    RUN_STARTED = "run.started"
    RUN_PROGRESS = "run.progress"
    RUN_COMPLETED = "run.completed"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-safe in an event payload: {type(value).__name__}")


def canonical_json(payload: Any) -> str:
    """The one encoding of a payload: sorted keys, compact, Decimals as strings, ASCII only."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_default, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Event:
    """One appended fact. ``seq`` is given by the ledger; ``time`` comes from the injected clock."""

    time: int
    kind: EventKind
    payload: dict[str, Any] = field(default_factory=dict)
    deployment_id: str | None = None
    seq: int = 0

    def content(self) -> str:
        """The canonical text of the event's content (everything but ``seq``)."""
        return canonical_json(
            {"time": self.time, "kind": self.kind.value, "deployment_id": self.deployment_id,
             "payload": self.payload}
        )
