"""Start-up of the everyday commands as whole processes: ``execdesk --help``, ``execdesk status --home H`` on the
demo's home and ``execdesk intake BUNDLE`` (what an operator or an agent pays per call).

Run: ``.venv/bin/python benchmarks/bench_startup.py [--runs N] [--home H]``; prints JSON. Without ``--home`` the
demo (seed 7) is run once first into a temporary home (not timed). Each command runs ``--runs`` times (default
10) after one warm-up run (the disk cache and Python's bytecode cache warm, as on a user's machine); the figures
are wall seconds per process (median, min, max) and its peak RSS. The work is checked on every run and the
benchmark fails loudly when it changes: ``status`` lists the demo's four deployments with the desk HALTED,
``intake`` accepts the bundle, ``--help`` prints the usage — and none of them imports numba, scipy,
matplotlib, Alembic's command machinery or Freqtrade.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXECDESK = Path(sys.executable).with_name("execdesk")
BUNDLE = ROOT / "src" / "execdesk" / "examples" / "bundles" / "trend_ema_cross.yaml"
HEAVY = ("numba", "scipy", "matplotlib", "alembic.command", "freqtrade")
#: as on a user's machine: Python caches compiled modules (a shell with PYTHONDONTWRITEBYTECODE set would make
#: every run compile the package's sources again; the warm-up run writes the cache)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PROBE = ("import json, sys\nfrom execdesk.cli import app\ntry:\n    app(sys.argv[1:], standalone_mode=False)\n"
         "except SystemExit:\n    pass\nprint(json.dumps(sorted({m.split('.')[0] if not m.startswith('alembic') else m "
         f"for m in sys.modules for h in {HEAVY!r} if m == h or m.startswith(h + '.')}})), file=sys.stderr)\n")


def _status_ok(out: str) -> None:
    data = json.loads(out)
    if len(data["deployments"]) != 4 or data["trading_state"] != "HALTED":
        raise SystemExit(f"bench_startup: status did other work than the demo's: {out[:300]}")


def _intake_ok(out: str) -> None:
    data = json.loads(out)
    if not data["ok"] or len(data["results"]) != 1 or not data["results"][0]["ok"]:
        raise SystemExit(f"bench_startup: intake did not accept the bundle: {out[:300]}")


def _help_ok(out: str) -> None:
    if "Usage" not in out or "status" not in out:
        raise SystemExit(f"bench_startup: --help printed something else: {out[:300]}")


def _run(args: list[str]) -> tuple[float, float, str]:
    """One whole process: (wall seconds, its own peak RSS in MB, its stdout)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(EXECDESK), *args], stdout=out, stderr=err, env=ENV)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"bench_startup: execdesk {' '.join(args)} exited {proc.returncode}: "
                             f"{err.read().decode()}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def _time(args: list[str], check: Callable[[str], None], runs: int) -> dict[str, Any]:
    walls, rss = [], []
    for i in range(runs + 1):
        wall, peak, stdout = _run(args)
        check(stdout)
        if i:  # the first run warms the disk cache
            walls.append(wall)
            rss.append(peak)
    probe = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    heavy = json.loads(probe.stderr.strip().splitlines()[-1])
    if heavy:
        raise SystemExit(f"bench_startup: execdesk {' '.join(args)} imported {heavy}")
    return {"runs": runs, "median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3), "peak_rss_mb": round(max(rss), 1), "heavy_imports": heavy}


def bench_startup(runs: int = 10, home: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if home is None:
            subprocess.run([str(EXECDESK), "demo", "--seed", "7", "--home", tmp, "--json"], capture_output=True,
                           check=True, timeout=900)
            home = Path(tmp) / "demo" / "seed-7"
        return {"load_before": os.getloadavg(),
                "help": _time(["--help"], _help_ok, runs),
                "status": _time(["status", "--home", str(home), "--json"], _status_ok, runs),
                "intake": _time(["intake", str(BUNDLE), "--json"], _intake_ok, runs),
                "load_after": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--home", type=Path, default=None, help="a demo home (default: run the demo first)")
    args = parser.parse_args()
    print(json.dumps(bench_startup(args.runs, args.home), indent=2))


if __name__ == "__main__":
    main()
