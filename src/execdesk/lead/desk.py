"""Assembling a desk from its config and running it: the service layer the CLI and API call.

:func:`run_desk` opens (or carries on) the ledger in a home folder, deploys each strategy bundle
once (``deployment.created``), builds the market view, the lanes, the paper venue and the loop,
runs it, and returns a :class:`RunSummary`. Run again on the same home with the same config, it
carries on from the ledger: bars already processed are not processed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from execdesk.backtest.engine import BacktestConfig
from execdesk.backtest.lane import Lane
from execdesk.clock import Clock, ReplayClock, WallClock
from execdesk.data.datadir import load_pair
from execdesk.data.feed import MarketView
from execdesk.data.generator import generate_market
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import dec
from execdesk.errors import InvalidInput, Refused
from execdesk.lead.config import DeskConfig, PairSection
from execdesk.lead.liaison import build_liaison
from execdesk.lead.loop import DeskLoop, LoopStats, LoopVenue
from execdesk.monitor.alerts import JsonlSink, build_router
from execdesk.monitor.equity import MARK_EVENTS, PORTFOLIO, Watermarks, fold_marks
from execdesk.risk.config import DrawdownLadder
from execdesk.store.ledger import Ledger
from execdesk.strategy import StrategyBundle, load_bundle
from execdesk.venues.paper import PaperVenue, PaperVenueConfig

if TYPE_CHECKING:
    from execdesk.venues.ccxt_venue import CcxtVenue


@dataclass(frozen=True, slots=True)
class DeploymentSummary:
    id: str
    strategy: str
    name: str
    version: int
    pairs: list[str]
    allocation: float
    trades: int
    wins: int
    pnl: float
    pnl_pct: float
    max_drawdown: float
    state: str
    state_reason: str
    path: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class RunSummary:
    home: Path
    ledger: str
    deployments: list[DeploymentSummary]
    trading_state: str
    trading_reason: str
    equity: float
    capital: float
    max_drawdown: float
    bars: int
    stats: LoopStats
    wall_seconds: float
    timeline: list[dict[str, Any]]
    reports: list[str] = field(default_factory=list)
    already_complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home), "ledger": self.ledger, "trading_state": self.trading_state,
            "trading_reason": self.trading_reason, "equity": round(self.equity, 2), "capital": self.capital,
            "return_pct": round((self.equity / self.capital - 1) * 100, 4),
            "max_drawdown": round(self.max_drawdown, 6), "bars": self.bars,
            "loop": {"eventful_bars": self.stats.eventful_bars, "evaluations": self.stats.evaluations,
                     "orders": self.stats.orders, "denied": self.stats.denied, "fills": self.stats.fills},
            "wall_seconds": round(self.wall_seconds, 3), "already_complete": self.already_complete,
            "deployments": [d.as_dict() for d in self.deployments], "timeline": self.timeline,
            "reports": self.reports,
        }


def deployment_id(bundle: StrategyBundle) -> str:
    return f"{bundle.id}-v{bundle.version}"


def build_market(config: DeskConfig, bundles: list[StrategyBundle], exchange: CcxtVenue | None = None,
                 now: int | None = None) -> MarketView:
    """The market data the config names: generated (seeded), read from a Freqtrade datadir, or the exchange's
    closed candles from ``market.start`` up to ``now`` (and at most ``market.end``)."""
    m = config.market
    needed = market_pairs_of(config, bundles)
    if m.source == "exchange":
        if exchange is None or now is None:
            raise InvalidInput("market.source is exchange: the desk's exchange and the time are needed (run_desk)")
        tf = timeframe_to_seconds(m.timeframe)
        start, end = int(m.start.timestamp()), int(m.end.timestamp())
        until = min(end, now - now % tf)  # the bar forming now is not closed
        frames = {}
        for pair in needed:
            rows = exchange.candles(pair, m.timeframe, start, until)
            if not rows:
                raise InvalidInput(f"{exchange.name}: {pair} has no {m.timeframe} candles in [{m.start}, "
                                   f"{pd.Timestamp(until, unit='s', tz='UTC')})")
            df = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "volume"])
            df["date"] = pd.to_datetime(df["date"], unit="s", utc=True)
            frames[pair] = df
    elif m.source == "generated":
        profiles = {p: (m.pairs.get(p) or PairSection()).profile() for p in needed}
        frames = generate_market(profiles, m.timeframe, m.start, m.end, config.desk.seed, m.shocks_(), m.regimes_())
    else:
        assert m.datadir is not None  # checked by MarketSection
        start, end = pd.Timestamp(m.start), pd.Timestamp(m.end)
        frames = {}
        for pair in needed:
            df = load_pair(m.datadir, pair, m.timeframe)
            df = df[(df["date"] >= start) & (df["date"] < end)].reset_index(drop=True)
            if df.empty:
                raise InvalidInput(f"{m.datadir}: {pair} has no {m.timeframe} candles in [{m.start}, {m.end})")
            frames[pair] = df
    return MarketView(frames, m.timeframe)


def market_pairs_of(config: DeskConfig, bundles: list[StrategyBundle]) -> list[str]:
    return sorted({p for b in bundles for p in b.pairs} | set(config.market.pairs))


def deploy_configured(ledger: Ledger, home: Path, config: DeskConfig, bundles: list[StrategyBundle], t: int,
            market_pairs: set[str]) -> None:
    """Configure the desk (once) and take each strategy of the config through the gated pipeline
    (:mod:`execdesk.lead.deploy`) that is not deployed yet; a refused gate refuses the run (exit 3)."""
    from execdesk.lead.deploy import commit, desk_venue, plan_deployment, review_ahead

    state = ledger.state
    if state.config is None:
        ledger.record(Event(t, EventKind.DESK_CONFIGURED, {
            "config": config.canonical(), "identity": config.identity(), "quote": config.desk.quote,
            "capital": dec(config.desk.capital)}))
    elif recorded_identity(state.config) != config.identity():
        difference = _first_difference(recorded_identity(state.config), config.identity())
        raise InvalidInput(f"the home's ledger holds a desk configured differently ({difference}); "
                           "use another --home, or run the config the ledger was started with")
    todo = [(b, e) for b, e in zip(bundles, config.strategies, strict=True)
            if deployment_id(b) not in state.deployments]
    if len(todo) > 1:
        review_ahead(home, [b for b, _e in todo])
    for _bundle, entry in todo:
        plan = plan_deployment(home, state, ledger, entry.bundle, desk_venue(state), entry.allocation,
                               risk=config.risk, now=t, by="config", reason="listed in the desk config",
                               drawdown=entry.drawdown.model_dump() if entry.drawdown is not None else None)
        commit(ledger, home, plan, t, market_pairs, config.risk.staging, capital=config.desk.capital)
        refusal = plan.refusal
        if refusal is not None:
            raise Refused(f"{plan.deployment_id}: the {refusal.gate} gate refused it: {refusal.reason}")
    ledger.flush()


def recorded_identity(recorded: dict[str, Any]) -> dict[str, Any]:
    """The identity of the config a ledger recorded, read with today's config model: a setting added since (with
    its default) does not make an older home's config differ from the same file read today."""
    from pydantic import ValidationError

    try:
        return DeskConfig.model_validate(recorded["config"]).identity()
    except (ValidationError, KeyError, TypeError):
        return dict(recorded.get("identity") or {})


