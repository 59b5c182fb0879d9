"""Running a desk: :func:`run_desk` carries on the desk a config describes in its home — a replay here (the
loop rebuilt on the ledger when a deployment is taken in while it runs), or live on an exchange
(:func:`execdesk.desk.live.run_live`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from execdesk.clock import Clock, WallClock
from execdesk.desk.assembly import (
    build_loop,
    build_market,
    catch_up,
    deploy_configured,
    deployment_id,
    post_unposted_messages,
)
from execdesk.desk.live import run_live
from execdesk.desk.lock import DeskLock
from execdesk.desk.loop import LoopStats
from execdesk.desk.settings import DeskConfig
from execdesk.desk.summary import RunSummary, summarize
from execdesk.errors import InvalidInput
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle


def run_desk(config: DeskConfig, home: Path, progress: Callable[[int, int], None] | None = None,
             clock: Clock | None = None, db_url: str | None = None, report: bool = False) -> RunSummary:
    """Run (or carry on) the desk described by ``config`` in ``home`` (ledger: ``db_url``, default SQLite there).

    One desk process per home: the run holds ``HOME/desk.lock`` (see :class:`DeskLock`); the lead's commands
    find it held and leave their requests in ``HOME/control/`` for the running loop instead of writing to the
    ledger. A deployment taken in while running (``execdesk deploy``) restarts the loop on the ledger, which
    then trades it. ``report``: the run's report, written exactly once (:func:`~execdesk.monitor.report.run_report`:
    a run killed before it was written writes it when it runs again)."""
    started = time.perf_counter()
    bundles = [load_bundle(s.bundle) for s in config.strategies]
    ids = [deployment_id(b) for b in bundles]
    if len(set(ids)) != len(ids):
        raise InvalidInput(f"strategies: the same bundle id and version is listed twice ({', '.join(ids)})")
    if config.venue.kind == "ccxt":
        summary = run_live(config, home, bundles, progress, clock or WallClock(), db_url, started)
        if report:
            with DeskLock.for_run(home), Ledger.for_home(home, db_url) as ledger:
                summary.reports = [str(p) for p in _run_report(ledger, home)]
        return summary
    market = build_market(config, bundles)
    for b in bundles:  # everything that can fail on bad input fails before the ledger is touched
        for pair in b.pairs:
            market.lane_candles(pair, b.timeframe)
    # an error drops what the loop had not flushed: see DeskLoop
    with DeskLock.for_run(home), Ledger.for_home(home, db_url) as ledger:
        deploy_configured(ledger, home, config, bundles, int(market.time[0]), set(market.pairs))
        post_unposted_messages(ledger, home, config)  # (what the commands on the stopped desk could not post)
        state = ledger.state
        done = state.completed and state.last_bar_time is not None and state.last_bar_time >= int(market.time[-1])
        stats = LoopStats(bars=market.n)
        if done:  # nothing to run: what a desk killed after its last commit left undone is done now
            catch_up(ledger, home, config)
        while not done:
            loop = build_loop(ledger, home, config, bundles, market, progress, clock)
            try:
                more = loop.run()
            finally:
                loop.venue.close()
            stats = stats.plus(more)
            if not loop.restart:
                break
        reports = _run_report(ledger, home) if report else []
        summary = summarize(ledger, market, time.perf_counter() - started, stats, home, already_complete=done)
        summary.reports = [str(p) for p in reports]
        return summary


def _run_report(ledger: Ledger, home: Path) -> list[Path]:
    from execdesk.monitor.report import run_report  # (pandas and matplotlib: only when a report is written)

    return run_report(ledger, home)
