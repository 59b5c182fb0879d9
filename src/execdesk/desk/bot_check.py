"""The desk's side of the bots' pre-trade check: a loopback HTTP server per bot that runs the desk's real check.

:func:`execdesk.freqtrade.fleet.start_bot` starts it (``python -m execdesk.desk.bot_check``, see
:func:`~execdesk.freqtrade.fleet.start_check_server`) just before the bot, on the port it wrote into the bot's
config, and :func:`~execdesk.freqtrade.fleet.stop_bot` stops it after the bot; it also ends by itself once the
bot's process is gone. The protocol is :mod:`execdesk.freqtrade.deskcheck`'s.

Each request is decided by :class:`DeskCheck`, on the home's ledger as it is at that moment:

1. the home is taken as a command takes it (``HOME/command.lock`` then ``HOME/desk.lock``, waiting at most
   ``lock_wait_s`` for another command: longer, and the answer is 503 — the bot refuses);
2. the bot's trades are synced first (its ``/status`` and ``/trades``, as :func:`~execdesk.freqtrade.fleet.sync`
   records them: each filled entry and exit once), so its open trades are in the ledger's positions the
   pre-trade book reads — a bot cannot slip past a cap with trades the desk has not heard of yet; a bot whose
   trades cannot be read gets a 503;
3. the book is :class:`~execdesk.risk.pretrade.PreTrade` rebuilt from the ledger (positions, orders in flight,
   recent orders, cash) with the desk's recorded risk config, marked at the entry's rate for its pair, the bot's
   own ``current_rate`` for its open trades, and each other position's average price (a stopped desk has no
   newer price); equity is the risk manager's ``fresh_equity`` at those marks; trading states, the drawdown
   ladders' size multiplier and the staged fraction are the ledger's;
4. :meth:`PreTrade.check_sized <execdesk.risk.pretrade.PreTrade.check_sized>` checks the bot's own amount (it is
   not resized: Freqtrade's callback can only confirm or refuse): the fast path's rules — trading state, open
   positions, deployment, gross and correlated exposure, free cash, throttle, price band — then the
   per-position cap;
5. a denial is recorded as the loop records one — an ``order.denied`` event with the verdict (its rule, reason
   and numbers), plus ``source: {venue: freqtrade, amount}`` — so it counts in ``status``, the team report and the
   metrics; the synced trades are committed with it.

While a desk runs in the home (it holds ``desk.lock``, the one writer of the ledger) the check cannot write: it
decides on the ledger's last commit with the bot's trades folded in memory only, answers, and logs a denial in
``check.log`` instead of the ledger (the running desk records the bot's trades at its next ``bots sync``).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from execdesk.clock import Clock, WallClock
from execdesk.desk.home import open_existing
from execdesk.desk.lock import DeskLock
from execdesk.desk.settings import RecordedDesk
from execdesk.domain.events import Event, EventKind
from execdesk.domain.marks import PORTFOLIO
from execdesk.domain.types import Direction, IntentReason, OrderIntent, dec
from execdesk.errors import ExecdeskError, InvalidInput
from execdesk.freqtrade.bot import PID_FILE as BOT_PID_FILE
from execdesk.freqtrade.bot import _pid_alive
from execdesk.freqtrade.deskcheck import MAX_REQUEST_BYTES, PATH, CheckLink, CheckRequestError, EntryRequest
from execdesk.freqtrade.deskcheck import parse_request as parse_entry
from execdesk.freqtrade.fleet import open_bot, record_trades
from execdesk.risk import ladder
from execdesk.risk.config import DrawdownLadder
from execdesk.risk.drawdown import fresh_equity
from execdesk.risk.pretrade import Context, PreTrade
from execdesk.store.ledger import Ledger

logger = logging.getLogger("execdesk.desk.bot_check")

#: how long a check waits for another command holding the home (below the bot's timeout)
LOCK_WAIT_S: Final = 1.0
_WATCH_S: Final = 1.0  # how often the server process looks whether its bot still runs


@dataclass(frozen=True, slots=True)
class CheckAnswer:
    """The server's answer: HTTP ``status`` and the JSON body (see :mod:`execdesk.freqtrade.deskcheck`)."""

    status: int
    approved: bool
    rule: str
    reason: str
    numbers: dict[str, str] = field(default_factory=dict)
    deployment_id: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"approved": self.approved, "rule": self.rule, "reason": self.reason}
        if self.deployment_id is not None:
            out["deployment_id"] = self.deployment_id
        if self.numbers:
            out["numbers"] = dict(self.numbers)
        return out


def _unavailable(reason: str) -> CheckAnswer:
    return CheckAnswer(503, False, "unavailable", reason)


