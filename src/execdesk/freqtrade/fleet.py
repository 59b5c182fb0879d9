"""The desk's Freqtrade bots: one dry-run bot per deployment on the ``freqtrade`` venue, driven over REST.

``execdesk deploy --venue freqtrade`` prepares the bot's folder (``HOME/deployments/<id>/bot/``). From
there the lead drives it with Freqtrade's own REST API (see :mod:`execdesk.freqtrade.bot`):

* :func:`start_bot` — ``freqtrade trade`` in dry run, supervised in its own process group (offline: the
  replay seam fed by a datadir; online: the exchange named in its config); its pid in ``bot.pid`` so
  later commands take it up. The bot runs its strategy rendered with the desk's pre-trade check, and the
  check's server (:mod:`execdesk.desk.bot_check`, pid in ``check.pid``) runs beside it for as long
  as it runs.
* :func:`sync` — the bot's trades into the ledger: each filled entry and each exit becomes the
  deployment's order and fill (client order ids ``ft-<deployment>-<trade id>-entry|exit``, the bot's
  rates, amounts and fees), once — so the monitor watches a bot's deployment like any other (a desk running on
  the wall's time calls it at every bar: :meth:`execdesk.desk.loop.DeskLoop.sync_bots`).
* :func:`tell_bot` — the lead's decisions reach the bot: pause -> ``stopentry``, resume -> ``start``,
  remove (and the kill switch, the circuit breaker) -> ``forceexit all``; remove also stops it.

The strategy inside the bot decides its own orders — its stake and slots come from its config, written from
the allocation — but none is placed before the desk's pre-trade check approves it: every entry is a request to
the check server, which syncs the bot's trades into the ledger, runs the risk manager's check
(:meth:`~execdesk.risk.pretrade.PreTrade.check_sized`: the portfolio's caps on the bot's own amount) and records
a denial as an ``order.denied`` event. No answer refuses the entry (see :mod:`execdesk.freqtrade.deskcheck`).
The desk records what the bot did.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import execdesk
from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import dec
from execdesk.errors import InvalidInput, TemporaryError
from execdesk.freqtrade.deskcheck import DEFAULT_TIMEOUT_S, CheckLink

if TYPE_CHECKING:
    from collections.abc import Callable

    from execdesk.freqtrade.bot import FreqtradeBot
    from execdesk.store.ledger import Ledger
    from execdesk.strategy import StrategyBundle

CLOSE_WAIT_S = 30.0  # how long a removal waits for the bot's exits to fill
CHECK_MODULE = "execdesk.desk.bot_check"
CHECK_PID_FILE, CHECK_LOG_FILE, CHECK_ARGS_FILE = "check.pid", "check.log", "check-args.json"
#: Freqtrade's exit reasons as the desk's (anything else: the strategy's own exit signal)
_EXIT_REASONS = {"stop_loss": "stoploss", "stoploss_on_exchange": "stoploss", "liquidation": "stoploss",
                 "trailing_stop_loss": "trailing_stop", "roi": "roi", "force_exit": "deployment_halt",
                 "emergency_exit": "deployment_halt"}


def bot_folder(home: Path, deployment_id: str) -> Path:
    return home / "deployments" / deployment_id / "bot"


def open_bot(home: Path, deployment_id: str) -> FreqtradeBot:
    """The deployment's prepared bot (:class:`InvalidInput` naming what is missing)."""
    from execdesk.freqtrade.bot import FreqtradeBot

    folder = bot_folder(home, deployment_id)
    if not (folder / "config.json").is_file():
        raise InvalidInput(f"{deployment_id}: no Freqtrade bot prepared in {folder} (deploy it with --venue freqtrade)")
    return FreqtradeBot.open(folder)


