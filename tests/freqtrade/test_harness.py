"""The Freqtrade harness (subprocesses): offline backtests, real load errors, the network guard."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from execdesk.codegen.render import render_strategy
from execdesk.codegen.review import review
from execdesk.freqtrade import runner as ft
from execdesk.freqtrade.runner import (
    TRADE_COLUMNS,
    FreqtradeRunError,
    FreqtradeSettings,
    FreqtradeTimeout,
    FreqtradeUnavailable,
    StrategyLoadError,
    backtest_strategy,
    build_config,
    load_strategy,
    run_harness,
)
from tests.codegen.conftest import make_bundle, market


def test_backtest_when_two_pairs_generated_then_trades_offline(tmp_path: Path) -> None:
    bundle = make_bundle()
    generated = render_strategy(bundle)
    path = tmp_path / generated.filename
    path.write_text(generated.source)
    frames = market(("BTC/USDT", "ETH/USDT"), "1h", 2000)
    result = backtest_strategy(path, generated.class_name, frames, "1h", FreqtradeSettings(), signals=True)
    assert result.connection_attempts == 0
    assert result.freqtrade_version == ft.TESTED_FREQTRADE_VERSION
    assert len(result.trades) > 10
    assert {t.pair for t in result.trades} == {"BTC/USDT", "ETH/USDT"}
    first_date = frames["BTC/USDT"]["date"].iloc[0]
    assert result.window_start == first_date + timedelta(hours=bundle.startup_candles)
    for trade in result.trades:
        assert trade.open_date >= result.window_start
        assert trade.close_date >= trade.open_date
        assert trade.exit_reason in {"roi", "stop_loss", "exit_signal", "force_exit", "trailing_stop_loss"}
        assert not trade.is_short
        assert trade.stake_amount == pytest.approx(100.0, rel=1e-6)
    assert result.total_profit == pytest.approx(sum(t.profit_abs for t in result.trades))
    frame = result.trades_frame()
    assert list(frame.columns) == list(TRADE_COLUMNS)
    assert len(frame) == len(result.trades)
    assert str(frame["open_date"].dt.tz) == "UTC"
    assert result.signals is not None
    assert result.signals["ETH/USDT"]["enter_long"]
    assert result.config["exchange"]["pair_whitelist"] == ["BTC/USDT", "ETH/USDT"]
    assert "backtest_s" in result.timings
    assert "import_s" in result.timings


def test_backtest_when_futures_pairs_then_refused_with_reason(tmp_path: Path) -> None:
    frames = market(("BTC/USDT:USDT",), "1h", 100)
    with pytest.raises(FreqtradeRunError, match="spot pairs only"):
        backtest_strategy(tmp_path / "x.py", "XV1", frames, "1h")


def test_review_when_short_sides_on_spot_pairs_then_freqtrade_refuses_with_reason(tmp_path: Path) -> None:
    bundle = make_bundle(
        entry={"long": "crossed_above(ema_fast, ema_slow)", "short": "crossed_below(ema_fast, ema_slow)"},
        exit={"long": "rsi > 70", "short": "rsi < 30"},
    )
    report = review(render_strategy(bundle), tmp_path)
    assert report.check("ast_audit").passed
    assert "Short strategies cannot run in spot markets" in report.check("freqtrade_load").detail


def test_load_when_syntax_error_then_real_cause_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken_v1.py"
    path.write_text("from freqtrade.strategy import IStrategy\n\n\nclass BrokenV1(IStrategy):\n    x = (1,\n")
    with pytest.raises(StrategyLoadError) as info:
        load_strategy(path, "BrokenV1")
    assert info.value.kind == "syntax"
    message = str(info.value)
    assert "broken_v1.py, line 5" in message
    assert "SyntaxError" in message
    assert "never closed" in message


def test_load_when_import_error_then_real_cause_reported(tmp_path: Path) -> None:
    path = tmp_path / "missing_dep_v1.py"
    path.write_text(
        "import execdesk_no_such_module\nfrom freqtrade.strategy import IStrategy\n\n\n"
        "class MissingDepV1(IStrategy):\n    timeframe = '1h'\n"
    )
    with pytest.raises(StrategyLoadError) as info:
        load_strategy(path, "MissingDepV1")
    assert info.value.kind == "load"
    assert "No module named 'execdesk_no_such_module'" in str(info.value)


def test_load_when_class_absent_then_not_found(tmp_path: Path) -> None:
    path = tmp_path / "other_v1.py"
    path.write_text("X = 1\n")
    with pytest.raises(StrategyLoadError, match="has no 'class Wanted\\('") as info:
        load_strategy(path, "Wanted")
    assert info.value.kind == "not_found"


def test_load_when_file_missing_then_load_error(tmp_path: Path) -> None:
    with pytest.raises(StrategyLoadError, match="does not exist"):
        load_strategy(tmp_path / "nope.py", "Nope")


def test_harness_when_too_slow_then_timeout(tmp_path: Path) -> None:
    generated = render_strategy(make_bundle())
    path = tmp_path / generated.filename
    path.write_text(generated.source)
    with pytest.raises(FreqtradeTimeout, match="did not finish within"):
        load_strategy(path, generated.class_name, timeout_s=0.05)


def test_harness_when_freqtrade_missing_then_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ft, "freqtrade_available", lambda: False)
    with pytest.raises(FreqtradeUnavailable, match="not installed"):
        run_harness("load", {}, timeout_s=10, cwd=tmp_path)


def test_harness_when_unknown_command_then_usage_error(tmp_path: Path) -> None:
    result = run_harness("bogus", {}, timeout_s=30, cwd=tmp_path)
    assert result["ok"] is False
    assert result["error"]["kind"] == "usage"


def test_harness_network_guard_when_connecting_then_refused_and_counted(tmp_path: Path) -> None:
    result = run_harness("network_probe", {}, timeout_s=30, cwd=tmp_path)
    assert result["ok"] is True
    assert result["network"]["connection_attempts"] == 2
    assert all("PermissionError" in outcome for outcome in result["outcomes"].values())


def test_build_config_when_pairs_then_proof_config_keys() -> None:
    config = build_config("XV1", ["BTC/USDT", "ETH/USDT"], "5m", FreqtradeSettings(stake_amount=50, fee=0.002))
    assert config["strategy"] == "XV1"
    assert config["timeframe"] == "5m"
    assert config["stake_currency"] == "USDT"
    assert config["stake_amount"] == 50
    assert config["fee"] == 0.002
    assert config["dry_run"] is True
    assert config["exchange"] == {"name": "binance", "pair_whitelist": ["BTC/USDT", "ETH/USDT"], "pair_blacklist": []}
    assert config["pairlists"] == [{"method": "StaticPairList"}]
    assert config["trading_mode"] == "spot"
    assert config["backtest_cache"] == "none"
    assert "datadir" not in config
    assert build_config("XV1", ["BTC/USDT:USDT"], "1h", FreqtradeSettings())["trading_mode"] == "futures"
    with pytest.raises(FreqtradeRunError, match="one stake currency"):
        build_config("XV1", ["BTC/USDT", "ETH/BTC"], "1h", FreqtradeSettings())


def test_desk_modules_when_imported_then_no_freqtrade_and_no_harness() -> None:
    code = (
        "import sys, json, execdesk.codegen, execdesk.freqtrade.runner, execdesk.codegen.review, "
        "execdesk.codegen.verify, execdesk.codegen.render, execdesk.codegen.audit\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'freqtrade' "
        "or m == 'execdesk.freqtrade.harness')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
