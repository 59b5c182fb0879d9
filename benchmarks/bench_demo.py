"""Wall time of `execdesk demo` as a user runs it: a fresh process, a fresh home, every import paid.

Two figures: with the signal generator's review cache warm (every run after the first on a machine: the
four strategies' reviews are taken from ``$EXECDESK_CACHE_DIR``), and cold (an empty cache: the four
reviews run Freqtrade's loader, two at a time). Run: ``.venv/bin/python benchmarks/bench_demo.py [--runs N]``.
Goal: under 60 s after install.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXECDESK = Path(sys.executable).with_name("execdesk")


def bench_demo(runs: int = 3) -> dict[str, Any]:
    warm: list[float] = []
    with tempfile.TemporaryDirectory() as cache:
        cold, data = _demo(cache)  # an empty review cache: this run fills it
        for _ in range(runs):
            wall, data = _demo(cache)
            warm.append(wall)
    return {"runs": runs, "wall_s": [round(w, 3) for w in warm], "median_s": round(statistics.median(warm), 3),
            "cold_cache_s": round(cold, 3), "bars": data["bars"], "evaluations": data["loop"]["evaluations"],
            "orders": data["loop"]["orders"], "in_process_run_s": data["wall_seconds"]}


def _demo(cache: str) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as home:
        t0 = time.perf_counter()
        out = subprocess.run([str(EXECDESK), "demo", "--home", home, "--json"], capture_output=True, text=True,
                             check=True, env={**os.environ, "EXECDESK_CACHE_DIR": cache})
        wall = time.perf_counter() - t0
    data: dict[str, Any] = json.loads(out.stdout)
    return wall, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"demo": bench_demo(args.runs)}, indent=2))


if __name__ == "__main__":
    main()
