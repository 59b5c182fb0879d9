"""The application layer: one function per user action, what the CLI (and the API, and agent tools) call.

Each returns plain data (or a :class:`~execdesk.desk.summary.RunSummary`); errors are
:class:`~execdesk.errors.ExecdeskError` subclasses that name what was wrong.

A command imports only what it uses (inside each function): ``execdesk status`` or ``intake`` must not pay for
the engine, numba, scipy or matplotlib (see benchmarks/bench_startup.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from execdesk.desk.home import mark_latest_demo, open_existing
from execdesk.desk.identity import Identity, local_identity
from execdesk.errors import InvalidInput, SpecError

if TYPE_CHECKING:
    from execdesk.codegen.pipeline import CodegenReport
    from execdesk.codegen.render import StakeSizing
    from execdesk.desk.summary import RunSummary

Progress = Callable[[int, int], None] | None


def stake_sizing(risk_per_trade: float | None, max_position_fraction: float | None, stake: float | None
                 ) -> StakeSizing:
    """The stake sizing a generated strategy embeds: the risk manager's fixed fractional sizing
    (its defaults unless given), or a fixed stake. Bad values are refused naming the option."""
    from pydantic import ValidationError

    from execdesk.codegen.render import StakeSizing
    from execdesk.risk.config import RiskConfig

    if stake is not None:
        if risk_per_trade is not None or max_position_fraction is not None:
            raise InvalidInput("--stake fixes the stake: it cannot be combined with --risk-per-trade or "
                               "--max-position-fraction")
        if not stake > 0:
            raise InvalidInput(f"--stake: got {stake}; expected a positive amount of the stake currency")
        return StakeSizing.fixed(stake)
    defaults = RiskConfig()
    values = {"risk_per_trade": defaults.risk_per_trade if risk_per_trade is None else risk_per_trade,
              "max_position_fraction": (defaults.max_position_fraction if max_position_fraction is None
                                        else max_position_fraction)}
    try:
        checked = RiskConfig(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-")
        raise InvalidInput(f"{option}: got {first['input']}; expected {first['msg'].lower()}") from None
    return StakeSizing.risk(checked.risk_per_trade, checked.max_position_fraction)


def codegen(bundle: Path, out_dir: Path, verify: bool, data: Path | None, sizing: StakeSizing) -> CodegenReport:
    """``execdesk codegen``: the Freqtrade strategy for a bundle, reviewed, and proven when ``verify`` (see
    :func:`execdesk.codegen.generate`)."""
    from execdesk.codegen import generate

    return generate(bundle, out_dir, verify=verify, data=data, sizing=sizing)


def comparison_cells(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """A live-vs-backtest comparison row for people: label, backtest, live, drift
    (:func:`execdesk.monitor.report.comparison_cells`, as comparison.md shows them)."""
    from execdesk.monitor.report import comparison_cells as cells

    return cells(row)


def demo_config_path() -> Path:
    """The bundled demo desk config (inside the installed package)."""
    from importlib import resources

    return Path(str(resources.files("execdesk") / "examples" / "demo.yaml"))


def run_config(path: Path, home: Path, seed: int | None = None, progress: Progress = None,
               report: bool = True, db_url: str | None = None, until: str | None = None,
               desk: str = "the market's") -> RunSummary:
    """``execdesk run``: run or carry on the desk ``path`` describes, and write its report (once a run); ``until``:
    its market runs on to this time (ISO 8601, after the config's end)."""
    if not path.is_file():
        raise InvalidInput(f"desk config {path}: no such file")
    from execdesk.desk.runner import run_desk
    from execdesk.desk.settings import load_desk_config

    config = load_desk_config(path, seed=seed)
    if until is not None:
        config = _until(config, until, desk)
    return run_desk(config, home, progress=progress, db_url=db_url, report=report)


def _until(config: Any, until: str, desk: str) -> Any:
    """``config`` with its market running on to ``until`` (ISO 8601), which must be after its end (``desk``'s, as
    the error names it)."""
    from datetime import UTC, datetime

    end = datetime.fromtimestamp(_parse_time(until, "--until"), UTC)
    if end <= config.market.end:
        raise InvalidInput(f"--until: got {until}; expected a time after {desk} end, "
                           f"{config.market.end.isoformat()}")
    return config.model_copy(update={"market": config.market.model_copy(update={"end": end})})


def run_demo(home: Path, seed: int = 7, fresh: bool = False, progress: Progress = None,
             db_url: str | None = None, until: str | None = None) -> RunSummary:
    """``execdesk demo``: the bundled config in ``home/demo/seed-N`` (carried on unless ``fresh``); ``until``: its
    market runs on to this time (ISO 8601, after the demo's end): the desk carries on over the new bars, acting on
    the commands left for it (a kill, a deploy) at the first."""
    import shutil

    if not 0 <= seed <= 2**63 - 1:  # checked before anything is created
        raise InvalidInput(f"--seed: got {seed}; expected an integer in [0, 2**63 - 1]")
    demo_home = home / "demo" / f"seed-{seed}"
    if until is not None and fresh:  # checked before a --fresh home is removed: bad input loses nothing
        from execdesk.desk.settings import load_desk_config

        _until(load_desk_config(demo_config_path(), seed=seed), until, "the demo's")
    if fresh and demo_home.exists():
        shutil.rmtree(demo_home)
    summary = run_config(demo_config_path(), demo_home, seed=seed, progress=progress, db_url=db_url, until=until,
                         desk="the demo's")
    if db_url is None:  # the next commands without --home find this desk (execdesk.desk.home.resolve_home)
        mark_latest_demo(home, demo_home)
    return summary


def intake(path: Path) -> list[dict[str, Any]]:
    """``execdesk intake``: each bundle taken or rejected on its own."""
    from execdesk.strategy import intake as intake_bundles

    if not path.exists():
        raise InvalidInput(f"{path}: no such file or folder")
    out = []
    for result in intake_bundles(path):
        if result.bundle is not None:
            out.append({"path": str(result.path), "ok": True, "bundle": result.bundle.to_canonical_dict(),
                        "bundle_hash": result.bundle.bundle_hash, "errors": []})
        else:
            error = result.error
            issues = error.issues if isinstance(error, SpecError) else []
            out.append({"path": str(result.path), "ok": False, "bundle": None, "bundle_hash": None,
                        "errors": [{"path": i.path, "value": i.value, "expected": i.expected} for i in issues]
                        or [{"path": "<file>", "value": "", "expected": str(error)}]})
    return out


def status(home: Path, db_url: str | None = None) -> dict[str, Any]:
    """``execdesk status``: the projections of the ledger, as data."""
    with open_existing(home, db_url) as ledger:
        return status_of(ledger, home)


def status_of(ledger: Any, home: Path) -> dict[str, Any]:
    """The status of the desk whose ledger is open (``execdesk status``, the API's ``/api/status``)."""
    from execdesk.desk.effects import unposted
    from execdesk.domain.events import EventKind
    from execdesk.domain.marks import step_name
    from execdesk.lead.lifecycle import lifecycle as lifecycle_of

    s = ledger.state
    health: dict[str, str] = {}  # the monitor's latest verdict against the approved backtest
    decision: dict[str, str] = {}  # the lead's latest strategy-halt decision
    failures = [e.payload for e in ledger.events({EventKind.ALERT_DELIVERY_FAILED})]
    sizing: dict[str, dict[str, Any] | None] = {}  # how each deployment sizes its entries (None: the desk's default)
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}):
        own, bundle = e.payload.get("sizing"), (e.payload.get("bundle") or {}).get("sizing")
        sizing.setdefault(e.payload["deployment_id"], {**own, "source": "deployment"} if own
                          else {**bundle, "source": "bundle"} if bundle else None)
    for e in ledger.events({EventKind.DRIFT_ASSESSED, EventKind.STRATEGY_REVIEWED}):
        target = health if e.kind is EventKind.DRIFT_ASSESSED else decision
        target[e.payload["deployment_id"]] = e.payload["verdict" if target is health else "decision"]
    deployments = []
    for d in s.deployments.values():
        positions = [{"pair": p.pair, "qty": float(p.qty), "avg_price": float(p.avg_price)}
                     for p in s.open_positions() if p.deployment_id == d.id]
        deployments.append({"id": d.id, "strategy": d.strategy_id, "name": d.name, "version": d.version,
                            "venue": d.venue, "lifecycle": lifecycle_of(d), "start_at": d.start_at,
                            "state": d.state.value, "state_reason": d.state_reason, "trades": d.trades,
                            "wins": d.wins, "realized_pnl": _money(d.realized_pnl), "fees": _money(d.fees),
                            "realized_pnl_net": _money(d.realized_pnl - d.fees),
                            "allocation": float(d.allocation), "allocation_in_use": float(d.stage_fraction),
                            "sizing": sizing.get(d.id),
                            "ladder_step": step_name(d.ladder_step), "health": health.get(d.id, "continue"),
                            "lead_decision": decision.get(d.id), "positions": positions})
    return {
        "home": str(home), "trading_state": s.trading_state.value, "trading_reason": s.trading_reason,
        "ladder_step": step_name(s.ladder_step),
        "quote": s.quote, "cash": _money(s.cash()), "completed": s.completed, "events": s.last_seq,
        "last_bar": s.last_bar_time, "deployments": deployments,
        "pending_requests": sorted(p.name for p in (home / "control").glob("*.json")),
        "waiting_for_a_human": _waiting_decisions(home),
        "alert_delivery_failures": {"count": len(failures), "last": failures[-1] if failures else None},
        # messages a command on the stopped desk could not post to their webhook: tried again (see desk.effects)
        "unposted_messages": [{"id": m.id, "to": m.to, "kind": m.kind, "subject": m.subject,
                               "error": failure.get("error")} for m, failure in unposted(ledger)],
        "open_orders": [{"client_order_id": o.client_order_id, "deployment_id": o.deployment_id, "pair": o.pair,
                         "side": o.side, "qty": float(o.qty), "status": o.status.value} for o in s.open_orders()],
    }


