"""The gated pipeline: how a validated bundle becomes a deployment (``execdesk deploy``).

intake -> signal generator -> risk -> approval -> deploy -> monitor. Each gate's outcome is a
``lead.gate`` event with its evidence; the first refusal ends the pipeline (the CLI exits 3 with
its reason). The gates:

* **intake** — the bundle loads and validates; it is a new version of its strategy (the same
  version again, or an older one while a newer is deployed, is refused: ``resume`` and ``rollback``
  bring those back).
* **signal_generator** — the Freqtrade strategy is rendered and its review passes (compile, ruff,
  AST audit, Freqtrade's own loader and attribute check); the files land in
  ``HOME/deployments/<id>/strategy/``.
* **risk** — the pre-deployment assessment against the portfolio in the ledger, with the desk's
  ``risk.assessment`` limits: APPROVED passes; CONDITIONAL passes with its conditions applied
  (a smaller allocation, a tighter stoploss; unmeasured correlations are carried as stated risks);
  REJECTED refuses. The allocations of the deployments still trading plus this one stay within 1.
* **approval** — a venue that trades real money (``ccxt:<exchange>`` with ``live``) waits for a human:
  a decision request goes to the Orchestrator and ``execdesk approve|deny REQUEST`` answers it; paper,
  a testnet and a Freqtrade dry-run need none.
* **deploy** — the venue takes it: the desk's paper venue (the desk's loop trades it from its start
  time on), or a Freqtrade dry-run bot folder (strategy, config, compose file, checklist) under
  ``HOME/deployments/<id>/bot/`` that ``execdesk bots start|sync|stop`` then drives
  (:mod:`execdesk.freqtrade.fleet`). A live ccxt loop is not built: such deployments are refused here, by name.
* **monitor** — the backtest's trade returns are the monitor's baseline (``monitor.baseline``).

A deployment may size its entries its own way: a ``sizing`` block (the bundle's schema: fixed_fractional, kelly
or volatility_target with their settings) in the desk config's ``strategies:`` entry or on ``execdesk deploy``
overrides the bundle's; it is validated where it enters (:func:`sizing_of`), kept in the plan, recorded in
``deployment.created`` and applied to the strategy the desk trades (:func:`as_deployed`).

A new version replaces the one trading (``superseded``) and takes over its positions or closes them
(``positions``: ``hand_over`` — same pairs handed over at their entry price, the rest closed — or
``close``); rollback does the reverse (see :mod:`execdesk.lead.lifecycle`).

Nothing here reads a clock: every time is given.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import MARK_EVENTS, PORTFOLIO, fold_marks
from execdesk.domain.types import TradingState, dec
from execdesk.errors import InvalidInput, SpecError
from execdesk.lead.lifecycle import (
    POLICIES,
    RETIRING,
    SCHEDULED,
    lifecycle,
    supersede,
    trading_version,
)
from execdesk.phases import phase

if TYPE_CHECKING:
    from execdesk.domain.state import DeskState
    from execdesk.risk.assessment import PortfolioSnapshot, SameDates
    from execdesk.risk.config import RiskConfig, StagingConfig
    from execdesk.store.ledger import Ledger
    from execdesk.strategy import StrategyBundle

GATES = ("intake", "signal_generator", "risk", "approval", "deploy", "monitor")
_VENUE = re.compile(r"^(paper|freqtrade|ccxt:([a-z][a-z0-9_]*))$")


@dataclass(frozen=True, slots=True)
class VenueTarget:
    """Where a deployment trades: ``paper``, ``ccxt:<exchange>`` (its testnet unless ``live``) or
    ``freqtrade`` (a dry-run bot)."""

    kind: str
    exchange: str | None = None
    live: bool = False

    @classmethod
    def parse(cls, text: str, live: bool = False) -> VenueTarget:
        m = _VENUE.match(text.strip())
        if m is None:
            raise InvalidInput(f"--venue: got {text!r}; expected paper, ccxt:<exchange id> (e.g. ccxt:binance) "
                               "or freqtrade")
        kind = m.group(1).split(":")[0]
        if live and kind != "ccxt":
            raise InvalidInput(f"--live: only a ccxt venue trades real money; {text} never does")
        return cls(kind, m.group(2), live)

    @property
    def real_money(self) -> bool:
        return self.kind == "ccxt" and self.live

    def __str__(self) -> str:
        if self.kind != "ccxt":
            return self.kind
        return f"ccxt:{self.exchange}" + (":live" if self.live else "")

    @classmethod
    def from_str(cls, text: str) -> VenueTarget:
        live = text.endswith(":live")
        return cls.parse(text.removesuffix(":live"), live)


@dataclass(frozen=True, slots=True)
class DeployIntent:
    """What a deploy command asks for — never what the gates made of it: the gates run when the command is
    applied, against the ledger as it is then (:func:`execdesk.desk.commands.apply_deploy`). ``bundle``: the
    bundle itself (its fields, validated again by the intake gate: nothing is read from a path named in a request);
    ``source``: where it was read from (evidence only); ``requested_at``: the desk time the command was given
    (its plan and decision request ids derive from it); ``approval``: an answer to the approval gate of the deploy
    that asked it (``request_id``, ``decision`` approve | deny, ``by``, ``reason``); ``sizing``: the deployment's
    own sizing, over the bundle's (its canonical form, see :func:`sizing_of`)."""

    bundle: dict[str, Any]
    source: str
    venue: str
    allocation: float
    start_at: int | None
    positions: str
    by: str
    reason: str
    requested_at: int
    approval: dict[str, str] | None = None
    sizing: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        # (no sizing of its own: left out, so an intent without one reads as it always did)
        return {k: getattr(self, k) for k in self.__slots__ if k != "sizing" or self.sizing is not None}

    @classmethod
    def from_dict(cls, data: Any, where: str = "deploy request") -> DeployIntent:
        """The intent a request (or the ledger) holds, validated where it enters: one line naming what is wrong."""
        if not isinstance(data, dict):
            raise InvalidInput(f"{where}: a {type(data).__name__}; expected a JSON object")

        def need(key: str, kinds: type | tuple[type, ...], optional: bool = False) -> Any:
            value = data.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise InvalidInput(f"{where}: {key} {value!r}; expected a {getattr(kinds, '__name__', 'value')}")
            return value

        allocation = float(need("allocation", (int, float)))
        if not 0 < allocation <= 1:
            raise InvalidInput(f"{where}: allocation {allocation}; expected a fraction of equity in (0, 1]")
        positions = need("positions", str)
        if positions not in POLICIES:
            raise InvalidInput(f"{where}: positions {positions!r}; expected one of {', '.join(POLICIES)}")
        by, reason = need("by", str), need("reason", str)
        if not by.strip() or len(by) > 200 or len(reason) > 2000 or "\n" in by:
            raise InvalidInput(f"{where}: by {by[:40]!r}; expected who asks, one line of at most 200 characters")
        venue = str(VenueTarget.from_str(need("venue", str)))
        requested_at, start_at = need("requested_at", int), need("start_at", int, optional=True)
        for key, value in (("requested_at", requested_at), ("start_at", start_at)):
            if value is not None and not 0 <= value <= 4_102_444_800:  # up to 2100-01-01
                raise InvalidInput(f"{where}: {key} {value}; expected epoch seconds before 2100")
        approval = data.get("approval")
        if approval is not None:
            if not isinstance(approval, dict) or approval.get("decision") not in ("approve", "deny") or not all(
                    isinstance(approval.get(k), str) and approval[k].strip() for k in ("request_id", "by", "reason")):
                raise InvalidInput(f"{where}: approval {approval!r}; expected request_id, decision (approve or deny), "
                                   "by and reason")
            approval = {k: str(approval[k]) for k in ("request_id", "decision", "by", "reason")}
        return cls(need("bundle", dict), need("source", str)[:1000], venue, allocation, start_at, positions, by, reason,
                   requested_at, approval, sizing_of(data.get("sizing"), f"{where}: sizing"))


