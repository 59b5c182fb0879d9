"""The lead's commands on a home: at once on a stopped desk, through ``HOME/control/`` on a running one.

One process writes a home's ledger: the desk's, while it runs (it holds ``HOME/desk.lock``, see
:class:`~execdesk.desk.assembly.DeskLock`). A command (``deploy``, ``approve``/``deny``, ``pause``,
``resume``, ``remove``, ``rollback``, ``rearm``) takes the lock when it is free and records its events itself; when
a desk holds it, the command leaves a request file (created exclusively, never overwritten) that the
running loop applies at its next bar with :func:`apply_request` — the same functions either way.

Every command carries an identity (:mod:`execdesk.desk.identity`) and is authorized when it is applied, by the desk:
on a stopped desk here (:func:`run_or_queue`), on a running one by the loop as it reads the request. A request file
is signed with the home's key (``HOME/command.key``, mode 0600, HMAC-SHA256 over the request): the loop applies only
requests made by a process that can read the key — a file anyone else wrote into ``control/`` is set aside unread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from execdesk.desk.identity import authorize, check_four_eyes, identity_of
from execdesk.desk.settings import RecordedDesk
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import MARK_EVENTS, fold_marks
from execdesk.errors import ExecdeskError, InvalidInput, Refused
from execdesk.lead.deploy import DeployPlan, commit
from execdesk.lead.lifecycle import lifecycle_event, rollback

if TYPE_CHECKING:
    from execdesk.data.feed import MarketView
    from execdesk.domain.marks import Watermarks
    from execdesk.domain.state import DeskState, FillRecord
    from execdesk.domain.types import AlertLevel
    from execdesk.lead.decisions import Decisions
    from execdesk.lead.deploy import DeployIntent
    from execdesk.lead.outbox import Message
    from execdesk.lead.protocols import Lead
    from execdesk.store.ledger import Ledger


#: the actions a request for a running desk may carry (a ``kill-*.json`` file is the kill switch's)
ACTIONS = frozenset({"answer", "deploy", "sync_bots", "rearm", "pause", "resume", "remove", "rollback", "kill"})
#: a request file is a small JSON object: anything larger is not one of the desk's
MAX_REQUEST_BYTES = 1 << 20
REJECTED = "rejected"


def read_regular_file(path: Path, home: Path, max_bytes: int = MAX_REQUEST_BYTES) -> bytes:
    """The bytes of ``path`` when it is a regular file (not a symbolic link, a FIFO, a device or a folder) inside
    ``home`` and at most ``max_bytes`` long; :class:`InvalidInput` naming why not. Nothing else is ever opened: a
    FIFO would block, a link could point anywhere."""
    import os
    import stat

    try:
        info = os.lstat(path)
    except OSError as exc:
        raise InvalidInput(f"{path.name}: cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise InvalidInput(f"{path.name}: a symbolic link; only regular files in the home are read")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{path.name}: not a regular file; only regular files in the home are read")
    if not path.resolve().is_relative_to(home.resolve()):
        raise InvalidInput(f"{path.name}: outside the home {home}")
    if info.st_size > max_bytes:
        raise InvalidInput(f"{path.name}: {info.st_size} bytes; a request is at most {max_bytes}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise InvalidInput(f"{path.name}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped for something else since the lstat
            raise InvalidInput(f"{path.name}: not a regular file; only regular files in the home are read")
        return handle.read(max_bytes + 1)[:max_bytes]


def read_request(path: Path, home: Path) -> dict[str, Any]:
    """A request left in ``HOME/control/`` for the running desk, validated where it enters: a regular file in the
    home (:func:`read_regular_file`), a JSON object naming a known action (``kill-*.json``: the kill switch, with
    who and why). :class:`InvalidInput` naming what is wrong."""
    raw = read_regular_file(path, home)
    try:
        request = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: not a JSON request ({type(exc).__name__}: {exc})") from None
    if not isinstance(request, dict):
        raise InvalidInput(f"{path.name}: a JSON {type(request).__name__}; a request is a JSON object")
    check_signature(home, request, path.name)
    action = "kill" if path.name.startswith("kill-") else request.get("action")
    if action not in ACTIONS:
        raise InvalidInput(f"{path.name}: action {action!r}; expected one of {', '.join(sorted(ACTIONS))}")
    if action == "kill" and not all(isinstance(request.get(k), str) and request[k].strip() for k in ("by", "reason")):
        raise InvalidInput(f"{path.name}: a kill request names who (by) and why (reason)")
    identity_of(request, path.name)
    request["command_id"] = command_id_of(request, path.name)
    return request


KEY_FILE = "command.key"


def home_key(home: Path, create: bool = True) -> bytes | None:
    """The home's command key (32 random bytes in ``HOME/command.key``, mode 0600; made once, exclusively), or
    None when there is none and ``create`` is False."""
    import os
    import secrets

    path = home / KEY_FILE
    if create and not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    try:
        text = read_regular_file(path, home, 1024).decode().strip()
    except InvalidInput:
        if create:
            raise
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise InvalidInput(f"{path}: not a command key (64 hex digits)")
    return bytes.fromhex(text)


def _signature(key: bytes, request: dict[str, Any]) -> str:
    import hashlib
    import hmac

    body = json.dumps({k: v for k, v in request.items() if k != "signature"}, sort_keys=True, default=str,
                      separators=(",", ":"))
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def sign(home: Path, request: dict[str, Any]) -> dict[str, Any]:
    """``request`` with its signature under the home's key."""
    key = home_key(home)
    assert key is not None
    return {**request, "signature": _signature(key, request)}


