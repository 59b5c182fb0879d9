"""The monitor inside the loop: each deployment against the backtest that approved it, and anomalies.

:class:`Watch` reads the ledger (what the desk recorded) and the market, and answers with findings —
:class:`~execdesk.monitor.alerts.Alert`, :class:`Cleared` (a standing condition is over) and
:class:`VerdictChanged` (a ``monitor.drift`` event) — in the order it found them. It never changes what it
watches: the desk's engine records and routes the findings, and hands a changed verdict to the lead, which
decides what it means:

* every closed round trip goes into a :class:`~execdesk.monitor.drift.DriftBook` seeded with the
  deployment's baseline (``monitor.baseline``: the approved backtest's trade returns; the figures of
  its validation report); the deployment is re-assessed at once — threshold rules with evidence gates,
  Page-Hinkley on normalised trade returns, the probabilistic Sharpe ratio, a two-sample KS test — and
  each rule that warns or is critical raises an alert (``drift_<metric>``, WARNING or CRITICAL); a rule
  back to ok clears it (so a recurrence is sent again). A change of verdict (continue / review / pause /
  stop) is a ``monitor.drift`` event with the findings;
* at each equity snapshot: the live drawdown and mean slippage go into the book and the deployments
  are re-assessed (the drawdown rule needs no minimum sample). The drawdown compared is the strategy's,
  measured alike on both sides: the drawdown of the compounded closed-trade returns, live, against
  the 99.9th percentile of the same over as many trades bootstrapped from the baseline sample (the
  report's own figure when it gives no sample) — independent of position sizing,
  which differs between a backtest and the desk; equity drawdowns including unrealised P&L are the
  risk manager's (its ladders); volume spikes beyond 3 sigma on any
  pair since the last snapshot, and spreads widening beyond 3 sigma — the venue's model of its quoted spread in
  each bar (``spreads``: the paper venue's, in a replay); a losing streak longer than the backtest's win rate allows;
* after each bar: venue calls that failed after their retries (connectivity);
* at each reading of the exchange's top of book (a live desk's ``market.quoted``, at its bars' close): a spread
  beyond 3 sigma of the pair's readings before it.

Alert de-duplication is the router's: a standing condition is not re-sent every bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from execdesk.data.feed import MarketView
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO, Snapshot
from execdesk.domain.reader import LedgerReader
from execdesk.domain.state import FillRecord
from execdesk.domain.types import AlertLevel
from execdesk.monitor.alerts import Alert
from execdesk.monitor.anomalies import (
    current_losing_streak,
    is_stale,
    losing_streak_limit,
    spread_widening,
    volume_spikes,
)
from execdesk.monitor.baseline import DRAWDOWN_MIN_TRADES, TradePath, baseline_of, bootstrap_drawdown
from execdesk.monitor.drift import (
    METRICS,
    VERDICTS,
    DriftAssessment,
    DriftBook,
    DriftConfig,
    Status,
    finding_message,
)
from execdesk.monitor.trades import RoundTrips
from execdesk.strategy.bundle import ValidationReport

_LEVEL = {Status.WARN: AlertLevel.WARNING, Status.CRITICAL: AlertLevel.CRITICAL}
VOLUME_WINDOW = 168
SPREAD_WINDOW = 168  # bars (a replay's modelled spreads) or readings (a live desk's top of book)
#: a venue's model of its quoted spread (bps) in each of a pair's consecutive bars, from their open, high and low
SpreadModel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Cleared:
    """The condition ``(code, scope)`` is over: its next alert is news again."""

    code: str
    scope: str


@dataclass(frozen=True, slots=True)
class VerdictChanged:
    """A deployment's drift verdict changed: the ``monitor.drift`` event to record, for the lead to review."""

    event: Event
    deployment_id: str
    verdict: str
    findings: list[dict[str, Any]]
    trades: int


#: what the monitor answers with, in the order it found them
Finding = Alert | Cleared | VerdictChanged


