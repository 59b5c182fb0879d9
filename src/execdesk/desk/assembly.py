"""Assembling a desk from its one typed settings object (:class:`~execdesk.desk.settings.DeskConfig`).

:func:`build_market` makes the market view the config names (generated, a Freqtrade datadir, or an
exchange's candles); :func:`deploy_configured` configures the desk once and takes each strategy of the
config through the gated pipeline; :func:`build_loop` builds the lanes (from the ledger's deployments, each
as deployed), the venue, the alert router and the liaison, and the :class:`~execdesk.desk.loop.DeskLoop`.
Running it is :func:`execdesk.desk.runner.run_desk`'s.
"""

from __future__ import annotations

from collections.abc import Callable
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
from execdesk.desk.loop import DeskLoop, LoopVenue
from execdesk.desk.settings import DeskConfig, PairSection, RecordedDesk
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO
from execdesk.domain.types import AlertLevel, dec
from execdesk.errors import InvalidInput, Refused
from execdesk.lead.liaison import LiaisonCourier, build_liaison
from execdesk.monitor.alerts import Alert, AlertCourier, AlertRouter, JsonlSink, build_router
from execdesk.risk.config import DrawdownLadder
from execdesk.store.ledger import Ledger
from execdesk.strategy import StrategyBundle
from execdesk.venues.paper import PaperVenue, PaperVenueConfig

if TYPE_CHECKING:
    from execdesk.venues.ccxt_venue import CcxtVenue


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
        frames = generate_market(profiles, m.timeframe, m.start, m.end, config.desk.seed, m.shock_list(),
                                 m.regime_spans())
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
    (:mod:`execdesk.lead.deploy`) that is not deployed yet; a refused gate refuses the run (exit 3), unless the
    strategy's entry says ``if_refused: skip`` (the refusal recorded once, with a WARNING; the desk runs without it)."""
    from execdesk.lead.deploy import commit, plan_deployment, review_ahead

    state = ledger.state
    if state.config is None:
        ledger.record(Event(t, EventKind.DESK_CONFIGURED, {
            "config": config.canonical(), "identity": config.identity(), "quote": config.desk.quote,
            "capital": dec(config.desk.capital)}))
    elif recorded_identity(state.config) != config.identity():
        difference = _first_difference(recorded_identity(state.config), config.identity())
        raise InvalidInput(f"the home's ledger holds a desk configured differently ({difference}); "
                           "use another --home, or run the config the ledger was started with")
    refused: set[str] = set()  # (read only when an entry may have been skipped)
    if any(e.if_refused == "skip" for e in config.strategies):
        refused = {e.payload["deployment_id"] for e in ledger.events({EventKind.GATE})
                   if e.payload.get("outcome") == "refused"}
    todo = [(b, e) for b, e in zip(bundles, config.strategies, strict=True)
            if deployment_id(b) not in state.deployments
            and not (e.if_refused == "skip" and deployment_id(b) in refused)]  # (skipped once: skipped for good)
    if len(todo) > 1:
        review_ahead(home, [b for b, _e in todo])
    for _bundle, entry in todo:
        recorded = RecordedDesk.of(state)
        plan = plan_deployment(home, state, ledger, entry.bundle, recorded.venue_target(), entry.allocation,
                               risk=config.risk, now=t, by="config", reason="listed in the desk config",
                               drawdown=entry.drawdown.model_dump() if entry.drawdown is not None else None,
                               sizing=entry.sizing.model_dump(mode="json", exclude_none=True)
                               if entry.sizing is not None else None)
        commit(ledger, home, plan, t, recorded.facts(state, market_pairs), config.risk.staging,
               capital=config.desk.capital)
        refusal = plan.refusal
        if refusal is not None and entry.if_refused == "skip":
            alert = Alert(t, AlertLevel.WARNING, "lead", "deployment_refused", PORTFOLIO,
                          f"{plan.deployment_id}: the {refusal.gate} gate refused it: {refusal.reason}; the desk runs "
                          "without it (if_refused: skip)", {"deployment_id": plan.deployment_id, **refusal.as_dict()})
            ledger.record(Event(t, EventKind.ALERT_RAISED, alert.ledger_payload()))
        elif refusal is not None:
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
    from execdesk.lead.deploy import as_deployed

    by_config = {deployment_id(b): (b, e.drawdown) for b, e in zip(bundles, config.strategies, strict=True)}
    traded = str(RecordedDesk.of(ledger.state).venue_target())
    out = []
    for e in ledger.events({EventKind.DEPLOYMENT_CREATED}):
        p = e.payload
        if p.get("venue", "paper") != traded:
            continue
        if "bundle" not in p:  # recorded before deployments carried their bundle
            out.append(by_config[p["deployment_id"]])
            continue
        ladder = DrawdownLadder.model_validate(p["drawdown"]) if p.get("drawdown") else None
        out.append((as_deployed(p["bundle"], p.get("stoploss"), p.get("sizing")), ladder))
    return out


