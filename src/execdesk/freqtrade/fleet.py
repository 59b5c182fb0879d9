"""The desk's Freqtrade bots: one dry-run bot per deployment on the ``freqtrade`` venue, driven over REST.

``execdesk deploy --venue freqtrade`` prepares the bot's folder (``HOME/deployments/<id>/bot/``). From
there the lead drives it with Freqtrade's own REST API (see :mod:`execdesk.freqtrade.bot`):

* :func:`start_bot` — ``freqtrade trade`` in dry run, supervised in its own process group (offline: the
  replay seam fed by a datadir; online: the exchange named in its config); its pid in ``bot.pid`` so
  later commands take it up.
* :func:`sync` — the bot's trades into the ledger: each filled entry and each exit becomes the
  deployment's order and fill (client order ids ``ft-<deployment>-<trade id>-entry|exit``, the bot's
  rates, amounts and fees), once — so the monitor watches a bot's deployment like any other.
* :func:`tell_bot` — the lead's decisions reach the bot: pause -> ``stopentry``, resume -> ``start``,
  remove (and the kill switch, the circuit breaker) -> ``forceexit all``; remove also stops it.

The strategy inside the bot decides its own orders (the risk manager's pre-trade check is the bot's
stake and slot limits, written into its config from the allocation); the desk records what it did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from execdesk.domain.events import Event, EventKind
from execdesk.domain.types import dec
from execdesk.errors import InvalidInput, TemporaryError

if TYPE_CHECKING:
    from collections.abc import Callable

    from execdesk.freqtrade.bot import FreqtradeBot
    from execdesk.store.ledger import Ledger
    from execdesk.strategy import StrategyBundle

CLOSE_WAIT_S = 30.0  # how long a removal waits for the bot's exits to fill
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
              datadir: Path | None = None) -> dict[str, Any]:
    """Start the deployment's bot (offline on ``datadir``'s candles when given, else against its exchange);
    ``bundle_of``: the bundle it was deployed with (its strategy is written again for the offline seam)."""
    from execdesk.codegen.render import render_strategy
    from execdesk.freqtrade.bot import BotSettings, FreqtradeBot

    bot = open_bot(home, deployment_id)
    if bot.running:
        return {"deployment": deployment_id, "pid": bot.pid, "port": bot.port, "started": False,
                "note": "running already"}
    if datadir is not None or bot.offline:  # (re)written for the replay seam, in the same folder (its trades kept)
        bundle = bundle_of()
        s = bot.settings
        settings = BotSettings(stake_amount=s.stake_amount, max_open_trades=s.max_open_trades,
                               dry_run_wallet=s.dry_run_wallet, tradable_balance_ratio=s.tradable_balance_ratio,
                               exchange=s.exchange)
        bot = FreqtradeBot.prepare(render_strategy(bundle, None), bot.folder, settings,
                                   datadir=datadir or bot.datadir, offline=True)
    bot.start()
    return {"deployment": deployment_id, "pid": bot.pid, "port": bot.port, "started": True,
            "offline": bot.offline, "start_seconds": round(bot.start_seconds or 0.0, 3)}


def stop_bot(home: Path, deployment_id: str) -> dict[str, Any]:
    bot = open_bot(home, deployment_id)
    was = bot.running
    bot.stop()
    return {"deployment": deployment_id, "stopped": was}


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