def sizing_of(value: Any, where: str = "sizing") -> dict[str, Any] | None:
    """A deployment's own sizing block, validated where it enters against the bundle's ``sizing`` schema
    (:class:`~execdesk.strategy.bundle.Sizing`: a method and only its own settings): its canonical form (the
    settings given, no defaults filled in), or None for none. :class:`InvalidInput` in one line naming the field:
    ``deploy: sizing.fraction: got 1.5; expected a ratio in (0, 1]``."""
    from pydantic import ValidationError

    from execdesk.strategy._issues import issues_from_validation_error
    from execdesk.strategy.bundle import Sizing

    if value is None:
        return None
    if not isinstance(value, (dict, Sizing)):
        raise InvalidInput(f"{where}: got {str(value)[:80]!r}; expected a mapping like "
                           "{method: kelly, fraction: 0.5, cap: 0.2}")
    try:
        sizing = value if isinstance(value, Sizing) else Sizing.model_validate(value)
    except ValidationError as exc:
        issue = issues_from_validation_error(exc, Sizing)[0]
        raise InvalidInput(f"{where}.{issue}" if issue.path != "<root>" else f"{where}: {issue}") from None
    return sizing.model_dump(mode="json", exclude_none=True)


@dataclass(slots=True)
class GateResult:
    """One gate's outcome: passed, conditional (passed with conditions applied), not_required, pending,
    approved, denied or refused — with the reason and the evidence."""

    gate: str
    outcome: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def refused(self) -> bool:
        return self.outcome in ("refused", "denied")

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "outcome": self.outcome, "reason": self.reason, "evidence": self.evidence}


