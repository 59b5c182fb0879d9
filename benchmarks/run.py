"""Run every benchmark and write the figures to benchmarks/out/results.json (and print them).

``.venv/bin/python benchmarks/run.py [--quick]``. Record the figures in docs/BENCHMARKS.md with the
machine and the date: they are wall-clock times on a shared 2-core machine, so expect a few percent
of noise between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_demo
import bench_kill
import bench_loop
import bench_startup

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures to record")
    args = parser.parse_args()
    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    if args.quick:
        results["loop_dense"] = bench_loop.bench_loop(10_000, 3, 2)
        results["loop_quiet"] = bench_loop.bench_loop(10_000, 3, 2, quiet=True)
        results["ledger"] = bench_loop.bench_ledger(20_000, 1_000)
        results["demo"] = bench_demo.bench_demo(1)
        results["kill"] = bench_kill.bench_kill(40, 5, 2)
    else:
        results["loop_dense"] = bench_loop.bench_loop(100_000, 20, 5)
        results["loop_quiet"] = bench_loop.bench_loop(100_000, 20, 5, quiet=True)
        results["ledger"] = bench_loop.bench_ledger(200_000, 1_000)
        results["demo"] = bench_demo.bench_demo(3)
        results["kill"] = bench_kill.bench_kill(200, 5, 5)
    real = bench_loop.bench_real(Path(__file__).resolve().parents[2] / "shared" / "data" / "freqtrade-testdata")
    if real is not None:
        results["loop_real_data"] = real
    results["startup"] = bench_startup.bench_startup(3 if args.quick else 10)
    OUT.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2)
    (OUT / "results.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
