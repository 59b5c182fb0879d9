"""The lead's decisions, as data: what the lead answers the desk's engine with.

The lead reads the ledger and the market and, for each fact it is given (breaches, fills, a snapshot, a changed
verdict, a reconciliation, a human's request), yields its decisions one by one; the engine applies each before
asking for the next (so the lead sees the state its earlier decisions made, as a script of its turn would) and
sends back what applying it returned (the bots told to close). The lead holds no part of the engine.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from execdesk.domain.events import Event
from execdesk.domain.types import OrderIntent
from execdesk.monitor.alerts import Alert


@dataclass(frozen=True, slots=True)
class Record:
    """Record ``event`` in the ledger (a state change, a ladder step, a breach's step, a review)."""

    event: Event


@dataclass(frozen=True, slots=True)
class SendMessage:
    """A message to Validation, the Orchestrator or HR (``kind`` one of :data:`execdesk.lead.outbox.KINDS`)."""

    time: int
    kind: str
    subject: str
    summary: str
    body: dict[str, Any]
    options: tuple[str, ...] = ()  # the answers a decision_request takes
    key: str = ""  # tells apart two messages of one kind and subject at one time (a decision request's question)


@dataclass(frozen=True, slots=True)
class Submit:
    """Send ``intent`` at bar ``g`` through the risk manager's pre-trade check to the order manager."""

    intent: OrderIntent
    g: int


@dataclass(frozen=True, slots=True)
class SubmitExits:
    """Send market exits that only reduce (a close of positions: the circuit breaker, a halt, a trim) at bar ``g``,
    one batch: each through the pre-trade check to the order manager in their order, as :class:`Submit` sends one
    (the same events); answered with how many were approved."""

    intents: tuple[OrderIntent, ...]
    g: int


@dataclass(frozen=True, slots=True)
class CancelOpen:
    """Cancel the open orders of one deployment (or all, ``deployment_id`` None); only entries if asked."""

    time: int
    reason: str
    deployment_id: str | None
    entries_only: bool = False


@dataclass(frozen=True, slots=True)
class Reschedule:
    """States changed at bar ``g``: every lane works out again when it next needs the desk."""

    g: int


@dataclass(frozen=True, slots=True)
class Supersede:
    """``new`` takes over from ``old`` by the ``positions`` policy (:func:`execdesk.lead.lifecycle.supersede`)."""

    old: str
    new: str
    time: int
    positions: str
    by: str


@dataclass(frozen=True, slots=True)
class HandedOver:
    """Positions may have changed hands since ``seq_before``: the monitor's trades and the risk book follow."""

    seq_before: int
    g: int


@dataclass(frozen=True, slots=True)
class CloseBots:
    """Tell the Freqtrade bots of ``deployments`` to close everything; answered with what each bot said."""

    deployments: tuple[str, ...]
    reason: str


Decision = (Record | Alert | SendMessage | Submit | SubmitExits | CancelOpen | Reschedule | Supersede | HandedOver
            | CloseBots)
#: a turn of the lead: its decisions, each applied by the engine before the next is asked for
Decisions = Generator[Decision, Any, None]
