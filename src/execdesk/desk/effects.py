"""The desk's side effects, derived from its committed events, exactly once.

What the desk tells the outside — an alert to its sinks (``HOME/alerts.jsonl``, the log, webhooks), a message to
Validation, the Orchestrator or HR (``HOME/outbox/``, and its webhook) — is first an event in the ledger
(``alert.raised``, ``lead.message_sent`` holding the whole message). Only once that event is committed is the
effect carried out (:meth:`SideEffects.on_commit`, a listener of :meth:`~execdesk.store.ledger.Ledger.flush`):
files written under a temporary name and renamed (or linked) into place, idempotent by the event's id. A desk
killed between the commit and the effect carries it out when it starts again (:meth:`SideEffects.catch_up`: the
JSON-lines lines and outbox files its committed events call for and the home lacks), and a desk killed before
the commit never carried it out: nothing is told twice, nothing told is missing from the ledger.

Webhooks are posted after the commit too, once, when their file is first written; an alert's webhook is not
posted again after a crash (a page about an old alert would mislead more than it helps), its line is.

A message a command sends on a stopped desk (a deployment's decision request to the Orchestrator) has no loop to
post it: the command posts it itself, waiting for the webhook, and records what came of it
(:func:`record_post`: ``lead.message_posted``, or ``lead.message_post_failed`` with the sink's error). A failed
post is not lost: :func:`post_unposted` tries every message whose last post failed again — the next command that
sends a message does, and so does the desk when it starts — until one gets through. At least once: a post whose
answer was lost is posted again, under the same message id, by which the recipient tells a repeat.

The desk's loop *holds* the effects (``attach(hold=True)``): a commit only notes them, and the loop carries them
out with :meth:`SideEffects.release` once the bar's orders are with the venue — so the closing orders of a
circuit breaker reach the venue before its EMERGENCY alert reaches any sink, even on a venue for which the ledger
is committed just before the orders are sent. Alerts go to the local sinks (the log, the JSON-lines files) there
and then, and to the router's courier for the webhooks (:class:`~execdesk.monitor.alerts.AlertCourier`); a
message's files are written there and then, its webhook post queued for the liaison's courier
(:class:`~execdesk.lead.liaison.LiaisonCourier`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import AlertLevel
from execdesk.lead.liaison import Liaison
from execdesk.lead.outbox import KINDS, Message, OutboxConflict
from execdesk.monitor.alerts import Alert, AlertRouter, JsonlSink, SinkResult
from execdesk.store.ledger import Ledger


def message_payload(message: Message, files: Sequence[str]) -> dict[str, Any]:
    """The ``lead.message_sent`` payload: where it went and the whole message, so it can be written again."""
    payload: dict[str, Any] = {"id": message.id, "to": message.to, "kind": message.kind, "subject": message.subject,
                               "summary": message.summary, "files": list(files), "body": dict(message.body)}
    if message.key:
        payload["key"] = message.key
    if message.options:
        payload["options"] = list(message.options)
    return payload


def message_of(event: Event) -> Message | None:
    """The message a ``lead.message_sent`` event holds (None for an event from before messages were recorded
    whole: there is nothing to write again)."""
    p = event.payload
    if "body" not in p or p.get("kind") not in KINDS:
        return None
    return Message(event.time, p["to"], p["kind"], p["subject"], p["summary"], p["body"],
                   tuple(p.get("options", ())), p.get("key", ""))


def record_post(ledger: Ledger, message: Message, result: SinkResult, t: int, retry: bool = False) -> None:
    """What came of a command's post of ``message`` to its webhook: ``lead.message_posted``, or
    ``lead.message_post_failed`` (the sink, the attempts, the HTTP status, the scrubbed error); ``retry``: a post of
    one that failed before."""
    kind = EventKind.MESSAGE_POSTED if result.ok else EventKind.MESSAGE_POST_FAILED
    payload: dict[str, Any] = {"id": message.id, "to": message.to, "kind": message.kind, "subject": message.subject,
                               "sink": result.sink, "attempts": result.attempts, "retry": retry}
    if not result.ok:
        payload.update(status=result.status, error=result.error)
    ledger.record(Event(t, kind, payload, message.subject if message.subject in ledger.state.deployments else None))


def unposted(ledger: Ledger) -> list[tuple[Message, dict[str, Any]]]:
    """The messages whose last post failed (each with that failure's payload), in the order they were sent."""
    last: dict[str, Event] = {}
    for e in ledger.events({EventKind.MESSAGE_POSTED, EventKind.MESSAGE_POST_FAILED}):
        last[e.payload["id"]] = e
    failed = {i: e.payload for i, e in last.items() if e.kind is EventKind.MESSAGE_POST_FAILED}
    if not failed:
        return []
    out = []
    for e in ledger.events({EventKind.MESSAGE_SENT}):
        message = message_of(e)
        if message is not None and message.id in failed:
            out.append((message, failed.pop(message.id)))
    return out


def post_unposted(ledger: Ledger, liaison: Liaison, t: int, skip: frozenset[str] = frozenset()) -> int:
    """Post again, waiting for each, every message whose last post failed (but those in ``skip``) to its
    recipient's webhook, recording what came of each (:func:`record_post`); the ledger is flushed. How many got
    through. A recipient the liaison has no webhook for (taken out of the config since) is left as it is."""
    through = 0
    for message, _failure in unposted(ledger):
        if message.id in skip:
            continue
        result = liaison.post(message)
        if result is None:
            continue
        record_post(ledger, message, result, t, retry=True)
        ledger.flush()
        through += result.ok
    return through


class SideEffects:
    """Carries out the effects of committed events: alerts to the router's sinks, messages to the liaison."""

    def __init__(self, ledger: Ledger, router: AlertRouter, liaison: Liaison | None) -> None:
        self.ledger = ledger
        self.router = router
        self.liaison = liaison
        self.hold = False
        self._held: list[Event] = []

    def attach(self, hold: bool = False) -> None:
        """Defer the router's sends to the commit, listen to the ledger's commits, and catch up on what a
        desk killed after a commit left undone. ``hold``: from then on a commit's effects wait for
        :meth:`release` (the catch-up's own are carried out at once)."""
        self.router.deferred = True
        if self.on_commit not in self.ledger.committed:
            self.ledger.committed.append(self.on_commit)
        self.catch_up()
        self.hold = hold

    def detach(self) -> None:
        """Stop listening; what is held is carried out."""
        if self.on_commit in self.ledger.committed:
            self.ledger.committed.remove(self.on_commit)
        self.hold = False
        self.release()

    def on_commit(self, events: Iterable[Event]) -> None:
        effects = [e for e in events if e.kind in _EFFECTS]
        if self.hold:
            self._held += effects
            return
        self._carry_out(effects)

    def release(self) -> None:
        """Carry out, in the ledger's order, the effects of the commits held since the last release."""
        held, self._held = self._held, []
        self._carry_out(held)

    def _carry_out(self, events: Iterable[Event]) -> None:
        for e in events:
            if e.kind is EventKind.ALERT_RAISED:
                self.router.send(Alert.of_event(e.time, e.payload))
            else:
                self._write(e)

    def catch_up(self) -> None:
        """Re-derive from the committed events what the home lacks: the lines of the JSON-lines sinks after the
        last one each holds, and the outbox files of every message (written only where missing)."""
        self.ledger.flush()
        if self.liaison is not None:
            self.liaison.outbox.sweep()  # what a writer killed mid-message left
        files = [s for s in self.router.sinks if isinstance(s, JsonlSink)]
        kinds = {EventKind.ALERT_RAISED} if files else set()
        if self.liaison is not None:
            kinds.add(EventKind.MESSAGE_SENT)
        if not kinds:
            return
        alerts: list[Alert] = []
        for e in self.ledger.events(kinds):
            if e.kind is EventKind.ALERT_RAISED:
                alerts.append(Alert.of_event(e.time, e.payload))
            else:
                self._write(e, only_missing=True)
        for sink in files:
            recipients = self.router.escalation.recipients
            taken = [a for a in alerts if sink.accepts(a.level, recipients(a.level))]
            for alert in _after(taken, sink.last()):
                sink.send(alert)

    def _write(self, e: Event, only_missing: bool = False) -> None:
        """A message's files (and its webhook, when they are new); a stray file under its name is not
        overwritten: an alert says so and the desk carries on."""
        message = message_of(e) if self.liaison is not None else None
        if message is None or self.liaison is None:
            return
        if only_missing and all(p.exists() for p in self.liaison.outbox.paths(message)):
            return
        try:
            self.liaison.send(message)
        except OutboxConflict as exc:
            self.router.raise_(Alert(e.time, AlertLevel.WARNING, "lead", "outbox_conflict", message.subject
                                     if e.deployment_id else "portfolio", f"message {message.id} not written: {exc}",
                                     {"message": message.id, "kind": message.kind}))


_EFFECTS = frozenset({EventKind.ALERT_RAISED, EventKind.MESSAGE_SENT})


def _after(alerts: list[Alert], last: tuple[str | None, int | None] | None) -> list[Alert]:
    """The alerts a JSON-lines file still lacks, given its last line's ``(id, time)``: those after the line's alert
    (found by its id), or, for a line without a known id (an older file), those later than its time."""
    if last is None:
        return alerts
    key, time = last
    ids = [a.id for a in alerts]
    if key is not None and key in ids:
        return alerts[len(ids) - ids[::-1].index(key):]
    return [a for a in alerts if time is not None and a.time > time]