def _money(value: Any) -> float:
    """An amount of the quote currency as a JSON number, to the cent (the ledger keeps it exactly)."""
    return round(float(value), 2)


def _waiting_decisions(home: Path) -> list[dict[str, Any]]:
    """The Orchestrator's decision requests no human has answered yet (what ``execdesk approve|deny`` takes)."""
    from execdesk.lead.outbox import DecisionRequests, Outbox

    if not (home / "outbox" / "orchestrator").is_dir():
        return []
    return [{"request_id": m.request_id, "subject": m.subject, "question": m.summary, "time": m.time}
            for m in DecisionRequests(Outbox(home / "outbox")).pending()]


def report(home: Path, deployment: str | None = None, db_url: str | None = None) -> dict[str, Any]:
    """``execdesk report``: write a new report folder and return its data and file paths."""
    from execdesk.phases import phase

    phase("loading the report's tools (pandas, SciPy, matplotlib) and the ledger")
    from execdesk.monitor.report import write_report

    with open_existing(home, db_url) as ledger:
        data, files = write_report(ledger, home, deployment)
    return {**data, "files": [str(p) for p in files]}


def assess(bundle_path: Path, home: Path, allocation: float = 0.10, db_url: str | None = None,
           out_dir: Path | None = None, datadir: Path | None = None) -> dict[str, Any]:
    """``execdesk assess``: the pre-deployment assessment of a bundle against the home's portfolio.

    ``allocation`` is the fraction of portfolio equity asked for. The candidate's returns come from
    the native backtester over the bundle's validation period on generated candles (seed 7), or on
    the candles of the Freqtrade ``datadir`` when given (which must hold the bundle's and the live
    deployments' pairs in the bundle's timeframe over the whole period, see
    :func:`~execdesk.codegen.pipeline.validation_market_from_datadir`); the same candles give the
    asset correlations. Its correlation with each live deployment is measured on the same dates: both
    strategies backtested over the validation period on the same candles (each correlation names its
    window, source and number of days ``n``; see :func:`~execdesk.lead.deploy.assess_bundle`). The
    portfolio is the ledger's (an empty one of 100,000 when the home has no desk yet). Writes
    ``assessment.yaml`` and ``assessment.json`` to a new folder and, when the home has a ledger, records
    a ``risk.assessed`` event with the verdict and its numbers.
    """
    import json

    from execdesk.domain.events import Event, EventKind
    from execdesk.lead.deploy import assess_bundle
    from execdesk.risk.assessment import AssessmentLimits
    from execdesk.store.ledger import Ledger
    from execdesk.strategy import load_bundle

    if not 0 < allocation <= 1:
        raise InvalidInput(f"--allocation: got {allocation}; expected a fraction of equity in (0, 1]")
    from execdesk.phases import phase

    phase("reading the bundle and the live portfolio")
    bundle = load_bundle(bundle_path)
    has_ledger = db_url is not None or (home / "ledger.sqlite").is_file()
    ledger = Ledger.for_home(home, db_url) if has_ledger else None
    try:
        limits = AssessmentLimits()
        if ledger is not None and ledger.state.config is not None:
            from execdesk.desk.settings import RecordedDesk

            limits = AssessmentLimits(**RecordedDesk.of(ledger.state).risk.assessment.model_dump())
        data, result = assess_bundle(bundle, ledger, allocation, limits, datadir)
        root = out_dir or home / "assessments" / f"{bundle.id}-v{bundle.version}"
        root.mkdir(parents=True, exist_ok=True)
        number = 1 + sum(1 for p in root.iterdir() if p.is_dir())
        folder = root / f"{number:04d}"
        folder.mkdir()
        (folder / "assessment.json").write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        (folder / "assessment.yaml").write_text(result.to_yaml())
        data["files"] = [str(folder / "assessment.json"), str(folder / "assessment.yaml")]
        if ledger is not None and ledger.state.config is not None:
            from execdesk.desk.lock import DeskLock

            lock = DeskLock(home)
            data["recorded"] = lock.acquire("command")  # a running desk owns the ledger: the files are the record then
            if data["recorded"]:
                try:
                    t = ledger.state.last_bar_time or 0
                    ledger.record(Event(t, EventKind.RISK_ASSESSED, json.loads(json.dumps(
                        {k: v for k, v in data.items() if k not in ("files", "recorded")}, default=str))))
                    ledger.flush()
                finally:
                    lock.release()
        return data
    finally:
        if ledger is not None:
            ledger.close()