def _first_difference(recorded: dict[str, Any], wanted: dict[str, Any], path: str = "") -> str:
    for key in sorted(set(recorded) | set(wanted)):
        a, b = recorded.get(key), wanted.get(key)
        if a != b:
            if isinstance(a, dict) and isinstance(b, dict):
                return _first_difference(a, b, f"{path}{key}.")
            return f"{path}{key}: ledger has {a!r}, config has {b!r}"
    return "no difference"


def build_loop(ledger: Ledger, home: Path, config: DeskConfig, bundles: list[StrategyBundle], market: MarketView,
                progress: Callable[[int, int], None] | None, clock: Clock | None,
                remote: LoopVenue | None = None, courier: AlertCourier | None = None,
                liaison_courier: LiaisonCourier | None = None) -> DeskLoop:
    """The desk's loop as the config describes it. ``courier`` and ``liaison_courier`` (both or neither): the
    webhooks' workers — the alert router's and the liaison's — to share with the loops before and after this one
    (a live desk's, closed when the desk stops); by default the loop has its own, closed when its run ends
    (``alerts.drain_timeout``)."""
    if (courier is None) != (liaison_courier is None):
        raise ValueError("build_loop: give both couriers (the alerts' and the liaison's) or neither")
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
    wall = isinstance(the_clock, WallClock)
    loop = DeskLoop(ledger, market, lanes, venue, config.risk, the_clock, config.monitor.snapshot_seconds,
                    progress, ladders,
                    # messages to Validation, the Orchestrator and HR: HOME/outbox/<to>/, written on the loop's thread
                    # (and webhooks on a wall clock, posted off the loop by the liaison's courier)
                    liaison=build_liaison(config.liaison, home / "outbox", webhooks=wall, courier=(
                        liaison_courier if liaison_courier is not None
                        else LiaisonCourier(config.alerts.drain_timeout))),
                    drift_policy={str(k): str(v) for k, v in config.lead.drift_policy.items()},
                    control=home / "control", cycle_budget=config.monitor.cycle_budget,
                    human_authorizes=frozenset(config.lead.human_authorizes))
    # alerts: the config's sinks plus HOME/alerts.jsonl; webhooks only on a wall clock (a replay pages nobody),
    # posted off the loop by the courier, their failures recorded by the loop
    loop.router = desk_router(config, home, loop.record_alert, wall)
    loop.router.on_failure = loop.record_delivery_failure
    loop.router.courier = courier if courier is not None else AlertCourier(config.alerts.drain_timeout)
    loop.keep_courier = courier is not None
    return loop


def desk_router(config: DeskConfig, home: Path, record: Callable[[Alert], None], webhooks: bool) -> AlertRouter:
    """The desk's alert router: the config's sinks plus ``HOME/alerts.jsonl``."""
    router = build_router(config.alerts, record, webhooks=webhooks)
    router.sinks.append(JsonlSink(home / "alerts.jsonl"))
    return router


def post_unposted_messages(ledger: Ledger, home: Path, config: DeskConfig) -> None:
    """As the desk starts: the messages the commands on the stopped desk could not post (their webhook failed, or
    its variable was not set) posted again with the desk's liaison, waiting for each, what came of each recorded
    (:func:`execdesk.desk.effects.post_unposted`)."""
    from execdesk.desk.commands import desk_time
    from execdesk.desk.effects import post_unposted, unposted

    if unposted(ledger):
        post_unposted(ledger, build_liaison(config.liaison, home / "outbox", missing_ok=True),
                      desk_time(ledger.state))


def catch_up(ledger: Ledger, home: Path, config: DeskConfig) -> None:
    """What a desk killed after its last commit left undone — alert lines, outbox files — written from the ledger
    (a desk that runs does it as its loop starts; this is for one with nothing left to run)."""
    from execdesk.desk.effects import SideEffects

    router = desk_router(config, home, lambda _alert: None, webhooks=False)
    SideEffects(ledger, router, build_liaison(config.liaison, home / "outbox", webhooks=False)).catch_up()


