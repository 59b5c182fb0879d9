"""The Freqtrade-bot venue: a real dry-run ``freqtrade trade`` bot, offline on loopback.

One bot (generated from an example bundle, replaying candles of the project's own generator) is
started for the module and driven over its REST API; the tests that need it are ``slow``. The
replay feed and the client's error mapping are also tested in process, without Freqtrade.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from execdesk.data import PairProfile, generate_market
from execdesk.data.datadir import write_pair
from execdesk.errors import InvalidInput, TemporaryError
from execdesk.freqtrade.bot import (
    FREQTRADE_IMAGE,
    BotApi,
    BotRequestRejected,
    BotSettings,
    BotStartError,
    BotUnavailable,
    FreqtradeBot,
    _Credentials,
    free_loopback_port,
)
from execdesk.freqtrade.bot_harness import ReplayFeed, replay_methods
from execdesk.venues.base import Venue
from tests.conftest import BUNDLES
from tests.kit import wait_for

PAIRS = ("BTC/USDT", "ETH/USDT")
WALLET = 1000.0
STAKE = 50.0


def _frames() -> dict[str, pd.DataFrame]:
    profiles = {p: PairProfile(start_price=100.0, base_volume=1e6) for p in PAIRS}
    return generate_market(profiles, "1h", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 21, tzinfo=UTC), seed=7)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ft-data")
    for pair, frame in _frames().items():
        write_pair(folder, pair, "1h", frame)
    return folder


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, datadir: Path) -> Iterator[FreqtradeBot]:
    folder = tmp_path_factory.mktemp("ft-bot") / "bot"
    settings = BotSettings(stake_amount=STAKE, max_open_trades=2, dry_run_wallet=WALLET, process_throttle_secs=1,
                           start_timeout_s=120)
    prepared = FreqtradeBot.prepare(BUNDLES / "trend_ema_cross.yaml", folder, settings, datadir=datadir)
    prepared.start()
    try:
        yield prepared
    finally:
        prepared.stop()


# -- in process: settings, files, feed, client ---------------------------------------------------


def test_settings_when_bad_value_then_invalid_input_names_key() -> None:
    with pytest.raises(InvalidInput, match=r"bot\.max_open_trades"):
        BotSettings(max_open_trades=0)
    with pytest.raises(InvalidInput, match=r"bot\.api_port"):
        BotSettings(api_port=80)
    with pytest.raises(InvalidInput, match=r"bot\.stake_amount"):
        BotSettings(stake_amount=-1.0)


def test_prepare_when_offline_without_datadir_then_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="datadir"):
        FreqtradeBot.prepare(BUNDLES / "trend_ema_cross.yaml", tmp_path / "bot")


def test_prepare_when_bundle_then_dry_run_config_0600_and_deployment_files(tmp_path: Path, datadir: Path) -> None:
    # Arrange / Act
    settings = BotSettings(stake_amount=25.0, max_open_trades=4, dry_run_wallet=500.0)
    bot = FreqtradeBot.prepare(BUNDLES / "trend_ema_cross.yaml", tmp_path / "bot", settings, datadir=datadir)

    # Assert: the config
    config = json.loads(bot.config_file.read_text())
    assert stat.S_IMODE(bot.config_file.stat().st_mode) == 0o600
    assert config["dry_run"] is True
    assert config["initial_state"] == "running"
    assert config["force_entry_enable"]
    assert (config["stake_amount"], config["max_open_trades"], config["dry_run_wallet"]) == (25.0, 4, 500.0)
    assert config["exchange"]["pair_whitelist"] == list(PAIRS)
    assert config["exchange"]["enable_ws"] is False
    assert "telegram" not in config
    assert "fiat_display_currency" not in config
    assert config["db_url"].startswith("sqlite:///")
    assert str(bot.folder) in config["db_url"]
    api = config["api_server"]
    assert api["enabled"]
    assert api["listen_ip_address"] == "127.0.0.1"
    assert 1024 <= api["listen_port"] <= 65535
    assert len(api["jwt_secret_key"]) >= 32
    assert len(api["password"]) >= 24
    assert api["username"]
    assert (bot.user_data_dir / "strategies" / "ema_cross_rsi_v1.py").is_file()
    # Assert: the real-deployment files pin the image, bind loopback and hold no secret
    compose = (bot.folder / "docker-compose.yml").read_text()
    checklist = (bot.folder / "CHECKLIST.md").read_text()
    service = yaml.safe_load(compose)["services"]["ft-emacrossrsiv1"]  # no Docker daemon here: parse it
    assert service["image"] == FREQTRADE_IMAGE
    assert service["ports"] == [f"127.0.0.1:{api['listen_port']}:8080"]
    assert service["volumes"] == ["./user_data:/freqtrade/user_data"]
    assert service["environment"]["FREQTRADE__EXCHANGE__KEY"] == "${FT_EXCHANGE_KEY:?set in .env}"
    assert FREQTRADE_IMAGE == "freqtradeorg/freqtrade:2026.9"
    assert f"image: {FREQTRADE_IMAGE}" in compose
    assert f'"127.0.0.1:{api["listen_port"]}:8080"' in compose
    assert "--strategy EmaCrossRsiV1" in compose
    assert "dry_run: false" in checklist
    assert "withdrawals disabled" in checklist
    for secret in (api["password"], api["jwt_secret_key"]):
        assert secret not in compose
        assert secret not in checklist
        assert secret not in repr(bot)
        assert secret not in " ".join(bot.command())
    # a deployment target, not an order-level venue: it does not pose as one
    assert not isinstance(bot, Venue)
    assert bot.embedded is False
    # a second prepare generates new credentials
    again = FreqtradeBot.prepare(BUNDLES / "trend_ema_cross.yaml", tmp_path / "bot2", settings, datadir=datadir)
    assert json.loads(again.config_file.read_text())["api_server"]["password"] != api["password"]


def test_prepare_when_not_offline_then_plain_freqtrade_trade_without_datadir(tmp_path: Path) -> None:
    # (the real-exchange path: prepared and its command checked; it cannot run without an exchange)
    bot = FreqtradeBot.prepare(BUNDLES / "trend_ema_cross.yaml", tmp_path / "bot", offline=False)

    command = bot.command()

    assert command[1:5] == ["-m", "freqtrade", "trade", "--config"]
    assert "--db-url" in command
    assert not (tmp_path / "bot" / "harness-args.json").exists()


def test_replay_feed_when_started_then_history_candle_is_now_and_later_ones_hidden() -> None:
    # Arrange: a fixed clock 20 minutes into an hour
    frames = _frames()
    now = {"t": datetime(2030, 5, 1, 12, 20, tzinfo=UTC).timestamp()}
    feed = ReplayFeed(frames, "1h", 3600, history=100, clock=lambda: now["t"])
    hour = int(datetime(2030, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)

    # Act
    rows = feed.ohlcv("BTC/USDT", "1h", None, None)
    now["t"] += 3600
    later = feed.ohlcv("BTC/USDT", "1h", None, None)

    # Assert: candle 100 opens at the current hour; the next one shows up an hour later
    assert len(rows) == 101
    assert rows[-1][0] == hour
    assert rows[-1][1:5] == pytest.approx(frames["BTC/USDT"].iloc[100][["open", "high", "low", "close"]].tolist())
    assert len(later) == 102
    assert later[-1][0] == hour + 3_600_000
    assert feed.ohlcv("BTC/USDT", "1h", hour - 3 * 3_600_000, 2)[0][0] == hour - 3 * 3_600_000
    assert len(feed.ohlcv("BTC/USDT", "1h", None, 10)) == 10
    assert feed.ohlcv("BTC/USDT", "5m", None, None) == []


def test_replay_methods_when_ticker_and_book_then_they_agree_on_the_price_grid() -> None:
    frames = _frames()
    clock = datetime(2030, 5, 1, 12, 30, 15, tzinfo=UTC).timestamp()
    feed = ReplayFeed(frames, "1h", 3600, history=50, clock=lambda: clock)
    methods = replay_methods(feed, {p: {"symbol": p, "base": p[:3], "quote": "USDT", "settle": None} for p in PAIRS},
                             sync=True)

    ticker = methods["fetch_ticker"]("ETH/USDT")
    book = methods["fetch_order_book"]("ETH/USDT", 5)
    candle = frames["ETH/USDT"].iloc[50]

    assert ticker["bid"] < ticker["last"] < ticker["ask"]
    assert (book["asks"][0][0], book["bids"][0][0]) == (ticker["ask"], ticker["bid"])
    assert len(book["asks"]) == 5
    assert ticker["last"] == pytest.approx(candle["open"] + (candle["close"] - candle["open"]) * 0.5, abs=1e-8)
    assert round(ticker["ask"], 8) == ticker["ask"]
    assert set(methods["fetch_tickers"](None)) == set(PAIRS)
    assert methods["fetch_time"]() == int(clock * 1000)


def test_api_when_nothing_listens_then_temporary_error() -> None:
    api = BotApi(f"http://127.0.0.1:{free_loopback_port()}", _Credentials.generate(), timeout_s=2)
    with pytest.raises(BotUnavailable) as caught:
        api.status()
    assert isinstance(caught.value, TemporaryError)
    assert "GET /api/v1/status" in str(caught.value)


def test_credentials_when_repr_then_redacted() -> None:
    credentials = _Credentials.generate()
    assert credentials.password not in repr(credentials)
    assert "redacted" in str(credentials)


# -- a real bot ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_bot_when_started_then_ping_answers_within_seconds(bot: FreqtradeBot) -> None:
    assert bot.running
    assert bot.api.ping() == {"status": "pong"}
    assert bot.start_seconds is not None
    assert bot.start_seconds < 60
    rss_kb = int(Path(f"/proc/{bot.pid}/status").read_text().split("VmRSS:")[1].split()[0])
    assert rss_kb < 1_000_000  # about 340 MB here


@pytest.mark.slow
def test_bot_when_queried_then_status_profit_balance_have_their_shapes(bot: FreqtradeBot) -> None:
    status = bot.api.status()
    profit = bot.api.profit()
    balance = bot.api.balance()

    assert isinstance(status, list)
    assert {"profit_all_coin", "trade_count", "closed_trade_count", "winrate", "max_drawdown"} <= set(profit)
    assert balance["stake"] == "USDT"
    assert balance["note"] == "Simulated balances"
    usdt = next(c for c in balance["currencies"] if c["currency"] == "USDT")
    assert {"free", "used", "balance"} <= set(usdt)
    assert bot.balances()["USDT"] > 0
    assert bot.api.show_config()["dry_run"] is True


@pytest.mark.slow
def test_bot_when_forced_entry_then_forceexit_all_leaves_no_open_trade(bot: FreqtradeBot) -> None:
    # Arrange: a forced entry fills at once against the replayed book
    trade = bot.api.forceenter("BTC/USDT")
    assert trade["pair"] == "BTC/USDT"
    assert trade["stake_amount"] == pytest.approx(STAKE)
    filled = wait_for(lambda: [t for t in bot.api.status() if t["amount"] > 0 and not t["has_open_orders"]])
    assert filled, bot.log_tail()
    assert bot.positions()["BTC/USDT"] > 0

    # Act
    result = bot.api.forceexit("all")

    # Assert
    assert "exit" in result["result"].lower()
    assert wait_for(lambda: bot.api.status() == []), bot.log_tail()
    assert bot.positions() == {}
    assert bot.api.profit()["closed_trade_count"] >= 1


@pytest.mark.slow
def test_bot_when_stopentry_then_paused_and_forceenter_refused(bot: FreqtradeBot) -> None:
    try:
        assert "paused" in bot.api.stopentry()["status"]
        assert bot.api.show_config()["state"] == "paused"
        with pytest.raises(BotRequestRejected, match="not running"):
            bot.api.forceenter("ETH/USDT")
    finally:
        bot.api.start()


@pytest.mark.slow
def test_bot_when_wrong_login_then_rejected_and_log_holds_no_secret(bot: FreqtradeBot) -> None:
    intruder = BotApi(bot.api.base_url, _Credentials("execdesk-x", "wrong", "y" * 32), timeout_s=5)
    with pytest.raises(BotRequestRejected) as caught:
        intruder.status()
    assert caught.value.status == 401

    api = json.loads(bot.config_file.read_text())["api_server"]
    log = bot.log_file.read_text()
    for secret in (api["password"], api["jwt_secret_key"]):
        assert secret not in log
        assert secret not in repr(bot)
        assert secret not in repr(bot.api)
    assert "execdesk offline guard refused" not in log  # the bot made no outbound connection


@pytest.mark.slow
def test_bot_when_stopped_then_process_gone_and_stop_is_idempotent(bot: FreqtradeBot) -> None:
    # (last test of the module: it stops the shared bot)
    pid = bot.pid
    assert pid is not None
    assert _pid_alive(pid)

    first = bot.stop()
    second = bot.stop()

    assert first == second
    assert first is not None
    assert not bot.running
    assert not _pid_alive(pid)
    with pytest.raises(BotUnavailable):
        bot.api.ping()


@pytest.mark.slow
def test_bot_when_strategy_does_not_load_then_start_error_with_log_tail(tmp_path: Path, datadir: Path) -> None:
    # Arrange: a strategy file that fails on import
    strategy = tmp_path / "broken.py"
    strategy.write_text(
        "from freqtrade.strategy import IStrategy\n"
        "import execdesk_no_such_module\n\n\n"
        "class BrokenV1(IStrategy):\n    timeframe = '1h'\n"
    )
    bot = FreqtradeBot.prepare(strategy, tmp_path / "bot", BotSettings(start_timeout_s=120), datadir=datadir,
                               class_name="BrokenV1", pairs=PAIRS, timeframe="1h")

    # Act
    with pytest.raises(BotStartError) as caught:
        bot.start()

    # Assert: the reason from the log, and nothing left running
    message = str(caught.value)
    assert "exited with code" in message
    assert "execdesk_no_such_module" in message
    assert bot.pid is not None
    assert not _pid_alive(bot.pid)


def test_bot_environment_when_keys_of_several_exchanges_then_a_bot_sees_only_its_own() -> None:
    from execdesk.freqtrade.bot import bot_environment

    environ = {"PATH": "/usr/bin", "HOME": "/root", "EXECDESK_BINANCE_API_KEY": "b-key", "EXECDESK_KRAKEN_SECRET": "k",
               "EXECDESK_SLACK_WEBHOOK_URL": "https://hooks.example/x", "TELEGRAM_TOKEN": "t",
               "FREQTRADE__EXCHANGE__KEY": "ft", "AWS_SECRET_ACCESS_KEY": "aws", "PYTHONPATH": "/x"}
    real = bot_environment(environ, "binance", real=True)
    offline = bot_environment(environ, "binance", real=False)
    assert {k for k in real if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")} == {
        "PATH", "HOME", "EXECDESK_BINANCE_API_KEY", "FREQTRADE__EXCHANGE__KEY"}
    assert {k for k in offline if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")} == {"PATH", "HOME"}
    assert real["PYTHONPATH"].endswith(":/x")