@dataclass(slots=True)
class DeployPlan:
    """A deployment on its way through the gates (kept in ``HOME/deployments/<id>/plans/<request id>.json``:
    one file per request, so a refused or second request never overwrites the one that deployed or waits)."""

    request_id: str
    bundle: dict[str, Any]  # the bundle's canonical form
    venue: str
    allocation: float  # asked for
    applied_allocation: float  # after the risk gate's conditions
    stoploss: float | None  # a tighter stoploss the risk gate applied (None: the bundle's)
    start_at: int | None
    positions: str
    by: str
    reason: str
    requested_at: int
    drawdown: dict[str, Any] | None = None
    gates: list[GateResult] = field(default_factory=list)
    recorded: int = 0  # how many gates are in the ledger already
    approval_request: str | None = None  # the decision request id while a human is asked
    intent: dict[str, Any] | None = None  # the command it answers (DeployIntent.as_dict): an approval re-runs it
    sizing: dict[str, Any] | None = None  # the deployment's own sizing, over the bundle's (None: the bundle's)

    @property
    def deployment_id(self) -> str:
        return f"{self.bundle['id']}-v{self.bundle['version']}"

    @property
    def refusal(self) -> GateResult | None:
        return next((g for g in self.gates if g.refused), None)

    @property
    def pending(self) -> bool:
        return bool(self.gates) and self.gates[-1].outcome == "pending"

    @property
    def done(self) -> bool:
        return any(g.gate == "monitor" for g in self.gates)

    def strategy(self) -> StrategyBundle:
        return as_deployed(self.bundle, self.stoploss, self.sizing)

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__slots__ if k != "gates"}
        data["gates"] = [g.as_dict() for g in self.gates]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeployPlan:
        gates = [GateResult(**g) for g in data["gates"]]
        return cls(**{**{k: v for k, v in data.items() if k != "gates"}, "gates": gates})

    def save(self, home: Path) -> Path:
        folder = deployment_folder(home, self.deployment_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "plans" / f"{self.request_id}.json"
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    def summary(self) -> dict[str, Any]:
        refusal = self.refusal
        status = ("refused" if refusal is not None else "pending_approval" if self.pending
                  else "deployed" if self.done else "in_progress")
        return {"request_id": self.request_id, "deployment_id": self.deployment_id, "venue": self.venue,
                "status": status, "allocation_requested": self.allocation,
                "allocation": self.applied_allocation, "stoploss": self.stoploss, "start_at": self.start_at,
                "sizing": self.sizing, "approval_request": self.approval_request,
                "gates": [g.as_dict() for g in self.gates],
                "refused": refusal.as_dict() if refusal is not None else None}


def as_deployed(bundle: dict[str, Any], stoploss: float | None, sizing: dict[str, Any] | None = None
                ) -> StrategyBundle:
    """A deployment's strategy: its bundle, with the tighter stoploss the risk gate applied (None: the bundle's) and
    the deployment's own sizing (None: the bundle's)."""
    from execdesk.strategy import validate_bundle
    from execdesk.strategy.bundle import Sizing

    strategy = validate_bundle(bundle, f"deployment {bundle.get('id')}-v{bundle.get('version')}")
    if sizing is not None:
        strategy = strategy.model_copy(update={"sizing": Sizing.model_validate(sizing)})
    if stoploss is None:
        return strategy
    # a plan recorded before the sign was fixed holds the stop's distance (positive): it is the same stop
    stop = -stoploss if stoploss > 0 else stoploss
    if not -1 < stop < 0:
        raise InvalidInput(f"deployment {strategy.id}-v{strategy.version}: applied stoploss {stoploss!r}; expected "
                           "a fraction in (-1, 0)")
    return strategy.model_copy(update={"stoploss": stop})


def _rel(home: Path, path: Path) -> str:
    """A file of the home as the ledger names it: relative to the home (the same run in another home records
    the same events)."""
    try:
        return path.resolve().relative_to(home.resolve()).as_posix()
    except ValueError:
        return str(path)


def deployment_folder(home: Path, deployment_id: str) -> Path:
    return home / "deployments" / deployment_id


def plan_files(home: Path) -> list[Path]:
    """Every deployment request's plan in the home, by deployment then request."""
    return sorted((home / "deployments").glob("*/plans/*.json"))


def load_bundle_of(ledger: Ledger, deployment_id: str) -> StrategyBundle:
    """The strategy a deployment trades, as its ``deployment.created`` event recorded it (conditions applied): the
    ledger, never a file in the home, says what was deployed."""
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}, deployment_id=deployment_id):
        return as_deployed(e.payload["bundle"], e.payload.get("stoploss"), e.payload.get("sizing"))
    raise InvalidInput(f"{deployment_id}: no such deployment in this home's ledger")


def approval_asked(ledger: Ledger, request_id: str) -> dict[str, Any] | None:
    """The deploy command waiting on the approval request ``request_id``, as the ledger recorded it (its
    ``lead.approval_requested`` payload, with the command's ``intent``), or None when no deploy asked it."""
    for e in ledger.events({EventKind.APPROVAL_REQUESTED}):
        if e.payload.get("request_id") == request_id and "intent" in e.payload:
            return e.payload
    return None


def approval_decided(ledger: Ledger, request_id: str) -> dict[str, Any] | None:
    """The recorded answer to the approval request ``request_id`` (None: not answered in the ledger)."""
    for e in ledger.events({EventKind.APPROVAL_DECIDED}):
        if e.payload.get("request_id") == request_id:
            return e.payload
    return None