def desk_bundles(ledger: Ledger, config: DeskConfig, bundles: list[StrategyBundle]
                 ) -> list[tuple[StrategyBundle, DrawdownLadder | None]]:
    """The bundles the desk's loop trades, from the ledger's deployments on the paper venue (each as it was
    deployed: the bundle and the conditions the risk gate applied), with their own drawdown ladders."""
    from execdesk.lead.deploy import as_deployed, desk_venue

    by_config = {deployment_id(b): (b, e.drawdown) for b, e in zip(bundles, config.strategies, strict=True)}
    traded = str(desk_venue(ledger.state))
    out = []
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}):
        p = e.payload
        if p.get("venue", "paper") != traded:
            continue
        if "bundle" not in p:  # recorded before deployments carried their bundle
            out.append(by_config[p["deployment_id"]])
            continue
        ladder = DrawdownLadder.model_validate(p["drawdown"]) if p.get("drawdown") else None
        out.append((as_deployed(p["bundle"], p.get("stoploss")), ladder))
    return out


def baseline_returns(bundle: StrategyBundle) -> dict[str, Any]:
    """The trade returns of the backtest that approved ``bundle``, for the monitor's drift tests: the
    validation report's own (``returns``) when it gives them, else the native backtester's trades over
    the validation period on the same generated candles the assessment and codegen proofs use."""
    if bundle.validation.returns:
        return {"returns": [float(r) for r in bundle.validation.returns], "source": "validation report"}
    from execdesk.backtest.engine import run_backtest
    from execdesk.codegen.pipeline import market_for_bundle

    frames, source = market_for_bundle(bundle)
    stake = 10_000.0 / max(len(bundle.pairs), 1)
    result = run_backtest(bundle, frames, BacktestConfig(stake_amount=stake, max_open_trades=len(bundle.pairs),
                                                         dry_run_wallet=10_000.0, tradable_balance_ratio=1.0))
    returns = [round(float(r), 10) for r in result.trades.profit_ratio]
    durations = [int(d) for d in result.trades.trade_duration]
    return {"returns": returns, "durations_min": durations,
            "source": f"native backtest over the validation period: {source}"}


