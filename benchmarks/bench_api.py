"""The API under load next to a running desk: does serving readers slow the desk's loop?

Run: ``.venv/bin/python benchmarks/bench_api.py [--pairs N] [--readers R] [--config DESK.yaml] [--nice N]``;
prints JSON. ``--nice``: the server's ``execdesk serve --nice`` (its default, 10: the service below the desk's CPU
priority; 0: the same priority — on a 2-core machine the readers, the server and the desk then share two cores
and the loop slows).
Loopback only, bounded (about a minute a pair on a 2-core machine; default 2 pairs).

Each pair runs the same desk replay twice, each time ``execdesk run CONFIG --home H --json`` into a fresh home
(default: the bundled demo, src/execdesk/examples/demo.yaml — 2,208 hourly bars, 402 of them eventful):

* **alone**: the desk and nothing else of ours;
* **loaded**: ``execdesk serve`` on that home plus ``--readers`` concurrent readers (one ``httpx.AsyncClient``
  each, in this process) looping over ``/api/status``, ``/api/portfolio``, ``/api/alerts`` and
  ``/api/deployments/<id>``, one server-sent-events consumer on ``/api/stream`` and one Prometheus-like scraper of
  ``/metrics`` once a second. The API needs a desk home (a ledger holding the desk's config), so the server
  process is started with the desk, imports what ``execdesk serve`` imports, waits for the ledger's
  ``desk.configured`` event (read-only SQLite) and then runs the CLI's ``serve`` command itself (the same code as
  ``execdesk serve``). The demo's loop takes about 2 s and starts about 2 s after that event, less than a server
  takes to come up on a busy machine: so, in both runs, the desk is held (SIGSTOP) as soon as its ledger holds the
  config — before its loop, while it takes its deployments through the gates — and let go (SIGCONT) once the load
  is on (loaded: ``/api/health`` answers and the readers have run for a second; alone: after 3 s). The readers
  stop when the loop's metrics file says its run is over (the report the desk writes after its loop is not timed);
  their figures are taken over the loop's span (from the desk's release to the loop's end).

The loop's bar time is the desk's own: ``HOME/metrics/loop.json`` (:class:`execdesk.desk.loop.BarTimes`, what
``/metrics`` serves as ``execdesk_loop_bar_seconds``): the mean work per eventful bar (sum / count, its waits for
the bar's open and close left out; exact), an estimate of its p50 / p99 from the histogram's buckets (as
Prometheus' ``histogram_quantile``), and the loop's wall time. Also each desk process's CPU seconds (``wait4``),
``/proc/loadavg`` before and after each run, and the share of the loop the readers were on for.

The work is checked and the benchmark fails loudly when it differs between the two runs: orders, fills, denials,
trades, eventful bars, lane evaluations (the run's summary) and the ledger's events (count and the hash chain's
head: the same events byte for byte). The target: the loop's mean bar time grows by under 10% under load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXECDESK = Path(sys.executable).with_name("execdesk")
DEMO = ROOT / "src" / "execdesk" / "examples" / "demo.yaml"
#: as on a user's machine (see bench_startup.py): Python caches compiled modules
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: ``execdesk serve`` started with the desk: imports paid first, then serve once the ledger holds the desk's config
SERVER = """
import sqlite3, sys, time
from pathlib import Path
import uvicorn
import execdesk.api.service
from execdesk.cli import app
home, port, nice = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
print("imported", flush=True)
while True:
    try:
        db = sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True, timeout=1)
        try:
            if db.execute("select 1 from events where kind = 'desk.configured' limit 1").fetchone():
                break
        finally:
            db.close()
    except sqlite3.Error:
        pass
    time.sleep(0.02)