# ------------------------------------------------------------------------ the gates before a human
def plan_deployment(home: Path, state: DeskState, ledger: Ledger, bundle_path: Path, venue: VenueTarget,
                    allocation: float, *, risk: RiskConfig, now: int, start_at: int | None = None,
                    positions: str = "hand_over", by: str = "lead", reason: str = "",
                    drawdown: dict[str, Any] | None = None, review_freqtrade: bool = True,
                    approve_all: bool = False, intent: DeployIntent | None = None,
                    sizing: dict[str, Any] | None = None) -> DeployPlan:
    """Run the gates up to the human approval (see the module docstring) and return the plan; nothing is
    recorded in the ledger here (see :func:`commit`). ``approve_all``: a human approves whatever the venue.
    ``sizing``: the deployment's own sizing block (validated here: :func:`sizing_of`), over the bundle's."""
    from execdesk.strategy import load_bundle, validate_bundle

    if not 0 < allocation <= 1:
        raise InvalidInput(f"--allocation: got {allocation}; expected a fraction of equity in (0, 1]")
    if positions not in POLICIES:
        raise InvalidInput(f"--positions: got {positions!r}; expected one of {', '.join(POLICIES)}")
    sizing = sizing_of(sizing)
    key = f"{bundle_path}|{venue}|{now}|{allocation}" + (f"|{json.dumps(sizing, sort_keys=True)}" if sizing else "")
    request_id = "dp-" + hashlib.sha256(key.encode()).hexdigest()[:12]

    def plan_for(bundle: dict[str, Any]) -> DeployPlan:
        return DeployPlan(request_id, bundle, str(venue), allocation, allocation, None, start_at, positions, by,
                          reason, now, drawdown, intent=intent.as_dict() if intent is not None else None,
                          sizing=sizing)

    # intake (a command's intent holds the bundle itself: it is validated again here, nothing read from the path)
    try:
        bundle = load_bundle(bundle_path) if intent is None else validate_bundle(intent.bundle, str(bundle_path))
    except SpecError as exc:
        plan = plan_for({"id": "unknown", "version": 0})
        issues = "; ".join(f"{i.path}: got {i.value!r}, expected {i.expected}" for i in exc.issues[:3])
        more = f" (+{len(exc.issues) - 3} more)" if len(exc.issues) > 3 else ""
        plan.gates.append(GateResult("intake", "refused", f"{bundle_path}: the bundle does not validate: "
                                     f"{issues}{more}", {
            "path": str(bundle_path), "errors": [{"path": i.path, "value": i.value, "expected": i.expected}
                                                 for i in exc.issues]}))
        return plan
    except InvalidInput as exc:
        plan = plan_for({"id": "unknown", "version": 0})
        plan.gates.append(GateResult("intake", "refused", str(exc), {"path": str(bundle_path)}))
        return plan
    plan = plan_for(bundle.to_canonical_dict())
    plan.gates.append(_intake(state, bundle, bundle_path))
    if plan.refusal is not None:
        return plan
    # signal generator
    plan.gates.append(_signal_generator(home, plan.deployment_id, bundle, review_freqtrade))
    if plan.refusal is not None:
        return plan
    # risk
    plan.gates.append(_risk(home, state, ledger, plan, bundle, risk))
    if plan.refusal is not None:
        return plan
    # approval
    target = VenueTarget.from_str(plan.venue)
    if target.real_money or approve_all:
        why = "trades real money" if target.real_money else "is a deployment and this desk approves every one by hand"
        plan.gates.append(GateResult("approval", "pending", f"{target} {why}: a human approves "
                                     "(execdesk approve|deny)", {"venue": str(target), "approve_all": approve_all}))
    else:
        why = {"paper": "the paper venue trades no real money", "freqtrade": "a Freqtrade dry-run trades no real "
               "money", "ccxt": f"{target} is the exchange's testnet (sandbox): no real money"}[target.kind]
        plan.gates.append(GateResult("approval", "not_required", why, {"venue": str(target)}))
    return plan


def _intake(state: DeskState, bundle: StrategyBundle, path: Path) -> GateResult:
    evidence = {"path": str(path), "bundle_id": bundle.id, "version": bundle.version, "hash": bundle.bundle_hash,
                "pairs": list(bundle.pairs), "timeframe": bundle.timeframe}
    dep_id = f"{bundle.id}-v{bundle.version}"
    if dep_id in state.deployments:
        now = lifecycle(state.deployments[dep_id])
        what_now = {"halted": "a halted one trades again once re-armed: `execdesk rearm --reason WHY` (the desk's "
                              f"HALT) or with `--deployment {dep_id}` (its own)",
                    "paused": f"a paused one trades again with `execdesk resume {dep_id}`",
                    "removed": f"a removed one does not come back: deploy a new version of {bundle.id}",
                    "retired": f"a retired one comes back with `execdesk rollback {bundle.id}`"
                    }.get(now, f"it is {now}: nothing to deploy")
        return GateResult("intake", "refused", f"{dep_id} is deployed already ({now}); {what_now}", evidence)
    newer = [d.id for d in state.deployments.values() if d.strategy_id == bundle.id and d.version > bundle.version]
    if newer:
        return GateResult("intake", "refused", f"{bundle.id}: a newer version is deployed ({', '.join(newer)}); "
                          f"go back to an older one with `execdesk rollback {bundle.id}`", evidence)
    return GateResult("intake", "passed", f"{dep_id}: bundle valid, hash {bundle.bundle_hash[:12]}", evidence)


def _signal_generator(home: Path, dep_id: str, bundle: StrategyBundle, freqtrade: bool) -> GateResult:
    """Render and review. A passed review of the same source under the same execdesk, Freqtrade and ruff is
    taken from the review cache (:func:`review_cache`) instead of run again — a review of one source by one
    set of tools always says the same; its files are written into the deployment's folder either way."""
    from execdesk.codegen.render import render_strategy
    from execdesk.codegen.review import review

    folder = deployment_folder(home, dep_id) / "strategy"
    generated = render_strategy(bundle, None)
    digest = hashlib.sha256(generated.source.encode()).hexdigest()
    cache = review_cache(digest) if freqtrade else None
    reviewed = folder / "review.json"
    if cache is not None and (cache / "review.json").is_file() and (cache / "review.md").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / generated.filename).write_text(generated.source, encoding="utf-8")
        for name in ("review.json", "review.md"):
            (folder / name).write_bytes((cache / name).read_bytes())
        data = json.loads(reviewed.read_text(encoding="utf-8"))
        passed, checks, failed = bool(data["passed"]), {c["name"]: c["passed"] for c in data["checks"]}, data["failed"]
    else:
        report = review(generated, folder, freqtrade=freqtrade)
        passed, checks, failed = report.passed, {c.name: c.passed for c in report.checks}, report.failed
        if cache is not None and passed:
            cache.mkdir(parents=True, exist_ok=True)
            for name in ("review.json", "review.md"):
                tmp = cache / f".{name}.{os.getpid()}"
                tmp.write_bytes((folder / name).read_bytes())
                tmp.replace(cache / name)
    evidence = {"class_name": generated.class_name, "file": _rel(home, folder / generated.filename),
                "source_sha256": digest, "checks": checks, "review": _rel(home, reviewed)}
    if passed:
        return GateResult("signal_generator", "passed", f"{generated.class_name}: review passed "
                          f"({len(checks)} checks)", evidence)
    return GateResult("signal_generator", "refused", f"{generated.class_name}: review failed ({', '.join(failed)})",
                      evidence)


