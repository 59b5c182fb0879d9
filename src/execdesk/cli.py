"""The ``execdesk`` command line: a thin edge over the application layer (:mod:`execdesk.api.actions`).

Every command takes ``--json`` (one JSON object on stdout, stable keys) for scripts and agents.
Exit codes: 0 ok, 1 internal error, 2 invalid input, 3 refused by risk or a gate. Errors are one
line on stderr (a traceback only with ``--debug``). Heavy modules are imported inside the commands
so that ``execdesk --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from execdesk.api import ExecdeskError, __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="execdesk: from a validated strategy to a watched deployment, with the brakes on.")
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 220)  # piped: tables whole
# an error is one line whatever the terminal's width (soft wrap: the terminal folds it, rich never breaks it)
err = Console(stderr=True, highlight=False, soft_wrap=True)

def _table(*headers: str, **options: Any) -> Table:
    """A borderless table (a rule under the header) whose cells wrap rather than being cut ("ema_cross_r…"): ids and
    names stay whole at any width. Print it with :func:`_show`, which fits it to the terminal."""
    options = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, **options}
    table = Table(*headers, **options)
    for column in table.columns:
        column.overflow = "fold"
    return table


def _show(table: Table) -> None:
    """Print a table narrowed to the terminal: its widest column first, each no narrower than its longest word, so
    at 80 columns a cell wraps at its spaces and never inside an id, a word or a number (rich alone cuts words, or
    drops a column). Piped output is 220 wide: every row on one line."""
    from rich.text import Text

    columns = table.columns
    texts = [[Text.from_markup(cell).plain if isinstance(cell, str) else str(cell) for cell in (c.header, *c.cells)]
             for c in columns]
    words = [max((len(w) for cell in cells for w in cell.split()), default=1) for cells in texts]
    widths = [max(len(cell) for cell in cells) for cells in texts]
    gaps = 3 * (len(columns) - 1)  # each gap: padding, the (blank) separator, padding
    excess = sum(widths) + gaps - out.width
    while excess > 0:
        narrower = [k for k in range(len(widths)) if widths[k] > words[k]]
        if not narrower:
            break  # as narrow as words allow: rich folds what is left
        i = max(narrower, key=lambda k: widths[k])
        widths[i] -= 1
        excess -= 1
    for column, width in zip(columns, widths, strict=True):
        column.width = width
    out.print(table)


def _flag(name: str, help_text: str) -> Any:
    """An on/off option: shown in help without a value to give (``--json``, not ``--json <bool>``)."""
    return typer.Option(name, metavar="", help=help_text)


HomeOpt = Annotated[Path, typer.Option("--home", envvar="EXECDESK_HOME",
                                       help="The desk's home folder (ledger, reports).")]
DbUrlOpt = Annotated[str | None, typer.Option("--db-url", envvar="EXECDESK_DB_URL", show_default=False,
                                              help="SQLAlchemy URL of the ledger (default: SQLite in the home).")]
JsonOpt = Annotated[bool, _flag("--json", "Print one JSON object (stable keys) instead of tables.")]
DebugOpt = Annotated[bool, _flag("--debug", "Show tracebacks of internal errors.")]
DEFAULT_HOME = Path(".execdesk")
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="EXECDESK_TOKEN", show_default=False,
    help="Act as this token's identity and role (execdesk token create); default: the local user (admin).")]
CommandIdOpt = Annotated[str | None, typer.Option(
    "--command-id", help="This command's id (1-64 letters, digits, . _ : -): the same id again is a no-op, so a "
    "retry after a lost answer is safe. Default: a new one.")]

P = ParamSpec("P")
R = TypeVar("R")


def _emit_json(obj: Any) -> None:
    """One JSON object on stdout; every answer carries ``ok`` (true unless the command says otherwise)."""
    if isinstance(obj, dict) and "ok" not in obj:
        obj = {"ok": True, **obj}
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn errors into one line (or a JSON error object) and the documented exit codes."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json"))
        debug = bool(kwargs.get("debug"))
        try:
            if fn.__name__ not in MAKES_A_HOME and isinstance(kwargs.get("home"), Path) and not kwargs.get("db_url"):
                kwargs["home"] = _desk_home(kwargs["home"])  # type: ignore[arg-type]
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except ExecdeskError as exc:
            _fail(exc.exit_code, type(exc).__name__, str(exc), as_json, debug)
        except KeyboardInterrupt:
            _fail(130, "Interrupted", "interrupted; the ledger keeps everything recorded so far", as_json, debug)
        except Exception as exc:
            _fail(1, "InternalError", f"internal error: {type(exc).__name__}: {exc}", as_json, debug)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


#: the commands that make a home (the others act on a desk that is there)
MAKES_A_HOME = frozenset({"run", "demo"})


def _desk_home(home: Path) -> Path:
    """The home a command acts on: the one named, or — when it holds no desk — the demo's run last under it."""
    from execdesk.desk.home import resolve_home

    found, is_demo = resolve_home(home)
    if is_demo:
        err.print(f"(no desk in {home}: using the demo's, {found}; --home names another)", markup=False)
    return found


