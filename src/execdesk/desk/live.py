"""A desk on an exchange, live (``venue.kind: ccxt``): the exchange's candles, orders to it, its fills back.

See :func:`run_live` and docs/DESK_CONFIG.md (*A live desk on an exchange*). The same loop, lanes, risk
manager, order manager, monitor and lead as a replay; only the venue (:class:`RemoteVenue`) and the way bars
arrive differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from execdesk.clock import Clock
from execdesk.data.timeframes import timeframe_to_seconds
from execdesk.desk.assembly import (
    build_loop,
    build_market,
    deploy_configured,
    market_pairs_of,
    post_unposted_messages,
)
from execdesk.desk.lock import DeskLock
from execdesk.desk.loop import DeskLoop, LoopStats
from execdesk.desk.settings import DeskConfig
from execdesk.desk.summary import RunSummary, summarize
from execdesk.domain.events import Event, EventKind
from execdesk.domain.state import DeskState
from execdesk.domain.types import ClientOrderId
from execdesk.lead.liaison import LiaisonCourier
from execdesk.monitor.alerts import AlertCourier
from execdesk.store.ledger import Ledger
from execdesk.strategy import StrategyBundle
from execdesk.venues.base import Quote, Venue, VenueFill, VenueOrder


def run_live(config: DeskConfig, home: Path, bundles: list[StrategyBundle],
              progress: Callable[[int, int], None] | None, clock: Clock, db_url: str | None, started: float
              ) -> RunSummary:
    """A desk on an exchange: live, bar by bar as they close. The candles before the desk's first run are the
    strategies' warm-up (nothing trades on them); from then on, at each bar's close, the desk fetches the
    exchange's candles, rebuilds its loop on the ledger and runs the bars that closed — orders to the exchange,
    its fills back — until ``market.end``. A restart carries on from the ledger after reconciling with the
    exchange, like any desk."""
    from execdesk.venues.ccxt_venue import CcxtVenue

    v, m = config.venue, config.market
    assert v.exchange is not None  # checked by DeskConfig
    exchange = CcxtVenue.create(v.exchange, pairs=market_pairs_of(config, bundles), sandbox=v.sandbox, live=v.live,
                                timeout_ms=v.timeout_ms, api_url=v.api_url)
    tf = timeframe_to_seconds(m.timeframe)
    end = int(m.end.timestamp())
    with DeskLock.for_run(home), Ledger.for_home(home, db_url) as ledger:
        market = build_market(config, bundles, exchange, clock.now())
        for b in bundles:
            for pair in b.pairs:
                market.lane_candles(pair, b.timeframe)
        deploy_configured(ledger, home, config, bundles, int(market.time[0]), set(market.pairs))
        post_unposted_messages(ledger, home, config)  # (what the commands on the stopped desk could not post)
        last = ledger.state.last_bar_time
        if last is None:  # the history up to now is warm-up: trading starts now
            ledger.record(Event(market.close_time(market.n - 1), EventKind.RUN_PROGRESS, {
                "bar_time": int(market.time[-1]), "bars_done": market.n, "marks": {}, "warm_up": True}))
            ledger.flush()
        elif market.n >= 2 and last < int(market.time[-2]):  # down for a while: no trading on stale bars
            missed = int((market.time > last).sum()) - 1
            ledger.record(Event(market.close_time(market.n - 2), EventKind.RUN_PROGRESS, {
                "bar_time": int(market.time[-2]), "bars_done": market.n - 1, "marks": {}, "skipped": missed}))
            ledger.record(Event(market.close_time(market.n - 2), EventKind.ALERT_RAISED, {
                "level": "WARNING", "source": "lead", "code": "live_bars_skipped", "scope": "portfolio",
                "message": f"the live desk was down: {missed} closed bar(s) skipped; it acts on the latest only",
                "evidence": {"last_bar_before": last, "skipped": missed}}))
            ledger.flush()
        stats = LoopStats()
        # the webhooks' workers (the alerts', the liaison's) for the desk's loops (one a bar): closed when the desk
        # stops, with a bounded wait
        drain = config.alerts.drain_timeout
        with AlertCourier(drain) as courier, LiaisonCourier(drain) as posts:
            loop: DeskLoop | None = None
            try:
                while True:
                    last_close = market.close_time(market.n - 1)
                    if ledger.state.last_bar_time is None or ledger.state.last_bar_time < int(market.time[-1]):
                        loop = build_loop(ledger, home, config, bundles, market, progress, clock,
                                          RemoteVenue(exchange, v.fee_bps), courier, posts)
                        # the reports of a run's end: daily (at the bar closing at midnight UTC) and at the desk's end
                        loop.end_reports = last_close + tf > end or last_close % 86_400 == 0
                        stats = stats.plus(loop.run())
                        if loop.restart:
                            continue
                    if last_close + tf > end:
                        break
                    clock.wait_until(last_close + tf)  # the next bar's close
                    market = build_market(config, bundles, exchange, clock.now())
            except BaseException:  # (Ctrl-C too) what the webhooks leave is logged; the ledger keeps what was flushed
                if loop is not None:
                    loop.close_alerts(flush=False)
                raise
            if loop is not None:
                loop.close_alerts()  # what the webhooks leave undelivered is recorded
        return summarize(ledger, market, time.perf_counter() - started, stats, home)


class RemoteVenue:
    """A venue outside the desk's process (an exchange through ccxt) as the desk's loop drives it: the order
    manager's calls go to it; the paper venue's bar hooks do nothing (the exchange fills on its own, its fills
    come back through ``fills_since``); the orders the ledger holds open are its pending pairs, so the loop
    looks for their fills at the next bar. ``top_of_book`` (when the venue has one, as the ccxt venue does): the
    loop reads every pair's spread at its bars' close, for the monitor."""

    embedded = False

    def __init__(self, venue: Venue, fee_bps: float) -> None:
        self.venue = venue
        self.name = venue.name
        self.config = SimpleNamespace(fee_bps=fee_bps)
        self._state: DeskState | None = None
        self.top_of_book: Callable[[str], Quote] | None = getattr(venue, "top_of_book", None)

    def restore(self, state: DeskState) -> None:
        self._state = state

    def pending_pairs(self) -> set[str]:
        return {o.pair for o in self._state.open_orders()} if self._state is not None else set()

    def on_bar(self, pair: str, time: int, open_: float, high: float, low: float, close: float, volume: float,
               /) -> None:
        return None

    def round_qty(self, pair: str, qty: Decimal) -> Decimal:
        """An approved quantity onto the exchange's amount step (down: never more than the risk manager allowed)."""
        on_step = getattr(self.venue, "qty_on_step", None)
        return on_step(pair, qty) if on_step is not None else qty

    def close(self) -> None:
        return None

    def submit(self, order: VenueOrder) -> VenueOrder:
        return self.venue.submit(order)

    def cancel(self, client_order_id: ClientOrderId) -> bool:
        return self.venue.cancel(client_order_id)

    def order(self, client_order_id: ClientOrderId) -> VenueOrder | None:
        return self.venue.order(client_order_id)

    def open_orders(self) -> list[VenueOrder]:
        return self.venue.open_orders()

    def fills_since(self, cursor: int) -> tuple[list[VenueFill], int]:
        return self.venue.fills_since(cursor)

    def balances(self) -> dict[str, Decimal]:
        return self.venue.balances()

    def positions(self) -> dict[str, Decimal]:
        return self.venue.positions()