class Watch:
    """See the module docstring. Built by the desk at the start of a run from the ledger and the market (and
    rebuilt on a restart: the trades so far are replayed into the book without alerting). ``spreads``: the venue's
    model of its quoted spread, when it has one (a live desk's spreads are its readings, ``market.quoted``)."""

    def __init__(self, ledger: LedgerReader, market: MarketView, venue: str, config: DriftConfig | None = None,
                 spreads: SpreadModel | None = None) -> None:
        self.ledger = ledger
        self.market = market
        self.venue = venue
        self.spread_model = spreads
        self._quoted: dict[str, list[float]] = {}  # pair -> the spreads read from the top of book so far (bps)
        for e in ledger.events({EventKind.QUOTED}):
            for pair, q in sorted(e.payload["quotes"].items()):
                self._quoted.setdefault(pair, []).append(float(q["spread_bps"]))
        self._out: list[Finding] = []
        validations: dict[str, ValidationReport] = {}
        samples: dict[str, dict[str, Any]] = {}
        for e in ledger.events({EventKind.DEPLOYMENT_CREATED, EventKind.MONITOR_BASELINE}):
            dep = e.payload["deployment_id"]
            if e.kind is EventKind.DEPLOYMENT_CREATED:
                if e.payload.get("validation"):  # a deployment without its backtest's report is not compared
                    validations[dep] = ValidationReport.model_validate(e.payload["validation"])
            else:
                samples[dep] = e.payload
        self.ids = [d for d in ledger.state.deployments if d in validations]
        self.row = {d: i for i, d in enumerate(self.ids)}
        self.baselines = [baseline_of(validations[d], samples.get(d, {}).get("returns") or None) for d in self.ids]
        self.book = DriftBook(self.ids, self.baselines, config)
        self.trips = RoundTrips()
        self.returns: dict[str, list[float]] = {d: [] for d in self.ids}
        self._paths = [TradePath() for _ in self.ids]  # each one's compounded closed-trade path, kept per trade
        self._observed_n = np.full(len(self.ids), -1, np.int64)  # the trade count each one was last observed at
        self._slip_sum = np.zeros(len(self.ids))
        self._fills = np.zeros(len(self.ids), dtype=np.int64)
        self._verdict: dict[str, str] = {}
        state = ledger.state
        self._venue_errors = 0
        self._volume_from = 0
        # the bootstrap's figures by sample (deployments of one strategy share a sample) and grid size
        self._dd_cache: dict[bytes, dict[int, float]] = {}
        self._sample_key = [np.asarray(b.returns, dtype=np.float64).tobytes() if b.returns is not None else b""
                            for b in self.baselines]
        self._status: dict[tuple[str, str], int] = {}  # (deployment, rule) -> the last status alerted on
        self._snapshots = 0  # equity snapshots seen (the volume checks run from the bar after the last one)
        self._replay(state)
        for e in ledger.events({EventKind.DRIFT_ASSESSED}):  # (the ledger's word over the replay's)
            self._verdict[e.payload["deployment_id"]] = e.payload["verdict"]

    def _replay(self, state: Any) -> None:
        """A restart: the run so far is replayed through the watch — each bar's fills, each hand-over and each
        equity snapshot in the order the ledger holds them — with its findings dropped (they were acted on when
        they were news), so the watch stands where it stood: the same statuses, the same volume cursor, and
        the next finding is the one an uninterrupted run would make."""
        kinds = {EventKind.ORDER_FILLED, EventKind.EQUITY_SNAPSHOT, EventKind.POSITIONS_HANDED_OVER}
        closes = self.market.time + self.market.tf_seconds
        batch: list[FillRecord] = []

        def take() -> None:
            if batch:
                self._take(batch, alert=True, t=batch[0].time)
                batch.clear()

        for e in self.ledger.events(kinds):
            if e.kind is EventKind.ORDER_FILLED:
                fill = state.fills.get(e.payload["fill_id"])
                if fill is None:
                    continue
                if batch and batch[0].time != fill.time:
                    take()
                batch.append(fill)
                continue
            take()
            if e.kind is EventKind.POSITIONS_HANDED_OVER:
                self.trips.hand_over(e.payload["from"], e.payload["to"], [p["pair"] for p in e.payload["positions"]])
                continue
            g = int(np.searchsorted(closes, e.time))
            if g < self.market.n and int(closes[g]) == e.time:
                self._observe()
                self._assess(e.time, list(self.ids))
                self._market_anomalies(e.time, g)
                self._snapshots += 1
        take()
        self._out.clear()

    def start_at(self, g: int) -> None:
        """The run starts at grid bar ``g``: market anomalies are looked for from there on (a run resumed after a
        crash: from the bar after its last equity snapshot, where the interrupted run had looked up to)."""
        if not self._snapshots:
            self._volume_from = g

    def _answer(self) -> list[Finding]:
        out, self._out = self._out, []
        return out

    # ---------------------------------------------------------------- what the desk asks
    def on_fills(self, t: int, fills: Sequence[FillRecord]) -> list[Finding]:
        """New fills: their round trips go into the book; the deployments they closed trades of are assessed."""
        self._take(fills, alert=True, t=t)
        return self._answer()

    def assessments(self) -> list[DriftAssessment]:
        """Every watched deployment's live figures against its backtest, rule by rule, as of now."""
        self._observe()
        return self.book.evaluate()

    def on_handover(self, source: str, target: str, pairs: Sequence[str]) -> None:
        """Positions went from ``source`` to ``target``: their open trades go with them."""
        self.trips.hand_over(source, target, pairs)

    def on_snapshot(self, snap: Snapshot) -> list[Finding]:
        """An equity snapshot: every deployment assessed; volume spikes and modelled spread widenings since the
        last one."""
        t = self.market.close_time(snap.g)
        self._observe()
        self._assess(t, list(self.ids))
        self._market_anomalies(t, snap.g)
        self._snapshots += 1
        return self._answer()

    def on_quotes(self, event: Event) -> list[Finding]:
        """A reading of the exchange's top of book (the ``market.quoted`` event the desk recorded): a pair whose
        spread is more than 3 sigma above its readings before it (log scale, the last ``SPREAD_WINDOW``; from the
        24th on) is an INFO ``spread_widening`` — news each time, as a volume spike."""
        t = event.time
        for pair, q in sorted(event.payload["quotes"].items()):
            history = self._quoted.setdefault(pair, [])
            history.append(float(q["spread_bps"]))
            del history[:-(SPREAD_WINDOW + 1)]  # only the window before the newest matters
            spreads = np.asarray(history)
            z = float(spread_widening(spreads, window=SPREAD_WINDOW)[-1])
            if np.isfinite(z) and z > 3.0:
                self._spread_alert(t, pair, z, spreads, {"time": t, "bid": q.get("bid"), "ask": q.get("ask"),
                                                         "source": "top_of_book"},
                                   f"at {pd.Timestamp(t, unit='s', tz='UTC'):%Y-%m-%d %H:%M} "
                                   f"(bid {q.get('bid')}, ask {q.get('ask')})", "readings")
        return self._answer()

    def _observe(self) -> None:
        rows = np.arange(len(self.ids))
        # the strategy's drawdown as its backtest measures it: on the compounded closed-trade returns (sizing
        # and unrealised swings are the risk manager's: its ladders watch equity), kept trade by trade
        # (nothing is judged on fewer than DRAWDOWN_MIN_TRADES live trades, nor against a backtest of fewer
        # trades than the drift rules' minimum sample: a handful of trades says nothing either way)
        drawdown = np.array([p.drawdown if p.n >= DRAWDOWN_MIN_TRADES else np.nan for p in self._paths])
        min_trades = self.book.config.min_trades
        for row, path in enumerate(self._paths):  # the backtest's drawdown over as many trades as the live ones
            n, baseline = path.n, self.baselines[row]
            if baseline.returns is not None and n > 0:
                if n != self._observed_n[row]:  # (only a deployment with new trades has a new figure)
                    cache = self._dd_cache.setdefault(self._sample_key[row], {})
                    self.book.dd_bt[row] = bootstrap_drawdown(baseline.returns, n, cache)
            elif baseline.trades < min_trades:
                drawdown[row] = np.nan
            self._observed_n[row] = n
        with np.errstate(invalid="ignore", divide="ignore"):
            slippage = np.where(self._fills > 0, self._slip_sum / np.maximum(self._fills, 1), np.nan)
        self.book.observe(rows, max_drawdown=drawdown, slippage_bps_mean=slippage, fills=self._fills)

    def after_bar(self, t: int, venue_errors: int) -> list[Finding]:
        """After a bar: venue calls that failed after their retries (``venue_errors``: the run's count so far)."""
        errors = venue_errors
        if errors > self._venue_errors:
            new = errors - self._venue_errors
            self._venue_errors = errors
            self._alert(t, AlertLevel.CRITICAL, "venue_errors", PORTFOLIO,
                        f"{new} venue call(s) failed after their retries ({errors} in this run)",
                        {"failed_calls": new, "total": errors, "venue": self.venue}, "executor")
        return self._answer()

    def check_stale(self, last_bar_open: int, now: int, timeframe_s: int) -> list[Finding]:
        """On a wall clock: the data has no candle although one is due (the feed stopped). CRITICAL."""
        if not is_stale(last_bar_open, now, timeframe_s):
            self._out.append(Cleared("stale_data", PORTFOLIO))
            return self._answer()
        late = now - (last_bar_open + 2 * timeframe_s)
        self._alert(now, AlertLevel.CRITICAL, "stale_data", PORTFOLIO,
                    f"no candle since the bar of {pd.Timestamp(last_bar_open, unit='s', tz='UTC'):%Y-%m-%d %H:%M}: "
                    f"the next one is {late} s overdue", {"last_bar_open": last_bar_open, "now": now,
                                                          "overdue_s": late, "timeframe_s": timeframe_s})
        return self._answer()

    # ---------------------------------------------------------------- trades
    def _take(self, fills: Sequence[FillRecord], alert: bool, t: int = 0) -> None:
        state = self.ledger.state
        rows: list[int] = []
        returns: list[float] = []
        durations: list[float] = []
        for f in fills:
            row = self.row.get(f.deployment_id)
            if row is None:
                continue
            order = state.orders.get(f.client_order_id)
            if order is not None and order.ref_price > 0:
                sign = 1 if f.side == "BUY" else -1
                self._slip_sum[row] += float((f.price - order.ref_price) / order.ref_price) * sign * 10_000
                self._fills[row] += 1
            for trip in self.trips.add(f):
                rows.append(row)
                returns.append(float(trip["profit_ratio"]))  # type: ignore[arg-type]
                durations.append(float(trip["trade_duration"]))  # type: ignore[arg-type]
                self.returns[f.deployment_id].append(returns[-1])
                self._paths[row].add(returns[-1])
        if not rows:
            return
        self.book.add_trades(rows, returns, durations)
        if alert:
            touched = sorted({self.ids[r] for r in rows})
            self._assess(t, touched)
            for dep in touched:
                self._streak(t, dep)

    def _assess(self, t: int, deployments: list[str]) -> None:
        """Re-assess ``deployments``; alert on each rule that newly warns or escalates, clear the ones back
        to ok, record a changed verdict. Only cells that changed are turned into records (the book answers
        in arrays: a standing condition costs nothing per trade)."""
        book = self.book
        a = book.evaluate_arrays([self.row[d] for d in deployments])
        status, verdicts = a["status"], a["verdict"]
        for i, row in enumerate(a["rows"].tolist()):
            dep = self.ids[row]
            for j, metric in enumerate(METRICS):
                now = int(status[i, j])
                before = self._status.get((dep, metric), 0)
                if now == before:
                    continue
                self._status[(dep, metric)] = now
                code = f"drift_{metric}"
                if now == 0:
                    self._out.append(Cleared(code, dep))
                    continue
                if now < before:  # critical back to warn: the standing alert stays; it is news only upward
                    continue
                f = book.finding(a, i, j)
                self._alert(t, _LEVEL[f.status], code, dep, finding_message(dep, f), f.as_dict())
            verdict = VERDICTS[int(verdicts[i])].value
            if self._verdict.get(dep, "continue") != verdict:
                self._verdict[dep] = verdict
                findings = [book.finding(a, i, j).as_dict() for j in range(len(METRICS)) if status[i, j]]
                event = Event(t, EventKind.DRIFT_ASSESSED, {
                    "deployment_id": dep, "verdict": verdict, "trades": int(book.n[row]), "findings": findings}, dep)
                self._out.append(VerdictChanged(event, dep, verdict, findings, int(book.n[row])))

    def _streak_long(self, dep: str) -> tuple[int, int] | None:
        """(streak, limit) when the current losing streak is longer than the backtest allows, else None."""
        returns = self.returns[dep]
        baseline = self.baselines[self.row[dep]]
        limit = losing_streak_limit(baseline.win_rate, max(len(returns), 1))
        streak = current_losing_streak(np.asarray(returns[-(limit + 1):]))  # only the tail can matter
        return (streak, limit) if streak > limit and len(returns) >= 5 else None

    def _streak(self, t: int, dep: str) -> None:
        long = self._streak_long(dep)
        before = self._status.get((dep, "losing_streak"), 0)
        self._status[(dep, "losing_streak")] = int(long is not None)
        if long is None:
            if before:
                self._out.append(Cleared("losing_streak", dep))
            return
        if before:
            return  # standing: said already
        streak, limit = long
        baseline = self.baselines[self.row[dep]]
        n = len(self.returns[dep])
        self._alert(t, AlertLevel.WARNING, "losing_streak", dep,
                    f"{dep}: {streak} losing trades in a row; its backtest's win rate "
                    f"{baseline.win_rate:.0%} makes more than {limit} implausible over {n} trades",
                    {"streak": streak, "limit": limit, "trades": n, "win_rate": baseline.win_rate})

    # ---------------------------------------------------------------- market
    def _market_anomalies(self, t: int, g: int) -> None:
        """The market's bars since the last look (from ``_volume_from``) up to ``g``: volume spikes, then the
        venue's modelled spreads widening (when it has a model)."""
        self._volume(t, g)
        if self.spread_model is not None:
            self._spreads(t, g, self.spread_model)
        self._volume_from = g + 1

    def _volume(self, t: int, g: int) -> None:
        market = self.market
        lo = max(self._volume_from, 0)
        start = max(lo - VOLUME_WINDOW, 0)
        for pair, track in market.pairs.items():
            bars = np.flatnonzero(track.has_bar[start: g + 1]) + start
            if bars.size == 0:
                continue
            z = volume_spikes(track.volume[bars], window=VOLUME_WINDOW)
            recent = bars >= lo
            if not recent.any():
                continue
            zr = z[recent]
            if np.isfinite(zr).any() and np.nanmax(zr) > 3.0:
                at = int(bars[recent][int(np.nanargmax(zr))])
                self._alert(t, AlertLevel.INFO, "volume_spike", PORTFOLIO,
                            f"{pair}: volume {track.volume[at]:,.0f} in the bar of "
                            f"{pd.Timestamp(int(market.time[at]), unit='s', tz='UTC'):%Y-%m-%d %H:%M} is "
                            f"{float(np.nanmax(zr)):.1f} sigma above its last {VOLUME_WINDOW} bars",
                            {"pair": pair, "z": round(float(np.nanmax(zr)), 3), "bar_time": int(market.time[at])})
                self._out.append(Cleared("volume_spike", PORTFOLIO))  # an event, not a condition: each one is news

    def _spreads(self, t: int, g: int, model: SpreadModel) -> None:
        """Each pair's modelled spread in its bars since the last look, against the ``SPREAD_WINDOW`` bars before
        each (the model's own typical range looks as far back again: both are taken, so a look gives the same
        answer wherever a run was resumed)."""
        market = self.market
        lo = max(self._volume_from, 0)
        start = max(lo - 2 * SPREAD_WINDOW, 0)
        for pair, track in market.pairs.items():
            bars = np.flatnonzero(track.has_bar[start: g + 1]) + start
            recent = bars >= lo
            if not recent.any():
                continue
            spreads = np.asarray(model(track.open[bars], track.high[bars], track.low[bars]), dtype=np.float64)
            zr = spread_widening(spreads, window=SPREAD_WINDOW)[recent]
            if not (np.isfinite(zr).any() and np.nanmax(zr) > 3.0):
                continue
            k = int(np.flatnonzero(recent)[int(np.nanargmax(zr))])
            at = int(market.time[bars[k]])
            self._spread_alert(t, pair, float(np.nanmax(zr)), spreads[: k + 1],
                               {"bar_time": at, "source": "venue_model"},
                               f"in the bar of {pd.Timestamp(at, unit='s', tz='UTC'):%Y-%m-%d %H:%M}", "bars")

    def _spread_alert(self, t: int, pair: str, z: float, spreads: np.ndarray, evidence: dict[str, Any], when: str,
                      what: str) -> None:
        """INFO ``spread_widening``: ``spreads`` ends with the one that widened; news each time (an event, not a
        standing condition), as a volume spike."""
        spread = float(spreads[-1])
        typical = float(np.median(spreads[-(SPREAD_WINDOW + 1):-1])) if len(spreads) > 1 else spread
        self._alert(t, AlertLevel.INFO, "spread_widening", PORTFOLIO,
                    f"{pair}: quoted spread {spread:.1f} bps {when} is {z:.1f} sigma above its last {SPREAD_WINDOW} "
                    f"{what} (typically {typical:.1f} bps)",
                    {"pair": pair, "z": round(z, 3), "spread_bps": round(spread, 3), "typical_bps": round(typical, 3),
                     **evidence})
        self._out.append(Cleared("spread_widening", PORTFOLIO))

    def _alert(self, t: int, level: AlertLevel, code: str, scope: str, message: str, evidence: dict[str, Any],
               source: str = "monitor") -> None:
        self._out.append(Alert(t, level, source, code, scope, message, evidence))