# -- the decision ----------------------------------------------------------------------------------------------


#: the bot's trades as Freqtrade's REST API lists them (``/status`` and ``/trades``), for a deployment id
TradesOf = Callable[[str], list[dict[str, Any]]]


class DeskCheck:
    """Decides one bot's entries on the home's ledger (see the module docstring for the steps). ``trades``: where
    the bot's trades are read (default: the bot's REST API, :func:`bot_trades`); ``clock``: the time of the
    events it records (default the wall clock, the bot's)."""

    def __init__(self, home: Path, link: CheckLink, db_url: str | None = None, clock: Clock | None = None,
                 lock_wait_s: float = LOCK_WAIT_S, trades: TradesOf | None = None) -> None:
        self.home = home
        self.link = link
        self.db_url = db_url
        self.clock = clock or WallClock()
        self.lock_wait_s = lock_wait_s
        self.trades: TradesOf = trades or (lambda dep: bot_trades(home, dep, link.timeout_s))

    def decide(self, entry: EntryRequest) -> CheckAnswer:
        lock = DeskLock(self.home)
        try:
            writer = lock.acquire_for_command(wait_s=self.lock_wait_s)  # False: a running desk holds it
        except InvalidInput as exc:
            return _unavailable(f"the desk's ledger is busy: {exc}")
        try:
            try:
                ledger = open_existing(self.home, self.db_url)
            except ExecdeskError as exc:
                return _unavailable(f"the desk's ledger cannot be read: {exc}")
            try:
                answer = self._decide(ledger, entry, writer)
            except BaseException:
                ledger.close(flush=False)
                raise
            # kept: the synced trades and the denial — not when a desk runs (it is the ledger's one writer), nor
            # after a failed sync
            ledger.close(flush=writer and answer.status == 200)
            return answer
        finally:
            if writer:
                lock.release()

    def _decide(self, ledger: Ledger, entry: EntryRequest, writer: bool) -> CheckAnswer:
        state = ledger.state
        dep = state.deployments.get(entry.deployment_id)
        if dep is None or dep.venue != "freqtrade":
            return _unavailable(f"{entry.deployment_id} is not a deployment on Freqtrade in this home's ledger")
        rates = self._sync(ledger, dep.id)
        if isinstance(rates, CheckAnswer):
            return rates
        now = self.clock.now()
        marks = {p.pair: float(p.avg_price) for p in state.open_positions()}  # a stopped desk knows no newer price
        marks.update(rates)
        marks[entry.pair] = float(entry.rate)
        recorded = RecordedDesk.of(state)
        risk = recorded.risk
        created = [e.payload for e in ledger.events({EventKind.DEPLOYMENT_CREATED}) if e.deployment_id == dep.id]
        own = created[-1].get("drawdown") if created else None
        dep_ladder = DrawdownLadder.model_validate(own) if own else risk.deployment_drawdown
        pairs = sorted({p for d in state.deployments.values() for p in d.pairs} | set(marks))
        book = PreTrade(risk, list(state.deployments), pairs, dec(recorded.venue.fee_bps) / 10000,
                        float(state.cash()))
        book.rebuild(state, marks, now)
        size = ladder.size_multiplier(risk.portfolio_drawdown, state.ladder_step, dep_ladder, dep.ladder_step)
        ctx = Context(state.trading_state, dep.state, float(fresh_equity(state, marks, PORTFOLIO)),
                      float(fresh_equity(state, marks, dep.id)), 0.0, size, float(dep.stage_fraction))
        direction = Direction.LONG if entry.side == "long" else Direction.SHORT
        intent = OrderIntent(dep.id, entry.pair, direction.entry_side, direction, IntentReason.ENTRY_SIGNAL, now,
                             dec(entry.rate), dec(entry.amount))
        verdict = book.check_sized(intent, ctx)
        if not verdict.approved:
            if writer:
                ledger.record(Event(now, EventKind.ORDER_DENIED, {
                    "deployment_id": dep.id, "pair": entry.pair, "side": intent.side, "direction": direction,
                    "reason": intent.reason, "signal_time": now, "ref_price": intent.ref_price,
                    "verdict": verdict.as_dict(), "source": {"venue": "freqtrade", "amount": str(entry.amount)}},
                    dep.id))
            else:
                logger.warning("denied %s %s %s %s at %s while a desk runs (not in the ledger): %s",
                               dep.id, entry.side, entry.amount, entry.pair, entry.rate, verdict.reason)
        return CheckAnswer(200, verdict.approved, verdict.rule, verdict.reason, dict(verdict.numbers), dep.id)

    def _sync(self, ledger: Ledger, deployment_id: str) -> dict[str, float] | CheckAnswer:
        """The bot's trades into ``ledger`` (each fill once); its open trades' current rates by pair."""
        try:
            trades = self.trades(deployment_id)
            record_trades(ledger, deployment_id, trades)
        except (ExecdeskError, KeyError, TypeError, ValueError) as exc:
            return _unavailable(f"the bot's trades could not be read: {exc}")
        return {str(t["pair"]): float(t["current_rate"]) for t in trades
                if t.get("is_open") and isinstance(t.get("current_rate"), int | float) and t["current_rate"] > 0}


