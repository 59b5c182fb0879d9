"""The desk's pre-trade check server for its Freqtrade bots, without Freqtrade: the loopback endpoint, and the
decision on a real ledger (the bot's trades given as its REST API lists them). The request protocol is tested in
``tests/freqtrade/test_deskcheck.py``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execdesk.desk.bot_check import CheckAnswer, CheckServer, DeskCheck
from execdesk.desk.lock import DeskLock
from execdesk.domain.events import Event, EventKind
from execdesk.freqtrade.bot import BotUnavailable, free_loopback_port
from execdesk.freqtrade.deskcheck import CheckLink, EntryRequest
from execdesk.store.ledger import Ledger
from tests.freqtrade.test_deskcheck import DEP, _body, _link, _raw

T0 = 1_700_000_000


class _Clock:
    def now(self) -> int:
        return T0 + 3600

    def wait_until(self, t: int) -> None:
        pass


# -- the endpoint -----------------------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[CheckLink, list[EntryRequest]]]:
    """A check server on loopback whose decision approves up to 5 SOL and denies more (deployment_exposure)."""
    link = _link(free_loopback_port())
    seen: list[EntryRequest] = []

    def decide(entry: EntryRequest) -> CheckAnswer:
        seen.append(entry)
        if entry.pair == "ERR/USDT":
            raise RuntimeError("boom")
        if entry.amount <= 5:
            return CheckAnswer(200, True, "approved", "within limits", {}, DEP)
        return CheckAnswer(200, False, "deployment_exposure", "deployment_exposure: deployment exposure above its "
                           "cap (1200 vs limit 1000)", {"value": "1200.0", "limit": "1000.0"}, DEP)

    with CheckServer(link, decide):
        yield link, seen


def _post(link: CheckLink, raw: bytes, path: str = "/pretrade") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{link.port}{path}", data=raw, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_endpoint_when_within_limits_then_approved(served: tuple[CheckLink, list[EntryRequest]]) -> None:
    link, seen = served
    status, body = _post(link, _raw(_body(link, amount=5)))
    assert (status, body["approved"], body["rule"], body["deployment_id"]) == (200, True, "approved", DEP)
    assert seen[-1].amount == 5


def test_endpoint_when_over_a_cap_then_denied_with_the_rule_and_its_numbers(
        served: tuple[CheckLink, list[EntryRequest]]) -> None:
    link, _seen = served
    status, body = _post(link, _raw(_body(link, amount=6)))
    assert (status, body["approved"], body["rule"]) == (200, False, "deployment_exposure")
    assert "above its cap" in body["reason"]
    assert body["numbers"] == {"value": "1200.0", "limit": "1000.0"}


def test_endpoint_when_bad_token_then_403_and_nothing_decided(served: tuple[CheckLink, list[EntryRequest]]) -> None:
    link, seen = served
    status, body = _post(link, _raw(_body(link, token="y" * 43)))
    assert (status, body["approved"], body["rule"]) == (403, False, "forbidden")
    assert seen == []


def test_endpoint_when_malformed_body_then_400_saying_what(served: tuple[CheckLink, list[EntryRequest]]) -> None:
    link, seen = served
    status, body = _post(link, b"amount=6&pair=SOL")
    assert (status, body["approved"], body["rule"]) == (400, False, "bad_request")
    assert body["reason"].startswith("not a JSON request")
    status, body = _post(link, _raw(_body(link, side="sideways")))
    assert (status, body["reason"]) == (400, "side: expected one of long, short")
    assert seen == []


def test_endpoint_when_other_path_or_ping_or_error_then_never_approved(
        served: tuple[CheckLink, list[EntryRequest]]) -> None:
    link, _seen = served
    assert _post(link, _raw(_body(link)), "/other")[0] == 404
    with urllib.request.urlopen(f"http://127.0.0.1:{link.port}/ping", timeout=5) as reply:
        assert json.loads(reply.read()) == {"status": "pong"}
    status, body = _post(link, _raw(_body(link, pair="ERR/USDT")))
    assert (status, body["approved"], body["rule"]) == (500, False, "error")


# -- the decision on the ledger ---------------------------------------------------------------------------------


def _home(tmp_path: Path, risk: dict[str, Any]) -> Path:
    """A stopped desk of 10,000 USDT with one Freqtrade deployment of 1,000 trading SOL, ETH and BTC."""
    home = tmp_path / "home"
    with Ledger.for_home(home) as ledger:
        ledger.record(Event(T0, EventKind.DESK_CONFIGURED, {
            "config": {"risk": risk, "venue": {"kind": "paper", "fee_bps": 10}}, "identity": {}, "quote": "USDT",
            "capital": Decimal(10_000)}))
        ledger.record(Event(T0, EventKind.DEPLOYMENT_CREATED, {
            "deployment_id": DEP, "strategy_id": "STR-900", "name": "bot", "version": 1, "bundle_hash": "0",
            "timeframe": "1h", "pairs": ["SOL/USDT", "ETH/USDT", "BTC/USDT"], "allocation": Decimal("0.1"),
            "capital": Decimal(1000), "venue": "freqtrade"}, DEP))
    return home


def _open_trade(trade_id: int, pair: str, amount: float, rate: float) -> dict[str, Any]:
    """An open trade as the bot's ``/status`` lists it (the fields the desk reads)."""
    return {"trade_id": trade_id, "pair": pair, "is_open": True, "is_short": False, "amount": amount,
            "open_rate": rate, "current_rate": rate, "open_timestamp": (T0 + 600) * 1000, "fee_open": 0.001,
            "close_rate": None, "close_timestamp": None, "exit_reason": None}