def check_signature(home: Path, request: dict[str, Any], where: str) -> None:
    """:class:`InvalidInput` unless ``request`` is signed with the home's key (compared in constant time)."""
    import hmac

    key = home_key(home, create=False)
    given = request.get("signature")
    if key is None or not isinstance(given, str) or not hmac.compare_digest(given, _signature(key, request)):
        raise InvalidInput(f"{where}: not signed with this home's command key (requests are made by execdesk's "
                           "commands, the API or its tools, never written by hand)")


def right_of(action: str, body: dict[str, Any]) -> str:
    """The right a command needs (:data:`execdesk.desk.identity.PERMISSIONS`): a deploy that carries a human's
    answer to its approval gate needs ``approve`` or ``deny``."""
    approval = body.get("approval")
    if action == "deploy" and isinstance(approval, dict) and approval.get("decision") in ("approve", "deny"):
        return str(approval["decision"])
    return action


_COMMAND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def new_command_id() -> str:
    """A fresh command id (``cmd-`` and 32 hex digits)."""
    import uuid

    return f"cmd-{uuid.uuid4().hex}"


def command_id_of(body: dict[str, Any], where: str = "command") -> str:
    """The command id a request or command carries (one is made for a request from before ids), validated where
    it enters: 1-64 letters, digits, ``.``, ``_``, ``:`` or ``-``."""
    value = body.get("command_id")
    if value is None:
        return new_command_id()
    if not isinstance(value, str) or not _COMMAND_ID.match(value):
        raise InvalidInput(f"{where}: command_id {value!r}; expected 1-64 letters, digits, '.', '_', ':' or '-'")
    return value


def receive(ledger: Ledger, t: int, action: str, body: dict[str, Any]) -> bool:
    """Take command ``body`` in: ``command.received`` (its id, action, who) unless its id was taken in before —
    then False, and applying it again is a no-op. Recorded with the command's own events, in one commit: the
    database refuses an id twice (:data:`execdesk.store.models.commands`)."""
    command_id = command_id_of(body)
    if command_id in ledger.state.commands:
        return False
    ledger.record(Event(t, EventKind.COMMAND_RECEIVED, {
        "command_id": command_id, "action": action, "by": body.get("by"), "identity": body.get("identity"),
        "requested_at": body.get("requested_at")}))
    return True


def refusal_event(t: int, action: str, body: dict[str, Any], exc: ExecdeskError, requested_at: Any,
                  deployment_id: str | None = None) -> Event:
    """``command.refused``: the command ``body`` (who, why, its id) and the error that refused it."""
    return Event(t, EventKind.COMMAND_REFUSED, {
        "action": action, "by": body.get("by"), "identity": body.get("identity"), "reason": body.get("reason"),
        "requested_at": requested_at, "command_id": body.get("command_id"), "error": str(exc),
        "exit_code": exc.exit_code}, deployment_id)