def _first_difference(recorded: dict[str, Any], wanted: dict[str, Any], path: str = "") -> str:
    for key in sorted(set(recorded) | set(wanted)):
        a, b = recorded.get(key), wanted.get(key)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                return _first_difference(a, b, f"{path}{key}.")
            return f"{path}{key}: ledger has {a!r}, config has {b!r}"
    return "no difference"


def run_desk(config: DeskConfig, home: Path, progress: Callable[[int, int], None] | None = None,
             clock: Clock | None = None, db_url: str | None = None) -> RunSummary:
    """Run (or carry on) the desk described by ``config`` in ``home`` (ledger: ``db_url``, default SQLite there).

    One desk process per home: the run holds ``HOME/desk.lock`` (see :class:`DeskLock`); the lead's commands
    find it held and leave their requests in ``HOME/control/`` for the running loop instead of writing to the
    ledger. A deployment taken in while running (``execdesk deploy``) restarts the loop on the ledger, which
    then trades it."""
    started = time.perf_counter()
    bundles = [load_bundle(s.bundle) for s in config.strategies]
    ids = [deployment_id(b) for b in bundles]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"strategies: the same bundle id and version is listed twice ({', '.join(ids)})")
    if config.venue.kind == "ccxt":
        from execdesk.lead.live import run_live

        return run_live(config, home, bundles, progress, clock or WallClock(), db_url, started)
    market = build_market(config, bundles)
    for b in bundles:  # everything that can fail on bad input fails before the ledger is touched
        for pair in b.pairs:
            market.lane_candles(pair, b.timeframe)
    # an error drops what the loop had not flushed: see DeskLoop
    with DeskLock.for_run(home), Ledger.for_home(home, db_url) as ledger:
        deploy_configured(ledger, home, config, bundles, int(market.time[0]), set(market.pairs))
        state = ledger.state
        done = state.completed and state.last_bar_time is not None and state.last_bar_time >= int(market.time[-1])
        stats = LoopStats(bars=market.n)
        while not done:
            loop = build_loop(ledger, home, config, bundles, market, progress, clock)
            try:
                more = loop.run()
            finally:
                loop.venue.close()
            stats = stats.plus(more)
            if not loop.restart:
                break
        return summarize(ledger, market, time.perf_counter() - started, stats, home, already_complete=done)


def build_loop(ledger: Ledger, home: Path, config: DeskConfig, bundles: list[StrategyBundle], market: MarketView,
                progress: Callable[[int, int], None] | None, clock: Clock | None,
                remote: LoopVenue | None = None) -> DeskLoop:
    # the lanes' exit rules are the backtester's; the fee they count in profits is the venue's
    rules = BacktestConfig(fee=config.venue.fee_bps / 10_000)
    traded = desk_bundles(ledger, config, bundles)
    lanes = [Lane(deployment_id(b), pair, b, market.lane_candles(pair, b.timeframe), config=rules)
             for b, _ladder in traded for pair in b.pairs]
    ladders = {deployment_id(b): ladder for b, ladder in traded if ladder is not None}
    v = config.venue
    venue: LoopVenue = remote if remote is not None else PaperVenue(
        config.desk.quote, dec(config.desk.capital) if v.persist else ledger.state.cash(),
        PaperVenueConfig(v.fee_bps, v.slippage_bps, v.maker_fee_bps, v.impact_bps, v.max_volume_share, v.latency_ms,
                         v.latency_jitter_ms, config.desk.seed, v.limit_ttl_s, v.min_notional, v.qty_step),
        pairs=market.pairs, bar_seconds=market.tf_seconds, store=home / "paper-venue.sqlite" if v.persist else None)
    the_clock = clock or (WallClock() if config.clock == "wall" else ReplayClock())
    loop = DeskLoop(ledger, market, lanes, venue, config.risk, the_clock, config.monitor.snapshot_seconds,
                    progress, ladders)
    # alerts: the config's sinks plus HOME/alerts.jsonl; webhooks only on a wall clock (a replay pages nobody)
    loop.router = build_router(config.alerts, loop.record_alert, webhooks=isinstance(the_clock, WallClock))
    loop.router.sinks.append(JsonlSink(home / "alerts.jsonl"))
    # messages to Validation, the Orchestrator and HR: HOME/outbox/<to>/ (and webhooks on a wall clock)
    loop.liaison = build_liaison(config.liaison, home / "outbox", webhooks=isinstance(the_clock, WallClock))
    loop.drift_policy = {str(k): str(v) for k, v in config.lead.drift_policy.items()}
    loop.control = home / "control"
    loop.cycle_budget = config.monitor.cycle_budget
    loop.human_authorizes = frozenset(config.lead.human_authorizes)
    return loop


