"""The desk's one loop: bar -> signals -> intent -> risk -> order manager -> venue -> fills -> ledger
-> monitor -> lead. The same loop runs a replay (a :class:`~execdesk.clock.ReplayClock`) and, bar by
bar as they close, a live feed (a :class:`~execdesk.clock.WallClock`).

The loop only stops at *eventful* bars: a lane's signal or exit condition, a resting order's fill
(on the paper venue: the first bar whose range reaches it, :func:`~execdesk.desk.resting.trigger_bar`), a
trailing stop resting at the venue to move, or a drawdown limit reached. The quiet bars between are still
evaluated, all at once: the lanes' signals were computed over every candle, and the monitor marks every bar to
market with numpy to find a breach (:mod:`execdesk.monitor.equity`). So a replay is exact bar by bar and fast.

Per eventful bar ``g``: resting orders fill at the bar's open; the monitor marks the close; the
lead reacts to breaches (halt entries, close a deployment, trip the circuit breaker); lanes due at
the close send intents through the risk manager to the order manager; the stops that rest at the venue
(a strategy's ``order_types.stoploss_on_exchange``) are placed, moved or cancelled as the positions now want
them (:meth:`DeskLoop._protect`); then the ledger is flushed
(with a progress event holding the monitor's watermarks) *before* the venue hears of new orders, and
only once the venue has them is the outside told what the bar's commits call for (alerts, messages:
:meth:`DeskLoop.run` holds the side effects until then) — the circuit breaker's closes go out before its
EMERGENCY alert reaches any sink. Webhooks are posted off the loop by couriers — the alert router's
(:class:`~execdesk.monitor.alerts.AlertCourier`) and the liaison's (:class:`~execdesk.lead.liaison.LiaisonCourier`:
the outbox file is written on the loop's thread, its post queued); the loop takes what they report back at each
bar's end (an alert's failed webhook recorded, a message's logged).

The loop is the engine, not a hub: it asks the roles with narrow inputs and applies their answers itself —
the monitor's findings (:meth:`DeskLoop.apply_findings`), the lead's decisions (:meth:`DeskLoop.act_on`), the
risk manager's verdicts (:meth:`DeskLoop.submit`). No role holds the loop.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from execdesk.backtest.lane import ExitPlan, Lane
from execdesk.clock import Clock, ReplayClock
from execdesk.data.feed import MarketView
from execdesk.desk.commands import REJECTED, apply_request, read_request, receive, set_aside
from execdesk.desk.effects import SideEffects, message_of, message_payload
from execdesk.desk.resting import STOP_REASONS, resting_stops, stop_wanted, trigger_bar
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import MARK_EVENTS, PORTFOLIO, Holding, Holdings, Snapshot, Watermarks, fold_marks
from execdesk.domain.state import FillRecord
from execdesk.domain.types import AlertLevel, Direction, IntentReason, OrderIntent, OrderType, TradingState, dec
from execdesk.errors import ExecdeskError, InvalidInput
from execdesk.execution.oms import OrderManager
from execdesk.lead.decisions import (
    CancelOpen,
    Decision,
    Decisions,
    HandedOver,
    Record,
    Reschedule,
    SendMessage,
    Submit,
    SubmitExits,
    Supersede,
)
from execdesk.lead.liaison import Liaison
from execdesk.lead.lifecycle import supersede
from execdesk.lead.outbox import KINDS, Message, OutboxConflict
from execdesk.lead.protocols import Lead, LeadSettings
from execdesk.monitor.alerts import Alert, AlertRouter, SinkResult
from execdesk.monitor.equity import Monitor
from execdesk.monitor.watch import Cleared, Finding, Watch
from execdesk.retry import RetryPolicy
from execdesk.risk.config import DrawdownLadder, RiskConfig
from execdesk.risk.pretrade import Context, PreTrade, Verdict
from execdesk.risk.sizing import atr_series
from execdesk.store.ledger import Ledger
from execdesk.venues.base import Venue, VenueOrder
from execdesk.venues.paper import PaperVenue

NEVER = np.iinfo(np.int64).max


def _request_order(path: Path) -> tuple[int, str]:
    """Requests in the order they were made (a link or a file gone meanwhile: first, to be set aside)."""
    try:
        return (path.lstat().st_mtime_ns, path.name)
    except OSError:
        return (0, path.name)


class LoopVenue(Venue, Protocol):
    """What the loop asks of its venue beyond the order manager's :class:`~execdesk.venues.base.Venue`: the
    paper venue's bar hooks (a remote venue's are no-ops, see :class:`~execdesk.desk.assembly.RemoteVenue`)."""

    @property
    def config(self) -> Any: ...  # has fee_bps

    def restore(self, state: Any) -> None: ...

    def pending_pairs(self) -> set[str]: ...

    def on_bar(self, pair: str, time: int, open_: float, high: float, low: float, close: float, volume: float,
               /) -> Any: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class LoopStats:
    bars: int = 0
    eventful_bars: int = 0
    evaluations: int = 0
    orders: int = 0
    denied: int = 0
    fills: int = 0
    monitor_cycles: int = 0  # the monitor's work per eventful bar (fills, snapshots, checks), timed
    monitor_seconds: float = 0.0
    monitor_max_s: float = 0.0

    def plus(self, other: LoopStats) -> LoopStats:
        """This run's figures followed by ``other``'s (a restarted loop): bars reached, the rest added."""
        return LoopStats(max(self.bars, other.bars), self.eventful_bars + other.eventful_bars,
                         self.evaluations + other.evaluations, self.orders + other.orders,
                         self.denied + other.denied, self.fills + other.fills,
                         self.monitor_cycles + other.monitor_cycles, self.monitor_seconds + other.monitor_seconds,
                         max(self.monitor_max_s, other.monitor_max_s))

    def monitor_figures(self) -> dict[str, float | int]:
        return {"cycles": self.monitor_cycles, "seconds": round(self.monitor_seconds, 6),
                "mean_ms": round(self.monitor_seconds / self.monitor_cycles * 1000, 4) if self.monitor_cycles else 0.0,
                "max_ms": round(self.monitor_max_s * 1000, 4)}


#: the upper bounds (seconds) of the bar-latency histogram's buckets (then +Inf)
BAR_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BarTimes:
    """The loop's work per eventful bar (its waits for the bar's open and close left out) as a histogram, for
    ``execdesk serve``'s ``/metrics``, which runs in another process: written to ``HOME/metrics/loop.json``
    (a temporary file renamed over it) at most once a second of wall time and when a run ends, carried on from
    the file a run before left (one desk per home: the counts only grow). Not part of the ledger, and nothing the
    desk decides reads it; a file that cannot be written is skipped (the desk trades on)."""

    EVERY_S = 1.0

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts = [0] * (len(BAR_BUCKETS) + 1)  # per bucket (not cumulative), the last one +Inf
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self.run_seconds = 0.0  # the loop's wall time in the runs before this one
        self.runs = 0
        self._began = time.perf_counter()
        self._written = time.monotonic()
        if path is not None:
            self._carry_on(path)

    def _carry_on(self, path: Path) -> None:
        try:
            data = json.loads(path.read_bytes())
            bars = data["bar_seconds"]
            if bars["le"] != list(BAR_BUCKETS) or len(bars["counts"]) != len(self.counts):
                return
            self.counts = [int(c) for c in bars["counts"]]
            self.count, self.sum, self.max = int(bars["count"]), float(bars["sum"]), float(bars["max"])
            self.run_seconds, self.runs = float(data["run_seconds"]), int(data["runs"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # none yet, or not one this version reads: counted afresh

    def begin(self) -> None:
        self._began = time.perf_counter()
        self.runs += 1

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BAR_BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds
        self.count += 1
        self.sum += seconds
        self.max = max(self.max, seconds)

    def tick(self, bars_done: int, bars: int) -> None:
        """Write the file if a second has passed since it was last written."""
        if self.path is not None and time.monotonic() - self._written >= self.EVERY_S:
            self.write(bars_done, bars, final=False)

    def write(self, bars_done: int, bars: int, final: bool) -> None:
        """``bars_done`` of the run's ``bars``; ``final``: the run is over (not a loop rebuilt to carry on)."""
        if self.path is None:
            return
        self._written = time.monotonic()
        data = {"pid": os.getpid(), "updated_at": time.time(), "final": final, "runs": self.runs,
                "run_seconds": round(self.run_seconds + time.perf_counter() - self._began, 6),
                "bars_done": bars_done, "bars": bars,
                "bar_seconds": {"le": list(BAR_BUCKETS), "counts": self.counts, "count": self.count,
                                "sum": self.sum, "max": self.max}}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(exist_ok=True)
            temp.write_text(json.dumps(data))
            temp.replace(self.path)
        except OSError:
            return  # metrics only: the desk does not stop for them

    def end(self, bars_done: int, bars: int, final: bool) -> None:
        """A run's end: the file written, this run's wall time added to the runs before."""
        self.write(bars_done, bars, final)
        self.run_seconds += time.perf_counter() - self._began
        self._began = time.perf_counter()