def set_aside(path: Path, reason: str) -> Path:
    """Move a request that could not be read to ``control/rejected/`` with ``<name>.error.txt`` beside it (its
    reason); the request itself is moved, never followed or read again. The new path."""
    folder = path.parent / REJECTED
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 0
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{path.stem}.{n}{path.suffix}"
    path.replace(target)
    target.with_name(target.name + ".error.txt").write_text(reason + "\n", encoding="utf-8")
    return target


def queue_request(home: Path, action: str, now: int, body: dict[str, Any], prefix: str | None = None) -> Path:
    """Leave ``body`` for the running desk, signed: ``HOME/control/<prefix or action>-<now>-<n>.json``."""
    control = home / "control"
    control.mkdir(parents=True, exist_ok=True)
    request = sign(home, json.loads(json.dumps({"action": action, "requested_at": now,
                                                "command_id": new_command_id(), **body}, default=str)))
    for n in range(1000):
        path = control / f"{prefix or action}-{now}-{n:03d}.json"
        try:
            with path.open("x", encoding="utf-8") as fh:
                json.dump(request, fh, sort_keys=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"{control}: 1000 {action} requests at {now}; refusing to queue more")


def desk_time(state: DeskState) -> int:
    """The desk's time for a command on a stopped desk (see :meth:`RecordedDesk.time`)."""
    return RecordedDesk.of(state).time(state)


# ------------------------------------------------------------------------ the same actions, two ways
def apply_lifecycle(ledger: Ledger, home: Path, request: dict[str, Any], t: int) -> dict[str, Any]:
    """``pause`` / ``resume`` / ``remove`` of one deployment, or ``rollback`` of a strategy: recorded; a
    deployment on a Freqtrade bot has its bot told (see :func:`execdesk.freqtrade.fleet.tell_bot`)."""
    from execdesk.freqtrade.fleet import tell_bot

    action = request["action"]
    if action == "rollback":
        return rollback(ledger, request["strategy"], request["by"], request["reason"], request["positions"], t)
    for event in lifecycle_event(ledger.state, action, request["deployment"], request["by"], request["reason"], t):
        ledger.record(event)
    ledger.flush()
    dep = ledger.state.deployments[request["deployment"]]
    result = {"deployment": dep.id, "action": action, "state": dep.state.value, "reason": dep.state_reason,
              "by": request["by"]}
    if dep.venue == "freqtrade":
        result["bot"] = tell_bot(home, dep.id, action)
        if action == "remove" and result["bot"]["bot"] == "told":  # its closing trades in, then the bot stops
            from execdesk.freqtrade.fleet import stop_bot, sync

            result["bot"]["synced"] = sync(ledger, home, dep.id).as_dict()
            result["bot"]["stopped"] = stop_bot(home, dep.id)["stopped"]
    return result


def apply_sync(ledger: Ledger, home: Path, request: dict[str, Any]) -> dict[str, Any]:
    """``execdesk bots sync``: the Freqtrade bots' trades into the ledger."""
    from execdesk.freqtrade.fleet import sync

    return sync(ledger, home, request.get("deployment")).as_dict()


