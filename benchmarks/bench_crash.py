"""Crash and fault drills, longer than the test suite's: ``kill -9`` trials and orders through faults.

Run: ``.venv/bin/python benchmarks/bench_crash.py [--trials N] [--orders N] [--resume-trials N] [--workers W]
[--only crash|faults|resume]``; prints JSON.

* Crash trials (the same trial as tests/execution/test_crash.py): ``execdesk run`` of a small desk with
  the paper venue keeping its own book, killed with SIGKILL at a random moment of its replay, then run
  again on the same home; after each trial the ledger and the venue must agree exactly (fills, orders,
  positions, cash) and the hash chain must hold. Reported: trials, kills that landed mid-run, fills the
  restarted desk adopted from the venue, orders resent, failures (must be 0).
* Resume drill (as the resumed-run test of tests/execution/test_crash.py, larger, on the demo): ``execdesk run``
  of the demo's config (four strategies, drift, ladders, the circuit breaker, messages, the report) killed with
  SIGKILL at a random moment (half the trials: a random time from its ledger's creation to its end; half: once
  its ledger holds a random number of the reference's events, so kills spread over the replay), run again, and
  compared with an
  uninterrupted run of the same seed on the whole event stream and on every file of the home
  (:mod:`execdesk.desk.drill`) — with the embedded paper venue and with the one keeping its own book. Reported
  per venue: trials, kills that landed while the desk ran (before its first commit, mid-run, after its last bar),
  fills adopted on restart, differences (must be 0); the reference run's orders and fills (the work; the drill
  fails loudly if a resumed run's differ).
* Fault drill (as tests/execution/test_faults.py, larger): orders through a venue that times out
  (before and after acting), rate-limits, disconnects, rejects, splits and repeats fill reports; the
  ledger must equal the wrapped venue. Reported: orders, faults of each kind, orders lost, fills
  duplicated (must be 0), wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.execution import test_crash, test_faults  # noqa: E402
from tests.kit import desk_ledger  # noqa: E402

from execdesk.domain.events import EventKind  # noqa: E402
from execdesk.store.ledger import Ledger  # noqa: E402
from execdesk.venues.faulty import FaultRates, FaultyVenue  # noqa: E402
from execdesk.venues.paper import PaperVenue, PaperVenueConfig  # noqa: E402


def crash_trials(trials: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = test_crash._config(root)
        homes = [root / f"trial-{i:04d}" for i in range(trials)]
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            runs = list(pool.map(lambda i: test_crash._trial(config, homes[i], 5000 + i), range(trials)))
        failures: list[str] = [f"trial {i}: rerun exit {r['rc']}" for i, r in enumerate(runs) if r["rc"] != 0]
        adopted = orders = 0
        for i, home in enumerate(homes):
            if runs[i]["rc"] != 0:
                continue
            try:
                books = test_crash._check_books(home)
            except AssertionError as exc:
                failures.append(f"trial {i}: {exc}")
                continue
            adopted += books["adopted"]
            orders += books["orders"]
            with Ledger.for_home(home) as ledger:
                resent = sum(len(e.payload["resubmitted"]) for e in ledger.events({EventKind.RECONCILED}))
            runs[i]["resubmitted"] = resent
        return {"trials": trials, "killed_mid_run": sum(r["killed_mid_run"] for r in runs),
                "fills_adopted_on_restart": adopted, "orders_resent_on_restart": sum(r.get("resubmitted", 0)
                                                                                     for r in runs),
                "orders_checked": orders, "failures": len(failures), "failure_examples": failures[:5],
                "wall_s": round(time.perf_counter() - started, 1)}


def resume_trials(trials: int, workers: int, persist: bool) -> dict[str, Any]:
    import shutil

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "src" / "execdesk" / "examples", root / "demo")
        config = yaml.safe_load((root / "demo" / "demo.yaml").read_text())
        config["venue"]["persist"] = persist
        path = root / "demo" / "desk.yaml"
        path.write_text(yaml.safe_dump(config))
        reference = root / "reference"
        window = test_crash.reference_run(path, reference)
        with Ledger.for_home(reference) as ledger:
            orders, fills, events = len(ledger.state.orders), len(ledger.state.fills), ledger.state.last_seq
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            runs = list(pool.map(lambda i: test_crash.resume_trial(path, root / f"t{i:04d}", reference, 9000 + i,
                                                                   window, events), range(trials)))
        wall = time.perf_counter() - started
        differing = [(i, r["differences"]) for i, r in enumerate(runs) if r["differences"]]
        return {"venue": "paper, its own book (venue.persist)" if persist else "paper, embedded",
                "trials": trials, "reference": {"orders": orders, "fills": fills, "replay_s": round(window, 2)},
                "killed_before_first_commit": sum(r["killed"] and r["events_at_kill"] == 0 for r in runs),
                "killed_mid_run": sum(r["killed"] and r["events_at_kill"] > 0 and not r["completed_at_kill"]
                                      for r in runs),
                "killed_after_last_bar": sum(r["killed"] and r["completed_at_kill"] for r in runs),
                "ended_before_the_kill": sum(not r["killed"] for r in runs),
                "fills_adopted_on_restart": sum(r["adopted"] for r in runs),
                "differences": len(differing), "difference_examples": differing[:3], "wall_s": round(wall, 1)}


def fault_drill(orders: int, seed: int = 7) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cap = test_faults.CAPITAL
        ledger = desk_ledger(Path(tmp), test_faults.DEP, test_faults.PAIRS, cap)
        inner = PaperVenue("USDT", cap, PaperVenueConfig(max_volume_share=0.5), pairs=test_faults.PAIRS,
                           bar_seconds=3600)
        venue = FaultyVenue(inner, FaultRates(), seed=seed)
        started = time.perf_counter()
        oms = test_faults._drive(ledger, venue, inner, orders=orders, per_bar=100, seed=seed)
        wall = time.perf_counter() - started
        lost = duplicated = 0
        try:
            test_faults._assert_ledger_equals_venue(ledger, inner, venue)
        except AssertionError as exc:  # reported, not raised: the figure to record is the count
            lost = duplicated = -1
            print(f"MISMATCH: {exc}", file=sys.stderr)
        c = venue.counts
        ledger.close()
        return {"orders": len(ledger.state.orders), "faults": {
            "timeout_before": c.timeout_before, "timeout_after": c.timeout_after, "rate_limit": c.rate_limit,
            "disconnect": c.disconnect, "reject": c.reject, "split_fill": c.split_fill,
            "duplicate_fill": c.duplicate_fill}, "venue_calls": sum(c.calls.values()),
            "retries": oms.retry.retries, "duplicate_fill_reports_dropped": oms.stats.duplicate_fills,
            "orders_lost": lost, "fills_duplicated": duplicated, "wall_s": round(wall, 2),
            "orders_per_s": round(orders / wall)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--resume-trials", type=int, default=100, help="per venue (two venues)")
    parser.add_argument("--only", choices=("crash", "faults", "resume"))
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if args.only in (None, "faults"):
        result["faults"] = fault_drill(args.orders)
    if args.only in (None, "crash"):
        result["crash"] = crash_trials(args.trials, args.workers)
    if args.only in (None, "resume"):
        result["resume"] = [resume_trials(args.resume_trials, args.workers, persist) for persist in (False, True)]
    print(json.dumps(result, indent=2))
    if any(r["differences"] for r in result.get("resume", [])):
        raise SystemExit("resume drill: a resumed run differs from the uninterrupted one (see difference_examples)")


if __name__ == "__main__":
    main()
