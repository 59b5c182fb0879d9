"""Deployments on a Freqtrade bot: the desk starts the dry-run bot, its trades reach the ledger (and so the
monitor), and the lead's decisions (pause, remove, the kill switch) reach the bot. A real ``freqtrade trade``
bot runs offline on loopback for the slow tests; the ledger side is also tested with Freqtrade's trade
records written out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execdesk.api import actions
from execdesk.data import PairProfile, generate_market
from execdesk.data.datadir import write_pair
from execdesk.domain.events import EventKind
from execdesk.domain.types import TradingState
from execdesk.errors import InvalidInput
from execdesk.freqtrade import fleet
from execdesk.freqtrade.bot import BotRequestRejected
from execdesk.lead.team import team_performance
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES
from tests.kit import wait_for
from tests.lead.test_deploy import NOW, _desk

DEP = "STR-002-v1"
#: a forced entry's stake within the desk's caps: the deployment holds 10% of the desk (~4,945 USDT) and a position
#: may be 50% of that (the small desk's max_position_fraction); Freqtrade's own stake ("unlimited": the whole
#: wallet for a one-pair bot) would be refused by the desk's pre-trade check
STAKE = 1000.0


def _trade(trade_id: int, *, is_open: bool, short: bool = False, exit_reason: str | None = None) -> dict[str, Any]:
    """A trade as Freqtrade's ``GET /trades`` lists it (the fields the desk reads)."""
    return {"trade_id": trade_id, "pair": "SOL/USDT", "is_open": is_open, "is_short": short, "amount": 2.5,
            "open_rate": 140.0, "open_timestamp": 1_710_892_800_000 + trade_id * 3_600_000, "fee_open": 0.001,
            "close_rate": None if is_open else 147.0, "fee_close": None if is_open else 0.001,
            "close_timestamp": None if is_open else 1_710_900_000_000 + trade_id * 3_600_000,
            "exit_reason": exit_reason}


@pytest.fixture
def freqtrade_home(write_config: Callable[..., Path], tmp_path: Path) -> Path:
    _config, home = _desk(write_config, tmp_path)
    actions.deploy(home, BUNDLES / "mean_revert_bbands.yaml", "freqtrade", NOW, allocation=0.1)
    return home


def test_record_trades_when_synced_twice_then_each_fill_once_with_the_bots_rates_and_fees(
        freqtrade_home: Path) -> None:
    with Ledger.for_home(freqtrade_home) as ledger:
        cash = ledger.state.cash()
        # Act: an open trade, then the same trade closed (by its stoploss) and a short still open
        first = fleet.record_trades(ledger, DEP, [_trade(1, is_open=True)])
        second = fleet.record_trades(ledger, DEP, [_trade(1, is_open=False, exit_reason="stop_loss"),
                                                   _trade(2, is_open=True, short=True)])
        again = fleet.record_trades(ledger, DEP, [_trade(1, is_open=False, exit_reason="stop_loss"),
                                                  _trade(2, is_open=True, short=True)])
        ledger.flush()
        state = ledger.state
        # Assert
        assert (first, second, again) == (1, 2, 0)
        entry, exit_ = state.orders[f"ft-{DEP}-1-entry"], state.orders[f"ft-{DEP}-1-exit"]
        assert (entry.side, entry.avg_price, exit_.side, exit_.avg_price) == ("BUY", Decimal(140), "SELL",
                                                                              Decimal(147))
        assert exit_.reason == "stoploss"
        fees = Decimal("2.5") * Decimal(140) * Decimal("0.001") + Decimal("2.5") * Decimal(147) * Decimal("0.001")
        assert state.deployments[DEP].realized_pnl == Decimal("2.5") * 7
        assert state.deployments[DEP].fees == fees + Decimal("2.5") * Decimal(140) * Decimal("0.001")
        assert state.position(DEP, "SOL/USDT").qty == Decimal("-2.5")  # the short, still open
        assert state.cash() == cash + Decimal("2.5") * 7 - fees + Decimal("2.5") * 140 - Decimal("0.35")
        assert state.deployments[DEP].trades == 1


def test_bots_when_the_deployment_is_not_on_freqtrade_then_invalid_input(freqtrade_home: Path) -> None:
    with pytest.raises(InvalidInput, match="not a deployment on Freqtrade"):
        actions.bots(freqtrade_home, "status", NOW, "STR-001-v1")
    with pytest.raises(InvalidInput, match="expected start, stop, sync or status"):
        actions.bots(freqtrade_home, "launch", NOW)


@pytest.fixture
def running_bot(freqtrade_home: Path, tmp_path: Path) -> Iterator[Path]:
    datadir = tmp_path / "ft-data"
    frames = generate_market({"SOL/USDT": PairProfile(start_price=140.0, base_volume=4e6)}, "1h",
                             datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 21, tzinfo=UTC), seed=7)
    write_pair(datadir, "SOL/USDT", "1h", frames["SOL/USDT"])
    started = actions.bots(freqtrade_home, "start", NOW, DEP, datadir)
    assert started["bots"][0]["started"] is True
    try:
        yield freqtrade_home
    finally:
        actions.bots(freqtrade_home, "stop", NOW, DEP)