@dataclass(frozen=True, slots=True)
class _Amend:
    """A visit to move a trailing stop resting at the venue (the lane's candle closes: the stop may have moved)."""


@dataclass(frozen=True, slots=True)
class _Timeout:
    """A visit to a limit exit still open after its timeout: cancelled, the exit sent at market."""

    client_order_id: str


_AMEND = _Amend()


@dataclass(slots=True)
class _LaneSlot:
    lane: Lane
    next_g: int = NEVER
    plan: ExitPlan | tuple[int, Direction] | _Amend | _Timeout | None = None


@dataclass
class DeskLoop:
    """Runs lanes over a :class:`MarketView` against one venue, recording everything in the ledger."""

    ledger: Ledger
    market: MarketView
    lanes: Sequence[Lane]
    venue: LoopVenue
    risk: RiskConfig
    clock: Clock
    snapshot_every: int = 86_400
    progress: Callable[[int, int], None] | None = None
    ladders: Mapping[str, DrawdownLadder] = field(default_factory=dict)
    retry: RetryPolicy | None = None
    alerts: AlertRouter | None = None  # default: alerts recorded in the ledger only
    liaison: Liaison | None = None  # default: messages recorded in the ledger only (no outbox files)
    drift_policy: Mapping[str, str] = field(default_factory=dict)  # over the lead's default (lead.DRIFT_POLICY)
    control: Path | None = None  # a folder where the lead's commands leave their requests for a running desk
    stats: LoopStats = field(default_factory=LoopStats)
    restart: bool = False  # set when a request changed the deployments: the desk rebuilds the loop and carries on
    cycle_budget: float = 0.05  # the share of a bar one monitoring cycle may take (see MonitorSection)
    human_authorizes: frozenset[str] = frozenset()  # ladder steps below EMERGENCY a human authorizes (LeadSection)
    end_reports: bool = True  # the run's end sends its reports (a live desk: only its last run's)
    # the couriers (the router's and the liaison's) outlive this loop (a live desk's loops share them, closed when the
    # desk stops): the run's end takes what they have finished, but does not close them (see close_alerts)
    keep_courier: bool = False

    def __post_init__(self) -> None:
        self.oms = OrderManager(self.ledger, self.venue, self.retry)
        self.router: AlertRouter = self.alerts if self.alerts is not None else AlertRouter([], self.record_alert)
        self._effects: SideEffects | None = None  # while running: the side effects held until the bar's orders are out
        close_times = self.market.time + self.market.tf_seconds
        self.monitor = Monitor(self.market.close_matrix, (close_times % self.snapshot_every) == 0)
        self.lead = Lead(self.ledger, self.market, LeadSettings(
            self.risk, self.ladders, {lane.deployment_id: float(lane.bundle.stoploss) for lane in self.lanes},
            self.human_authorizes, self.drift_policy), self.liaison)
        self._slots = [_LaneSlot(lane) for lane in self.lanes]
        self._slot_of: dict[tuple[str, str], list[int]] = {}  # (deployment, pair) -> its lanes' indices
        for i, slot in enumerate(self._slots):
            self._slot_of.setdefault((slot.lane.deployment_id, slot.lane.pair), []).append(i)
        # the strategies that size their entries their own way (the bundle's sizing), by (deployment, pair)
        self._sized = {(lane.deployment_id, lane.pair): lane for lane in self.lanes if lane.bundle.sizing}
        self._atr: dict[tuple[str, str], np.ndarray] = {}  # their ATR per candle, computed once
        # the lanes whose stoploss rests at the venue (order_types.stoploss_on_exchange), by index
        self._protected = [i for i, s in enumerate(self._slots)
                           if s.lane.bundle.order_types is not None and s.lane.bundle.order_types.stoploss_on_exchange]
        self._triggers: dict[str, tuple[int, Decimal]] = {}  # resting orders: coid -> (trigger bar, filled then)
        self._holdings: Holdings | None = None
        state = self.ledger.state
        deployments = list(dict.fromkeys([*state.deployments, *(lane.deployment_id for lane in self.lanes)]))
        # the market's pairs, then those only a Freqtrade bot trades (the desk has no candles for them: a bot's
        # position there is valued at its cost, see _book_prices)
        pairs = list(self.market.pairs)
        pairs += sorted({p for d in state.deployments.values() for p in d.pairs} - set(pairs))
        self.pretrade = PreTrade(self.risk, deployments, pairs, dec(self.venue.config.fee_bps) / 10000,
                                 float(state.cash()))
        self._marked_g = -1
        self._over_budget = False
        self._t0 = 0  # the time of the run's first bar
        self._starts: list[tuple[int, str]] = []  # scheduled deployments: (start time, id), soonest first
        self._settle_at: int | None = None  # the bar at which the lead settles what a stopped desk left closing
        self._protect_at: int | None = None  # the run's first bar, when stops may rest (see _protect)
        self._bots_each_bar = False  # a desk on the wall's time with Freqtrade bots: their trades taken every bar
        self._resting = False  # whether any order other than a market order was ever sent (then poll them)
        self._sent: dict[str, str] | None = None  # the messages the ledger holds, by id (see send_message)
        self._adopted: list[FillRecord] = []  # fills the reconciliation at the run's start adopted
        self._adopted_at: int | None = None  # the bar they are news at (the run's first)
        self.bar_times = BarTimes(self.control.parent / "metrics" / "loop.json" if self.control is not None else None)

    # ---------------------------------------------------------------- driving
    def run(self) -> LoopStats:
        """Process every bar after the last one the ledger has seen; return what was done. The desk's side effects
        (alert sinks, outbox files) follow the ledger's commits meanwhile (:mod:`execdesk.desk.effects`), each bar's
        once its orders are with the venue; at the end what is still held is carried out and, unless
        :attr:`keep_courier`, the webhooks' couriers closed (:meth:`close_alerts`)."""
        effects = SideEffects(self.ledger, self.router, self.liaison)
        effects.attach(hold=True)  # (flushes the ledger)
        self._effects = effects
        self._messages_sent()
        self.bar_times.begin()
        ok = False
        try:
            stats = self._run()
            ok = True
            return stats
        finally:
            self._effects = None
            effects.detach()  # (carries out what the last commits call for)
            if self.keep_courier:
                self._collect_deliveries()
            else:
                self.close_alerts(flush=False)
            if ok:
                self.ledger.flush()  # (the delivery failures just recorded, if any)
            self.bar_times.end(self._bars_done(), self.market.n, final=not self.restart)

    def close_alerts(self, flush: bool = True) -> None:
        """Close the webhooks' couriers — the router's and the liaison's, within one wait of at most the drain
        timeout — then record what the router's reports (a failure, or a delivery left queued or in flight) as
        ``alert.delivery_failed`` (each is logged too); ``flush`` commits them. A message's post that failed or was
        left over is logged, as a failed post always was (the ledger holds the message: ``lead.message_sent``).
        After an error (``flush=False``) the alerts' are only logged too: the ledger keeps what was flushed before
        the error, as after a crash."""
        courier = self.router.courier
        until = courier.deadline() if courier is not None else None  # (one bounded wait for both)
        self.router.close_courier(until=until)
        if self.liaison is not None:
            self.liaison.close_courier(until=until)
        if flush:
            self.ledger.flush()

    def _run(self) -> LoopStats:
        state = self.ledger.state
        start = 0 if state.last_bar_time is None else int(np.searchsorted(self.market.time, state.last_bar_time,
                                                                            side="right"))
        if state.last_bar_time is not None:
            self.monitor.marks = fold_marks(self.ledger.events(set(MARK_EVENTS)))
            if start >= self.market.n > 0:  # resumed after its last bar: the equity it was marked at, again
                self.monitor.marks.last_equity.update(self.monitor.equity_at(self.holdings(), self.market.n - 1))
        self.venue.restore(state)
        self.oms.reset_cursor()
        self._resting = any(o.type != "MARKET" for o in state.open_orders())
        self._bots_each_bar = (self.control is not None and not isinstance(self.clock, ReplayClock)
                               and any(d.venue == "freqtrade" and d.state is not TradingState.HALTED
                                       for d in state.deployments.values()))
        # the run so far, as the monitor saw it (with the venue's model of its quoted spread, the paper venue's)
        self.watch = Watch(self.ledger, self.market, self.venue.name,
                           spreads=getattr(self.venue, "quoted_spreads", None))
        report = self.oms.reconcile(self._time(start))
        # fills the venue made while the desk was down (at the open of this bar, or before): news to the monitor and
        # the lead at the run's first bar, as they would have been had the desk not stopped
        self._adopted = [state.fills[f] for f in report.adopted_fills]
        self._adopted_at = start if self._adopted else None
        self.act_on(self.lead.on_reconciled(report, self._time(start)))
        self.pretrade.rebuild(state, self._book_prices(max(start - 1, 0)), self._time(start))
        self._starts = self.lead.scheduled_starts()
        self.record(Event(self._time(start), EventKind.RUN_STARTED, {
            "from_bar": start, "bars": self.market.n,
            "until": self.market.close_time(self.market.n - 1) if self.market.n else None}))
        # the run's first bar: a run resumed after a crash carries on the one it interrupted
        self._t0 = state.run_began_at if state.run_began_at is not None else self._time(start)
        self.watch.start_at(int(np.searchsorted(self.market.time, self._t0)))
        for i in range(len(self._slots)):
            self._schedule(i, start - 1)
        cur = start - 1
        n = self.market.n
        # what a stopped desk was told to close (remove, a new version, rollback) closes at the run's first bar
        self._settle_at = start if start < n and self.lead.needs_settling() else None
        # the stops resting at the venue as the ledger wants them now (a pause or a kill made while it was stopped)
        self._protect_at = start if start < n and self._protected else None
        while cur < n - 1 and not self.restart:
            nxt = min(self._next_event(cur), n)
            if nxt > cur + 1:
                stop = self._quiet_stretch(cur + 1, nxt - 1)
                if stop is not None:
                    cur = stop
                    continue
            if nxt >= n:
                cur = n - 1
                break
            self._bar(nxt)
            cur = nxt
        if self.restart:
            self.ledger.flush()
            return self.stats
        if n and not isinstance(self.clock, ReplayClock):
            self.apply_findings(self.watch.check_stale(int(self.market.time[n - 1]), int(self.clock.now()),
                                                       self.market.tf_seconds))
            if start < n:
                self._read_quotes(n - 1)
        if n:
            # every lane candle closing in this run's bars was evaluated (most of them in vectorised stretches)
            self.stats.evaluations = sum(s.lane.evaluations_from(start) for s in self._slots)
            if start < n:  # (a run resumed after its last bar was recorded has no progress to add)
                self.record(Event(self.market.close_time(n - 1), EventKind.RUN_PROGRESS, self._progress(n - 1)))
        if n and self.end_reports:
            state = self.ledger.state
            self.send_message(self.market.close_time(n - 1), "portfolio_status", "portfolio",
                              f"desk {state.trading_state.value} ({state.trading_reason}); cash {state.cash():.2f} "
                              f"{state.quote}; {len(state.open_positions())} open positions", {
                                  "trading_state": state.trading_state.value, "reason": state.trading_reason,
                                  "cash": str(state.cash()), "open_positions": len(state.open_positions()),
                                  "max_drawdown": self.monitor.marks.max_drawdown.get(PORTFOLIO, 0.0),
                                  "deployments": {d.id: {"state": d.state.value, "reason": d.state_reason,
                                                         "trades": d.trades} for d in state.deployments.values()}})
            self._report_validation(self.market.close_time(n - 1))
            self._report_team(self.market.close_time(n - 1))
        if n:
            state = self.ledger.state  # the run's orders and fills, a run it resumed after a crash included
            orders = sum(1 for o in state.orders.values() if o.created_at >= self._t0)
            fills = sum(1 for f in state.fills.values() if f.time >= self._t0)
            self.record(Event(self.market.close_time(n - 1), EventKind.RUN_COMPLETED, {
                "bars": n, "orders": orders, "fills": fills,
                "marks": self.monitor.marks.as_payload()}))
        self.ledger.flush()
        return self.stats

    def record(self, event: Event) -> Event:
        return self.ledger.record(event)

    def _report_validation(self, t: int) -> None:
        """The run's end: Validation's live feedback, per deployment the monitor compares with its backtest and
        that still trades or traded in this run: its live figures next to the backtest's, rule by rule."""
        state = self.ledger.state
        traded = {f.deployment_id for f in state.fills.values() if f.time >= self._t0}
        for assessment in self.watch.assessments():
            dep = state.deployments[assessment.deployment]
            if dep.state is TradingState.HALTED and dep.id not in traded:
                continue
            data = assessment.as_dict()
            off = [f["metric"] for f in data["findings"] if f["status"] != "ok"]
            self.send_message(t, "live_feedback", dep.id,
                              f"{dep.strategy_id} v{dep.version}: {dep.trades} live trades, {dep.wins} won; drift "
                              f"verdict {data['verdict']}" + (f" ({', '.join(off)} off the backtest)" if off else ""),
                              {"strategy_id": dep.strategy_id, "version": dep.version, "state": dep.state.value,
                               "reason": dep.state_reason, "trades": dep.trades, "wins": dep.wins,
                               "realized_pnl": str(dep.realized_pnl - dep.fees), **data})

    def _report_team(self, t: int) -> None:
        """The run's end: the team's performance to HR (the ledger's figures; the run's own timings and the
        venue's rate limits in the body), and a capacity flag for a venue that rate-limited the desk."""
        from execdesk.lead.team import team_performance

        retry = self.oms.retry
        if retry.rate_limited:
            self.send_message(t, "capacity_flag", "executor", f"the venue rate-limited the desk {retry.rate_limited} "
                              "time(s) this run", {"flag": "venue_rate_limited", "venue_retries": retry.retries,
                                                   "venue_rate_limited": retry.rate_limited})
        self.ledger.flush()
        team = team_performance(self.ledger)
        ex, risk, mon = team["order_executor"], team["risk_manager"], team["monitor"]
        flags = ", ".join(team["capacity_flags"]) or "none"
        summary = (f"{team['deployments']} deployments; signal generator: {team['signal_generator']['intents']} "
                   f"intents; risk: {risk['orders_denied']} denied, {risk['breaches_prevented']} breaches prevented; "
                   f"executor: {ex['orders']} orders, fill ratio {ex['fill_ratio']}; monitor: "
                   f"{sum(mon['alerts'].values())} alerts; capacity flags: {flags}")
        self.send_message(t, "team_performance", "team", summary, team)

    def send_message(self, t: int, kind: str, subject: str, summary: str, body: dict[str, Any],
                     options: tuple[str, ...] = (), key: str = "") -> Message:
        """A message to the outside (Validation, the Orchestrator, HR), recorded whole as ``lead.message_sent``;
        its files are written to the outbox (and posted, when configured) once the event is committed
        (:mod:`execdesk.desk.effects`).

        Idempotent by id: the same message again (a resumed run re-sending what its killed run had committed) is
        not recorded twice; a different one under a taken id (a report with a later run's own figures) is sent
        under the next free key instead."""
        message = Message(t, KINDS[kind], kind, subject, summary, body, options, key)
        sent = self._messages_sent()
        for resend in range(1, 100):
            earlier = sent.get(message.id)
            if earlier is None:
                break
            if earlier == message.to_json():
                return message
            message = Message(t, KINDS[kind], kind, subject, summary, body, options, f"{key}resent-{resend}")
        else:
            raise OutboxConflict(f"{kind} {subject} at {t}: 99 different messages under one name already")
        sent[message.id] = message.to_json()
        files = self.liaison.outbox.names(message) if self.liaison is not None else []  # (the same event in any home)
        self.record(Event(t, EventKind.MESSAGE_SENT, message_payload(message, files),
                          subject if subject in self.ledger.state.deployments else None))
        return message

    def _messages_sent(self) -> dict[str, str]:
        """Every message the ledger holds, by id (its JSON): read when the loop starts (the ledger is flushed
        then: a flush inside a bar would commit half of it), kept up to date by :meth:`send_message`."""
        if self._sent is None:
            self._sent = {}
            for e in self.ledger.events({EventKind.MESSAGE_SENT}):
                message = message_of(e)
                if message is not None:
                    self._sent[message.id] = message.to_json()
        return self._sent

    def act_on(self, decisions: Decisions) -> None:
        """Apply the lead's decisions, each before the lead is asked for the next (it sees the state its earlier
        decisions made); what applying one returns is sent back to the lead."""
        answer: Any = None
        while True:
            try:
                decision = decisions.send(answer)
            except StopIteration:
                return
            answer = self._apply(decision)

    def _apply(self, decision: Decision) -> Any:
        if isinstance(decision, Record):
            return self.record(decision.event)
        if isinstance(decision, Alert):
            return self.router.raise_(decision)
        if isinstance(decision, SubmitExits):
            return self.submit_exits(decision.intents, decision.g)
        if isinstance(decision, Submit):
            return self.submit(decision.intent, decision.g)
        if isinstance(decision, CancelOpen):
            self.oms.cancel_open(decision.time, decision.reason, decision.deployment_id,
                                 entries_only=decision.entries_only)
            self.after_cancels()
            return None
        if isinstance(decision, Reschedule):
            return self.reschedule_all(decision.g)
        if isinstance(decision, SendMessage):
            return self.send_message(decision.time, decision.kind, decision.subject, decision.summary, decision.body,
                                     decision.options, decision.key)
        if isinstance(decision, Supersede):
            return supersede(self.ledger, decision.old, decision.new, decision.time, decision.positions, decision.by)
        if isinstance(decision, HandedOver):
            return self.after_handovers(decision.seq_before, decision.g)
        if self.control is None:  # CloseBots: a desk without a home has no bots
            return None
        from execdesk.freqtrade.fleet import close_all_bots

        return close_all_bots(self.control.parent, list(decision.deployments), decision.reason)

    def raise_alert(self, t: int, level: AlertLevel, code: str, message: str, evidence: dict[str, Any],
                    deployment_id: str | None = None, source: str = "lead", news: bool = False) -> None:
        """An alert of the desk's own (the engine's, or a command's refusal), routed like the roles'. ``news``: it
        tells of an event, not a condition, so the next of its kind is news too (never suppressed as standing)."""
        alert = Lead.alert(t, level, code, message, evidence, deployment_id, source)
        self.router.raise_(alert)
        if news:
            self.router.clear(alert.code, alert.scope)

    @property
    def marks(self) -> Watermarks:
        """The monitor's watermarks (peaks, worst drawdowns, last equity per scope)."""
        return self.monitor.marks

    @marks.setter
    def marks(self, value: Watermarks) -> None:
        self.monitor.marks = value

    def sync_bots(self, g: int, sync: Callable[[], Any] | None = None) -> None:
        """The Freqtrade bots' trades into the ledger (``sync``, default :func:`~execdesk.freqtrade.fleet.sync` of
        every bot of the desk; a bot that does not answer is left for the next bar): the monitor watches the new
        fills and the risk book counts them, so every cap sees the bots' positions (a desk on the wall's time does
        this at every bar; ``execdesk bots sync`` asks for it)."""
        before = set(self.ledger.state.fills)
        if sync is not None:
            sync()
        elif self.control is not None:
            from execdesk.freqtrade.fleet import sync as sync_all

            try:
                sync_all(self.ledger, self.control.parent)
            except ExecdeskError as exc:  # a bot folder gone or unreadable: the desk runs on, the alert stands
                self.raise_alert(self.market.close_time(g), AlertLevel.WARNING, "bots_unreadable",
                                 f"the desk could not take its Freqtrade bots' trades: {exc}", {"error": str(exc)},
                                 source="executor")
        state = self.ledger.state
        booked = [f for c, f in state.fills.items() if c not in before]
        if booked:
            self.watch_fills(self.market.close_time(g), booked)
            self.rebuild_books(g)

    def watch_fills(self, t: int, fills: Sequence[FillRecord]) -> None:
        """Fills booked outside the bar's own (a bot's trades): the monitor watches them."""
        self.apply_findings(self.watch.on_fills(t, fills))

    def apply_findings(self, findings: Sequence[Finding]) -> None:
        """The monitor's findings, in the order it found them: alerts routed (recorded, sent unless standing),
        standing conditions cleared, changed verdicts recorded and handed to the lead."""
        for f in findings:
            if isinstance(f, Alert):
                self.router.raise_(f)
            elif isinstance(f, Cleared):
                self.router.clear(f.code, f.scope)
            else:
                self.record(f.event)
                self.act_on(self.lead.on_drift(f.event.time, f.deployment_id, f.verdict, f.findings, f.trades))

    def record_delivery_failure(self, alert: Alert, result: SinkResult) -> None:
        """A sink could not deliver an alert after its retries: ``alert.delivery_failed`` (which alert, which sink,
        the attempts, the HTTP status, the redacted error) — ``execdesk status`` shows them."""
        self.record(Event(alert.time, EventKind.ALERT_DELIVERY_FAILED, {
            "code": alert.code, "scope": alert.scope, "level": alert.level.value, "sink": result.sink,
            "attempts": result.attempts, "status": result.status, "error": result.error}, alert.deployment_id))

    def record_alert(self, alert: Alert) -> None:
        """What the alert router calls for every alert it sends: the ledger's ``alert.raised``."""
        self.record(Event(alert.time, EventKind.ALERT_RAISED, alert.ledger_payload(), alert.deployment_id))

    # ---------------------------------------------------------------- bars
    def _pending_control(self) -> bool:
        return self.control is not None and self.control.is_dir() and any(self.control.glob("*.json"))

    def _quiet_stretch(self, a: int, b: int) -> int | None:
        """Bars a..b where nothing trades: mark to market in one go; stop at a breach.

        On a wall clock only bars that have closed are looked at: the stretch is taken in pieces,
        waiting for each piece's last bar to close.
        """
        while a <= b:
            if self._pending_control() or self._bots_each_bar:  # a human's request is acted on at the next bar, not
                self._bar(a)  # after the stretch; the bots' trades are taken at every bar
                return a
            last = self._closed_until(a, b)
            stop, breaches, snaps = self.monitor.advance(self.holdings(), a, last, self.lead.armed_limits())
            self._record_snapshots(snaps)
            if stop is not None:
                self.stats.bars = stop + 1
                self.clock.wait_until(self.market.close_time(stop))
                self.act_on(self.lead.on_breaches(stop, breaches))
                self._end_bar(stop, eventful=True)
                return stop
            self.stats.bars = last + 1
            self._report_progress(last)
            if not isinstance(self.clock, ReplayClock):  # a desk on the wall's time says how far it got as bars
                # close (``execdesk status``'s last bar), and what it noted is on disk for any reader
                self.record(Event(self.market.close_time(last), EventKind.RUN_PROGRESS, self._progress(last)))
                self.ledger.flush()
                if self._effects is not None:  # nothing trades in a quiet stretch: what it committed goes out now
                    self._effects.release()
            a = last + 1
        return None

    def _closed_until(self, a: int, b: int) -> int:
        """The last bar in a..b that has closed by the clock (waiting for bar ``a`` if need be)."""
        if isinstance(self.clock, ReplayClock):
            return b
        self.clock.wait_until(self.market.close_time(a))
        closed = int(np.searchsorted(self.market.time + self.market.tf_seconds, self.clock.now(), side="right")) - 1
        return max(a, min(b, closed))

    def _bar(self, g: int) -> None:
        seq_before = self.ledger.state.last_seq
        self.stats.eventful_bars += 1
        self.stats.bars = g + 1
        self.clock.wait_until(int(self.market.time[g]))
        began = time.perf_counter()
        self._fill_at_open(g)
        waited = time.perf_counter()
        self.clock.wait_until(self.market.close_time(g))
        waited = time.perf_counter() - waited
        _stop, breaches, snaps = self.monitor.advance(self.holdings(), g, g, self.lead.armed_limits())
        self._record_snapshots(snaps)
        if breaches:
            self.act_on(self.lead.on_breaches(g, breaches))
        self._controls(g)
        if self._bots_each_bar:
            self.sync_bots(g)
        self.act_on(self.lead.check_answers(g))
        if self._settle_at == g:
            self._settle_at = None
            self.act_on(self.lead.settle(g))
        if self._starts and self._starts[0][0] <= self.market.close_time(g):
            self.act_on(self.lead.start_due(g, self._starts))
        for i, slot in enumerate(self._slots):
            if slot.next_g == g:
                self._act_on_lane(i, g)
        adopted, self._adopted_at = self._adopted_at == g, None if self._adopted_at == g else self._adopted_at
        self._end_bar(g, eventful=self.ledger.state.last_seq != seq_before or adopted)
        self.bar_times.observe(time.perf_counter() - began - waited)

    def _controls(self, g: int) -> None:
        """Requests the lead's commands left for the running desk (``execdesk kill``, ``deploy``, ``approve``,
        ``pause``, ``resume``, ``remove``, ``rollback``): acted on at the bar the loop is at, in the order they
        were made, each request moved to ``done/`` once it is in the ledger."""
        if self.control is None or not self.control.is_dir():
            return
        for path in sorted(self.control.glob("*.json"), key=_request_order):
            try:
                request = read_request(path, self.control.parent)
            except InvalidInput as exc:  # moved aside with its reason, an alert; the desk keeps running
                moved = set_aside(path, str(exc))
                self.raise_alert(self.market.close_time(g), AlertLevel.WARNING, "request_rejected",
                                 f"a request in control/ was set aside: {exc}",
                                 {"file": path.name, "moved_to": f"{REJECTED}/{moved.name}", "reason": str(exc)},
                                 news=True)
                self.ledger.flush()
                continue
            request["action"] = "kill" if path.name.startswith("kill-") else str(request["action"])
            if receive(self.ledger, self.market.close_time(g), request["action"], request):
                apply_request(self, g, request)  # (else applied before: the desk stopped before it moved it)
            self.ledger.flush()
            done = self.control / "done"
            done.mkdir(exist_ok=True)
            path.replace(done / path.name)
            if self.restart:
                return

    def _end_bar(self, g: int, eventful: bool) -> None:
        if self._protected:
            self._protect_at = None
            seq = self.ledger.state.last_seq
            self._protect(g)
            eventful = eventful or self.ledger.state.last_seq != seq
        if eventful:
            self.record(Event(self.market.close_time(g), EventKind.RUN_PROGRESS, self._progress(g)))
        self.oms.send(self.market.close_time(g))
        if self._effects is not None:  # the bar's orders are with the venue: now the outside is told
            self._effects.release()
        self._timed(g, self.watch.after_bar, self.market.close_time(g), self.oms.stats.venue_errors)
        self._report_progress(g)

    def _read_quotes(self, g: int) -> None:
        """A venue with a book of its own (an exchange): its top of book for every pair as bar ``g`` closed, read
        through the order manager's retries and recorded (``market.quoted``: bid, ask and spread per pair, and why a
        pair could not be read), then handed to the monitor (a spread widening)."""
        top_of_book = getattr(self.venue, "top_of_book", None)
        if top_of_book is None:
            return
        quotes: dict[str, dict[str, Any]] = {}
        unread: dict[str, str] = {}
        for pair in sorted(self.market.pairs):
            try:
                q = self.oms.retry.call(partial(top_of_book, pair))
            except ExecdeskError as exc:  # (a temporary error after its retries, or a refusal) no reading this bar
                unread[pair] = str(exc)
                continue
            quotes[pair] = {"bid": q.bid, "ask": q.ask, "spread_bps": round(q.spread_bps, 10)}
        event = self.record(Event(self.market.close_time(g), EventKind.QUOTED, {
            "bar_time": int(self.market.time[g]), "quotes": quotes, **({"unread": unread} if unread else {})}))
        self._timed(g, self.watch.on_quotes, event)

    def _timed(self, g: int, fn: Callable[..., list[Finding]], *args: Any) -> None:
        """One piece of the monitor's cycle, timed with its findings applied; a piece over its budget
        (``cycle_budget`` of a bar) flags the monitor as saturated, once a run: a WARNING and a capacity flag
        to HR."""
        started = time.perf_counter()
        self.apply_findings(fn(*args))
        took = time.perf_counter() - started
        stats = self.stats
        stats.monitor_cycles += 1
        stats.monitor_seconds += took
        stats.monitor_max_s = max(stats.monitor_max_s, took)
        budget = self.cycle_budget * self.market.tf_seconds
        if took > budget and not self._over_budget:
            self._over_budget = True
            t = self.market.close_time(g)
            evidence = {"seconds": round(took, 6), "budget_s": budget, "bar_seconds": self.market.tf_seconds,
                        "deployments": len(self.ledger.state.deployments)}
            self.raise_alert(t, AlertLevel.WARNING, "monitor_cycle_over_budget",
                                  f"a monitoring cycle took {took:.2f} s, over its budget of {budget:.2f} s "
                                  f"({self.cycle_budget:.0%} of a bar)", evidence, source="monitor")
            self.send_message(t, "capacity_flag", "monitor", "the monitor is saturated: a cycle took "
                              f"{took:.2f} s (budget {budget:.2f} s)", {"flag": "monitor_cycle_over_budget",
                                                                       **evidence})

    def _bars_done(self) -> int:
        return max(self.stats.bars, self.ledger.state.bars_done)

    def _collect_deliveries(self) -> None:
        """What the couriers' webhooks came to, as they come: an alert's failure recorded, a message's logged."""
        self.router.collect()
        if self.liaison is not None:
            self.liaison.collect()

    def _report_progress(self, g: int) -> None:
        self._collect_deliveries()
        self.bar_times.tick(self._bars_done(), self.market.n)
        if self.progress is not None:
            self.progress(g + 1, self.market.n)

    def _fill_at_open(self, g: int) -> None:
        t = int(self.market.time[g])
        for pair in sorted(self.venue.pending_pairs()):
            track = self.market.pairs[pair]
            if track.has_bar[g]:
                self.venue.on_bar(pair, t, float(track.open[g]), float(track.high[g]), float(track.low[g]),
                                  float(track.close[g]), float(track.volume[g]))
        if self._resting:
            self.oms.poll_orders(t)
        fills = self.oms.collect_fills()
        adopted = self._adopted if self._adopted_at == g else []
        if not fills and not adopted:
            return
        self.stats.fills += len(fills)
        self._holdings = None
        state = self.ledger.state
        booked = [state.fills[f.fill_id] for f in fills]
        self.pretrade.on_fills(state, booked)  # (the adopted ones are in the book it was rebuilt with)
        booked = adopted + booked
        self._timed(g, self.watch.on_fills, t, booked)
        touched = {(f.deployment_id, f.pair) for f in booked}
        for i in sorted(i for key in touched for i in self._slot_of.get(key, ())):  # (in the lanes' order)
            self._schedule(i, g - 1)
        self.act_on(self.lead.after_fills(g, t))

    # ---------------------------------------------------------------- lanes
    def _next_event(self, cur: int) -> int:
        nxt = min((s.next_g for s in self._slots), default=NEVER)
        if self._adopted_at is not None:
            nxt = min(nxt, self._adopted_at)
        if self._settle_at is not None:
            nxt = min(nxt, self._settle_at)
        if self._protect_at is not None:
            nxt = min(nxt, self._protect_at)
        if self._starts:  # a scheduled deployment starts at the bar closing at or after its start time
            due = int(np.searchsorted(self.market.time + self.market.tf_seconds, self._starts[0][0]))
            nxt = min(nxt, max(cur + 1, due))
        if isinstance(self.venue, PaperVenue):  # resting orders: the first bar that can fill them
            ttl = self.venue.config.limit_ttl_s
            for order in self.venue.open_orders():
                nxt = min(nxt, self._trigger(order, cur, ttl))
        else:
            for pair in self.venue.pending_pairs():
                nxt = min(nxt, int(self.market.pairs[pair].next_bar[max(cur, 0)]) if cur >= 0 else 0)
        return int(nxt)

    def _trigger(self, order: VenueOrder, cur: int, ttl: int | None) -> int:
        """:func:`~execdesk.desk.resting.trigger_bar`, kept per order until the loop passes it."""
        known = self._triggers.get(order.client_order_id)
        if known is not None and known[0] > cur and known[1] == order.filled_qty:
            return known[0]
        at = trigger_bar(order, self.market.pairs[order.pair], self.market.time, cur, ttl)
        self._triggers[order.client_order_id] = (at, order.filled_qty)
        return at

    def _schedule(self, i: int, after_g: int) -> None:
        """Work out when lane ``i`` next needs the loop, from the ledger's state."""
        slot = self._slots[i]
        lane = slot.lane
        state = self.ledger.state
        slot.next_g, slot.plan = NEVER, None
        if (lane.deployment_id, lane.pair) in state.open_orders_by_key:
            waiting = [o for o in state.open_orders_of(lane.deployment_id, lane.pair)
                       if o.type != OrderType.STOP_MARKET]  # (a resting stop waits with the position)
            if waiting:
                self._schedule_timeout(slot, waiting, after_g)
                return  # waiting for a fill
        pos = state.position(lane.deployment_id, lane.pair)
        if pos is not None and pos.qty != 0:
            direction = Direction.LONG if pos.qty > 0 else Direction.SHORT
            plan = lane.first_exit(direction, pos.opened_at, float(pos.avg_price), after_g,
                                   self.lead.stoploss_of(lane.deployment_id))
            if plan is not None:
                slot.next_g, slot.plan = plan.g, plan
            if lane.trailing is not None and i in self._protected:  # the stop at the venue follows the trail
                amend = lane.next_close(after_g)
                if amend is not None and amend < slot.next_g:
                    slot.next_g, slot.plan = amend, _AMEND
            return
        if self.lead.may_enter(lane.deployment_id):
            entry = lane.next_entry(after_g)
            if entry is not None:
                slot.next_g, slot.plan = entry[0], entry

    def _schedule_timeout(self, slot: _LaneSlot, waiting: list[Any], after_g: int) -> None:
        """A limit exit among the orders the lane waits for: a visit at the close of the lane's candle its timeout
        (``order_types.exit_timeout_candles``) ends with."""
        lane = slot.lane
        limit = next((o for o in waiting if o.type == OrderType.LIMIT and o.reason != IntentReason.ENTRY_SIGNAL), None)
        if limit is None or lane.bundle.order_types is None:
            return
        sent = int(np.searchsorted(self.market.time + self.market.tf_seconds, limit.created_at))
        k = (int(np.searchsorted(lane.candles.close_index, sent, side="right"))
             + lane.bundle.order_types.exit_timeout_candles - 1)
        if k < len(lane.candles.close_index):
            slot.next_g, slot.plan = max(int(lane.candles.close_index[k]), after_g + 1), _Timeout(limit.client_order_id)

    def _act_on_lane(self, i: int, g: int) -> None:
        slot = self._slots[i]
        lane, plan = slot.lane, slot.plan
        price = dec(float(self.market.pairs[lane.pair].close[g]))
        t = self.market.close_time(g)
        if isinstance(plan, ExitPlan):
            held = self.closable(lane.deployment_id, lane.pair)
            if held != 0 and not (plan.reason in STOP_REASONS and resting_stops(self.ledger.state, lane.deployment_id,
                                                                                  lane.pair)):
                # (a stop resting at the venue takes care of a stoploss: it fills inside the bar that reaches it)
                direction = Direction.LONG if held > 0 else Direction.SHORT
                backtest = dec(plan.rate) if math.isfinite(plan.rate) else None
                intent = OrderIntent(lane.deployment_id, lane.pair, direction.exit_side, direction, plan.reason,
                                     t, price, abs(held), backtest)
                types = lane.bundle.order_types
                if types is not None and types.exit == "limit" and plan.reason in (IntentReason.EXIT_SIGNAL,
                                                                                   IntentReason.ROI):
                    # at the backtest's ROI price; an exit signal's at the close that decided it
                    limit = backtest if plan.reason is IntentReason.ROI and backtest is not None else price
                    self.submit(intent, g, OrderType.LIMIT, price=limit)
                else:
                    self.submit(intent, g)
        elif isinstance(plan, _Timeout):
            rec = self.ledger.state.orders[plan.client_order_id]
            if rec.status.is_open:
                self.oms.cancel(plan.client_order_id, "limit exit unfilled after its timeout: sent at market", t)
                self.after_cancels()
                held = self.closable(lane.deployment_id, lane.pair)
                if held != 0 and not self.ledger.state.orders[plan.client_order_id].status.is_open:
                    direction = Direction.LONG if held > 0 else Direction.SHORT
                    self.submit(OrderIntent(lane.deployment_id, lane.pair, direction.exit_side, direction,
                                            IntentReason(rec.reason), t, price, abs(held), rec.backtest_price), g)
        elif isinstance(plan, tuple):
            _g, direction = plan
            self.submit(OrderIntent(lane.deployment_id, lane.pair, direction.entry_side, direction,
                                    IntentReason.ENTRY_SIGNAL, t, price), g)
        self._schedule(i, g)

    def _sizing_context(self, ctx: Context, lane: Lane, g: int) -> Context:
        """``ctx`` with the strategy's sizing method: Kelly reads its validation report, a volatility target the
        pair's ATR at the strategy's last candle closed by bar ``g`` (on the strategy's own timeframe)."""
        sizing = lane.bundle.sizing
        assert sizing is not None
        atr = None
        if sizing.method == "volatility_target":
            key = (lane.deployment_id, lane.pair)
            series = self._atr.get(key)
            if series is None:
                o = lane.candles.ohlcv
                series = self._atr[key] = atr_series(o.high, o.low, o.close, int(sizing.setting("atr_period")))
            k = int(np.searchsorted(lane.candles.close_index, g, side="right")) - 1
            atr = float(series[k]) if k >= 0 else math.nan
        return replace(ctx, sizing=sizing, validation=lane.bundle.validation, atr=atr)

    # ---------------------------------------------------------------- orders
    def submit(self, intent: OrderIntent, g: int, order_type: OrderType = OrderType.MARKET,
               price: Decimal | None = None, stop_price: Decimal | None = None) -> bool:
        """Risk-check ``intent`` and hand it to the order manager (or record the denial). An exit other than a stop
        first cancels the stop resting for the position (the two must never both fill). A stop is not held in the
        risk book: it does not reduce the position until it fills."""
        stop = order_type is OrderType.STOP_MARKET
        if self._protected and intent.reduce_only and not stop:  # (only those lanes' stops rest at the venue)
            self._cancel_stops(intent.deployment_id, intent.pair, self.market.close_time(g),
                               f"replaced by the {intent.reason.value} exit")
        if self._marked_g != g:  # the book marks exposure at this bar's closes, once per bar
            self.pretrade.mark(self.closes(g))
            self._marked_g = g
        ctx = self.lead.context(intent.deployment_id, self.monitor.marks.last_equity)
        sized = self._sized.get((intent.deployment_id, intent.pair))
        if sized is not None and not intent.reduce_only:
            ctx = self._sizing_context(ctx, sized, g)
        verdict = self.pretrade.decide(intent, ctx)
        t = self.market.close_time(g)
        verdict = self._on_step(intent, verdict, getattr(self.venue, "round_qty", None))
        if verdict.approved:
            coid = self.oms.submit(intent, verdict, t, order_type, price, stop_price)
            if coid is not None:
                self.stats.orders += 1
                self._resting = self._resting or order_type is not OrderType.MARKET
                if not stop:
                    self.pretrade.commit(coid, intent, verdict)
            return True
        self.oms.deny(intent, verdict, t)
        self.stats.denied += 1
        return False

    def _on_step(self, intent: OrderIntent, verdict: Verdict, round_qty: Callable[[str, Decimal], Decimal] | None
                 ) -> Verdict:
        """An approved quantity on the venue's amount step (a remote venue takes no other); below one step, denied
        (``venue_step``)."""
        if not verdict.approved or round_qty is None:
            return verdict
        on_step = round_qty(intent.pair, verdict.qty)
        if on_step == verdict.qty:
            return verdict
        return (replace(verdict, qty=on_step) if on_step > 0 else
                replace(verdict, approved=False, rule="venue_step", qty=Decimal(0),
                        reason=f"{verdict.qty} is below one amount step of {self.venue.name}"))

    def submit_exits(self, intents: Sequence[OrderIntent], g: int) -> int:
        """Market exits that only reduce (the lead's closes: a kill, a halt, a trim), one batch: each taken as
        :meth:`submit` takes it, in order, with the same events (its resting stop cancelled, the pre-trade check,
        ``order.submitted`` or ``order.denied``). What :meth:`submit` works out per intent is worked out once: the
        bar's marks, each deployment's context (nothing in the batch changes a trading state, a ladder or the
        monitor's equity), and the risk book's release of cancelled orders — the book holds no stop (a stop is not
        held), so after the first release, before the first check that follows a cancel, another would only
        recompute it. How many were approved."""
        t = self.market.close_time(g)
        if self._marked_g != g:
            self.pretrade.mark(self.closes(g))
            self._marked_g = g
        last_equity = self.monitor.marks.last_equity
        contexts: dict[str, Context] = {}
        round_qty = getattr(self.venue, "round_qty", None)
        settled = False
        approved = 0
        for intent in intents:
            if not intent.reduce_only:
                raise ValueError(f"submit_exits takes exits only, not {intent.reason.value}")
            dep = intent.deployment_id
            if self._protected and self._cancel_stops(dep, intent.pair, t, f"replaced by the {intent.reason.value} "
                                                      "exit", settle=not settled):
                settled = True
            ctx = contexts.get(dep)
            if ctx is None:
                ctx = contexts[dep] = self.lead.context(dep, last_equity)
            verdict = self.pretrade.decide(intent, ctx)
            verdict = self._on_step(intent, verdict, round_qty)
            if verdict.approved:
                approved += 1
                coid = self.oms.submit(intent, verdict, t)
                if coid is not None:
                    self.stats.orders += 1
                    self.pretrade.commit(coid, intent, verdict)
                continue
            self.oms.deny(intent, verdict, t)
            self.stats.denied += 1
        return approved

    def _cancel_stops(self, deployment_id: str, pair: str, t: int, reason: str, settle: bool = True) -> bool:
        """Cancel the stops resting for the position; whether there were any (``settle``: the risk book lets go of
        them then)."""
        stops = resting_stops(self.ledger.state, deployment_id, pair)
        for order in stops:
            self.oms.cancel(order.client_order_id, reason, t)
        if stops and settle:
            self.after_cancels()
        return bool(stops)

    def _protect(self, g: int) -> None:
        """The stops resting at the venue as the positions want them (:func:`~execdesk.desk.resting.stop_wanted`):
        placed for a new position, moved with a trailing stop, a tighter stop or a smaller position (cancelled and
        placed again), cancelled when none is wanted (flat, paused, halted)."""
        state = self.ledger.state
        t = self.market.close_time(g)
        for i in self._protected:
            lane = self._slots[i].lane
            dep, pair = lane.deployment_id, lane.pair
            if (dep, pair) not in state.open_position_keys and (dep, pair) not in state.open_orders_by_key:
                continue  # flat, nothing resting
            stops = resting_stops(state, dep, pair)
            want, why = stop_wanted(state, dep, pair)
            if want is None:
                if stops:
                    self._cancel_stops(dep, pair, t, why)
                continue
            pos = state.position(dep, pair)
            assert pos is not None
            level = dec(lane.stop_level(want.direction, pos.opened_at, float(pos.avg_price), g,
                                        self.lead.stoploss_of(dep)))
            if len(stops) == 1 and stops[0].qty - stops[0].filled_qty == want.qty and stops[0].stop_price == level:
                continue
            if stops:
                self._cancel_stops(dep, pair, t, f"moved to {level} for {want.qty}")
            close = dec(float(self.market.pairs[pair].close[g]))
            self.submit(OrderIntent(dep, pair, want.side, want.direction, IntentReason.STOPLOSS, t, close, want.qty,
                                    level), g, OrderType.STOP_MARKET, stop_price=level)

    def closable(self, deployment_id: str, pair: str) -> Decimal:
        """The lane's position (signed) less the exits already on their way."""
        return self.ledger.state.closable(deployment_id, pair)

    def after_cancels(self) -> None:
        """Orders were cancelled: the risk book lets go of what they held."""
        self.pretrade.settle(self.ledger.state)

    def _book_prices(self, g: int) -> dict[str, float]:
        """The prices the risk book is rebuilt at: every pair's close at bar ``g``; a position in a pair the market
        has no candles for (a Freqtrade bot's) at its average cost."""
        closes = self.closes(g)
        unmarked = {p.pair: float(p.avg_price) for p in self.ledger.state.open_positions() if p.pair not in closes}
        return {**unmarked, **closes} if unmarked else closes

    def closes(self, g: int) -> dict[str, float]:
        """Every pair's close at bar ``g``."""
        return self.market.closes(g)

    def after_handovers(self, seq_before: int, g: int) -> None:
        """Positions may have changed hands (``lead.positions_handed_over`` after ``seq_before``): the monitor's
        open trades follow them, and the risk book and the holdings are built again."""
        self.ledger.flush()
        handed = [e for e in self.ledger.events({EventKind.POSITIONS_HANDED_OVER}) if e.seq > seq_before]
        for e in handed:
            self.watch.on_handover(e.payload["from"], e.payload["to"], [p["pair"] for p in e.payload["positions"]])
        if handed:
            self.rebuild_books(g)

    def rebuild_books(self, g: int) -> None:
        """Positions moved without fills (a hand-over): the risk book and the holdings are built again."""
        self._holdings = None
        self.pretrade.rebuild(self.ledger.state, self._book_prices(g), self.market.close_time(g))
        self.reschedule_all(g)

    def reschedule_all(self, after_g: int) -> None:
        for i in range(len(self._slots)):
            self._schedule(i, after_g)

    # ---------------------------------------------------------------- holdings and progress
    def holdings(self) -> Holdings:
        if self._holdings is None:
            state = self.ledger.state
            rows = {p: t.index for p, t in self.market.pairs.items()}
            per_dep: dict[str, list[Holding]] = {d: [] for d in state.deployments}
            portfolio = []
            at_cost = 0.0  # positions in pairs the market has no candles for (a Freqtrade bot's): held at their cost
            for pos in state.open_positions():
                row = rows.get(pos.pair)
                if row is None:
                    at_cost += float(pos.qty) * float(pos.avg_price)
                    continue
                h = Holding(row, float(pos.qty), float(pos.avg_price))
                portfolio.append(h)
                per_dep[pos.deployment_id].append(h)
            base = {d.id: float(d.capital + d.realized_pnl - d.fees) for d in state.deployments.values()}
            self._holdings = Holdings(float(state.cash()) + at_cost, tuple(portfolio), base,
                                      {d: tuple(v) for d, v in per_dep.items()})
        return self._holdings

    def _record_snapshots(self, snaps: Sequence[Snapshot]) -> None:
        for s in snaps:
            t = self.market.close_time(s.g)
            self.record(Event(t, EventKind.EQUITY_SNAPSHOT, {
                "equity": round(s.equity, 6), "drawdown": round(s.drawdown, 6),
                "deployments": {d: {"equity": round(e, 6), "drawdown": round(dd, 6)}
                                for d, (e, dd) in sorted(s.deployments.items())}}))
            self.record(Event(t, EventKind.RUN_PROGRESS, self._progress(s.g)))
            self.act_on(self.lead.on_snapshot(s))
            self._timed(s.g, self.watch.on_snapshot, s)

    def _progress(self, g: int) -> dict[str, object]:
        return {"bar_time": int(self.market.time[g]), "bars_done": g + 1, "marks": self.monitor.marks.take_changes()}

    def _time(self, g: int) -> int:
        return int(self.market.time[min(g, self.market.n - 1)]) if self.market.n else 0

