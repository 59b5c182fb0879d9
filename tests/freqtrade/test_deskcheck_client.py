"""The strategy's side of the desk's pre-trade check: the generated ``confirm_trade_entry`` itself (rendered with
``desk_check``, audited, executed against a stub ``IStrategy``) talking to real loopback servers — the desk's
check server, and servers that answer badly or never. It must fail closed, within its timeout, and say why in the
log without the token. Fast: no Freqtrade process."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from execdesk.codegen.render import GeneratedStrategy, render_strategy
from execdesk.desk.bot_check import CheckAnswer, CheckServer
from execdesk.freqtrade.bot import free_loopback_port
from execdesk.freqtrade.deskcheck import CheckLink, EntryRequest
from execdesk.strategy import load_bundle
from tests.codegen.test_render import _load_class
from tests.conftest import BUNDLES

DEP = "STR-002-v1"


class _StubStrategy:
    """Stands in for freqtrade.strategy.IStrategy: the check reads ``config`` and ``dp.runmode`` only."""

    config: dict[str, Any]
    dp: Any = None


@pytest.fixture(scope="module")
def generated() -> GeneratedStrategy:
    return render_strategy(load_bundle(BUNDLES / "mean_revert_bbands.yaml"), None, desk_check=True)


@pytest.fixture
def strategy_class(generated: GeneratedStrategy, monkeypatch: pytest.MonkeyPatch) -> type[Any]:
    return _load_class(generated, monkeypatch, _StubStrategy)


def _strategy(cls: type[Any], link: CheckLink | None, runmode: str = "dry_run") -> Any:
    strategy = cls()
    strategy.config = {"strategy": cls.__name__, **({"execdesk_pretrade": link.as_config()} if link else {})}
    strategy.dp = types.SimpleNamespace(runmode=types.SimpleNamespace(value=runmode))
    return strategy


def _confirm(strategy: Any, amount: float = 2.0) -> bool:
    return bool(strategy.confirm_trade_entry(pair="SOL/USDT", order_type="limit", amount=amount, rate=140.0,
                                             time_in_force="GTC", current_time=None, entry_tag=None, side="long"))


@pytest.fixture
def desk() -> Iterator[CheckLink]:
    """The desk's check server, deciding: up to 5 SOL approved, more denied by deployment_exposure."""
    link = CheckLink.generate(DEP, free_loopback_port(), timeout_s=1.0)

    def decide(entry: EntryRequest) -> CheckAnswer:
        if entry.amount <= 5:
            return CheckAnswer(200, True, "approved", "within limits", {}, DEP)
        return CheckAnswer(200, False, "deployment_exposure", "deployment exposure above its cap", {}, DEP)

    with CheckServer(link, decide):
        yield link


