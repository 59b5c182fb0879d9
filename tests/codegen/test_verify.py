"""Verification against Freqtrade and the native engine, and the generate() pipeline end to end."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from execdesk.codegen import CodegenReport, StakeSizing, generate, market_for_bundle
from execdesk.codegen import verify as verify_module
from execdesk.codegen.pipeline import _verification_data
from execdesk.codegen.verify import VerifyConfig, _compare_trades, _native_engine, profit_within, verify
from execdesk.data import write_pair
from execdesk.errors import InvalidInput, SpecError
from execdesk.freqtrade.runner import FtBacktest, FtTrade

from .conftest import EXAMPLES, make_bundle, market

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _native_available() -> bool:
    return _native_engine()[0] is not None


def test_verify_when_engine_present_then_freqtrade_reference_and_native_agree() -> None:
    bundle = make_bundle()
    frames = market(("BTC/USDT", "ETH/USDT"), "1h", 2000)
    report = verify(bundle, frames, config=VerifyConfig(max_open_trades=2))
    assert report.check("freqtrade_backtest").passed, report.to_markdown()
    assert report.check("offline").passed
    assert report.check("signals_match_reference").passed, report.mismatches
    assert report.freqtrade["connection_attempts"] == 0
    assert report.freqtrade["trades"] > 10
    if _native_available():
        assert report.passed, report.to_markdown()
        for name in ("native_trade_count", "native_trade_dates", "native_total_profit"):
            assert report.check(name).passed
        assert report.native is not None
        assert report.native["trades"] == report.freqtrade["trades"]
    else:
        assert not report.passed
        assert "native engine not available" in report.check("native_engine").detail
    json.dumps(report.as_dict())  # JSON-safe


def test_verify_when_engine_missing_then_reported_not_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, verify_module.NATIVE_ENGINE, None)  # makes the import fail
    fn, reason = _native_engine()
    assert fn is None
    assert reason is not None
    assert "does not exist" in reason
    frames = market(("SOL/USDT",), "1h", 800)
    report = verify(make_bundle(pairs=["SOL/USDT"]), frames)
    assert report.check("freqtrade_backtest").passed
    native = report.check("native_engine")
    assert not native.passed
    assert native.detail.startswith("native engine not available")
    assert not report.passed
    assert report.failed == ["native_engine"]


def test_verify_when_native_fn_raises_then_check_fails_with_reason() -> None:
    def broken(*_: object) -> pd.DataFrame:
        raise RuntimeError("engine exploded")

    report = verify(make_bundle(pairs=["SOL/USDT"]), market(("SOL/USDT",), "1h", 600), native_trades_fn=broken)
    assert "engine exploded" in report.check("native_engine").detail
    assert not report.passed


# -- trade comparison (no subprocess) ------------------------------------------------------------


def _ft_trade(pair: str, hours: int, held: int, profit: float) -> FtTrade:
    opened = T0 + timedelta(hours=hours)
    return FtTrade(
        pair, opened, opened + timedelta(hours=held), 100.0, 101.0, 1.0, 100.0, profit / 100, profit, "roi", False
    )


def _ft(trades: list[FtTrade]) -> FtBacktest:
    return FtBacktest(
        strategy="XV1",
        trades=tuple(trades),
        window_start=T0,
        window_end=T0 + timedelta(days=10),
        starting_balance=1000.0,
        final_balance=1000.0,
        fee=0.001,
        candles={},
        signals=None,
        timings={},
        connection_attempts=0,
        freqtrade_version="2026.9",
    )


def _native(trades: list[FtTrade]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pair": [t.pair for t in trades],
            "open_date": pd.to_datetime([t.open_date for t in trades], utc=True),
            "close_date": pd.to_datetime([t.close_date for t in trades], utc=True),
            "profit_abs": [t.profit_abs for t in trades],
        }
    )


def test_compare_trades_when_identical_then_every_check_passes() -> None:
    trades = [_ft_trade("BTC/USDT", 1, 3, 2.0), _ft_trade("ETH/USDT", 2, 5, -1.0)]
    checks, mismatches, summary = _compare_trades(_ft(trades), _native(trades[::-1]), 0.01)
    assert all(c.passed for c in checks)
    assert mismatches == []
    assert summary["trades"] == 2


def test_compare_trades_when_different_then_every_mismatch_recorded() -> None:
    trades = [_ft_trade("BTC/USDT", 1, 3, 2.0), _ft_trade("ETH/USDT", 2, 5, -1.0), _ft_trade("BTC/USDT", 9, 1, 4.0)]
    native = [_ft_trade("BTC/USDT", 1, 4, 2.0), _ft_trade("ETH/USDT", 2, 5, -1.0)]  # one moved, one missing
    checks, mismatches, _ = _compare_trades(_ft(trades), _native(native), 0.01)
    failed = {c.name for c in checks if not c.passed}
    assert failed == {"native_trade_count", "native_trade_dates", "native_total_profit"}
    dates = [m for m in mismatches if m.check == "native_trade_dates"]
    assert len(dates) == 3  # two Freqtrade trades unmatched, one native trade unmatched
    assert any("only in the native engine" in m.detail and m.pair == "BTC/USDT" for m in dates)


def test_compare_trades_when_strategy_sizes_stakes_then_ratios_times_freqtrade_stakes() -> None:
    trades = [_ft_trade("BTC/USDT", 1, 3, 2.0), _ft_trade("ETH/USDT", 2, 5, -1.0)]
    native = _native(trades)
    native["profit_abs"] = native["profit_abs"] / 5  # the native engine staked less
    native["profit_ratio"] = [t.profit_abs / (t.stake_amount * (1 + t.fee_open)) for t in trades]
    checks, _, _ = _compare_trades(_ft(trades), native, 0.01)
    assert not {c.name: c.passed for c in checks}["native_total_profit"]
    checks, _, _ = _compare_trades(_ft(trades), native, 0.01, custom_stakes=True)
    assert all(c.passed for c in checks)
    assert "Freqtrade's stakes" in checks[-1].detail


def test_compare_trades_when_columns_missing_then_engine_check_fails() -> None:
    checks, _, _ = _compare_trades(_ft([]), pd.DataFrame({"pair": []}), 0.01)
    assert [c.name for c in checks] == ["native_engine"]
    assert not checks[0].passed


@pytest.mark.parametrize(
    ("ft_total", "native_total", "ok"),
    [(100.0, 100.9, True), (100.0, 101.5, False), (-50.0, -50.4, True), (0.0, 0.0, True), (1.0, -1.0, False)],
)
def test_profit_within_when_totals_then_one_percent_rule(ft_total: float, native_total: float, ok: bool) -> None:
    assert profit_within(ft_total, native_total, 0.01) is ok


# -- generate() -----------------------------------------------------------------------------------


def test_generate_when_verify_without_data_then_generated_market_and_all_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = generate(EXAMPLES / "breakout_4h.yaml", out, verify=True, sizing=StakeSizing.fixed(100))
    assert isinstance(report, CodegenReport)
    for key in ("strategy", "readme", "review_json", "review_md", "verification_json", "verification_md"):
        assert report.files[key].is_file(), key
    assert report.files["strategy"] == out / "donchian_breakout_v1.py"
    assert report.data_source is not None
    assert "generate_market(seed=7)" in report.data_source
    assert "not market data" in report.data_source
    assert report.review.passed, report.summary()
    assert report.verification is not None
    assert report.verification.check("signals_match_reference").passed
    if _native_available():
        assert report.passed
        assert report.exit_code == 0
        assert report.failed_checks == []
    else:
        assert report.exit_code == 3
        assert report.failed_checks == ["verification.native_engine"]
    saved = json.loads(report.files["verification_json"].read_text())
    assert saved["data_source"] == report.data_source
    json.dumps(report.as_dict())
    assert report.summary().splitlines()[-1] in ("PASSED", "REFUSED: failed verification.native_engine")


def test_generate_when_bundle_invalid_then_spec_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "trend_ema_cross.yaml").read_text().replace("rsi < 70", "rsii < 70"))
    with pytest.raises(SpecError, match="unknown name 'rsii'"):
        generate(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_verification_data_when_datadir_or_mapping_then_loaded(tmp_path: Path) -> None:
    bundle = make_bundle(pairs=["SOL/USDT"])
    frames = market(("SOL/USDT",), "1h", 300)
    write_pair(tmp_path, "SOL/USDT", "1h", frames["SOL/USDT"])
    loaded, source = _verification_data(bundle, tmp_path)
    assert source.startswith("Freqtrade datadir")
    assert len(loaded["SOL/USDT"]) == 300
    given, source = _verification_data(bundle, frames)
    assert given["SOL/USDT"] is frames["SOL/USDT"]
    assert "given" in source
    with pytest.raises(InvalidInput, match="no candles for"):
        _verification_data(make_bundle(), frames)
    with pytest.raises(InvalidInput, match="no 1h spot candle file"):
        _verification_data(make_bundle(pairs=["ADA/USDT"]), tmp_path)


def test_market_for_bundle_when_period_long_or_short_then_cut_or_extended() -> None:
    bundle = make_bundle(timeframe="5m")  # 182 days of 5m candles: 52k, cut
    frames, source = market_for_bundle(bundle, max_candles=1000)
    assert all(len(f) == 1000 for f in frames.values())
    assert "cut to the first 1000" in source
    weekly = make_bundle(timeframe="1w")
    frames, source = market_for_bundle(weekly)
    assert len(frames["BTC/USDT"]) >= weekly.startup_candles + 500
    assert "extended" in source
    again, _ = market_for_bundle(weekly)
    pd.testing.assert_frame_equal(frames["BTC/USDT"], again["BTC/USDT"])  # seeded