class DeskLock:
    """``HOME/desk.lock``: held (``flock``, exclusive) by the process running the desk, released when it
    ends — also by a crash, since the kernel drops the lock with the process."""

    def __init__(self, home: Path) -> None:
        self.path = home / "desk.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        import fcntl
        import os

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @classmethod
    @contextmanager
    def for_run(cls, home: Path) -> Iterator[DeskLock]:
        """Held for a desk's run; :class:`InvalidInput` when another process runs a desk in ``home``."""
        lock = cls(home)
        if not lock.acquire():
            raise InvalidInput(f"{home}: a desk is running in this home already ({lock.holder()}); one desk per home")
        try:
            yield lock
        finally:
            lock.release()

    def holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            return "pid unknown"
        return f"pid {pid}" if pid else "pid unknown"


def summarize(ledger: Ledger, market: MarketView, wall: float, stats: LoopStats, home: Path,
              already_complete: bool = False) -> RunSummary:
    state = ledger.state
    marks = fold_marks(ledger.events(set(MARK_EVENTS)))
    closes = {p: float(t.close[-1]) for p, t in market.pairs.items()}
    paths = state_paths(ledger)
    deployments = [deployment_summary(state, d, closes, marks, paths.get(d.id, "")) for d in state.deployments.values()]
    capital = float(state.config["config"]["desk"]["capital"]) if state.config else 0.0
    equity = float(state.cash()) + sum(float(p.qty) * closes[p.pair] for p in state.open_positions())
    return RunSummary(home, ledger.location, deployments, state.trading_state.value,
                      state.trading_reason, equity, capital, marks.max_drawdown.get(PORTFOLIO, 0.0),
                      market.n, stats, wall, timeline(ledger), already_complete=already_complete)


def deployment_summary(state: DeskState, dep: Any, closes: dict[str, float], marks: Watermarks, path: str
                       ) -> DeploymentSummary:
    unrealised = sum(float(p.qty) * (closes.get(p.pair, float(p.avg_price)) - float(p.avg_price))
                     for p in state.open_positions() if p.deployment_id == dep.id)
    pnl = float(dep.realized_pnl - dep.fees) + unrealised
    capital = float(dep.capital)
    return DeploymentSummary(dep.id, dep.strategy_id, dep.name, dep.version, list(dep.pairs), float(dep.allocation),
                             dep.trades, dep.wins, round(pnl, 2), round(pnl / capital * 100, 4) if capital else 0.0,
                             round(marks.max_drawdown.get(dep.id, 0.0), 6), dep.state.value,
                             dep.state_reason, path)


_TIMELINE_KINDS = {EventKind.ALERT_RAISED, EventKind.TRADING_STATE_CHANGED, EventKind.BREACH_DETECTED,
                   EventKind.BREACH_CONFIRMED, EventKind.BREACH_AUTHORIZED, EventKind.ALLOCATION_STAGED,
                   EventKind.GATE, EventKind.DEPLOYMENT_STATE_CHANGED, EventKind.POSITIONS_HANDED_OVER}
_OUTCOME_WORDS = {"passed": "ok", "not_required": "not required"}