def bot_trades(home: Path, deployment_id: str, timeout_s: float) -> list[dict[str, Any]]:
    """The deployment's bot's trades: its closed ones (``/trades``) and its open ones as ``/status`` shows them now
    (with their ``current_rate``), each once; ``timeout_s`` per call."""
    bot = open_bot(home, deployment_id)
    bot.api.timeout_s = timeout_s  # past the bot's own timeout it has given up on the answer anyway
    found = {int(t["trade_id"]): t for t in bot.api.trades()["trades"]}
    found.update({int(t["trade_id"]): t for t in bot.api.status()})
    return list(found.values())


# -- the HTTP server -------------------------------------------------------------------------------------------


class CheckServer:
    """The check's HTTP endpoint on ``127.0.0.1:<link.port>``: ``POST /pretrade`` -> ``decide`` (one decision at
    a time), ``GET /ping`` for liveness. :meth:`start` serves on a thread; also a context manager."""

    def __init__(self, link: CheckLink, decide: Callable[[EntryRequest], CheckAnswer]) -> None:
        self.link = link
        self._decide = decide
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", link.port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    def handle(self, raw: bytes) -> CheckAnswer:
        """The answer to one request body (never raises)."""
        try:
            entry = parse_entry(raw, self.link)
        except CheckRequestError as exc:
            logger.warning("refused a request: %s %s", exc.status, exc)
            return CheckAnswer(exc.status, False, exc.rule, str(exc))
        try:
            with self._lock:
                answer = self._decide(entry)
        except Exception:  # the bot refuses on a 500: an error here must never approve
            logger.exception("the check failed on %s", entry.as_dict())
            return CheckAnswer(500, False, "error", "the desk's check failed (see check.log)")
        logger.info("%s %s %s %s at %s -> %s: %s", entry.deployment_id, entry.side, entry.amount, entry.pair,
                    entry.rate, answer.rule, answer.reason)
        return answer

    def start(self) -> CheckServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="desk-check", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> CheckServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    timeout = 5.0  # a client that sends nothing in time is dropped (it holds one thread, not the check)
    server_version = "execdesk-check"
    sys_version = ""

    def do_POST(self) -> None:
        if self.path != PATH:
            self._send(404, {"approved": False, "rule": "not_found", "reason": f"POST {PATH} only"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, {"approved": False, "rule": "bad_request", "reason": "Content-Length required"})
            return
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self._send(413, {"approved": False, "rule": "too_large", "reason": f"at most {MAX_REQUEST_BYTES} bytes"})
            return
        answer = self.server.app.handle(self.rfile.read(length))  # type: ignore[attr-defined]
        self._send(answer.status, answer.body())

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(200, {"status": "pong"})
        else:
            self._send(404, {"approved": False, "rule": "not_found", "reason": f"POST {PATH} only"})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)  # the request line: no body, no token


# -- the server's process --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m execdesk.desk.bot_check @<args.json>``: serve until SIGTERM/SIGINT, or until the bot
    whose pid ``bot.pid`` names has gone (the server lives as long as its bot)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(argv) != 1 or not argv[0].startswith("@"):
            raise ValueError("usage: python -m execdesk.desk.bot_check @<args.json>")
        args = json.loads(Path(argv[0][1:]).read_text(encoding="utf-8"))
        folder = Path(args["bot_folder"])
        link = CheckLink.from_config(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        if link is None:
            raise ValueError(f"{folder / 'config.json'} has no desk check (execdesk_pretrade)")
        check = DeskCheck(Path(args["home"]), link, args.get("db_url"))
        server = CheckServer(link, check.decide)
    except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
        logger.error("cannot start: %s", exc)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logger.info("serving %s's pre-trade check on 127.0.0.1:%s%s", link.deployment_id, link.port, PATH)
    seen_bot = False
    with server:
        while not stop.wait(_WATCH_S):
            try:
                bot_pid = int((folder / BOT_PID_FILE).read_text(encoding="utf-8").strip())
            except (OSError, ValueError):
                bot_pid = None
            if bot_pid is not None:
                seen_bot = True
            if seen_bot and (bot_pid is None or not _pid_alive(bot_pid)):
                logger.info("the bot has stopped: the check server stops too")
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
