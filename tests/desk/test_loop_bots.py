"""A desk on the wall's time with a Freqtrade bot takes the bot's trades at every bar (no ``bots sync`` asked): the
monitor watches them and the risk book counts them, so the portfolio's caps see the bot's positions. The bot's REST
API is served on loopback by a stand-in that answers ``/status`` and ``/trades`` as Freqtrade does."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from execdesk.api import actions
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES
from tests.desk.test_clock_paths import SteppingClock

NOW = 1_900_000_000
OPENED = 1_710_900_000  # 2024-03-20 02:00 UTC, inside the carried-on run


class _Bot:
    """The stand-in's state: the trades it lists and the requests it saw."""

    def __init__(self, login: str) -> None:
        self.login = login
        self.gets: list[str] = []
        self.trade = {"trade_id": 1, "pair": "SOL/USDT", "is_open": True, "is_short": False, "amount": 20.0,
                      "open_rate": 100.0, "current_rate": 100.0, "open_timestamp": OPENED * 1000, "fee_open": 0.001,
                      "close_rate": None, "close_timestamp": None, "exit_reason": None}


def _handler(bot: _Bot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Basic {bot.login}":
                self._answer(401, {"detail": "Unauthorized"})
                return
            bot.gets.append(self.path)
            if self.path == "/api/v1/status":
                self._answer(200, [bot.trade])
            elif self.path.startswith("/api/v1/trades"):
                self._answer(200, {"trades": [bot.trade], "trades_count": 1, "total_trades": 1})
            else:
                self._answer(404, {"detail": "Not Found"})

        def _answer(self, code: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def desk_with_a_bot(write_config: Callable[..., Path], tmp_path: Path) -> Iterator[tuple[Path, Path, _Bot]]:
    """The small desk replayed to 2024-03-20, STR-002 deployed on the freqtrade venue, its bot's API stood in for."""
    config = write_config(market__end="2024-03-20T00:00:00Z")
    home = tmp_path / "home"
    actions.run_config(config, home, report=False)
    actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "freqtrade", NOW, allocation=0.1)
    bot_config = json.loads((home / "deployments" / "STR-002-v1" / "bot" / "config.json").read_text())
    api = bot_config["api_server"]
    bot = _Bot(base64.b64encode(f"{api['username']}:{api['password']}".encode()).decode())
    server = ThreadingHTTPServer(("127.0.0.1", int(api["listen_port"])), _handler(bot))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    later = yaml.safe_load(config.read_text())
    later["market"]["end"] = "2024-03-21T00:00:00Z"
    carried = config.with_name("later.yaml")
    carried.write_text(yaml.safe_dump(later))
    try:
        yield carried, home, bot
    finally:
        server.shutdown()
        server.server_close()


def test_live_desk_when_a_bot_trades_then_its_trade_is_in_the_ledger_and_the_risk_book_at_the_next_bar(
        desk_with_a_bot: tuple[Path, Path, _Bot]) -> None:
    carried, home, bot = desk_with_a_bot

    run_desk(load_desk_config(carried), home, clock=SteppingClock())

    with Ledger.for_home(home) as ledger:
        events = list(ledger.events({EventKind.RUN_STARTED, EventKind.ORDER_FILLED, EventKind.RUN_COMPLETED}))
        state = ledger.state
    started = max(e.seq for e in events if e.kind is EventKind.RUN_STARTED)
    entry = next(e for e in events if e.kind is EventKind.ORDER_FILLED
                 and e.payload["client_order_id"] == "ft-STR-002-v1-1-entry")
    assert entry.seq > started, "taken by the running desk, without a bots sync"
    position = state.position("STR-002-v1", "SOL/USDT")
    assert position is not None
    assert float(position.qty) == 20.0
    # asked at every bar of the day (24 hourly bars), each a /status and a /trades
    assert sum(1 for g in bot.gets if g == "/api/v1/status") >= 24


def test_replay_desk_when_it_has_a_bot_then_the_bot_is_not_asked(desk_with_a_bot: tuple[Path, Path, _Bot]) -> None:
    carried, home, bot = desk_with_a_bot

    actions.run_config(carried, home, report=False)  # a replay: the bot runs on the wall's time, not the replay's

    assert bot.gets == []


def test_live_desk_when_its_bots_folder_is_gone_then_it_runs_on_with_one_standing_warning(
        desk_with_a_bot: tuple[Path, Path, _Bot]) -> None:
    carried, home, _bot = desk_with_a_bot
    (home / "deployments" / "STR-002-v1" / "bot" / "config.json").unlink()

    run_desk(load_desk_config(carried), home, clock=SteppingClock())

    with Ledger.for_home(home) as ledger:
        assert ledger.state.completed
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "bots_unreadable"]
    assert len(alerts) == 1, "raised once, then standing (not repeated at every bar)"
    assert alerts[0]["level"] == "WARNING"
    assert "no Freqtrade bot prepared" in alerts[0]["message"]