def apply_rearm(ledger: Ledger, body: dict[str, Any], t: int) -> dict[str, Any]:
    """``execdesk rearm``: the desk (or one deployment) goes back to ACTIVE — re-arming the desk also re-arms
    the deployments the circuit breaker halted with it — its drawdown ladder starts again from no step, and its
    drawdown is measured from its equity now (the peak is reset to it), so the steps that fired do not fire
    again at once. One ``lead.rearmed`` event (who, why, what was lifted) plus the state changes. Refused
    (:class:`InvalidInput`) when there is nothing to re-arm or the circuit breaker is still closing."""
    from execdesk.domain.marks import PORTFOLIO
    from execdesk.domain.types import TradingState

    by, reason, deployment = body["by"], body["reason"], body.get("deployment")
    s = ledger.state
    if deployment is not None and deployment not in s.deployments:
        known = ", ".join(sorted(s.deployments)) or "none"
        raise InvalidInput(f"rearm: no deployment {deployment!r} in this home's ledger (deployments: {known})")
    scope = deployment or PORTFOLIO
    if deployment is None:
        state, why, step = s.trading_state, s.trading_reason, s.ladder_step
    else:
        dep = s.deployments[deployment]
        state, why, step = dep.state, dep.state_reason, dep.ladder_step
    if state is TradingState.ACTIVE and step == 0:
        raise InvalidInput(f"rearm: {scope} is ACTIVE with no ladder step reached: nothing to re-arm")
    if deployment is None and state is TradingState.REDUCING and why == "circuit_breaker":
        raise InvalidInput("rearm: the circuit breaker is still closing positions; re-arm once the desk is HALTED")
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    equity = marks.last_equity.get(scope)
    lifted = {"state": state.value, "reason": why, "ladder_step": step}
    ledger.record(Event(t, EventKind.REARMED, {
        "scope": scope, "by": by, "reason": reason, "lifted": lifted,
        "marks": {"peak": {scope: equity}} if equity is not None else {}}, deployment))
    if state is not TradingState.ACTIVE:
        payload = {"from": state, "to": TradingState.ACTIVE, "reason": "rearmed",
                   "evidence": {"by": by, "reason": reason, "lifted": lifted}}
        if deployment is None:
            ledger.record(Event(t, EventKind.TRADING_STATE_CHANGED, payload))
            # the circuit breaker halted every deployment with the desk: they come back with it (one that
            # its own ladder or a reconciliation stopped needs its own re-arm: --deployment)
            for d in s.deployments.values():
                if d.state is not TradingState.ACTIVE and d.state_reason == "circuit_breaker":
                    ledger.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
                        "deployment_id": d.id, **payload, "from": d.state}, d.id))
        else:
            ledger.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {"deployment_id": deployment, **payload},
                                deployment))
    ledger.flush()
    return {"scope": scope, "by": by, "reason": reason, "lifted": lifted, "state": "ACTIVE", "peak_reset_to": equity}


def apply_deploy(ledger: Ledger, home: Path, request: dict[str, Any], t: int, pairs: set[str] | None = None
                 ) -> tuple[DeployPlan, Message | None]:
    """A deploy command applied: its intent (:class:`~execdesk.lead.deploy.DeployIntent`, never a plan) taken
    through the gates now, against the ledger as it is, and what they say committed (``pairs``: the market's;
    default: what the ledger's desk trades). An answer to an approval gate re-runs the command that asked it (as the
    ledger recorded it) with the human's answer in the approval gate. Returns the plan and, when it waits for a
    human, the decision request to send (the caller sends it: the running desk through its loop, a stopped one
    with :func:`send_recorded`)."""
    from execdesk.lead.deploy import DeployIntent, GateResult, approval_asked, approval_decided
    intent = DeployIntent.from_dict({k: v for k, v in request.items() if k not in ("action", "command_id")})
    answer = intent.approval
    if answer is not None:
        asked = approval_asked(ledger, answer["request_id"])
        if asked is None:
            raise InvalidInput(f"{answer['request_id']}: no deployment waits for this approval in the ledger")
        decided = approval_decided(ledger, answer["request_id"])
        if decided is not None:
            raise InvalidInput(f"{answer['request_id']}: already {decided.get('decision')} (by {decided.get('by')})")
        intent = DeployIntent.from_dict(asked["intent"], f"the deploy that asked {answer['request_id']}")
        if answer["decision"] == "approve":
            from execdesk.lead.deploy import VenueTarget

            check_four_eyes(intent.by, identity_of(request), asked["deployment_id"],
                            VenueTarget.from_str(intent.venue).real_money)
    recorded = RecordedDesk.of(ledger.state)
    plan = plan_of_intent(home, ledger, intent)
    message = None
    if plan.pending:
        message = approval_request_of(plan, intent)
        plan.approval_request = message.request_id
        if answer is not None:
            if answer["request_id"] != plan.approval_request:
                raise InvalidInput(f"{answer['request_id']}: the deploy it answers now asks {plan.approval_request}")
            outcome = "approved" if answer["decision"] == "approve" else "denied"
            plan.gates[-1] = GateResult("approval", outcome, f"{outcome} by {answer['by']}: {answer['reason']}",
                                        {"by": answer["by"], "reason": answer["reason"]})
            message = None
    committed = commit(ledger, home, plan, t, recorded.facts(ledger.state, pairs), recorded.risk.staging)
    return committed, message