def timeline(ledger: Ledger) -> list[dict[str, Any]]:
    """What the desk decided, in order: deployments through the gates, alerts, the circuit breaker's steps,
    the lifecycle of deployments (scheduled, paused, removed, rolled back) and the desk's state changes."""
    from execdesk.lead.lifecycle import LIFECYCLE_REASONS

    out = []
    gates: dict[str, list[str]] = {}
    for e in ledger.events(_TIMELINE_KINDS):
        p = e.payload
        if e.kind is EventKind.GATE:
            words = p["reason"].split(":")[0] if p["gate"] == "risk" and p["outcome"] != "refused" else None
            seen = gates.setdefault(p["request_id"], [])
            seen.append(f"{p['gate']} {words or _OUTCOME_WORDS.get(p['outcome'], p['outcome'])}")
            if p["outcome"] in ("refused", "denied"):
                what = f"lead: {p['deployment_id']} -> {p['venue']} refused at the {p['gate']} gate: {p['reason']}"
            elif p["outcome"] == "pending":
                what = f"lead: {p['deployment_id']} -> {p['venue']} waits for a human: {p['reason']}"
            elif p["gate"] == "monitor":
                what = f"lead deploys {p['deployment_id']} -> {p['venue']}: {', '.join(seen)}"
            else:
                continue
        elif e.kind is EventKind.DEPLOYMENT_STATE_CHANGED:
            if p["reason"] not in LIFECYCLE_REASONS:  # the ladders' and protocols' changes have their alerts
                continue
            evidence = p.get("evidence") or {}
            who = f" by {evidence['by']}" if evidence.get("by") else ""
            because = f": {evidence['reason']}" if evidence.get("reason") else ""
            what = f"{p['deployment_id']} {p['from']} -> {p['to']} ({p['reason']}{who}{because})"
        elif e.kind is EventKind.POSITIONS_HANDED_OVER:
            pairs = ", ".join(f"{x['pair']} {x['qty']}" for x in p["positions"])
            what = f"lead hands {p['from']}'s positions over to {p['to']}: {pairs}"
        elif e.kind is EventKind.ALLOCATION_STAGED:
            if p["action"] not in ("promote", "fall_back"):  # holds are routine; a proposed removal is an alert
                continue
            what = f"risk stages {p['deployment_id']}: {p['reason']}"
        elif e.kind is EventKind.ALERT_RAISED:
            if p["level"] == "INFO":  # in the ledger and the alert files; the summary keeps to what matters
                continue
            what = f"[{p['level']}] {p['message']}"
        elif e.kind is EventKind.TRADING_STATE_CHANGED:
            what = f"desk {p['from']} -> {p['to']} ({p['reason']})"
        elif e.kind is EventKind.BREACH_CONFIRMED:
            if p.get("limit") == "manual":
                what = f"risk records equity {float(p['equity']):,.2f} for the kill switch"
            else:
                what = (f"risk {'confirms' if p['confirmed'] else 'does not confirm'} the breach on fresh equity "
                        f"{float(p['equity']):,.2f} (drawdown {float(p['drawdown']):.2%})")
        elif e.kind is EventKind.BREACH_AUTHORIZED:
            what = f"{'lead' if p['by'] == 'lead' else p['by']} authorizes: {p['action']} ({p['policy']})"
        elif p.get("by") == "human":
            what = f"kill switch pulled by {p.get('by_name', 'a human')}: {p['reason']}"
        else:
            what = f"monitor detects portfolio drawdown {p['drawdown']:.2%} >= {p['limit']:.0%}"
        out.append({"seq": e.seq, "time": pd.Timestamp(e.time, unit="s", tz="UTC").isoformat(), "kind": e.kind.value,
                    "deployment_id": e.deployment_id, "what": what})
    return out


def state_paths(ledger: Ledger) -> dict[str, str]:
    """Each deployment's states in order, e.g. ``ACTIVE -> REDUCING (drawdown_halt, circuit_breaker) -> HALTED
    (circuit_breaker)``."""
    paths: dict[str, list[tuple[str, list[str]]]] = {}
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED, EventKind.DEPLOYMENT_STATE_CHANGED}):
        dep = e.payload["deployment_id"]
        if e.kind is EventKind.DEPLOYMENT_CREATED:
            paths[dep] = [("ACTIVE", [])]
        elif paths[dep][-1][0] == e.payload["to"]:  # same state, another reason: say both
            paths[dep][-1][1].append(e.payload["reason"])
        else:
            paths[dep].append((e.payload["to"], [e.payload["reason"]]))
    return {dep: " -> ".join(f"{state} ({', '.join(reasons)})" if reasons else state for state, reasons in steps)
            for dep, steps in paths.items()}