app(["serve", "--home", str(home), "--port", port, "--nice", nice], standalone_mode=False)
"""
READS = ("/api/status", "/api/portfolio", "/api/alerts", "/api/deployments/{id}")


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quantile(q: float, le: list[float], counts: list[int]) -> float:
    """``histogram_quantile`` over the loop's buckets (linear within a bucket)."""
    total = sum(counts)
    rank, seen, lower = q * total, 0, 0.0
    for bound, n in zip([*le, float("inf")], counts, strict=True):
        if seen + n >= rank and n:
            return lower + (bound - lower) * (rank - seen) / n if bound != float("inf") else lower
        seen += n
        lower = bound
    return lower


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _loop_file(home: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((home / "metrics" / "loop.json").read_text()))
    except (OSError, ValueError):
        return None


def _work(home: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """What the run did (compared between the two runs)."""
    db = sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        events, head = db.execute("select seq, hash from events order by seq desc limit 1").fetchone()
    finally:
        db.close()
    loop = summary["loop"]
    return {"orders": loop["orders"], "fills": loop["fills"], "denied": loop["denied"],
            "eventful_bars": loop["eventful_bars"], "evaluations": loop["evaluations"],
            "trades": sum(d["trades"] for d in summary["deployments"]), "events": events, "chain_head": head,
            "trading_state": summary["trading_state"]}


def _bar_figures(loop: dict[str, Any]) -> dict[str, Any]:
    bars = loop["bar_seconds"]
    return {"eventful_bars": bars["count"], "bar_mean_ms": round(bars["sum"] / bars["count"] * 1000, 4),
            "bar_p50_ms_est": round(_quantile(0.5, bars["le"], bars["counts"]) * 1000, 3),
            "bar_p99_ms_est": round(_quantile(0.99, bars["le"], bars["counts"]) * 1000, 3),
            "bar_max_ms": round(bars["max"] * 1000, 3), "bar_sum_s": round(bars["sum"], 4),
            "loop_wall_s": round(loop["run_seconds"], 3)}


def _token(home: Path) -> str:
    out = subprocess.run([str(EXECDESK), "token", "create", "--home", str(home), "--name", "bench", "--role",
                          "viewer", "--json"], capture_output=True, text=True, check=True, env=ENV, timeout=120)
    return str(json.loads(out.stdout)["token"])


@contextlib.contextmanager
def _desk(config: Path, home: Path) -> Iterator[tuple[subprocess.Popen[bytes], Any]]:
    """``execdesk run`` (its stdout in a file); ended, if the benchmark fails, whether held or not."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([str(EXECDESK), "run", str(config), "--home", str(home), "--json"], stdout=out,
                                stderr=subprocess.DEVNULL, env=ENV)
        try:
            yield proc, out
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


def _configured(home: Path) -> bool:
    try:
        db = sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return False
    try:
        return db.execute("select 1 from events where kind = 'desk.configured' limit 1").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()


async def _hold(proc: subprocess.Popen[bytes], home: Path) -> None:
    """Stop the desk as soon as its ledger holds its config (before its loop: it is taking its deployments
    through the gates then)."""
    while not (home / "ledger.sqlite").is_file() or not _configured(home):
        if proc.poll() is not None:
            raise SystemExit(f"bench_api: the desk ended (exit {proc.returncode}) before its ledger held a config")
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)
    if _loop_file(home) is not None:
        raise SystemExit("bench_api: the desk was held too late: its loop had begun")


async def _finish(proc: subprocess.Popen[bytes], out: Any, what: str) -> tuple[dict[str, Any], float]:
    """Wait for the desk process: its summary and its CPU seconds."""
    _pid, status, usage = await asyncio.to_thread(os.wait4, proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"bench_api: {what}: execdesk run exited {proc.returncode}: {text[-500:]}")
    return dict(json.loads(text)), usage.ru_utime + usage.ru_stime


async def alone(config: Path, home: Path) -> dict[str, Any]:
    _token(home)  # (as the loaded run's home has: tokens.json)
    load_before = _loadavg()
    started = time.perf_counter()
    with _desk(config, home) as (proc, out):
        await _hold(proc, home)
        await asyncio.sleep(3.0)
        proc.send_signal(signal.SIGCONT)
        summary, cpu = await _finish(proc, out, "alone")
    loop = _loop_file(home)
    if loop is None or not loop["final"]:
        raise SystemExit(f"bench_api: alone: no final loop metrics in {home}")
    return {"work": _work(home, summary), **_bar_figures(loop),
            "desk_process_s": round(time.perf_counter() - started, 2), "desk_cpu_s": round(cpu, 2),
            "loadavg_before": load_before, "loadavg_after": _loadavg()}


class Readers:
    """The load: readers looping over the read routes, an SSE consumer, a /metrics scraper; latencies kept."""

    def __init__(self, base: str, token: str, n: int) -> None:
        self.base, self.n = base, n
        self.headers = {"Authorization": f"Bearer {token}"}
        self.stop = asyncio.Event()
        self.started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.latency: dict[str, list[tuple[float, float]]] = {path: [] for path in READS}  # (end, seconds)
        self.errors: dict[str, int] = {}
        self.deployments: list[str] = []
        self.sse_events = 0
        self.sse_last_seq = 0
        self.metrics_latency: list[tuple[float, float]] = []
        self.health_latency: list[tuple[float, float]] = []  # /api/health (no token), probed with each scrape

    def run_in_thread(self, nice: int) -> None:
        """The readers' own event loop, on this thread, ``nice`` below the desk's CPU priority (Linux: the
        priority of this thread only — the desk, started from the main thread, keeps its own)."""
        if nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
        asyncio.run(self._run())

    async def _run(self) -> None:
        self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
        tasks = [asyncio.create_task(self.reader(i)) for i in range(self.n)]
        sse = asyncio.create_task(self.sse())
        scraper = asyncio.create_task(self.scraper())
        self.started.set()
        await self.stop.wait()
        await asyncio.gather(*tasks, scraper)
        sse.cancel()
        await asyncio.gather(sse, return_exceptions=True)

    def halt(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.stop.set)

    def _error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def reader(self, i: int) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers, timeout=60) as client:
            k = i
            while not self.stop.is_set():
                route = READS[k % len(READS)]
                k += 1
                path = route
                if "{id}" in route:
                    if not self.deployments:
                        continue
                    path = route.format(id=self.deployments[i % len(self.deployments)])
                t0 = time.perf_counter()
                try:
                    response = await client.get(path)
                except httpx.HTTPError as exc:
                    self._error(f"{route}: {type(exc).__name__}")
                    continue
                t1 = time.perf_counter()
                if response.status_code != 200:
                    self._error(f"{route}: HTTP {response.status_code}")
                    continue
                self.latency[route].append((t1, t1 - t0))
                if route == "/api/status":
                    self.deployments = [d["id"] for d in response.json()["deployments"]]

    async def sse(self) -> None:
        async with (httpx.AsyncClient(base_url=self.base, headers=self.headers, timeout=None) as client,
                    client.stream("GET", "/api/stream") as response):
            if response.status_code != 200:
                self._error(f"/api/stream: HTTP {response.status_code}")
                return
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    self.sse_events += 1
                    self.sse_last_seq = int(line[3:].strip())

    async def scraper(self) -> None:
        async with httpx.AsyncClient(base_url=self.base, headers=self.headers, timeout=60) as client:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                response = await client.get("/metrics")
                if response.status_code == 200 and "execdesk_equity" in response.text:
                    t1 = time.perf_counter()
                    self.metrics_latency.append((t1, t1 - t0))
                else:
                    self._error(f"/metrics: HTTP {response.status_code}")
                t0 = time.perf_counter()
                response = await client.get("/api/health")
                if response.status_code == 200:
                    t1 = time.perf_counter()
                    self.health_latency.append((t1, t1 - t0))
                else:
                    self._error(f"/api/health: HTTP {response.status_code}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)

    def figures(self, since: float, until: float) -> dict[str, Any]:
        """Over ``since``..``until`` (perf_counter): the requests that ended then."""
        def within(samples: list[tuple[float, float]]) -> list[float]:
            return [took for end, took in samples if since <= end <= until]

        seconds = until - since
        per = {route: within(v) for route, v in self.latency.items()}
        every = [x for v in per.values() for x in v]
        scrapes = within(self.metrics_latency)
        health = within(self.health_latency)
        return {"readers": self.n, "window_s": round(seconds, 2), "requests": len(every),
                "requests_per_s": round(len(every) / seconds, 1), "p50_ms": round(_pct(every, 0.5) * 1000, 1),
                "p99_ms": round(_pct(every, 0.99) * 1000, 1),
                "per_route": {route: {"requests": len(v), "p50_ms": round(_pct(v, 0.5) * 1000, 1),
                                      "p99_ms": round(_pct(v, 0.99) * 1000, 1)} for route, v in per.items()},
                "errors": self.errors, "sse_events": self.sse_events, "sse_last_seq": self.sse_last_seq,
                "metrics_scrapes": len(scrapes), "metrics_p50_ms": round(_pct(scrapes, 0.5) * 1000, 1),
                "metrics_max_ms": round(max(scrapes, default=float("nan")) * 1000, 1),
                "health_probes": len(health), "health_p50_ms": round(_pct(health, 0.5) * 1000, 1),
                "health_max_ms": round(max(health, default=float("nan")) * 1000, 1)}


async def loaded(config: Path, home: Path, readers: int, nice: int) -> dict[str, Any]:
    token = _token(home)
    port = _free_port()
    with tempfile.TemporaryFile() as server_err:
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(home), str(port), str(nice)],
                                  stdout=subprocess.PIPE, stderr=server_err, env=ENV)
        try:
            assert server.stdout is not None
            await asyncio.to_thread(server.stdout.readline)  # "imported": the server's imports are not the desk's
            with _desk(config, home) as (proc, out):
                return await _loaded(home, readers, token, f"http://127.0.0.1:{port}", server, server_err, proc, out,
                                     nice)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
                try:
                    await asyncio.to_thread(server.wait, 30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


async def _loaded(home: Path, readers: int, token: str, base: str, server: subprocess.Popen[bytes],
                  server_err: Any, proc: subprocess.Popen[bytes], out: Any, nice: int) -> dict[str, Any]:
    load_before = _loadavg()
    started = time.perf_counter()
    await _hold(proc, home)
    async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
        while True:
            if server.poll() is not None:
                server_err.seek(0)
                raise SystemExit("bench_api: the server or the desk ended before the server answered: "
                                 f"{server_err.read().decode()[-2000:]}")
            try:
                if (await probe.get("/api/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    load = Readers(base, token, readers)
    thread = threading.Thread(target=load.run_in_thread, args=(nice,), name="readers", daemon=True)
    thread.start()
    await asyncio.to_thread(load.started.wait)
    await asyncio.sleep(1.0)  # the load on: every reader has its client and its first answers
    on_at = time.time()
    released = time.perf_counter()
    proc.send_signal(signal.SIGCONT)
    while proc.poll() is None:
        loop = _loop_file(home)
        if loop is not None and loop["final"]:
            break
        await asyncio.sleep(0.1)
    ended = time.perf_counter()
    load.halt()
    await asyncio.to_thread(thread.join)
    summary, cpu = await _finish(proc, out, "loaded")
    wall = time.perf_counter() - started
    load_after = _loadavg()
    loop = _loop_file(home)
    if loop is None or not loop["final"]:
        raise SystemExit(f"bench_api: loaded: no final loop metrics in {home}")
    loop_began = loop["updated_at"] - loop["run_seconds"]
    covered = max(0.0, min(1.0, (loop["updated_at"] - max(on_at, loop_began)) / loop["run_seconds"]))
    since = released + max(0.0, loop_began - on_at)  # the loop's first bar, on this process's clock
    return {"work": _work(home, summary), **_bar_figures(loop), "desk_process_s": round(wall, 2),
            "desk_cpu_s": round(cpu, 2), "readers_on_for_share_of_loop": round(covered, 3),
            "load": load.figures(since, ended), "loadavg_before": load_before, "loadavg_after": load_after}


def _calm_year(path: Path, months: int) -> Path:
    """The config replayed over ``months`` months from its start, its shocks left out and its drawdown ladders
    widened: a desk that trades the whole span (the demo's circuit breaker would HALT it in its third month, and
    a HALTED desk has no eventful bars left to time). Written beside the config (its bundles are there)."""
    import yaml

    data = yaml.safe_load(path.read_text())
    start = datetime.fromisoformat(str(data["market"]["start"]).replace("Z", "+00:00"))
    end = start.replace(year=start.year + (start.month - 1 + months) // 12, month=(start.month - 1 + months) % 12 + 1)
    data["market"]["end"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    data["market"].pop("shocks", None)
    data["risk"]["portfolio_drawdown"] = {"alert": 0.3, "reduce": 0.4, "trim": 0.5, "kill": 0.6}
    data["risk"]["deployment_drawdown"] = {"alert": 0.4, "reduce": 0.5, "trim": 0.6, "kill": 0.7}
    out = path.with_name(f"{path.stem}-{months}m.yaml")
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _same_work(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    if a != b:
        diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
        raise SystemExit(f"bench_api: {what}: the two runs did different work: {diff}")


async def bench_api(pairs: int = 2, readers: int = 50, config: Path = DEMO, nice: int = 10,
                    months: int = 12) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(config.parent, root / "desk")  # the config and its bundles, read from a fresh place
        path = root / "desk" / config.name
        if months:
            path = _calm_year(path, months)
        reference: dict[str, Any] | None = None
        for i in range(pairs):
            a = await alone(path, root / f"alone-{i}")
            b = await loaded(path, root / f"loaded-{i}", readers, nice)
            reference = reference or a["work"]
            _same_work(reference, a["work"], f"pair {i}, alone")
            _same_work(reference, b["work"], f"pair {i}, loaded")
            if b["load"]["errors"]:
                print(f"bench_api: pair {i}: reader errors {b['load']['errors']}", file=sys.stderr)
            runs.append({"alone": a, "loaded": b,
                         "bar_mean_growth": round(b["bar_mean_ms"] / a["bar_mean_ms"] - 1, 4),
                         "loop_wall_growth": round(b["loop_wall_s"] / a["loop_wall_s"] - 1, 4)})
    growth = [r["bar_mean_growth"] for r in runs]
    return {"config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config), "pairs": pairs,
            "months": months, "cpus": os.cpu_count(), "nice": nice, "work": reference, "runs": runs,
            "read_p99_ms_median": statistics.median(r["loaded"]["load"]["p99_ms"] for r in runs),
            "read_p50_ms_median": statistics.median(r["loaded"]["load"]["p50_ms"] for r in runs),
            "bar_mean_growth_median": round(statistics.median(growth), 4),
            "loop_wall_growth_median": round(statistics.median(r["loop_wall_growth"] for r in runs), 4),
            "target_bar_mean_growth": 0.10, "met": statistics.median(growth) < 0.10}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=2, help="alone/loaded pairs, run alternately")
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--config", type=Path, default=DEMO, help="a desk config (its bundles next to it)")
    parser.add_argument("--nice", type=int, default=10, help="the server's execdesk serve --nice (its default) "
                        "and the readers' (clients on other machines in use): 0 puts both at the desk's CPU priority")
    parser.add_argument("--months", type=int, default=12, help="replay the config over this many months from its "
                        "start, without its shocks and with wide drawdown ladders (0: the config as it is)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench_api(args.pairs, args.readers, args.config.resolve(), args.nice,
                                           args.months)), indent=2))


if __name__ == "__main__":
    main()