def plan_of_intent(home: Path, ledger: Ledger, intent: DeployIntent) -> DeployPlan:
    """A deploy command's intent through the gates up to the approval, on the ledger as it is (nothing recorded)."""
    from execdesk.lead.deploy import VenueTarget, plan_deployment

    state = ledger.state
    recorded = RecordedDesk.of(state)
    return plan_deployment(home, state, ledger, Path(intent.source), VenueTarget.from_str(intent.venue),
                           intent.allocation, risk=recorded.risk, now=intent.requested_at, start_at=intent.start_at,
                           positions=intent.positions, by=intent.by, reason=intent.reason or "requested",
                           approve_all=recorded.lead.approve_all, intent=intent, sizing=intent.sizing)


def approval_request_of(plan: DeployPlan, intent: DeployIntent) -> Message:
    """The decision request a deploy waiting for a human sends the Orchestrator: its id derives from the deployment
    and the command's time only, so the command names it before the desk applies it."""
    from execdesk.lead.outbox import decision_request

    return decision_request(intent.requested_at, plan.deployment_id, f"deploy {plan.deployment_id} to {plan.venue}?",
                            {"request_id": plan.request_id, "by": intent.by, "allocation": plan.applied_allocation,
                             "why": plan.gates[-1].reason, "gates": [g.as_dict() for g in plan.gates]})


def send_recorded(ledger: Ledger, home: Path, message: Message) -> None:
    """A message sent by a command on a stopped desk, as the desk sends one: recorded whole
    (``lead.message_sent``) and committed, then written to the outbox (a desk started later writes it again if
    this process died in between: :mod:`execdesk.desk.effects`) — and, there being no loop to post it, posted to
    its recipient's webhook here (the recorded desk config's ``liaison``, the URL from this process's environment),
    waiting for it. What came of the post is recorded (``lead.message_posted`` / ``lead.message_post_failed``); a
    failed one is tried again by the next command that sends a message and by the desk when it starts
    (:func:`~execdesk.desk.effects.post_unposted`), as are the earlier ones still unposted."""
    from execdesk.desk.effects import message_payload, post_unposted, record_post
    from execdesk.lead.liaison import build_liaison

    t = desk_time(ledger.state)
    liaison = build_liaison(RecordedDesk.of(ledger.state).liaison, home / "outbox", missing_ok=True)
    ledger.record(Event(t, EventKind.MESSAGE_SENT, message_payload(message, liaison.outbox.names(message)),
                        message.subject if message.subject in ledger.state.deployments else None))
    ledger.flush()
    sent = liaison.send(message)  # (its files; the post when they are new and the recipient has a webhook)
    if sent.delivery is not None:
        record_post(ledger, message, sent.delivery, t)
        ledger.flush()
    post_unposted(ledger, liaison, t, skip=frozenset({message.id}))


class RunningDesk(Protocol):
    """What a request may use of the running desk's engine (:class:`execdesk.desk.loop.DeskLoop` is one)."""

    ledger: Ledger
    market: MarketView
    control: Path | None
    restart: bool
    lead: Lead

    @property
    def marks(self) -> Watermarks: ...

    @marks.setter
    def marks(self, value: Watermarks) -> None: ...

    def act_on(self, decisions: Decisions) -> None: ...

    def raise_alert(self, t: int, level: AlertLevel, code: str, message: str, evidence: dict[str, Any],
                    deployment_id: str | None = None, source: str = "lead", news: bool = False) -> None: ...

    def watch_fills(self, t: int, fills: list[FillRecord]) -> None: ...

    def sync_bots(self, g: int, sync: Callable[[], Any] | None = None) -> None: ...

    def send_message(self, t: int, kind: str, subject: str, summary: str, body: dict[str, Any],
                     options: tuple[str, ...] = (), key: str = "") -> Message: ...

    def rebuild_books(self, g: int) -> None: ...

    def reschedule_all(self, after_g: int) -> None: ...

    def after_handovers(self, seq_before: int, g: int) -> None: ...


