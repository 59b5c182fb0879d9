"""Wall time of `execdesk demo` as a user runs it: a fresh process, a fresh home, every import paid.

Run: ``.venv/bin/python benchmarks/bench_demo.py [--runs N]``. Goal: under 60 s after install.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXECDESK = Path(sys.executable).with_name("execdesk")


def bench_demo(runs: int = 3) -> dict[str, Any]:
    walls = []
    for i in range(runs):
        with tempfile.TemporaryDirectory() as home:
            t0 = time.perf_counter()
            out = subprocess.run([str(EXECDESK), "demo", "--home", home, "--json"], capture_output=True, text=True,
                                 check=True)
            walls.append(time.perf_counter() - t0)
            if i == 0:
                data = json.loads(out.stdout)
    return {"runs": runs, "wall_s": [round(w, 3) for w in walls], "median_s": round(statistics.median(walls), 3),
            "bars": data["bars"], "evaluations": data["loop"]["evaluations"], "orders": data["loop"]["orders"],
            "in_process_run_s": data["wall_seconds"]}


def bench_help(runs: int = 5) -> dict[str, Any]:
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([str(EXECDESK), "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - t0)
    return {"runs": runs, "median_s": round(statistics.median(walls), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"demo": bench_demo(args.runs), "help": bench_help()}, indent=2))


if __name__ == "__main__":
    main()
