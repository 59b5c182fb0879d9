"""Market data for a bundle read from a Freqtrade datadir (codegen --data, assess --datadir), and the candles several
strategies are backtested on over one window (the assessment's correlations on the same dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from execdesk.codegen.pipeline import market_from_datadir, validation_market_from_datadir, window_market
from execdesk.data import PairProfile, generate_market
from execdesk.data.datadir import write_pair
from execdesk.errors import InvalidInput
from tests.codegen.conftest import make_bundle


def _datadir(tmp_path: Path, start: datetime, end: datetime) -> Path:
    frames = generate_market({"BTC/USDT": PairProfile(start_price=100.0, base_volume=1e6)}, "1h", start, end, seed=3)
    write_pair(tmp_path, "BTC/USDT", "1h", frames["BTC/USDT"])
    return tmp_path


def test_validation_market_when_file_is_longer_then_cut_to_the_period_after_the_warm_up(tmp_path: Path) -> None:
    bundle = make_bundle(pairs=["BTC/USDT"], timeframe="1h")
    datadir = _datadir(tmp_path, datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 8, 1, tzinfo=UTC))

    frames, source = validation_market_from_datadir(bundle, datadir)

    dates = frames["BTC/USDT"]["date"]
    assert dates.iloc[0] == pd.Timestamp("2024-01-01", tz="UTC") - pd.Timedelta(hours=bundle.startup_candles)
    assert dates.iloc[bundle.startup_candles] == pd.Timestamp("2024-01-01", tz="UTC")
    assert dates.iloc[-1] == pd.Timestamp("2024-06-30 23:00", tz="UTC")
    assert str(datadir) in source
    assert "validation period" in source


def test_validation_market_when_file_starts_at_the_period_then_no_warm_up_before_it(tmp_path: Path) -> None:
    bundle = make_bundle(pairs=["BTC/USDT"], timeframe="1h")
    datadir = _datadir(tmp_path, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC))

    frames, _ = validation_market_from_datadir(bundle, datadir)

    assert frames["BTC/USDT"]["date"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert len(frames["BTC/USDT"]) == 182 * 24


@pytest.mark.parametrize(("start", "end"), [(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)),
                                            (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 6, 30, tzinfo=UTC))])
def test_validation_market_when_period_not_covered_then_invalid_input_naming_pair_and_span(
        tmp_path: Path, start: datetime, end: datetime) -> None:
    bundle = make_bundle(pairs=["BTC/USDT"], timeframe="1h")
    datadir = _datadir(tmp_path, start, end)

    with pytest.raises(InvalidInput, match=r"BTC/USDT do not cover the validation period 2024-01-01\.\.2024-06-30"):
        validation_market_from_datadir(bundle, datadir, "--datadir")


def test_market_from_datadir_when_folder_missing_then_invalid_input_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"--datadir .*nope is not a folder"):
        market_from_datadir(make_bundle(), tmp_path / "nope", "--datadir")


def test_window_market_when_generated_then_one_market_warmed_up_before_the_window_and_resampled_per_timeframe(
) -> None:
    # Arrange: a 4h bundle on BTC, a 1h one on BTC and ETH, and a clone of the 4h one
    four = make_bundle(pairs=["BTC/USDT"], timeframe="4h")
    one = make_bundle(pairs=["BTC/USDT", "ETH/USDT"], timeframe="1h")

    # Act
    market = window_market([four, one, four], date(2024, 1, 1), date(2024, 3, 31))

    # Assert: the window, its days, and candles generated at 1h, from 60 days before it
    assert (market.start, market.end) == (pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-04-01", tz="UTC"))
    assert market.days == (date(2024, 1, 1), date(2024, 3, 31))
    assert (market.label, market.market_data) == ("generated desk candles (seed 7)", False)
    assert "generate_market(seed=7)" in market.source
    assert "resampled to 4h" in market.source
    four_frames, one_frames, clone_frames = market.frames
    assert isinstance(four_frames, dict)
    assert isinstance(one_frames, dict)
    assert isinstance(clone_frames, dict)
    pd.testing.assert_frame_equal(four_frames["BTC/USDT"], clone_frames["BTC/USDT"])
    # one market: the 4h close is the close of the 1h candle ending with it
    btc4, btc1 = four_frames["BTC/USDT"].set_index("date"), one_frames["BTC/USDT"].set_index("date")
    assert btc4["close"].iloc[10] == btc1["close"][btc4.index[10] + pd.Timedelta(hours=3)]
    assert one_frames["BTC/USDT"]["date"].iloc[0] == pd.Timestamp("2023-11-02", tz="UTC")
    # each has its warm-up before the window, and the window's last candle
    for bundle, frames in ((four, four_frames), (one, one_frames)):
        dates = frames["BTC/USDT"]["date"]
        assert int(dates.searchsorted(market.start)) >= bundle.startup_candles
        assert dates.iloc[-1] == market.end - pd.Timedelta(bundle.timeframe)


def test_window_market_when_a_timeframe_does_not_divide_then_that_bundle_gets_a_reason_not_candles() -> None:
    # Arrange: 5m is not a whole multiple of 3m
    three, five = make_bundle(pairs=["BTC/USDT"], timeframe="3m"), make_bundle(pairs=["BTC/USDT"], timeframe="5m")

    # Act
    market = window_market([three, five], date(2024, 1, 1), date(2024, 1, 31))

    # Assert
    assert isinstance(market.frames[0], dict)
    assert market.frames[1] == ("its timeframe 5m is not a whole multiple of 3m, the timeframe of the candles "
                                "generated for the comparison")


def test_window_market_when_datadir_then_each_timeframe_read_and_a_missing_file_is_a_reason(tmp_path: Path) -> None:
    # Arrange: BTC 1h from Dec 2023; no ETH file
    datadir = _datadir(tmp_path, datetime(2023, 12, 1, tzinfo=UTC), datetime(2024, 8, 1, tzinfo=UTC))
    btc, eth = make_bundle(pairs=["BTC/USDT"], timeframe="1h"), make_bundle(pairs=["ETH/USDT"], timeframe="1h")

    # Act
    market = window_market([btc, eth], date(2024, 1, 1), date(2024, 6, 30), datadir)

    # Assert: market data, the window after its warm-up; ETH: why not
    assert (market.label, market.market_data) == (f"datadir {datadir}", True)
    frames = market.frames[0]
    assert isinstance(frames, dict)
    dates = frames["BTC/USDT"]["date"]
    assert dates.iloc[btc.startup_candles] == market.start
    assert dates.iloc[-1] == pd.Timestamp("2024-06-30 23:00", tz="UTC")
    assert isinstance(market.frames[1], str)
    assert market.frames[1].startswith(
        f"datadir {datadir}: no 1h spot candle file for ETH/USDT")


def test_window_market_when_window_or_datadir_is_wrong_then_invalid_input(tmp_path: Path) -> None:
    bundle = make_bundle(pairs=["BTC/USDT"], timeframe="1h")
    with pytest.raises(InvalidInput, match="last day 2024-01-01 is before its first 2024-02-01"):
        window_market([bundle], date(2024, 2, 1), date(2024, 1, 1))
    with pytest.raises(InvalidInput, match=r"--datadir .*nope is not a folder"):
        window_market([bundle], date(2024, 1, 1), date(2024, 2, 1), tmp_path / "nope")


def test_window_market_when_more_candles_than_allowed_then_the_window_keeps_its_latest_days() -> None:
    # Arrange: 182 days of 1h candles after 60 days of warm-up, at most 3,000 (125 days)
    bundle = make_bundle(pairs=["BTC/USDT"], timeframe="1h")

    # Act
    market = window_market([bundle], date(2024, 1, 1), date(2024, 6, 30), max_candles=3000)

    # Assert: the window ends as asked and starts on the day its warm-up and days fit 1,000 candles
    frames = market.frames[0]
    assert isinstance(frames, dict)
    assert market.days[1] == date(2024, 6, 30)
    assert len(frames["BTC/USDT"]) <= 3000
    assert int(frames["BTC/USDT"]["date"].searchsorted(market.start)) == 60 * 24
    assert market.days[0] == date(2024, 4, 27)  # 3,000 - 1,440 candles of warm-up = 65 days
    assert "cut to its last 65 days (at most 3000 1h candles)" in market.source
    assert "(of 2024-01-01..2024-06-30;" in market.source


def test_window_market_when_other_strategies_are_compared_then_a_pairs_generated_candles_stay_the_same() -> None:
    # Arrange: the same 4h candidate against a 1h strategy, then against that one and a long-warm-up 1h one
    four = make_bundle(pairs=["BTC/USDT"], timeframe="4h")
    one = make_bundle(pairs=["BTC/USDT", "ETH/USDT"], timeframe="1h")
    slow = make_bundle(pairs=["ETH/USDT"], timeframe="4h", indicators={"ema": {"fn": "EMA", "period": 300}},
                       entry={"long": "close > ema"}, exit={"long": "close < ema"})

    # Act
    alone = window_market([four, one], date(2024, 1, 1), date(2024, 3, 31))
    more = window_market([four, one, slow], date(2024, 1, 1), date(2024, 3, 31))

    # Assert: the same candles for the pair the first two share (300 4h candles = 50 days fit in 60)
    first, second = alone.frames[0], more.frames[0]
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    pd.testing.assert_frame_equal(first["BTC/USDT"], second["BTC/USDT"])