def review_cache(digest: str) -> Path:
    """Where a passed review of the source with sha256 ``digest`` is kept: ``$EXECDESK_CACHE_DIR`` (default
    ``~/.cache/execdesk``) ``/reviews/<key>/``, the key covering the source and the versions of execdesk,
    Freqtrade and ruff that reviewed it."""
    from importlib.metadata import PackageNotFoundError, version

    tools = []
    for name in ("execdesk", "freqtrade", "ruff"):
        try:
            tools.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            tools.append(f"{name}=none")
    key = hashlib.sha256(f"{digest}|{'|'.join(tools)}".encode()).hexdigest()[:32]
    root = Path(os.environ.get("EXECDESK_CACHE_DIR") or Path.home() / ".cache" / "execdesk")
    return root / "reviews" / key


def review_ahead(home: Path, bundles: list[StrategyBundle], workers: int = 2) -> None:
    """Run the signal generator's reviews of several bundles at once (each review is mostly a Freqtrade
    subprocess), so the gates that follow find them done."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(lambda b: _signal_generator(home, f"{b.id}-v{b.version}", b, True), bundles))


def _risk(home: Path, state: DeskState, ledger: Ledger, plan: DeployPlan, bundle: StrategyBundle,
          risk: RiskConfig) -> GateResult:
    from execdesk.risk.assessment import AllocationCap, AssessmentLimits, StatedRisk, StoplossCap

    replaced = trading_version(state, bundle.id)
    committed = sum(float(d.allocation) for d in state.deployments.values()
                    if d.state is not TradingState.HALTED and d.state_reason not in RETIRING
                    and (replaced is None or d.id != replaced.id))
    room = round(1.0 - committed, 10)
    if room <= 0:
        return GateResult("risk", "refused", f"no capital left to allocate: live deployments hold {committed:.0%}",
                          {"committed": committed})
    asked = min(plan.allocation, room)
    data, result = assess_bundle(bundle, ledger, asked, AssessmentLimits(**risk.assessment.model_dump()),
                                 exclude={replaced.id} if replaced is not None else set())
    folder = deployment_folder(home, plan.deployment_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "assessment.yaml").write_text(result.to_yaml(), encoding="utf-8")
    evidence = {"verdict": result.verdict.value, "conditions": [c.text for c in result.conditions],
                "equity": data["equity"],
                "allocation_requested": plan.allocation, "committed_by_others": committed,
                "rules": {r["name"]: {"value": r["value"], "limit": r["limit"], "passed": r["passed"]}
                          for r in data["rules"]},
                "assessment": _rel(home, folder / "assessment.yaml"), "data_source": data["data_source"]}
    if result.verdict.value == "REJECTED":
        return GateResult("risk", "refused", f"REJECTED: {'; '.join(result.reasons) or 'see the assessment'}",
                          evidence)
    applied: list[str] = []
    allocation = asked
    if asked < plan.allocation:
        applied.append(f"allocation {plan.allocation:g} -> {asked:g} (the capital not allocated)")
    for condition in result.conditions:
        if isinstance(condition, AllocationCap):  # the largest allocation the caps allow, in the quote currency
            offered = math.floor(result.max_allocation / data["equity"] * 1e4) / 1e4
            if offered <= 0:
                return GateResult("risk", "refused", f"CONDITIONAL with no allocation left ({condition})", evidence)
            if offered < allocation:
                applied.append(f"allocation {allocation:g} -> {offered:g} ({condition} of equity "
                               f"{data['equity']:,.2f})")
                allocation = offered
        elif isinstance(condition, StoplossCap):  # the stop distance as its text shows it (4 decimals)
            plan.stoploss = -condition.loosest  # a bundle's stoploss is below the entry: negative
            applied.append(f"stoploss {bundle.stoploss:g} -> {plan.stoploss:g} ({condition})")
    plan.applied_allocation = allocation
    evidence["applied"] = applied
    if result.verdict.value == "APPROVED" and not applied:
        return GateResult("risk", "passed", f"APPROVED at allocation {allocation:g}", evidence)
    stated = [c.text for c in result.conditions if isinstance(c, StatedRisk)]
    what = "; ".join(applied) or "no condition to apply"
    return GateResult("risk", "conditional", f"{result.verdict.value}: {what}"
                      + (f"; stated risks: {'; '.join(stated)}" if stated else ""), evidence)


def assess_bundle(bundle: StrategyBundle, ledger: Ledger | None, allocation: float, limits: Any,
                  datadir: Path | None = None, exclude: set[str] | None = None) -> tuple[dict[str, Any], Any]:
    """The risk manager's pre-deployment assessment of ``bundle`` at ``allocation`` (a fraction of
    equity) against the ledger's portfolio (an empty one of 100,000 without a ledger); ``exclude``:
    deployments to leave out (the version this one replaces). Returns the data and the assessment.

    The candidate's figures (its returns for the worst case, its trades for the bootstrap) come from its
    backtest over its validation period. Its pairwise correlations are measured on the same dates as the live
    deployments': the window is the candidate's validation period, and the candidate's strategy and each live
    deployment's (rebuilt from its ``deployment.created`` event, as deployed) are backtested by the native
    engine on the same candles over it (:func:`~execdesk.codegen.pipeline.window_market`: the ``datadir``'s,
    else generated ones), their daily returns marked to market
    (:func:`~execdesk.risk.portfolio.window_returns`); a deployment's live ledger returns on days of the window
    take precedence on market data (:func:`~execdesk.risk.portfolio.same_dates`). A deployment whose strategy
    cannot be rebuilt, or has no candles, is unmeasured with the reason.
    """
    from execdesk.codegen.pipeline import market_for_bundle, validation_market_from_datadir
    from execdesk.risk.assessment import PortfolioSnapshot
    from execdesk.risk.assessment import assess as assess_candidate
    from execdesk.risk.portfolio import asset_correlation, candidate_from_bundle, portfolio_from_ledger
    from execdesk.strategy import validate_bundle

    if ledger is not None and ledger.state.config is not None:
        portfolio = portfolio_from_ledger(ledger)
        if exclude:
            portfolio = PortfolioSnapshot(portfolio.equity, tuple(d for d in portfolio.deployments
                                                                  if d.id not in exclude))
    else:
        portfolio = PortfolioSnapshot(equity=100_000.0)
    live_pairs = sorted({p for d in (ledger.state.deployments.values() if ledger is not None else ())
                         if d.id in {x.id for x in portfolio.deployments} for p in d.pairs} - set(bundle.pairs))
    spec = bundle.to_canonical_dict()
    spec["pairs"] = [*bundle.pairs, *live_pairs]
    market = validate_bundle(spec, "assessment market")
    phase("generating the candles of its validation period" if datadir is None else
          f"reading the candles of its validation period from {datadir}")
    frames, data_source = (market_for_bundle(market) if datadir is None
                           else validation_market_from_datadir(market, datadir, "--datadir"))
    own = {p: frames[p] for p in bundle.pairs}
    phase("backtesting it over its validation period")
    candidate, backtest_trades = candidate_from_bundle(bundle, allocation * portfolio.equity, own)
    same, window = _on_same_dates(bundle, ledger, portfolio, datadir)
    phase("correlating it with the live deployments; its worst case")
    result = assess_candidate(portfolio, candidate, limits, asset_correlation(frames), same)
    data = {"bundle": {"id": bundle.id, "version": bundle.version, "hash": bundle.bundle_hash},
            "allocation_fraction": allocation, "equity": portfolio.equity, "data_source": data_source,
            "backtest_trades": backtest_trades, "correlation_window": window,
            "live_deployments": [d.id for d in portfolio.deployments], **result.as_dict()}
    return data, result


def _on_same_dates(bundle: StrategyBundle, ledger: Ledger | None, portfolio: PortfolioSnapshot,
                   datadir: Path | None) -> tuple[SameDates | None, dict[str, Any] | None]:
    """The series the candidate's pairwise correlations are measured on (see :func:`assess_bundle`), and the window
    as the assessment's data shows it (its days, its candles' source, the deployments not compared); None and None
    without live deployments."""
    import pandas as pd

    from execdesk.codegen.pipeline import window_market
    from execdesk.risk.assessment import SameDates
    from execdesk.risk.portfolio import same_dates, window_returns

    if not portfolio.deployments:
        return None, None
    period = bundle.validation.period
    # a deployment being closed for good (removed, superseded, rolled back) trades no more: not compared
    records = ledger.state.deployments if ledger is not None else {}
    closing = {d.id: records[d.id].state_reason for d in portfolio.deployments
               if d.id in records and records[d.id].state_reason in RETIRING}
    window: dict[str, Any] = {"start": period.start.isoformat(), "end": period.end.isoformat(), "source": None,
                              "not_compared": {dep_id: f"{why}: being closed, it trades no more"
                                               for dep_id, why in closing.items()}}
    compared = [d.id for d in portfolio.deployments if d.id not in closing]
    if ledger is None or not compared:
        return SameDates(pd.Series(dtype=float), period.start, period.end), window
    phase("backtesting it and the live deployments' strategies on the same dates")
    strategies = live_strategies(ledger, compared)

    def key(strategy: StrategyBundle) -> str:
        return json.dumps(strategy.to_canonical_dict(), sort_keys=True, default=str)

    # one backtest per distinct strategy, the candidate's first (its candles are always had)
    distinct = {key(bundle): bundle}
    for strategy in strategies.values():
        if not isinstance(strategy, str):
            distinct.setdefault(key(strategy), strategy)
    candles = window_market(list(distinct.values()), period.start, period.end, datadir)

    def backtest(strategy: StrategyBundle, got: dict[str, pd.DataFrame] | str) -> pd.Series | str:
        if isinstance(got, str):
            return got
        try:
            return window_returns(strategy, got, candles.start, candles.end)
        except InvalidInput as exc:
            return f"its backtest over the window failed: {str(exc).splitlines()[0][:300]}"

    returns = {k: backtest(strategy, got) for (k, strategy), got in zip(distinct.items(), candles.frames, strict=True)}
    mine = returns[key(bundle)]
    if isinstance(mine, str):
        raise InvalidInput(f"{bundle.id}: no candles to backtest it on over {period.start}..{period.end}: {mine}")
    by_deployment = {dep_id: strategy if isinstance(strategy, str) else returns[key(strategy)]
                     for dep_id, strategy in strategies.items()}
    window.update(start=candles.days[0].isoformat(), end=candles.days[1].isoformat(), source=candles.source)
    return same_dates(mine, by_deployment, portfolio, candles.days, candles.label, candles.market_data), window


def live_strategies(ledger: Ledger, deployment_ids: list[str]) -> dict[str, StrategyBundle | str]:
    """Each of ``deployment_ids``' strategy as its ``deployment.created`` event recorded it (its bundle, with the
    stoploss the risk gate applied), or why it cannot be rebuilt (one sentence)."""
    wanted = set(deployment_ids)
    created: dict[str, dict[str, Any]] = {}
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}):
        dep_id = e.payload.get("deployment_id")
        if dep_id in wanted and dep_id not in created:
            created[dep_id] = e.payload
    out: dict[str, StrategyBundle | str] = {}
    for dep_id in deployment_ids:
        payload = created.get(dep_id)
        if payload is None:
            out[dep_id] = "no deployment.created event of it in the ledger"
        elif not isinstance(payload.get("bundle"), dict):
            out[dep_id] = ("its deployment.created event records no bundle (only its hash "
                           f"{str(payload.get('bundle_hash'))[:12]}): its strategy cannot be rebuilt")
        else:
            try:
                out[dep_id] = as_deployed(payload["bundle"], payload.get("stoploss"))
            except InvalidInput as exc:  # a SpecError too
                out[dep_id] = f"its recorded bundle does not rebuild: {str(exc).splitlines()[0][:300]}"
    return out


# ------------------------------------------------------------------------ into the ledger
@dataclass(frozen=True, slots=True)
class DeskFacts:
    """What the deploy gate needs to know of the desk: the venue its loop trades, its market's base timeframe
    and the pairs its market has candles for (None: not checked)."""

    venue: VenueTarget
    timeframe: str | None
    market_pairs: set[str] | None
    max_position_fraction: float | None = None  # the risk manager's per-position cap (a bot's stake keeps to it)


def commit(ledger: Ledger, home: Path, plan: DeployPlan, t: int, desk: DeskFacts,
           staging: StagingConfig | None = None, capital: float | None = None) -> DeployPlan:
    """Record the gates not yet in the ledger and, once every gate before it has passed, deploy: the
    deploy and monitor gates, the deployment and its baseline (a new version supersedes the one trading).
    ``desk``: the desk the deployment goes onto (:class:`DeskFacts`); ``staging``: the risk
    manager's staged allocation (a new deployment starts at its first step); ``capital``: the equity its
    allocation is a share of (default: the portfolio's last marked equity). Saves the plan."""
    if plan.refusal is None and not plan.pending and not plan.done:
        state = ledger.state
        if state.trading_state is TradingState.HALTED:  # nothing new goes onto a halted desk
            plan.gates.append(GateResult(
                "deploy", "refused", f"the desk is HALTED ({state.trading_reason}): nothing new goes onto a halted "
                "desk; re-arm it first (execdesk rearm --reason WHY)",
                {"venue": plan.venue, "trading_state": state.trading_state.value, "reason": state.trading_reason}))
        else:
            equity = capital if capital is not None else _equity(ledger)
            plan.gates.append(_deploy_gate(home, plan, desk, equity))
    for gate in plan.gates[plan.recorded:]:
        ledger.record(Event(t, EventKind.GATE, {"request_id": plan.request_id, "deployment_id": plan.deployment_id,
                                                "venue": plan.venue, "by": plan.by, **gate.as_dict()},
                            plan.deployment_id if plan.deployment_id in ledger.state.deployments else None))
        if gate.gate == "approval" and gate.outcome == "pending":
            ledger.record(Event(t, EventKind.APPROVAL_REQUESTED, {
                "request_id": plan.approval_request, "deployment_id": plan.deployment_id, "venue": plan.venue,
                "question": gate.reason, **({"intent": plan.intent} if plan.intent is not None else {})}))
        elif gate.gate == "approval" and gate.outcome in ("approved", "denied"):
            ledger.record(Event(t, EventKind.APPROVAL_DECIDED, {
                "request_id": plan.approval_request, "deployment_id": plan.deployment_id,
                "decision": gate.outcome, **gate.evidence}))
        elif gate.gate == "deploy" and gate.outcome == "passed":
            _create(ledger, plan, t, capital, staging)
    plan.recorded = len(plan.gates)
    if plan.refusal is None and not plan.pending and not plan.done:
        baseline = _baseline(ledger, plan)
        gate = GateResult("monitor", "passed", f"baseline: {baseline['count']} backtest trade returns "
                          f"({baseline['source']})", baseline)
        plan.gates.append(gate)
        ledger.record(Event(t, EventKind.GATE, {"request_id": plan.request_id, "deployment_id": plan.deployment_id,
                                                "venue": plan.venue, "by": plan.by, **gate.as_dict()},
                            plan.deployment_id))
        plan.recorded = len(plan.gates)
    ledger.flush()
    plan.save(home)
    return plan


def _deploy_gate(home: Path, plan: DeployPlan, facts: DeskFacts, equity: float) -> GateResult:
    target = VenueTarget.from_str(plan.venue)
    bundle = plan.strategy()
    evidence: dict[str, Any] = {"venue": plan.venue, "start_at": plan.start_at}
    desk, market_pairs = facts.venue, facts.market_pairs
    if target.kind == "ccxt" and str(target) != str(desk):
        return GateResult("deploy", "refused", f"{target}: this desk's loop trades {desk}; a deployment on "
                          f"{target} belongs on a desk whose venue is {target} (venue.kind ccxt, market.source "
                          "exchange, clock wall)", evidence)
    if target.kind == "paper" and desk.kind != "paper":
        return GateResult("deploy", "refused", f"paper: this desk's loop trades {desk}, not the paper venue",
                          evidence)
    if target.kind == "freqtrade":
        from execdesk.codegen.render import render_strategy
        from execdesk.freqtrade.bot import BotSettings, FreqtradeBot

        folder = deployment_folder(home, plan.deployment_id) / "bot"
        # Freqtrade's "unlimited" stake splits the wallet over the open-trade slots: enough slots that one trade's
        # stake stays within the risk manager's position cap, which the desk's check refuses entries above
        cap = facts.max_position_fraction
        slots = max(len(bundle.pairs), math.ceil(1.0 / cap - 1e-9) if cap else 1)
        settings = BotSettings(max_open_trades=slots, stake_amount="unlimited",
                               dry_run_wallet=round(plan.applied_allocation * equity, 2))
        bot = FreqtradeBot.prepare(render_strategy(bundle, None), folder, settings, offline=False)
        evidence.update({"bot_folder": _rel(home, folder), "config": _rel(home, bot.config_file),
                         "compose": _rel(home, folder / "docker-compose.yml"),
                         "checklist": _rel(home, folder / "CHECKLIST.md")})
        return GateResult("deploy", "passed", f"Freqtrade dry-run bot prepared in {_rel(home, folder)}: "
                          f"execdesk bots start {plan.deployment_id} runs it (or docker compose, as its "
                          "CHECKLIST.md says); execdesk bots sync brings its trades in", evidence)
    missing = sorted(set(bundle.pairs) - market_pairs) if market_pairs is not None else []
    timeframe = facts.timeframe
    if timeframe is not None and timeframe_to_seconds(bundle.timeframe) % timeframe_to_seconds(timeframe):
        return GateResult("deploy", "refused", f"the strategy trades {bundle.timeframe} candles, not a whole multiple "
                          f"of the desk's {timeframe} market", evidence)
    if missing:
        return GateResult("deploy", "refused", f"the desk's market has no candles for {', '.join(missing)} (it "
                          f"has {', '.join(sorted(market_pairs or ()))}); a desk trades the pairs its config named "
                          "when it first ran: deploy to a desk whose market.pairs lists them", evidence)
    when = "at its start time" if plan.start_at is not None else "from the desk's next bar"
    where = "paper venue" if target.kind == "paper" else f"{target} ({'REAL MONEY' if target.live else 'testnet'})"
    return GateResult("deploy", "passed", f"{where}: the desk's loop trades it {when}", evidence)


def _create(ledger: Ledger, plan: DeployPlan, t: int, capital: float | None, staging: StagingConfig | None
            ) -> None:
    state = ledger.state
    bundle = plan.strategy()
    dep_id = plan.deployment_id
    replaced = trading_version(state, bundle.id)
    equity = capital if capital is not None else _equity(ledger)
    later = plan.start_at is not None and plan.start_at > t  # scheduled: the version it replaces trades until then
    ledger.record(Event(t, EventKind.DEPLOYMENT_CREATED, {
        "deployment_id": dep_id, "strategy_id": bundle.id, "name": bundle.name, "version": bundle.version,
        "bundle_hash": bundle.bundle_hash, "timeframe": bundle.timeframe, "pairs": list(bundle.pairs),
        "allocation": dec(plan.applied_allocation), "capital": dec(equity) * dec(plan.applied_allocation),
        "validation": bundle.validation.model_dump(mode="json"), "venue": plan.venue, "start_at": plan.start_at,
        "bundle": plan.bundle, "stoploss": plan.stoploss, "drawdown": plan.drawdown, "request_id": plan.request_id,
        "by": plan.by, "replaces": replaced.id if replaced is not None else None, "positions": plan.positions,
        **({"sizing": plan.sizing} if plan.sizing is not None else {})},
        dep_id))
    if later:
        ledger.record(Event(t, EventKind.DEPLOYMENT_STATE_CHANGED, {
            "deployment_id": dep_id, "from": TradingState.ACTIVE, "to": TradingState.REDUCING, "reason": SCHEDULED,
            "evidence": {"start_at": plan.start_at, "by": plan.by}}, dep_id))
    elif replaced is not None:
        supersede(ledger, replaced.id, dep_id, t, plan.positions, plan.by)
    if staging is not None and staging.enabled and plan.venue != "freqtrade":  # starts at its first step
        first = staging.steps[0]
        ledger.record(Event(t, EventKind.ALLOCATION_STAGED, {
            "deployment_id": dep_id, "action": "start", "reason": f"new deployment: starts at {first:.0%} of its "
            "allocation", "fraction_before": 0.0, "fraction_after": first, "step": 0, "losing_streak": 0,
            "period_return": None, "equity": float(dec(equity) * dec(plan.applied_allocation)),
            "next_period_from": max(t, plan.start_at or t), "by": "risk"}, dep_id))


def _baseline(ledger: Ledger, plan: DeployPlan) -> dict[str, Any]:
    from execdesk.monitor.baseline import baseline_returns

    baseline = baseline_returns(plan.strategy())
    dep_id = plan.deployment_id
    ledger.record(Event(ledger.state.deployments[dep_id].created_at, EventKind.MONITOR_BASELINE,
                        {"deployment_id": dep_id, **baseline}, dep_id))
    return {"count": len(baseline["returns"]), "source": baseline["source"]}


def _equity(ledger: Ledger) -> float:
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    return marks.last_equity.get(PORTFOLIO, float(ledger.state.cash()))


