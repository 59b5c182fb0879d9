"""Market data for a bundle read from a Freqtrade datadir (codegen --data, assess --datadir)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from execdesk.codegen.pipeline import market_from_datadir, validation_market_from_datadir
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