def _fail(code: int, kind: str, message: str, as_json: bool, debug: bool) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)
    if as_json:
        _emit_json({"ok": False, "error": {"type": kind, "message": message, "exit_code": code}})
    from rich.markup import escape

    line = escape(" ".join(message.split()))  # a message's own brackets ([postgres], [2, 1000]) are text
    err.print(f"[bold red]error:[/] {line}" if code != 1 else f"[bold red]{line}[/]", markup=True)
    raise typer.Exit(code)


def _identity(home: Path, token: str | None) -> Any:
    """Who a command is from: the token's identity (authenticated against the home's tokens), or the local user's."""
    from execdesk.desk.identity import local_identity

    if token is None:
        return local_identity()
    from execdesk.api.tokens import TokenStore

    return TokenStore(home).authenticate(token)


@contextmanager
def _phases(enabled: bool, label: str) -> Iterator[None]:
    """Show the steps of long work as it enters them (execdesk.phases): in a terminal a spinner naming the step;
    otherwise (CI, a log) one line a step on stderr, with the seconds since the command began."""
    if not enabled:
        yield
        return
    import time

    from execdesk.phases import listening

    if err.is_terminal:
        with err.status(f"{label} ...") as status, listening(lambda name: status.update(f"{label}: {name} ...")):
            yield
        return
    began = time.monotonic()

    def line(name: str) -> None:
        err.print(f"{label} [{time.monotonic() - began:5.1f} s] {name}", markup=False, highlight=False)

    with listening(line):
        yield


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A transient progress bar on stderr, in a terminal only: elsewhere (a pipe, CI's log) rich would leave an empty
    line where the bar was."""
    if not enabled or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# -------------------------------------------------------------------- commands
@app.command()
@command
def run(config: Annotated[Path, typer.Argument(help="The desk config file (YAML or JSON).")],
        home: HomeOpt = DEFAULT_HOME, seed: Annotated[int | None, typer.Option(help="Override desk.seed.")] = None,
        db_url: DbUrlOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Run the desk a config describes; run again on the same home and it carries on from the ledger."""
    from execdesk.api import actions

    with _progress(not as_json, "replaying") as progress:
        summary = actions.run_config(config, home, seed=seed, progress=progress, db_url=db_url)
    _show_summary(summary, as_json)


@app.command()
@command
def demo(home: HomeOpt = DEFAULT_HOME, seed: Annotated[int, typer.Option(help="Seed of the generated market.")] = 7,
         fresh: Annotated[bool, _flag("--fresh", "Start the demo's ledger anew.")] = False,
         until: Annotated[str | None, typer.Option(
             "--until", show_default=False, help="Carry the demo on to this time (ISO 8601, after its end, "
             "2024-10-01): the commands left for it (kill, deploy, ...) act at its next bar.")] = None,
         db_url: DbUrlOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Run the bundled demo: four strategies, a degrading one and a market shock, on generated data."""
    from execdesk.api import actions

    with _progress(not as_json, "demo") as progress:
        summary = actions.run_demo(home, seed=seed, fresh=fresh, progress=progress, db_url=db_url, until=until)
    _show_summary(summary, as_json)
    if not as_json and db_url is None:
        _next_after_demo(home, seed, summary.as_dict()["trading_state"])


def _next_after_demo(home: Path, seed: int, trading_state: str) -> None:
    """The commands a user runs next, ready to copy (the demo's desk found without --home, see _desk_home)."""
    import os

    from execdesk.api.actions import demo_config_path

    v2 = demo_config_path().parent / "next" / "trend_ema_cross_v2.yaml"
    relative = os.path.relpath(v2)
    bundle = relative if not relative.startswith("..") else str(v2)
    demo_home = home / "demo" / f"seed-{seed}"
    default = home == DEFAULT_HOME and "EXECDESK_HOME" not in os.environ
    where = "" if default else f" --home {demo_home}"
    again = ("" if default else f" --home {home}") + ("" if seed == 7 else f" --seed {seed}")
    steps = [(f"execdesk status{where}", "the desk, its deployments and what waits for a human"),
             (f"execdesk report{where}", "a new report: performance, live vs backtest, a chart per deployment")]
    if trading_state == "HALTED":
        steps.append((f'execdesk rearm --reason "breaker reviewed"{where}', "lift the circuit breaker's HALT"))
    steps += [(f'execdesk deploy {bundle} --reason "exit at RSI 75"{where}', "STR-001 version 2, through the "
               "six gates"),
              (f"execdesk demo --until 2024-10-15{again}", "carry the desk on two weeks: version 2 takes over "
               "from version 1"),
              (f"execdesk serve{where}", "the dashboard and the REST API at http://127.0.0.1:8765/ "
               "(execdesk token create first)")]
    out.print(f"[bold]next[/] (the demo's desk is {demo_home}; the commands below find it):")
    for line, what in steps:
        out.print(f"  {line}", markup=False)
        out.print(f"      [dim]{what}[/]")


@app.command()
@command
def intake(path: Annotated[Path, typer.Argument(help="A bundle file, a bundle folder, or an inbox folder.")],
           show: Annotated[bool, _flag("--show", "Print each accepted bundle in full, normalised as "
                                              "the desk will use it.")] = False,
           as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Validate strategy bundles; a line for each (its rules and validation figures for one bundle) or its errors
    (exit 2 if any is invalid)."""
    from execdesk.api import actions

    results = actions.intake(path)
    if as_json:
        _emit_json({"ok": all(r["ok"] for r in results), "results": results})
    else:
        import yaml

        for r in results:
            if r["ok"]:
                b = r["bundle"]
                out.print(f"[green]accepted[/] {r['path']}: {b['id']} {b['name']} v{b['version']} "
                          f"{b['timeframe']} {', '.join(b['pairs'])} (hash {r['bundle_hash'][:12]})")
                if show:
                    out.print(yaml.safe_dump(b, sort_keys=False, width=100).rstrip(), markup=False)
                elif len(results) == 1:
                    _bundle_outline(b)
            else:
                out.print(f"[red]rejected[/] {r['path']}")
                for issue in r["errors"]:
                    out.print(f"  - {issue['path']}: got {issue['value']}; expected {issue['expected']}")
    if not all(r["ok"] for r in results):
        raise typer.Exit(2)


def _bundle_outline(b: dict[str, Any]) -> None:
    """One bundle's rules and validation figures in a few lines (--show prints all of it)."""
    for side in ("entry", "exit"):
        for direction, rule in (b.get(side) or {}).items():
            out.print(f"  {side} {direction}: {rule}", markup=False)
    v = b.get("validation") or {}
    period = v.get("period") or {}
    figures = [f"{v['trades']} trades" if "trades" in v else None,
               f"{period.get('start')} to {period.get('end')}" if period else None,
               f"Sharpe {v['sharpe']}" if v.get("sharpe") is not None else None,
               f"max drawdown {v['max_drawdown']:.0%}" if v.get("max_drawdown") is not None else None,
               f"win rate {v['win_rate']:.0%}" if v.get("win_rate") is not None else None]
    out.print(f"  stoploss {b.get('stoploss')}; validated on {', '.join(f for f in figures if f)} "
              "(--show prints the whole bundle)", markup=False)


@app.command()
@command
def codegen(bundle: Annotated[Path, typer.Argument(help="The strategy bundle (file or folder).")],
            out_dir: Annotated[Path, typer.Option("--out", help="Folder for the strategy, its README and the review.")],
            verify: Annotated[bool, _flag("--verify", "Prove it with Freqtrade's backtester against "
                                                                  "the native engine.")] = False,
            data: Annotated[Path | None, typer.Option("--data", help="A Freqtrade datadir for --verify "
                                                                     "(default: generated candles).")] = None,
            risk_per_trade: Annotated[float | None, typer.Option(
                help="Stake sizing: risk this fraction of the wallet to the stoploss (default: the risk "
                     "manager's, 0.01).")] = None,
            max_position_fraction: Annotated[float | None, typer.Option(
                help="Stake sizing: at most this fraction of the wallet per position (default 0.25).")] = None,
            stake: Annotated[float | None, typer.Option(
                help="A fixed stake per trade instead of risk sizing.")] = None,
            as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Generate the Freqtrade strategy for a bundle, review it, and (--verify) prove it; exit 3 if a check fails.

    The strategy's custom_stake_amount sizes positions the risk manager's way (fixed fractional:
    wallet x risk_per_trade / |stoploss|, capped), unless --stake fixes the stake.
    """
    from execdesk.api import actions

    sizing = actions.stake_sizing(risk_per_trade, max_position_fraction, stake)
    with _phases(not as_json, "codegen"):
        report = actions.codegen(bundle, out_dir, verify, data, sizing)
    if as_json:
        _emit_json({"ok": report.passed, **report.as_dict()})
    else:
        out.print(report.summary())
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command()
@command
def assess(bundle: Annotated[Path, typer.Argument(help="The strategy bundle (file or folder).")],
           home: HomeOpt = DEFAULT_HOME,
           allocation: Annotated[float, typer.Option(help="Fraction of portfolio equity asked for.")] = 0.10,
           out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the assessment files "
                                                                       "(default: HOME/assessments/...).")] = None,
           datadir: Annotated[Path | None, typer.Option("--datadir", help="A Freqtrade datadir with the bundle's "
                                                        "and the live pairs' candles over the validation period, "
                                                        "and the live strategies' own timeframes for their "
                                                        "correlations (default: generated candles).")] = None,
           db_url: DbUrlOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Assess a bundle against the live portfolio: APPROVED, CONDITIONAL (with conditions) or REJECTED (exit 3)."""
    from execdesk.api import actions

    with _phases(not as_json, "assess"):
        data = actions.assess(bundle, home, allocation, db_url, out_dir, datadir)
    if as_json:
        _emit_json({"ok": data["verdict"] != "REJECTED", **data})
    else:
        table = _table("rule", "value", "limit", "passed", title=f"{data['candidate_id']}: {data['verdict']}")
        for rule in data["rules"]:
            table.add_row(rule["name"], f"{rule['value']:.4f}" if isinstance(rule["value"], float) else
                          str(rule["value"]), str(rule["limit"]), "yes" if rule["passed"] else "[red]no[/]")
        _show(table)
        if data.get("correlations"):
            pairs = _table("live deployment", "correlation", "n", "window", "status", "source")
            for c in data["correlations"]:
                window = f"{c['window']['start']}..{c['window']['end']}" if c.get("window") else "-"
                value = f"{c['correlation']:.4f}" if isinstance(c["correlation"], float) else "-"
                status = c["status"] if c["passed"] else f"[red]{c['status']}[/]"
                pairs.add_row(c["deployment_id"], value, str(c["n"]), window, status,
                              c["source"] + (f" ({c['reason']})" if c.get("reason") else ""))
            _show(pairs)
        for line in data.get("conditions", []):
            out.print(f"  condition: {line}")
        for line in data.get("reasons", []):
            out.print(f"  reason: {line}")
        for path in data["files"]:
            out.print(f"wrote {path}")
    if data["verdict"] == "REJECTED":
        raise typer.Exit(3)


@app.command()
@command
def status(home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
           wide: Annotated[bool, _flag("--wide", "Every column: version, venue, state and reason apart, ladder step, "
                                                 "fees, open positions (the default fits 80 columns).")] = False,
           debug: DebugOpt = False) -> None:
    """Show the desk's trading state, deployments, positions and open orders from the ledger."""
    from execdesk.api import actions

    data = actions.status(home, db_url)
    if as_json:
        _emit_json(data)
        return
    from datetime import UTC, datetime

    last = (datetime.fromtimestamp(data["last_bar"], UTC).strftime("%Y-%m-%d %H:%M UTC")
            if data["last_bar"] is not None else "none yet")
    out.print(f"desk [bold]{data['trading_state']}[/] ({data['trading_reason']}), drawdown ladder: "
              f"{data['ladder_step'] or 'no step'} — cash {data['cash']:,.2f} {data['quote']}")
    out.print(f"last bar {last}, run complete: {'yes' if data['completed'] else 'no'}")
    _show(_status_table(data["deployments"], wide))
    out.print(f"open orders: {len(data['open_orders'])}; events: {data['events']}")
    if data["pending_requests"]:
        out.print(f"requests waiting for the desk's next bar: {', '.join(data['pending_requests'])}")
    for waiting in data["waiting_for_a_human"]:
        out.print(f"waiting for a human: {waiting['request_id']} ({waiting['subject']}): {waiting['question']} "
                  f"— execdesk approve|deny {waiting['request_id']} --reason WHY")
    for m in data.get("unposted_messages", []):
        out.print(f"not posted yet: {m['kind']} {m['id']} to {m['to']} ({m['error']}); tried again by the next "
                  "command that sends a message and when the desk starts")


#: a lifecycle's usual reason, left out of the compact status table's ``state`` cell (any other reason is shown)
_USUAL_REASON = {"live": {"deployed", "resumed"}, "scheduled": {"scheduled"}, "paused": {"paused"},
                 "removed": {"removed"}}


def _status_table(deployments: list[dict[str, Any]], wide: bool) -> Table:
    """``execdesk status``'s deployments: by default seven columns that fit 80 (cells wrap at spaces, never cut);
    ``--wide`` every figure in its own column."""
    if wide:
        table = _table("deployment", "version", "venue", "lifecycle", "state", "reason", "health", "ladder",
                       "in use", "sizing", "trades", "realised P&L net of fees", "fees", "open positions")
    else:
        table = _table("deployment", "lifecycle (reason)", "health", "in use", "trades", "P&L net", "open")
    for d in deployments:
        health = d["health"] + (f" -> {d['lead_decision']}" if d["lead_decision"] else "")
        in_use = f"{float(d['allocation_in_use']):.0%} of {float(d['allocation']):.0%}"
        pnl, opened = f"{d['realized_pnl_net']:,.2f}", str(len(d["positions"]))
        if wide:
            sized = d.get("sizing")
            table.add_row(d["id"], f"{d['name']} v{d['version']}", d["venue"], d["lifecycle"], d["state"],
                          d["state_reason"], health, d["ladder_step"] or "-", in_use,
                          _sizing_text(sized) + (f" ({sized['source']})" if sized else ""), str(d["trades"]), pnl,
                          f"{d['fees']:,.2f}", opened)
            continue
        state = d["lifecycle"]
        if d["state_reason"] not in _USUAL_REASON.get(state, set()):
            state += f" ({d['state_reason']})"
        if d["ladder_step"]:
            health += f", ladder {d['ladder_step']}"
        table.add_row(d["id"], state, health, in_use, str(d["trades"]), pnl, opened)
    for column in table.columns:
        if column.header in ("trades", "P&L net", "realised P&L net of fees", "fees", "open", "open positions"):
            column.justify = "right"
    return table


@app.command()
@command
def report(deployment: Annotated[str | None, typer.Argument(help="One deployment id (default: all).")] = None,
           home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
           debug: DebugOpt = False) -> None:
    """Write a report folder (performance, live vs backtest, dashboards; never overwriting) and show it."""
    from execdesk.api import actions
    from execdesk.api.actions import comparison_cells

    with _phases(not as_json, "report"):
        data = actions.report(home, deployment, db_url)
    if as_json:
        _emit_json(data)
        return
    table = _table("deployment", "state", "trades", "win rate", "P&L net", "equity max DD", "backtest trades",
                   "backtest win rate")
    for d in data["deployments"]:
        v = d["validation"]
        table.add_row(d["id"], d["state"], str(d["trades"]), f"{d['win_rate']:.0%}", f"{d['pnl']:,.2f}",
                      f"{d['max_drawdown']:.2%}", str(v.get("trades", "")), f"{v.get('win_rate', 0):.0%}")
    _show(table)
    colours = {"ok": "green", "warn": "yellow", "critical": "red"}
    verdict_colours = {"continue": "green", "review": "yellow", "pause": "red", "stop": "bold red"}
    comparison = data["comparison"]
    for c in comparison["deployments"]:
        verdict = c["verdict"]
        title = (f"{c['id']} ({c['name']}) live vs backtest — verdict: "
                 f"[{verdict_colours.get(verdict or '', 'default')}]{verdict or 'n/a'}[/]")
        if not c["rows"]:
            out.print(f"{title}: {c.get('note', 'no comparison')}")
            continue
        rows = _table("metric", "backtest", "live", "drift", "status", "n", title=title)
        for r in c["rows"]:
            status = f"[{colours[r['status']]}]{r['status']}[/]" + ("" if r["min_sample_met"] else " (small sample)")
            rows.add_row(*comparison_cells(r), status, str(r["n"]))
        _show(rows)
    if any(c["rows"] for c in comparison["deployments"]):
        out.print("(per trade, on each trade's stake: Sharpe not annualised; drawdown of the trade returns compounded, "
                  "the backtest's the 99.9th percentile of 1,000 resamplings — not the equity max DD above; "
                  "comparison.md explains each rule)")
    out.print(f"portfolio: {comparison['portfolio']['summary']}")
    for path in data["files"]:
        out.print(f"wrote {path}")


@app.command()
@command
def rearm(reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
          deployment: Annotated[str | None, typer.Option("--deployment", help="One deployment (default: the desk).")]
          = None,
          home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
          debug: DebugOpt = False,
          command_id: Annotated[str | None, typer.Option("--command-id", help="This command's id (see deploy).")]
          = None, token: TokenOpt = None) -> None:
    """Re-arm the desk (or one deployment) by hand after the circuit breaker, a kill or a ladder step."""
    from execdesk.api import actions

    data = actions.rearm(home, reason, deployment, db_url, command_id=command_id, identity=_identity(home, token))
    if as_json:
        _emit_json(data)
        return
    if "queued" in data or data.get("already_applied"):
        out.print(f"rearm: {data['note']}" + (f" ({data['queued']})" if "queued" in data else ""))
        return
    out.print(f"{data['scope']} re-armed by {data['by']}: {data['lifted']['state']} ({data['lifted']['reason']}, "
              f"ladder step {data['lifted']['ladder_step']}) -> ACTIVE; drawdown measured from "
              f"{data['peak_reset_to'] if data['peak_reset_to'] is not None else 'the next mark'}")


@app.command()
@command
def kill(reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")],
         home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False,
         token: TokenOpt = None, command_id: CommandIdOpt = None) -> None:
    """Pull the kill switch: cancel everything, close everything, HALTED until `execdesk rearm`."""
    import time

    from execdesk.api import actions

    data = actions.kill(home, reason, int(time.time()), _identity(home, token), command_id, db_url)
    if as_json:
        _emit_json(data)
        return
    out.print(f"kill switch requested by {data['by']}: {data['request']} ({data['note']})")


ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded).")]
PositionsOpt = Annotated[str, typer.Option("--positions", help="What the version being replaced does with its "
                                           "positions: hand_over (to the version taking over) or close.")]


@app.command()
@command
def deploy(bundle: Annotated[Path, typer.Argument(help="The validated strategy bundle (file or folder).")],
           venue: Annotated[str, typer.Option("--venue", help="paper, ccxt:<exchange> (its testnet unless --live) "
                                              "or freqtrade (a dry-run bot).")] = "paper",
           allocation: Annotated[float, typer.Option(help="Fraction of portfolio equity asked for.")] = 0.10,
           live: Annotated[bool, _flag("--live", "ccxt only: real money (needs a human's approval).")]
           = False,
           at: Annotated[str | None, typer.Option("--at", help="Start trading at this ISO 8601 time (scheduled).")]
           = None,
           positions: PositionsOpt = "hand_over",
           reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
           sizing: Annotated[str | None, typer.Option("--sizing", help="This deployment's sizing over the bundle's, "
                                                      "as a YAML mapping (the bundle's sizing schema), e.g. "
                                                      "'{method: kelly, fraction: 0.5, cap: 0.2}'.")] = None,
           home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
           debug: DebugOpt = False, command_id: CommandIdOpt = None, token: TokenOpt = None) -> None:
    """Take a bundle through the gates onto the desk: intake, signal generator, risk, approval, deploy, monitor.

    A refused gate exits 3 with its reason; a venue trading real money waits for `execdesk approve`."""
    import time

    from execdesk.api import actions

    data = actions.deploy(home, bundle, venue, int(time.time()), allocation, live, at, positions, reason, db_url,
                          command_id, _identity(home, token), actions.sizing_option(sizing))
    _show_plan(data, as_json)


@app.command()
@command
def inbox(venue: Annotated[str, typer.Option("--venue", help="Where the bundles are deployed (see deploy).")]
          = "paper",
          allocation: Annotated[float, typer.Option(help="Fraction of portfolio equity asked for, each.")] = 0.10,
          home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
          debug: DebugOpt = False, token: TokenOpt = None) -> None:
    """Take the validated bundles waiting in HOME/inbox/ through the gates, each on its own."""
    import time

    from execdesk.api import actions

    data = actions.take_inbox(home, venue, int(time.time()), allocation, db_url, _identity(home, token))
    if as_json:
        _emit_json(data)
        return
    if not data["results"]:
        out.print(f"nothing waiting in {data['inbox']}")
    for r in data["results"]:
        why = r.get("reason") or (r.get("refused") or {}).get("reason") or ""
        out.print(f"{r['entry']}: {r.get('status', 'queued for the running desk')}" + (f" ({why})" if why else ""))


@app.command()
@command
def bots(action: Annotated[str, typer.Argument(help="start, stop, sync (their trades into the ledger) or status.")],
         deployment: Annotated[str | None, typer.Argument(help="One deployment (default: every one on Freqtrade).")]
         = None,
         datadir: Annotated[Path | None, typer.Option("--datadir", help="start: run the bot offline on this "
                                                      "Freqtrade datadir's candles (replayed).")] = None,
         home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
         debug: DebugOpt = False, token: TokenOpt = None) -> None:
    """The desk's Freqtrade bots (deployments on --venue freqtrade): start, stop, sync their trades, status."""
    import time

    from execdesk.api import actions

    data = actions.bots(home, action, int(time.time()), deployment, datadir, db_url, _identity(home, token))
    if as_json:
        _emit_json(data)
        return
    if "queued" in data:
        out.print(f"sync: {data['note']} ({data['queued']})")
    elif "recorded" in data:
        for dep, n in data["recorded"].items():
            out.print(f"{dep}: {n} fill(s) recorded")
        for dep, why in data["unreachable"].items():
            out.print(f"{dep}: bot not reached ({why})")
    else:
        for bot in data["bots"]:
            out.print(", ".join(f"{k} {v}" for k, v in bot.items()))


@app.command()
@command
def approve(request: Annotated[str, typer.Argument(help="The decision request id (dr-...).")],
            reason: ReasonOpt, home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
            debug: DebugOpt = False, command_id: CommandIdOpt = None, token: TokenOpt = None) -> None:
    """Approve a request waiting for a human: a deployment (it goes on through the deploy and monitor gates) or
    a drawdown step the desk leaves to a human (its action is taken at the desk's next bar)."""
    import time

    from execdesk.api import actions

    _show_plan(actions.decide(home, request, "approve", reason, int(time.time()), db_url, command_id,
                              _identity(home, token)), as_json)


@app.command()
@command
def deny(request: Annotated[str, typer.Argument(help="The decision request id (dr-...).")],
         reason: ReasonOpt, home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
         debug: DebugOpt = False, command_id: CommandIdOpt = None, token: TokenOpt = None) -> None:
    """Deny a request waiting for a human: a deployment (its approval gate is refused) or a drawdown step (not
    taken)."""
    import time

    from execdesk.api import actions

    _show_plan(actions.decide(home, request, "deny", reason, int(time.time()), db_url, command_id,
                              _identity(home, token)), as_json)


def _lifecycle_command(action: str, doc: str) -> None:
    def run_action(deployment: Annotated[str, typer.Argument(help="The deployment id, e.g. STR-001-v2.")],
                   reason: ReasonOpt, home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None,
                   as_json: JsonOpt = False, debug: DebugOpt = False, command_id: CommandIdOpt = None,
                   token: TokenOpt = None) -> None:
        import time

        from execdesk.api import actions

        data = actions.lifecycle(home, action, deployment, reason, int(time.time()), db_url, command_id,
                                 _identity(home, token))
        if as_json:
            _emit_json(data)
        elif "queued" in data or data.get("already_applied"):
            out.print(f"{action} {deployment}: {data['note']}" + (f" ({data['queued']})" if "queued" in data else ""))
        else:
            out.print(f"{data['deployment']}: {action} by {data['by']} -> {data['state']} ({data['reason']})")

    run_action.__doc__ = doc
    app.command(action)(command(run_action))


_lifecycle_command("pause", "Pause a deployment: no new positions; its open ones exit as planned.")
_lifecycle_command("resume", "Resume a paused deployment.")
_lifecycle_command("remove", "Remove a deployment: its orders cancelled and positions closed, HALTED once flat.")


@app.command()
@command
def rollback(strategy: Annotated[str, typer.Argument(help="The strategy id, e.g. STR-001.")],
             reason: ReasonOpt, positions: PositionsOpt = "hand_over", home: HomeOpt = DEFAULT_HOME,
             db_url: DbUrlOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False,
             command_id: CommandIdOpt = None, token: TokenOpt = None) -> None:
    """Go back to the strategy's previous version: the current one's positions handed over or closed."""
    import time

    from execdesk.api import actions

    data = actions.rollback(home, strategy, reason, int(time.time()), positions, db_url, command_id,
                            _identity(home, token))
    if as_json:
        _emit_json(data)
    elif "queued" in data or data.get("already_applied"):
        out.print(f"rollback {strategy}: {data['note']}" + (f" ({data['queued']})" if "queued" in data else ""))
    else:
        handed = ", ".join(data["handed_over"]) or "none"
        out.print(f"{strategy}: {data['from']} rolled back to {data['to']} by {data['by']}; positions "
                  f"{data['positions']} (handed over: {handed})")


def _show_plan(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit_json(data)
        return
    if data.get("already_applied"):
        out.print(data["note"])
        return
    if "question" in data:  # an emergency decision request
        out.print(f"{data['request_id']} ({data['subject']}): {data['decision']} by {data['by']}; {data['note']}")
        return
    if "queued" in data:
        out.print(f"{data['note']} ({data['queued']})")
        if data.get("approval_request"):
            out.print(f"waiting for a human: execdesk approve {data['approval_request']} --reason WHY "
                      "(or deny)")
        return
    table = _table("gate", "outcome", "reason", title=f"{data['deployment_id']} -> {data['venue']}: {data['status']}")
    for gate in data["gates"]:
        table.add_row(gate["gate"], gate["outcome"], gate["reason"])
    _show(table)
    if data.get("sizing"):
        out.print(f"sizing: {_sizing_text(data['sizing'])} (this deployment's own, over the bundle's)")
    if data["status"] == "pending_approval":
        out.print(f"waiting for a human: execdesk approve {data['approval_request']} --reason WHY "
                  "(or deny)")


def _sizing_text(sizing: dict[str, Any] | None) -> str:
    """A sizing block in a line: ``kelly fraction=0.5 cap=0.2`` (None: the desk's default)."""
    if not sizing:
        return "fixed_fractional (the desk's risk_per_trade)"
    settings = " ".join(f"{k}={v}" for k, v in sizing.items() if k not in ("method", "source") and v is not None)
    return f"{sizing['method']}{' ' + settings if settings else ''}"


@app.command()
@command
def team(home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
         debug: DebugOpt = False) -> None:
    """How each role of the desk performed (signal generator, risk manager, order executor, monitor)."""
    from execdesk.api import actions

    data = actions.team(home, db_url)
    if as_json:
        _emit_json(data)
        return
    table = _table("role", "figure", "value", title=f"the desk's team — {data['deployments']} deployment(s)")
    for role in ("signal_generator", "risk_manager", "order_executor", "monitor", "execution_lead"):
        for i, (key, value) in enumerate(data[role].items()):
            table.add_row(role.replace("_", " ") if i == 0 else "", key.replace("_", " "), _figure(key, value),
                          end_section=i == len(data[role]) - 1)
    _show(table)
    out.print(f"capacity flags: {', '.join(data['capacity_flags']) or 'none'}")


def _figure(key: str, value: Any) -> str:
    """A team figure for people: counts by name, lists joined, ratios as percentages, the rest rounded."""
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:.1%}" if key.endswith("ratio") else f"{value:,.2f}"
    return str(value)


@app.command()
@command
def verify(home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None, as_json: JsonOpt = False,
           debug: DebugOpt = False) -> None:
    """Verify the ledger in full: every event's hash chained from the first, none missing, the schema known, and
    the projection tables equal to the fold of the events. Exit 2 naming the first thing that does not verify."""
    from execdesk.api import actions

    data = actions.verify(home, db_url)
    if as_json:
        _emit_json({"ok": True, **data})
        return
    out.print(f"ledger {data['ledger']}: {data['events']} events verified, chain head {data['head'][:16]}..., "
              f"projections equal to the fold ({data['seconds']:.2f} s)")


token_app = typer.Typer(no_args_is_help=True, help="API tokens: an identity and a role for the REST API, the agent "
                        "tools and the CLI's --token (viewer, operator, risk, lead, admin).")
app.add_typer(token_app, name="token")


@token_app.command("create")
@command
def token_create(name: Annotated[str, typer.Option("--name", help="Whose token (recorded with every command).")],
                 role: Annotated[str, typer.Option("--role", help="viewer, operator, risk, lead or admin.")],
                 home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False, debug: DebugOpt = False,
                 token: TokenOpt = None,
                 quiet: Annotated[bool, _flag("--quiet", "Print the token alone (for a script: T=$(execdesk token "
                                                         "create ... --quiet)).")] = False) -> None:
    """Create a token (shown once; stored hashed in HOME/tokens.json)."""
    from execdesk.api import actions

    data = actions.token_create(home, name, role, _identity(home, token))
    if as_json:
        _emit_json(data)
        return
    if quiet:
        print(data["token"])
        return
    out.print(f"token for {data['name']} ({data['role']}), id {data['id']} — shown once, keep it safe:")
    out.print(data["token"])


@token_app.command("list")
@command
def token_list(home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False, debug: DebugOpt = False,
               token: TokenOpt = None) -> None:
    """The home's tokens (never their secrets)."""
    from execdesk.api import actions

    data = actions.token_list(home, _identity(home, token))
    if as_json:
        _emit_json(data)
        return
    for t in data["tokens"]:
        state = "revoked" if t["revoked_at"] is not None else "live"
        out.print(f"{t['id']}  {t['name']}  {t['role']}  {state}  created by {t['created_by']}")


@token_app.command("revoke")
@command
def token_revoke(which: Annotated[str, typer.Argument(help="The token's id or name.")],
                 home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False, debug: DebugOpt = False,
                 token: TokenOpt = None) -> None:
    """Revoke a token: refused at once by the API, the tools and the CLI."""
    from execdesk.api import actions

    data = actions.token_revoke(home, which, _identity(home, token))
    if as_json:
        _emit_json(data)
        return
    out.print(f"revoked {data['id']} ({data['name']}, {data['role']})")


@app.command()
@command
def serve(home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None,
          host: Annotated[str, typer.Option("--host", help="Address to bind (loopback unless told otherwise).")]
          = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1, max=65535)] = 8765,
          nice: Annotated[int, typer.Option("--nice", min=0, max=19, help=(
              "Lower the service's CPU priority by this much (0 keeps it): on a machine the desk shares, its "
              "loop comes first."))] = 10,
          debug: DebugOpt = False) -> None:
    """Serve the desk: REST API (OpenAPI at /docs), live events, the dashboard at /, Prometheus /metrics and the
    agent tools (MCP, streamable HTTP) at /mcp — on a running desk or a stopped one."""
    import os

    import uvicorn

    from execdesk.api.service import create_app

    application = create_app(home, db_url)
    if nice:
        os.nice(nice)  # the readers wait a little longer under load; the desk's bars do not
    err.print(f"execdesk serving {home} on http://{host}:{port}/ (tokens: execdesk token create)")
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


@app.command("mcp")
@command
def mcp_tools(home: HomeOpt = DEFAULT_HOME, db_url: DbUrlOpt = None,
              token: Annotated[str | None, typer.Option(
                  "--token", envvar="EXECDESK_TOKEN", show_default=False,
                  help="The token the tools act as: its identity and role (required; execdesk token create).")]
              = None, debug: DebugOpt = False) -> None:
    """Serve the agent tools (MCP) over stdin/stdout as the token's identity: the reads, and the commands its role
    may take — the desk runs every gate on them (docs/AGENTS.md)."""
    from execdesk.api.tokens import TokenStore, Unauthenticated

    if not token:
        raise Unauthenticated("mcp: a token is required (--token or EXECDESK_TOKEN; execdesk token create)")
    TokenStore(home).authenticate(token)  # (before the server's imports: a refusal is quick)
    import anyio

    from execdesk.api.agent_tools import serve_stdio

    anyio.run(serve_stdio, home, db_url, token)


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print the version."""
    if as_json:
        _emit_json({"version": __version__})
    else:
        out.print(__version__)


def _show_summary(summary: Any, as_json: bool) -> None:
    data = summary.as_dict()
    if as_json:
        _emit_json({"ok": True, **data})
        return
    if summary.already_complete:
        out.print("[yellow]this home's run is already complete; showing its results[/]")
    table = _table("deployment", "trades", "wins", "P&L net", "% of its capital", "equity max DD", "states",
                  title=f"desk {data['trading_state']} — equity {data['equity']:,.2f} ({data['return_pct']:+.2f}%), "
                        f"max drawdown {data['max_drawdown']:.2%}")
    for d in data["deployments"]:
        table.add_row(d["id"], str(d["trades"]), str(d["wins"]), f"{d['pnl']:,.2f}", f"{d['pnl_pct']:+.2f}",
                      f"{d['max_drawdown']:.2%}", d["path"])
    _show(table)
    if data["timeline"]:
        out.print("[bold]what happened, in order[/]")
        for step in data["timeline"]:
            out.print(f"  {step['time'][:16].replace('T', ' ')}  {step['what']}")
    loop = data["loop"]
    if not summary.already_complete:
        out.print(f"{data['bars']} bars, {loop['evaluations']} bar-strategy evaluations, {loop['orders']} orders, "
                  f"{loop['fills']} fills, {loop['denied']} denied, in {data['wall_seconds']:.2f} s")
    out.print(f"ledger: {data['ledger']}")
    for path in data["reports"]:
        out.print(f"report: {path}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point. A usage error (an unknown option, a missing or bad argument) is one line naming what
    was wrong and the command's --help — or, with --json, the JSON error object the commands answer with — exit 2."""
    # Typer's usage error (its own click's UsageError: an unknown option or command, a missing or bad parameter),
    # named through its public subclass
    usage_error: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    args = sys.argv[1:] if argv is None else argv
    try:
        code = app(args, standalone_mode=False, prog_name="execdesk")
    except usage_error as exc:
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path} --help" if ctx is not None else "execdesk --help"
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        if "--json" in args:
            _emit_json({"ok": False, "error": {"type": "UsageError", "message": message, "exit_code": 2}})
        err.print(f"[bold red]error:[/] {message} (see {where})", markup=True)
        sys.exit(2)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