def apply_request(loop: RunningDesk, g: int, request: dict[str, Any]) -> None:
    """What the running loop does with a request at bar ``g`` (see the module docstring). A request the
    ledger's state no longer allows (e.g. resuming what was removed meanwhile) is recorded as an alert."""
    from execdesk.domain.types import AlertLevel

    assert loop.control is not None
    home = loop.control.parent
    t = loop.market.close_time(g)
    action = str(request.get("action"))
    try:
        authorize(identity_of(request, f"{action} request"), right_of(action, request))
        if action == "kill":
            loop.act_on(loop.lead.manual_kill(g, str(request["by"]), str(request["reason"])))
            return
        if action == "answer":  # a human answered an emergency decision request: the lead acts on it now
            loop.act_on(loop.lead.check_answers(g))
            return
        if action == "deploy":
            plan, ask = apply_deploy(loop.ledger, home, request, t, set(loop.market.pairs))
            if ask is not None:  # a human approves it: the decision request goes out with the desk's messages
                loop.send_message(ask.time, ask.kind, ask.subject, ask.summary, dict(ask.body), ask.options, ask.key)
            loop.restart = plan.done  # its lanes: the desk rebuilds the loop on the ledger and carries on
            refusal = plan.refusal
            if refusal is not None:  # the command had exited already: the refusal is news
                loop.raise_alert(t, AlertLevel.WARNING, "deployment_refused", f"{plan.deployment_id}: the "
                                 f"{refusal.gate} gate refused it: {refusal.reason}", refusal.as_dict(), source="lead",
                                 news=True)
            return
        seq_before = loop.ledger.state.last_seq
        if action == "sync_bots":  # the bots' trades: the monitor watches them, the risk book counts them
            loop.sync_bots(g, lambda: apply_sync(loop.ledger, home, request))
            return
        if action == "rearm":
            apply_rearm(loop.ledger, request, t)
            loop.marks = fold_marks(loop.ledger.events(set(MARK_EVENTS)))  # the peak it reset
            loop.reschedule_all(g)
            return
        apply_lifecycle(loop.ledger, home, request, t)
    except ExecdeskError as exc:
        shown = {k: v for k, v in request.items() if k != "signature"}
        loop.ledger.record(refusal_event(t, action, request, exc, request.get("requested_at")))
        loop.raise_alert(t, AlertLevel.WARNING, "request_refused", f"{action} request refused: {exc}",
                         {"request": shown}, source="lead", news=True)
        return
    loop.after_handovers(seq_before, g)
    loop.act_on(loop.lead.settle(g))


def run_or_queue(home: Path, db_url: str | None, action: str, now: int, body: dict[str, Any],
        direct: Callable[[Ledger, int], dict[str, Any]]) -> dict[str, Any]:
    """Run ``direct(ledger, desk time)`` on a stopped desk, or queue the request for the running one.

    The command carries an id (``body["command_id"]``, made when absent): taken in once (:func:`receive`), a
    second application of the same id answers ``already_applied`` and changes nothing. Another command holding
    the home is waited for (commands run one after the other); a running desk gets the request instead."""
    from execdesk.desk.home import open_existing
    from execdesk.desk.lock import DeskLock

    body = {**body, "command_id": command_id_of(body, "--command-id"), "requested_at": body.get("requested_at", now)}
    identity = identity_of(body, action)
    body["by"] = identity.name  # who: the authenticated identity, never free text
    lock = DeskLock(home)
    if not lock.acquire_for_command():
        path = queue_request(home, action, now, body)
        authorize(identity, right_of(action, body))  # (refused now; the desk records it as it reads the request)
        return {"queued": str(path), "command_id": body["command_id"], "note": f"a desk is running in {home} "
                f"({lock.holder()}): it acts on the request at its next bar"}
    try:
        t: int | None = None
        try:
            with open_existing(home, db_url) as ledger:  # (an error closes it without what was not flushed)
                t = desk_time(ledger.state)
                if not receive(ledger, t, action, body):
                    earlier = ledger.state.commands[body["command_id"]]
                    return {"command_id": earlier.command_id, "already_applied": True, "note": f"command "
                            f"{earlier.command_id} was applied before (event {earlier.seq}); nothing done again"}
                authorize(identity, right_of(action, body))
                result = direct(ledger, t)
                ledger.flush()
                return {**result, "command_id": body["command_id"]}
        except (InvalidInput, Refused) as exc:
            if t is None:  # the ledger could not be opened: nothing to record it in
                raise
            refusal = exc
        # the refusal alone is recorded (what the command had recorded was dropped with the ledger)
        with open_existing(home, db_url) as ledger:
            deployment = body.get("deployment")
            ledger.record(refusal_event(t, action, body, refusal, now,
                                        deployment if deployment in ledger.state.deployments else None))
        raise refusal
    finally:
        lock.release()