def start_bot(home: Path, deployment_id: str, bundle_of: Callable[[], StrategyBundle],
              datadir: Path | None = None, db_url: str | None = None,
              check_timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Start the deployment's bot (offline on ``datadir``'s candles when given, else against its exchange) under
    the desk's pre-trade check; ``bundle_of``: the bundle it was deployed with.

    Its folder is written again (same folder: its trades are kept): the strategy rendered with ``desk_check`` and
    audited, a new :class:`~execdesk.freqtrade.deskcheck.CheckLink` (a free loopback port, a new secret token,
    ``check_timeout_s``) in its ``config.json``, new API credentials. The check server is started first (on the
    home's ledger, ``db_url``), then the bot; a bot that does not come up takes its check server down with it."""
    from execdesk.codegen.audit import audit_source
    from execdesk.codegen.render import render_strategy
    from execdesk.errors import ExecdeskError
    from execdesk.freqtrade.bot import PID_FILE, BotSettings, FreqtradeBot, free_loopback_port

    bot = open_bot(home, deployment_id)
    if bot.running:
        out: dict[str, Any] = {"deployment": deployment_id, "pid": bot.pid, "port": bot.port, "started": False,
                               "note": "running already"}
        if bot.desk_check is not None and check_server_pid(bot.folder) is None:
            out["check"] = {"port": bot.desk_check.port, "restarted": True,  # its check server had gone
                            "pid": start_check_server(home, bot.folder, bot.desk_check, db_url)}
        return out
    generated = render_strategy(bundle_of(), None, desk_check=True)
    findings = audit_source(generated.source, generated.allowed)
    if findings:  # the review passed the plain rendering; this one is audited before it is written
        raise ExecdeskError(f"{deployment_id}: the strategy with the desk's check fails the AST audit: "
                            + "; ".join(str(f) for f in findings[:5]))
    offline = datadir is not None or bot.offline
    s = bot.settings
    settings = BotSettings(stake_amount=s.stake_amount, max_open_trades=s.max_open_trades,
                           dry_run_wallet=s.dry_run_wallet, tradable_balance_ratio=s.tradable_balance_ratio,
                           exchange=s.exchange)
    link = CheckLink.generate(deployment_id, free_loopback_port(), check_timeout_s)
    bot = FreqtradeBot.prepare(generated, bot.folder, settings, datadir=(datadir or bot.datadir) if offline else None,
                               offline=offline, desk_check=link)
    (bot.folder / PID_FILE).unlink(missing_ok=True)  # a crashed run's: the check server ends when its bot has gone
    check_pid = start_check_server(home, bot.folder, link, db_url)
    try:
        bot.start()
    except BaseException:
        stop_check_server(bot.folder)
        raise
    return {"deployment": deployment_id, "pid": bot.pid, "port": bot.port, "started": True,
            "offline": bot.offline, "start_seconds": round(bot.start_seconds or 0.0, 3),
            "check": {"port": link.port, "pid": check_pid, "timeout_s": link.timeout_s}}


def stop_bot(home: Path, deployment_id: str) -> dict[str, Any]:
    """Stop the deployment's bot, then its check server."""
    bot = open_bot(home, deployment_id)
    was = bot.running
    bot.stop()
    stop_check_server(bot.folder)
    return {"deployment": deployment_id, "stopped": was}


# -- the check server's process -------------------------------------------------------------------------------


def start_check_server(home: Path, folder: Path, link: CheckLink, db_url: str | None = None,
                       start_timeout_s: float = 30.0) -> int:
    """Run the desk's check server for the bot in ``folder`` (``python -m execdesk.desk.bot_check``, its
    own process group, output in ``check.log``) and wait until it answers ``/ping``; its pid (also in
    ``check.pid``). The token is not passed: the server reads it from the bot's ``config.json``; the arguments
    (``check-args.json``: the home, the ledger's URL, the bot's folder) are written 0600.
    :class:`~execdesk.errors.ExecdeskError` with the log's tail when it does not come up (it is then stopped)."""
    from execdesk.errors import ExecdeskError
    from execdesk.freqtrade.bot import _write_private

    stop_check_server(folder)
    args = {"home": str(home.resolve()), "db_url": db_url, "bot_folder": str(folder.resolve())}
    _write_private(folder / CHECK_ARGS_FILE, json.dumps(args, indent=2) + "\n")  # a ledger URL may hold a password
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    src = str(Path(execdesk.__file__).resolve().parent.parent)  # the server imports this very execdesk
    env["PYTHONPATH"] = os.pathsep.join([src, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    fd = os.open(folder / CHECK_LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 — fixed argv: this interpreter and our module
            [sys.executable, "-m", CHECK_MODULE, f"@{folder / CHECK_ARGS_FILE}"], cwd=folder, env=env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (folder / CHECK_PID_FILE).write_text(f"{process.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + start_timeout_s
    while not _check_pings(link):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_check_server(folder)
            raise ExecdeskError(f"the desk's check server for {link.deployment_id} did not come up on port "
                                f"{link.port}; {folder / CHECK_LOG_FILE} ends:\n{_tail(folder / CHECK_LOG_FILE)}")
        time.sleep(0.05)
    return process.pid


def check_server_pid(folder: Path) -> int | None:
    """The pid of the bot's check server when it runs (from ``check.pid``)."""
    from execdesk.freqtrade.bot import _alive_pid

    return _alive_pid(folder / CHECK_PID_FILE)


def stop_check_server(folder: Path, timeout_s: float = 10.0) -> bool:
    """Stop the bot's check server (one SIGTERM to its group, SIGKILL after ``timeout_s``); whether one ran."""
    from execdesk.freqtrade.bot import _pid_alive, _signal_group

    pid = check_server_pid(folder)
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # our child when this process started it: reaped, not left a zombie
    (folder / CHECK_PID_FILE).unlink(missing_ok=True)
    return pid is not None


def _check_pings(link: CheckLink) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{link.port}/ping", timeout=1) as reply:
            return bool(json.loads(reply.read()).get("status") == "pong")
    except (OSError, ValueError):
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()[-lines:])
    except OSError:
        return "(no log file)"


@dataclass
class SyncReport:
    """What :func:`sync` found: per deployment, the fills it recorded, or why its bot was not read."""

    recorded: dict[str, int] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"recorded": dict(self.recorded), "unreachable": dict(self.unreachable)}


def freqtrade_deployments(ledger: Ledger) -> list[str]:
    return [d.id for d in ledger.state.deployments.values() if d.venue == "freqtrade"]


def sync(ledger: Ledger, home: Path, deployment: str | None = None) -> SyncReport:
    """Each freqtrade deployment's trades (or one's) into the ledger; a bot that does not answer is reported,
    not an error (its trades come with the next sync)."""
    report = SyncReport()
    for dep_id in freqtrade_deployments(ledger):
        if deployment is not None and dep_id != deployment:
            continue
        bot = open_bot(home, dep_id)
        try:  # Freqtrade lists open trades in /status and closed ones in /trades
            found = {int(t["trade_id"]): t for t in bot.api.status()}
            found.update({int(t["trade_id"]): t for t in bot.api.trades()["trades"]})
        except (TemporaryError, InvalidInput) as exc:
            report.unreachable[dep_id] = str(exc)
            continue
        report.recorded[dep_id] = record_trades(ledger, dep_id, list(found.values()))
    ledger.flush()
    return report


def record_trades(ledger: Ledger, deployment_id: str, trades: list[dict[str, Any]]) -> int:
    """The bot's trades as the deployment's orders and fills, each once; the number of fills recorded."""
    state = ledger.state
    recorded = 0
    for trade in sorted(trades, key=lambda tr: int(tr["trade_id"])):
        amount = dec(trade["amount"] or 0)
        if amount <= 0 or trade.get("open_timestamp") is None:
            continue  # the entry has not filled yet
        base = f"ft-{deployment_id}-{trade['trade_id']}"
        short = bool(trade.get("is_short"))
        pair = str(trade["pair"])
        if f"{base}-entry" not in state.orders:
            _fill(ledger, deployment_id, f"{base}-entry", pair, "SELL" if short else "BUY", short, "entry_signal",
                  amount, dec(trade["open_rate"]), trade.get("fee_open"), int(trade["open_timestamp"]) // 1000,
                  trade)
            recorded += 1
        closed = not trade.get("is_open", True) and trade.get("close_timestamp") and trade.get("close_rate")
        if closed and f"{base}-exit" not in state.orders:
            reason = _EXIT_REASONS.get(str(trade.get("exit_reason")), "exit_signal")
            _fill(ledger, deployment_id, f"{base}-exit", pair, "BUY" if short else "SELL", short, reason, amount,
                  dec(trade["close_rate"]), trade.get("fee_close"), int(trade["close_timestamp"]) // 1000, trade)
            recorded += 1
    return recorded


def _fill(ledger: Ledger, dep_id: str, coid: str, pair: str, side: str, short: bool, reason: str, qty: Decimal,
          price: Decimal, fee_rate: Any, t: int, trade: dict[str, Any]) -> None:
    fee = dec(Decimal(str(fee_rate or 0)) * qty * price)
    source = {"venue": "freqtrade", "trade_id": int(trade["trade_id"]), "bot_exit_reason": trade.get("exit_reason")}
    ledger.record(Event(t, EventKind.ORDER_SUBMITTED, {
        "client_order_id": coid, "deployment_id": dep_id, "pair": pair, "side": side,
        "direction": "SHORT" if short else "LONG", "type": "MARKET", "qty": qty, "reason": reason,
        "signal_time": t, "ref_price": price, "source": source}, dep_id))
    ledger.record(Event(t, EventKind.ORDER_FILLED, {
        "client_order_id": coid, "fill_id": coid, "qty": qty, "price": price, "fee": fee, "liquidity": "taker",
        "source": source}, dep_id))


def tell_bot(home: Path, deployment_id: str, action: str) -> dict[str, Any]:
    """The lead's decision to the deployment's bot, if it runs: what was asked and what it answered."""
    from execdesk.errors import ExecdeskError

    bot = open_bot(home, deployment_id)
    if not bot.running:
        return {"deployment": deployment_id, "action": action, "bot": "not running"}
    try:
        if action == "pause":
            answer: Any = bot.api.stopentry()
        elif action == "resume":
            answer = bot.api.start()
        else:  # remove, kill, circuit breaker: close everything on the bot
            answer = bot.api.forceexit("all")
            if action == "remove":  # its exits filled before it stops, so that a sync can still read them
                deadline = time.monotonic() + CLOSE_WAIT_S
                while bot.api.status() and time.monotonic() < deadline:
                    time.sleep(0.2)
    except ExecdeskError as exc:
        return {"deployment": deployment_id, "action": action, "bot": "error", "error": str(exc)}
    return {"deployment": deployment_id, "action": action, "bot": "told", "answer": answer}


def close_all_bots(home: Path, deployment_ids: list[str], action: str = "kill") -> list[dict[str, Any]]:
    """The kill switch and the circuit breaker on every bot: ``forceexit all`` (their trades reach the ledger
    with the next sync)."""
    return [tell_bot(home, dep_id, action) for dep_id in deployment_ids
            if (bot_folder(home, dep_id) / "config.json").is_file()]
