"""``execdesk verify`` on a large ledger, and what verifying adds to opening one.

Run: ``.venv/bin/python benchmarks/bench_verify.py [--events N]`` (default 1,000,000); prints JSON.

A ledger of N events is built in a temporary home through the real order manager (a configured desk, one
deployment, then ``order.submitted`` events — each with its risk verdict and projection row — flushed per
1,000; not timed). Then, timed: ``execdesk verify --home H --json`` as a whole process (it opens the ledger —
the fold of every event with the hash chain checked on the way — and compares every projection table with the
fold), and, in process, the chain check alone (one SHA-256 per event over its stored content) against opening
the ledger, which is what verification adds to every command. The work is checked: verify must report N + 2
events (the desk and its deployment) and the projections equal to the fold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from execdesk.domain.types import Direction, IntentReason, OrderIntent, Side
from execdesk.execution.oms import OrderManager
from execdesk.risk.pretrade import Verdict
from execdesk.store import models
from execdesk.store.ledger import GENESIS, Ledger, chain_hash
from execdesk.strategy import load_bundle
from execdesk.venues.paper import PaperVenue

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loop import BUNDLES, _deploy

EXECDESK = Path(sys.executable).with_name("execdesk")


def build(home: Path, orders: int) -> int:
    ledger = Ledger.for_home(home)
    _deploy(ledger, [load_bundle(BUNDLES / "trend_ema_cross.yaml")], Decimal(1_000_000))
    dep = next(iter(ledger.state.deployments))
    oms = OrderManager(ledger, PaperVenue("USDT", Decimal(10) ** 12))
    verdict = Verdict(True, "approved", "within limits", Decimal("0.5"))
    for i in range(orders):
        intent = OrderIntent(dep, "BTC/USDT", Side.BUY, Direction.LONG, IntentReason.ENTRY_SIGNAL, i, Decimal("100.5"))
        oms.submit(intent, verdict, i)
        if (i + 1) % 1000 == 0:
            ledger.flush()
    ledger.close()
    return orders + 2


def chain_only(home: Path) -> float:
    """Seconds to recompute every event's chained hash from its stored content (what verifying adds)."""
    from execdesk.domain.events import Event, EventKind

    ledger = Ledger.for_home(home)
    t0 = time.perf_counter()
    prev = GENESIS
    with ledger.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(select(models.events).order_by(models.events.c.seq)):
            content = Event(row.time, EventKind(row.kind), {}, row.deployment_id, row.seq).content(row.payload)
            prev = chain_hash(prev, row.seq, content)
    took = time.perf_counter() - t0
    ledger.close()
    return took


def bench_verify(events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        expected = build(home, events - 2)
        built = time.perf_counter() - t0
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        t0 = time.perf_counter()
        done = subprocess.run([str(EXECDESK), "verify", "--home", str(home), "--json"], capture_output=True,
                              text=True, env=env, timeout=3600)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"bench_verify: verify exited {done.returncode}: {done.stderr}")
        data = json.loads(done.stdout)
        if data["events"] != expected or data["projections"] != "equal to the fold":
            raise SystemExit(f"bench_verify: verify did other work: {data}")
        t0 = time.perf_counter()
        Ledger.for_home(home).close()
        opened = time.perf_counter() - t0
        hashing = chain_only(home)
        return {"events": expected, "build_s": round(built, 1), "verify_process_s": round(wall, 2),
                "verify_reported_s": data["seconds"], "open_s": round(opened, 2), "chain_check_s": round(hashing, 2),
                "chain_share_of_open": round(hashing / opened, 3), "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(bench_verify(args.events), indent=2))


if __name__ == "__main__":
    main()