@pytest.mark.slow
def test_bot_when_it_trades_then_synced_into_the_ledger_and_the_lead_pauses_removes_and_stops_it(
        running_bot: Path) -> None:
    home = running_bot
    bot = fleet.open_bot(home, DEP)  # another command's view of the bot: taken up from bot.pid
    assert bot.running
    assert actions.bots(home, "status", NOW, DEP)["bots"][0]["running"] is True
    # the bot trades (a forced entry stands in for its strategy's signal, which needs hours of candles)
    bot.api.forceenter("SOL/USDT", stake_amount=STAKE)
    assert wait_for(lambda: [t for t in bot.api.status() if t["amount"] > 0 and not t["has_open_orders"]])
    synced = actions.bots(home, "sync", NOW)
    assert synced["recorded"] == {DEP: 1}
    with Ledger.for_home(home) as ledger:
        held = ledger.state.position(DEP, "SOL/USDT")
        assert held is not None
        assert held.qty > 0
    # pause reaches the bot: it opens nothing more
    paused = actions.lifecycle(home, "pause", DEP, "hold on", NOW)
    assert paused["bot"]["bot"] == "told"
    assert bot.api.show_config()["state"] == "paused"
    actions.lifecycle(home, "resume", DEP, "go on", NOW)
    assert bot.api.show_config()["state"] == "running"
    # remove: the bot closes everything, its exits reach the ledger, then it stops
    removed = actions.lifecycle(home, "remove", DEP, "retired", NOW)
    assert removed["bot"]["synced"]["recorded"] == {DEP: 1}
    assert removed["bot"]["stopped"] is True
    assert not fleet.open_bot(home, DEP).running
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        assert state.position(DEP, "SOL/USDT").qty == 0
        assert state.deployments[DEP].trades == 1
        assert state.orders[f"ft-{DEP}-1-exit"].reason == "deployment_halt"  # Freqtrade's force_exit
        assert state.deployments[DEP].state is TradingState.REDUCING  # HALTED once the desk runs (flat)
        fills = [e for e in ledger.events({EventKind.ORDER_FILLED}) if e.deployment_id == DEP]
        assert [e.payload["source"]["venue"] for e in fills] == ["freqtrade", "freqtrade"]


@pytest.mark.slow
def test_kill_when_a_bot_holds_a_trade_then_the_bot_is_told_to_close_everything(running_bot: Path) -> None:
    home = running_bot
    bot = fleet.open_bot(home, DEP)
    bot.api.forceenter("SOL/USDT", stake_amount=STAKE)
    assert wait_for(lambda: [t for t in bot.api.status() if t["amount"] > 0 and not t["has_open_orders"]])
    killed = actions.kill(home, "test", NOW)
    assert [b["bot"] for b in killed["bots"]] == ["told"]
    assert wait_for(lambda: bot.api.status() == [])
    assert actions.bots(home, "sync", NOW)["recorded"] == {DEP: 2}


@pytest.mark.slow
def test_bot_when_an_entry_breaks_the_desks_position_cap_then_the_desk_refuses_it_and_the_bot_has_no_trade(
        running_bot: Path) -> None:
    # Arrange: the bot the desk started waits for the desk's check before each entry
    home = running_bot
    bot = fleet.open_bot(home, DEP)
    assert bot.desk_check is not None
    assert fleet.check_server_pid(bot.folder) is not None
    source = next((bot.user_data_dir / "strategies").glob("*.py")).read_text()
    assert "def confirm_trade_entry(" in source
    # Act: an entry of 4,000 USDT where a position may be 50% of the deployment's ~4,945 (the bot's own stake would be
    # its whole wallet: also refused)
    with pytest.raises(BotRequestRejected, match="Failed to enter position"):
        bot.api.forceenter("SOL/USDT", stake_amount=4000.0)
    # Assert: no trade on the bot, the denial in the ledger (as the loop records one), the reason in the bot's log
    assert bot.api.status() == []
    assert bot.api.trades()["trades"] == []
    with Ledger.for_home(home) as ledger:
        [denied] = [e.payload for e in ledger.events({EventKind.ORDER_DENIED}) if e.deployment_id == DEP]
        assert ledger.state.position(DEP, "SOL/USDT") is None
        assert team_performance(ledger)["risk_manager"]["denied_by_rule"] == {"max_position_fraction": 1}
    assert denied["verdict"]["rule"] == "max_position_fraction"
    assert float(denied["verdict"]["numbers"]["limit"]) < 4000 < float(denied["verdict"]["numbers"]["value"]) + 1
    assert denied["source"]["venue"] == "freqtrade"
    assert wait_for(lambda: "refused by the desk's pre-trade check: max_position_fraction" in bot.log_tail(400))
    assert bot.desk_check.token not in (bot.folder / "check.log").read_text()
    assert bot.desk_check.token not in bot.log_tail(400)
    # an entry within the caps is approved: the bot trades
    bot.api.forceenter("SOL/USDT", stake_amount=STAKE)
    assert wait_for(lambda: [t for t in bot.api.status() if t["amount"] > 0 and not t["has_open_orders"]])
    # stopping the bot stops its check server
    actions.bots(home, "stop", NOW, DEP)
    assert fleet.check_server_pid(bot.folder) is None