class _Listener:
    """A loopback server that accepts connections and counts them; ``reply`` is what it answers (None: never)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.connections = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            if self.reply is None:
                self._held.append(conn)  # read nothing, answer nothing
                continue
            conn.recv(65536)
            conn.sendall(self.reply)
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def listener() -> Iterator[type[_Listener]]:
    made: list[_Listener] = []

    class Made(_Listener):
        def __init__(self, reply: bytes | None) -> None:
            super().__init__(reply)
            made.append(self)

    yield Made
    for each in made:
        each.close()


def _link_to(port: int, timeout_s: float = 1.0) -> CheckLink:
    return CheckLink.generate(DEP, port, timeout_s)


def test_confirm_when_the_desk_approves_then_entry_confirmed(strategy_class: type[Any], desk: CheckLink) -> None:
    assert _confirm(_strategy(strategy_class, desk), amount=5.0) is True


def test_confirm_when_the_desk_denies_then_refused_and_the_log_says_why_without_the_token(
        strategy_class: type[Any], desk: CheckLink, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="execdesk.pretrade"):
        assert _confirm(_strategy(strategy_class, desk), amount=6.0) is False
    assert "refused by the desk's pre-trade check: deployment_exposure (deployment exposure above its cap)" in (
        caplog.text)
    assert desk.token not in caplog.text


def test_confirm_when_the_token_is_wrong_then_refused_on_the_403(
        strategy_class: type[Any], desk: CheckLink, caplog: pytest.LogCaptureFixture) -> None:
    wrong = CheckLink.generate(DEP, desk.port, desk.timeout_s)  # another token
    with caplog.at_level(logging.WARNING, logger="execdesk.pretrade"):
        assert _confirm(_strategy(strategy_class, wrong)) is False
    assert "gave no usable answer" in caplog.text
    assert "403" in caplog.text
    assert wrong.token not in caplog.text


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[true]",
        b"HTTP/1.0 200 OK\r\n\r\nnot json at all",
        b'HTTP/1.0 200 OK\r\n\r\n{"approved": "yes", "rule": "approved", "reason": "truthy is not true"}',
        b'HTTP/1.0 200 OK\r\n\r\n{"approved": true}',
        b"HTTP/1.0 500 Internal Server Error\r\n\r\n{}",
        b"garbage that is no HTTP",
    ],
)
def test_confirm_when_the_answer_is_malformed_then_refused(strategy_class: type[Any], listener: type[_Listener],
                                                           reply: bytes) -> None:
    server = listener(reply)
    assert _confirm(_strategy(strategy_class, _link_to(server.port))) is False
    assert server.connections == 1


def test_confirm_when_the_desk_never_answers_then_refused_within_the_timeout(
        strategy_class: type[Any], listener: type[_Listener], caplog: pytest.LogCaptureFixture) -> None:
    server = listener(None)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="execdesk.pretrade"):
        confirmed = _confirm(_strategy(strategy_class, _link_to(server.port, timeout_s=0.5)))
    elapsed = time.monotonic() - started
    assert confirmed is False
    assert 0.4 < elapsed < 2.0
    assert "timed out" in caplog.text


def test_confirm_when_nothing_listens_then_refused_at_once(strategy_class: type[Any]) -> None:
    started = time.monotonic()
    assert _confirm(_strategy(strategy_class, _link_to(free_loopback_port()))) is False
    assert time.monotonic() - started < 1.0


def test_confirm_when_the_config_is_broken_then_refused(strategy_class: type[Any], desk: CheckLink) -> None:
    strategy = _strategy(strategy_class, desk)
    del strategy.config["execdesk_pretrade"]["token"]
    assert _confirm(strategy) is False
    strategy = _strategy(strategy_class, desk)
    strategy.config["execdesk_pretrade"]["port"] = "80@example.com"  # not an int: never a URL of its own
    assert _confirm(strategy) is False
    strategy = _strategy(strategy_class, desk)
    strategy.dp = None  # no data provider: the run mode is unknown, so no entry
    assert _confirm(strategy) is False


@pytest.mark.parametrize("runmode", ["backtest", "hyperopt", "plot", "other"])
def test_confirm_when_not_trading_then_confirmed_without_calling_anything(
        strategy_class: type[Any], listener: type[_Listener], runmode: str) -> None:
    server = listener(b"HTTP/1.0 200 OK\r\n\r\n{}")
    assert _confirm(_strategy(strategy_class, _link_to(server.port), runmode=runmode)) is True
    time.sleep(0.05)
    assert server.connections == 0


def test_confirm_when_no_desk_check_configured_then_confirmed_without_calling_anything(
        strategy_class: type[Any], listener: type[_Listener]) -> None:
    server = listener(b"HTTP/1.0 200 OK\r\n\r\n{}")
    strategy = _strategy(strategy_class, None)
    assert _confirm(strategy) is True
    strategy.dp = None  # plain codegen output in any run mode: Freqtrade's default
    assert _confirm(strategy) is True
    assert server.connections == 0


class _EchoHandler(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append({"path": self.path, **json.loads(raw)})
        data = b'{"approved": true, "rule": "approved", "reason": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_confirm_when_asking_then_posts_pair_side_amount_rate_deployment_and_token(
        strategy_class: type[Any]) -> None:
    server = HTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    link = _link_to(int(server.server_address[1]))
    try:
        assert _confirm(_strategy(strategy_class, link), amount=2.5) is True
    finally:
        thread.join(timeout=5)
        server.server_close()
    assert _EchoHandler.bodies == [{"path": "/pretrade", "deployment_id": DEP, "token": link.token,
                                    "pair": "SOL/USDT", "side": "long", "amount": 2.5, "rate": 140.0}]