def _check(home: Path, trades: list[dict[str, Any]] | Callable[[str], list[dict[str, Any]]] | None = None,
           **kwargs: Any) -> DeskCheck:
    source = trades if callable(trades) else (lambda _dep: list(trades or []))
    return DeskCheck(home, _link(), clock=_Clock(), trades=source, **kwargs)


def _entry(pair: str, amount: str, rate: str) -> EntryRequest:
    return EntryRequest(DEP, pair, "long", Decimal(amount), Decimal(rate))


def _denials(home: Path) -> list[dict[str, Any]]:
    with Ledger.for_home(home) as ledger:
        return [e.payload for e in ledger.events({EventKind.ORDER_DENIED})]


def test_decide_when_within_every_cap_then_approved_and_nothing_recorded(tmp_path: Path) -> None:
    home = _home(tmp_path, {"max_position_fraction": 0.5})
    answer = _check(home).decide(_entry("SOL/USDT", "4", "100"))  # 400 of the 500 a position may be
    assert (answer.status, answer.approved, answer.rule) == (200, True, "approved")
    assert answer.numbers["notional"] == "400.00"
    assert _denials(home) == []


def test_decide_when_position_above_its_cap_then_denied_and_recorded_as_the_loop_does(tmp_path: Path) -> None:
    home = _home(tmp_path, {"max_position_fraction": 0.5})
    answer = _check(home).decide(_entry("SOL/USDT", "6", "100"))  # 600 > 0.5 x 1000
    assert (answer.status, answer.approved, answer.rule) == (200, False, "max_position_fraction")
    assert "600 vs limit 500" in answer.reason
    [denial] = _denials(home)
    assert (denial["deployment_id"], denial["pair"], denial["side"], denial["reason"]) == (
        DEP, "SOL/USDT", "BUY", "entry_signal")
    assert denial["verdict"]["rule"] == "max_position_fraction"
    assert denial["verdict"]["numbers"]["limit"] == "500.0"
    assert denial["source"] == {"venue": "freqtrade", "amount": "6"}
    assert denial["signal_time"] == T0 + 3600


def test_decide_when_the_bots_open_trades_fill_the_deployment_then_denied_after_syncing_them(tmp_path: Path) -> None:
    # Arrange: a deployment may hold its 1,000 of equity; its bot already holds 600 of SOL the ledger has not seen
    home = _home(tmp_path, {"max_position_fraction": 1.0})
    held = [_open_trade(1, "SOL/USDT", 6.0, 100.0)]
    entry = _entry("ETH/USDT", "0.2", "3000")  # 600 more
    # Act
    unaware = _check(_home(tmp_path / "other", {"max_position_fraction": 1.0})).decide(entry)
    answer = _check(home, held).decide(entry)
    # Assert: alone it fits; with the bot's trade synced first it does not
    assert unaware.approved
    assert (answer.approved, answer.rule) == (False, "deployment_exposure")
    assert answer.numbers["deployment_exposure"] == "600.00"
    with Ledger.for_home(home) as ledger:
        position = ledger.state.position(DEP, "SOL/USDT")
        assert position is not None
        assert position.qty == Decimal(6)
        assert f"ft-{DEP}-1-entry" in ledger.state.orders
    assert [d["verdict"]["rule"] for d in _denials(home)] == ["deployment_exposure"]


def test_decide_when_a_desk_runs_then_decided_on_its_ledger_but_nothing_written(tmp_path: Path) -> None:
    home = _home(tmp_path, {"max_position_fraction": 0.5})
    desk = DeskLock(home)
    assert desk.acquire("desk")  # a running desk: the ledger's one writer
    try:
        answer = _check(home, [_open_trade(1, "SOL/USDT", 1.0, 100.0)]).decide(_entry("SOL/USDT", "6", "100"))
    finally:
        desk.release()
    assert (answer.approved, answer.rule) == (False, "max_position_fraction")
    assert _denials(home) == []
    with Ledger.for_home(home) as ledger:
        assert ledger.state.orders == {}


def test_decide_when_the_bot_cannot_be_read_then_unavailable(tmp_path: Path) -> None:
    home = _home(tmp_path, {})

    def unreachable(_dep: str) -> list[dict[str, Any]]:
        raise BotUnavailable("connection refused")

    answer = _check(home, unreachable).decide(_entry("SOL/USDT", "1", "100"))
    assert (answer.status, answer.approved, answer.rule) == (503, False, "unavailable")
    assert "connection refused" in answer.reason


def test_decide_when_another_command_holds_the_home_then_unavailable_within_the_wait(tmp_path: Path) -> None:
    home = _home(tmp_path, {})
    command = DeskLock(home)
    assert command.acquire_for_command()
    try:
        answer = _check(home, lock_wait_s=0.2).decide(_entry("SOL/USDT", "1", "100"))
    finally:
        command.release()
    assert (answer.status, answer.approved) == (503, False)
    assert "busy" in answer.reason


def test_decide_when_deployment_not_on_freqtrade_then_unavailable(tmp_path: Path) -> None:
    home = _home(tmp_path, {})
    check = DeskCheck(home, CheckLink.generate("STR-001-v1", 50_000), clock=_Clock(), trades=lambda _d: [])
    answer = check.decide(EntryRequest("STR-001-v1", "SOL/USDT", "long", Decimal(1), Decimal(100)))
    assert (answer.status, answer.approved) == (503, False)
    assert "not a deployment on Freqtrade" in answer.reason