def _who(identity: Identity | None) -> dict[str, Any]:
    """Who a command is from, as its body records it: ``by`` (the identity's name) and ``identity`` (the local
    user's when none is given: the CLI without a token)."""
    who = identity or local_identity()
    return {"by": who.name, "identity": who.as_dict()}


def _need_reason(action: str, reason: str) -> None:
    if not reason.strip():
        raise InvalidInput(f"{action}: --reason (why) is required; it is recorded with who asked")
    if len(reason) > 2000:
        raise InvalidInput(f"{action}: --reason has {len(reason)} characters; at most 2000")


def rearm(home: Path, reason: str, deployment: str | None = None, db_url: str | None = None,
          now: int | None = None, command_id: str | None = None, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk rearm``: a human lifts what the ladders and the circuit breaker left in place (see
    :func:`execdesk.desk.commands.apply_rearm`); at once on a stopped desk, at the running desk's next bar."""
    import time

    from execdesk.desk.commands import apply_rearm, run_or_queue

    _need_reason("rearm", reason)
    body = {"action": "rearm", **_who(identity), "reason": reason, "deployment": deployment,
            "command_id": command_id}
    return run_or_queue(home, db_url, "rearm", int(time.time()) if now is None else now, body,
               lambda ledger, t: apply_rearm(ledger, body, t))


def kill(home: Path, reason: str, now: int, identity: Identity | None = None,
         command_id: str | None = None, db_url: str | None = None) -> dict[str, Any]:
    """``execdesk kill``: pull the kill switch. The request is left in ``HOME/control/`` (signed, created
    exclusively, never overwritten); a running desk acts on it at its next bar, a stopped one at the first
    bar of its next run — the circuit breaker's path, each step recorded, then HALTED until re-armed. A role
    without the right is refused now (:class:`~execdesk.desk.identity.NotAllowed`) and the desk records the
    refusal at that bar."""
    from execdesk.desk.commands import command_id_of, queue_request
    from execdesk.desk.identity import authorize

    _need_reason("kill", reason)
    with open_existing(home, db_url) as ledger:  # a desk here (any ledger URL), read only
        from execdesk.freqtrade.fleet import close_all_bots, freqtrade_deployments

        on_bots = freqtrade_deployments(ledger)
    who = identity or local_identity()
    body = {"action": "kill", "by": who.name, "identity": who.as_dict(), "reason": reason,
            "command_id": command_id_of({"command_id": command_id}, "--command-id")}
    path = queue_request(home, "kill", now, body)
    authorize(who, "kill")
    by = who.name
    # the bots are told at once, their trades come in by sync
    return {"request": str(path), "command_id": body["command_id"], "by": by, "reason": reason,
            "bots": close_all_bots(home, on_bots),
            "note": "acted on at the desk's next bar (a stopped desk: the first bar of its next run)"}


def verify(home: Path, db_url: str | None = None) -> dict[str, Any]:
    """``execdesk verify``: the ledger verified in full — opening it folds every event and checks the hash chain
    (:class:`~execdesk.errors.LedgerTampered` naming the first event that does not verify, a missing event or an
    unknown schema revision) — and the projection tables compared with the fold (the first table and key that
    differ, as :class:`~execdesk.errors.LedgerTampered`)."""
    import time

    from execdesk.errors import LedgerTampered
    from execdesk.store.projections import all_projection_rows

    started = time.perf_counter()
    with open_existing(home, db_url) as ledger:
        stored, folded = ledger.read_projections(), all_projection_rows(ledger.state)
        for table in sorted(set(stored) | set(folded)):
            rows, expected = stored.get(table, []), folded.get(table, [])
            if rows != expected:
                first = next((r for r, e in zip(rows, expected, strict=False) if r != e), None)
                what = first if first is not None else f"{len(rows)} rows where the events give {len(expected)}"
                raise LedgerTampered(f"ledger {ledger.location}: the {table} table differs from the fold of the "
                                     f"events (first: {what}); the events are the record: rebuild the projections")
        return {"ledger": ledger.location, "events": ledger.state.last_seq, "head": ledger.head,
                "projections": "equal to the fold", "seconds": round(time.perf_counter() - started, 3)}


def team(home: Path, db_url: str | None = None) -> dict[str, Any]:
    """``execdesk team``: each role's performance from the ledger (see :mod:`execdesk.lead.team`)."""
    from execdesk.lead.team import lead_performance, team_performance

    with open_existing(home, db_url) as ledger:
        return {**team_performance(ledger), "execution_lead": lead_performance(ledger)}


# ---------------------------------------------------------------------------- the gated pipeline and deployments
def deploy(home: Path, bundle_path: Path, venue: str, now: int, allocation: float = 0.10, live: bool = False,
           at: str | None = None, positions: str = "hand_over", reason: str = "", db_url: str | None = None,
           command_id: str | None = None, identity: Identity | None = None, sizing: Any = None) -> dict[str, Any]:
    """``execdesk deploy``: a bundle through the gates (see :mod:`execdesk.lead.deploy`) onto this home's desk.

    The command carries its intent only — the bundle itself, the venue, the allocation asked, who and why — and
    the gates run when it is applied: at once on a stopped desk, at the running desk's next bar (the command shows
    what the gates say now, a preview). Returns the plan's summary: ``deployed``, ``pending_approval`` (with the
    decision request to answer with ``execdesk approve|deny``) or ``refused`` — which raises
    :class:`~execdesk.errors.Refused` (exit 3) naming the gate and its reason, after the gates are recorded.
    ``at``: an ISO 8601 time to start trading (scheduled); ``positions``: what a version this one replaces does
    with its positions; ``command_id``: the command's id (applying one id twice is a no-op; default: a new one);
    ``sizing``: the deployment's own sizing over the bundle's (a mapping in the bundle's ``sizing`` schema, or a
    :class:`~execdesk.strategy.bundle.Sizing`; invalid: :class:`~execdesk.errors.InvalidInput` naming the field)."""
    from execdesk.desk.settings import RecordedDesk
    from execdesk.lead.deploy import POLICIES, DeployIntent, VenueTarget, sizing_of
    from execdesk.strategy import load_bundle

    target = VenueTarget.parse(venue, live)
    own_sizing = sizing_of(sizing, "--sizing")
    who = identity or local_identity()
    if not 0 < allocation <= 1:
        raise InvalidInput(f"--allocation: got {allocation}; expected a fraction of equity in (0, 1]")
    if positions not in POLICIES:
        raise InvalidInput(f"--positions: got {positions!r}; expected one of {', '.join(POLICIES)}")
    start_at = _parse_time(at, "--at") if at is not None else None
    if not bundle_path.exists():
        raise InvalidInput(f"{bundle_path}: no such bundle file or folder")
    try:
        bundle: dict[str, Any] = load_bundle(bundle_path).to_canonical_dict()
    except (SpecError, InvalidInput):
        bundle = {}  # the intake gate refuses it, with its issues, when the command is applied
    with open_existing(home, db_url) as ledger:  # read only: the desk's time, which names the command's requests
        desk_now = RecordedDesk.of(ledger.state).time(ledger.state)
    intent = DeployIntent.from_dict({
        "bundle": bundle, "source": str(bundle_path), "venue": str(target), "allocation": allocation,
        "start_at": start_at, "positions": positions, "by": who.name, "reason": reason or "requested",
        "requested_at": desk_now, "sizing": own_sizing}, "deploy")
    body = {"action": "deploy", **intent.as_dict(), "identity": who.as_dict(),
            **({"command_id": command_id} if command_id else {})}
    return _apply_deploy(home, db_url, "deploy", now, body, intent)


def decide(home: Path, request_id: str, decision: str, reason: str, now: int, db_url: str | None = None,
           command_id: str | None = None, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk approve|deny REQUEST``: a human answers a deployment's approval gate (once); the deploy that asked
    it is applied again with the answer — its gates run again on the ledger as it is, then approved it goes on
    through the deploy and monitor gates, denied it is refused there."""
    from execdesk.desk.identity import NotAllowed, authorize
    from execdesk.lead.deploy import DeployIntent, approval_asked, approval_decided
    from execdesk.lead.outbox import DecisionRequests, Outbox

    if decision not in ("approve", "deny"):
        raise InvalidInput(f"decision: got {decision!r}; expected approve or deny")
    _need_reason(decision, reason)
    who = identity or local_identity()
    by = who.name
    with open_existing(home, db_url) as ledger:
        asked = approval_asked(ledger, request_id)
        decided = approval_decided(ledger, request_id) if asked is not None else None
    if asked is None:  # not a deployment's: an emergency decision request
        authorize(who, "answer")
        return _answer_emergency(home, request_id, decision, who, reason, now)
    if decided is not None:
        raise InvalidInput(f"{request_id}: {asked['deployment_id']} is not waiting for approval (already "
                           f"{decided.get('decision')})")
    intent = DeployIntent.from_dict(asked["intent"], f"the deploy that asked {request_id}")
    body = {"action": "deploy", **intent.as_dict(), "identity": who.as_dict(),
            **({"command_id": command_id} if command_id else {}),
            "approval": {"request_id": request_id, "decision": decision, "by": by, "reason": reason}}

    def allowed(_ledger: Any = None, _t: int = 0) -> dict[str, Any]:
        """The answer's right and, for real money, four eyes (the desk checks both again as it applies it)."""
        from execdesk.desk.identity import check_four_eyes
        from execdesk.lead.deploy import VenueTarget

        authorize(who, decision)
        if decision == "approve":
            check_four_eyes(intent.by, who, asked["deployment_id"], VenueTarget.from_str(intent.venue).real_money)
        return {}

    try:
        allowed()
    except NotAllowed:  # refused before the outbox is answered; the refusal is recorded (by the running desk, if one)
        from execdesk.desk.commands import run_or_queue

        run_or_queue(home, db_url, decision, now, body, allowed)
        raise
    DecisionRequests(Outbox(home / "outbox")).answer(request_id, decision, by, max(now, intent.requested_at))
    return {**_apply_deploy(home, db_url, decision, now, body, intent, refuse=decision == "approve"),
            "decision": decision}


def _apply_deploy(home: Path, db_url: str | None, action: str, now: int, body: dict[str, Any], intent: Any,
                  refuse: bool = True) -> dict[str, Any]:
    """Apply a deploy command: at once on a stopped desk (its decision request, if a human approves, sent with it),
    or queued for the running desk, with a preview of what the gates say now. A refusal raises (exit 3)."""
    from execdesk.desk.commands import apply_deploy, approval_request_of, plan_of_intent, run_or_queue, send_recorded
    from execdesk.errors import Refused

    def direct(ledger: Any, t: int) -> dict[str, Any]:
        plan, ask = apply_deploy(ledger, home, body, t)
        if ask is not None:
            send_recorded(ledger, home, ask)
        return plan.summary()

    result = run_or_queue(home, db_url, action, now, body, direct)
    if "queued" in result:  # the running desk runs the gates at its next bar: what they say now, as a preview
        with open_existing(home, db_url) as ledger:
            plan = plan_of_intent(home, ledger, intent)
        if plan.pending and body.get("approval") is None:
            plan.approval_request = approval_request_of(plan, intent).request_id
        result = {**plan.summary(), **result, "status": "queued", "preview": True}
    refusal = result.get("refused")
    if refusal and refuse:
        raise Refused(f"{result['deployment_id']}: the {refusal['gate']} gate refused it: {refusal['reason']}")
    return result


def _answer_emergency(home: Path, request_id: str, decision: str, who: Identity, reason: str,
                      now: int) -> dict[str, Any]:
    """An emergency decision request (a ladder step waiting for a human): the answer is recorded in the outbox
    once, and a note left in ``HOME/control/`` wakes the desk, which acts on it at its next bar (a stopped desk:
    the first bar of its next run)."""
    from execdesk.desk.commands import queue_request
    from execdesk.lead.outbox import DecisionRequests, Outbox

    requests = DecisionRequests(Outbox(home / "outbox"))
    message = requests.find(request_id)
    answer = requests.answer(request_id, decision, who.name, max(now, message.time))
    queue_request(home, "answer", now, {"request_id": request_id, "reason": reason, "by": who.name,
                                        "identity": who.as_dict()})
    return {"request_id": request_id, "subject": message.subject, "question": message.summary,
            "decision": answer.decision, "by": who.name, "reason": reason,
            "note": "the desk acts on the answer at its next bar (a stopped desk: the first bar of its next run)"}


def lifecycle(home: Path, action: str, deployment: str, reason: str, now: int, db_url: str | None = None,
              command_id: str | None = None, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk pause|resume|remove DEPLOYMENT``: recorded at once on a stopped desk (a removed deployment's
    positions close at the first bar of the next run), or at the running desk's next bar."""
    from execdesk.desk.commands import apply_lifecycle, run_or_queue

    _need_reason(action, reason)
    body = {"action": action, "deployment": deployment, **_who(identity), "reason": reason,
            "command_id": command_id}
    return run_or_queue(home, db_url, action, now, body, lambda ledger, t: apply_lifecycle(ledger, home, body, t))


def rollback(home: Path, strategy: str, reason: str, now: int, positions: str = "hand_over",
             db_url: str | None = None, command_id: str | None = None, identity: Identity | None = None
             ) -> dict[str, Any]:
    """``execdesk rollback STRATEGY``: back to the previous version (see :func:`execdesk.lead.deploy.rollback`)."""
    from execdesk.desk.commands import apply_lifecycle, run_or_queue

    _need_reason("rollback", reason)
    body = {"action": "rollback", "strategy": strategy, **_who(identity), "reason": reason,
            "positions": positions, "command_id": command_id}
    return run_or_queue(home, db_url, "rollback", now, body, lambda ledger, t: apply_lifecycle(ledger, home, body, t))


def sizing_option(text: str | None, option: str = "--sizing") -> dict[str, Any] | None:
    """A sizing block given on the command line as a YAML (or JSON) mapping, e.g. ``'{method: kelly, fraction:
    0.5}'``, read into a mapping (validated by :func:`execdesk.lead.deploy.sizing_of` where the command enters)."""
    import yaml

    if text is None:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if not isinstance(value, dict):
        raise InvalidInput(f"{option}: got {text[:80]!r}; expected a mapping like '{{method: kelly, fraction: 0.5}}'")
    return value


def _parse_time(text: str, option: str) -> int:
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InvalidInput(f"{option}: got {text!r}; expected an ISO 8601 time, e.g. 2024-08-01T00:00:00Z")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.timestamp())


def take_inbox(home: Path, venue: str, now: int, allocation: float = 0.10, db_url: str | None = None,
               identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk inbox``: every bundle Validation left in ``HOME/inbox/`` through the gated pipeline, each on
    its own (a refusal stops only that one). Each entry is moved to ``taken/`` (or ``rejected/`` with its reason
    when it does not validate — still recorded as an intake refusal) before its gates run."""
    from execdesk.desk.identity import authorize
    from execdesk.errors import Refused
    from execdesk.lead.inbox import Inbox

    who = identity or local_identity()
    authorize(who, "deploy")
    open_existing(home, db_url).close()  # a desk must be here before anything is moved
    results = []
    for entry in Inbox(home / "inbox").take_all():
        try:
            plan = deploy(home, entry.path, venue, now, allocation, reason=f"from the inbox ({entry.name})",
                          db_url=db_url, identity=who)
            results.append({"entry": entry.name, "path": str(entry.path), **plan})
        except Refused as exc:
            results.append({"entry": entry.name, "path": str(entry.path), "status": "refused", "reason": str(exc)})
    return {"inbox": str(home / "inbox"), "taken": len(results), "results": results}


def bots(home: Path, action: str, now: int, deployment: str | None = None, datadir: Path | None = None,
         db_url: str | None = None, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk bots start|stop|sync|status [DEPLOYMENT]``: the desk's Freqtrade bots (see
    :mod:`execdesk.freqtrade.fleet`). ``sync`` writes their trades into the ledger (at once on a stopped desk, at the
    running desk's next bar); the others drive the bot processes."""
    from execdesk.desk.commands import apply_sync, run_or_queue
    from execdesk.freqtrade import fleet

    if action not in ("start", "stop", "sync", "status"):
        raise InvalidInput(f"bots: got {action!r}; expected start, stop, sync or status")
    if action != "status":
        from execdesk.desk.identity import authorize

        authorize(identity or local_identity(), "sync_bots")
    if datadir is not None and not datadir.is_dir():
        raise InvalidInput(f"--datadir: {datadir} is not a folder")
    with open_existing(home, db_url) as ledger:
        deployments = fleet.freqtrade_deployments(ledger)
    if deployment is not None and deployment not in deployments:
        raise InvalidInput(f"bots: {deployment!r} is not a deployment on Freqtrade (those: "
                           f"{', '.join(deployments) or 'none'})")
    chosen = [deployment] if deployment is not None else deployments
    if action == "sync":
        body = {"action": "sync_bots", "deployment": deployment, **_who(identity)}
        return run_or_queue(home, db_url, "sync_bots", now, body, lambda ledger, _t: apply_sync(ledger, home, body))
    if action == "start":
        from functools import partial

        from execdesk.lead.deploy import load_bundle_of

        def bundle_of(dep: str) -> Any:  # what the ledger recorded as deployed, never a file in the home
            with open_existing(home, db_url) as ledger:
                return load_bundle_of(ledger, dep)

        return {"bots": [fleet.start_bot(home, d, partial(bundle_of, d), datadir, db_url) for d in chosen]}
    if action == "stop":
        return {"bots": [fleet.stop_bot(home, d) for d in chosen]}
    out = []
    for d in chosen:
        bot = fleet.open_bot(home, d)
        out.append({"deployment": d, "running": bot.running, "pid": bot.pid, "port": bot.port,
                    "offline": bot.offline, "folder": str(bot.folder)})
    return {"bots": out}


# ---------------------------------------------------------------------------- identities
def token_create(home: Path, name: str, role: str, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk token create``: a new token (returned once, never stored) with its record."""
    from execdesk.api.tokens import TokenStore
    from execdesk.desk.identity import authorize

    who = identity or local_identity()
    authorize(who, "tokens")
    token, record = TokenStore(home).create(name, role, who)
    return {**record, "token": token}


def token_list(home: Path, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk token list``: every token's record, without its hash."""
    from execdesk.api.tokens import TokenStore
    from execdesk.desk.identity import authorize

    authorize(identity or local_identity(), "tokens")
    return {"tokens": TokenStore(home).listing()}


def token_revoke(home: Path, which: str, identity: Identity | None = None) -> dict[str, Any]:
    """``execdesk token revoke``: the token refused from now on."""
    from execdesk.api.tokens import TokenStore
    from execdesk.desk.identity import authorize

    authorize(identity or local_identity(), "tokens")
    return TokenStore(home).revoke(which)
