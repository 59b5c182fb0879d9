"""Tests of execdesk.data.datadir: Freqtrade file names, layouts and round trips."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pytest

from execdesk.data import (
    FORMATS,
    CandleError,
    PairProfile,
    generate_pair,
    load_pair,
    pair_path,
    pair_to_filename,
    write_pair,
)
from execdesk.errors import InvalidInput

START = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    profile = PairProfile(start_price=0.5, base_volume=2e7)
    return generate_pair("XRP/USDT", profile, "5m", START, START + timedelta(days=2), seed=5)


@pytest.mark.parametrize(
    ("pair", "timeframe", "fmt", "candle_type", "expected"),
    [
        ("BTC/USDT", "1h", "feather", "spot", "BTC_USDT-1h.feather"),
        ("XRP/USDT:USDT", "5m", "feather", "futures", "XRP_USDT_USDT-5m-futures.feather"),
        ("ETH/BTC", "5m", "parquet", "spot", "ETH_BTC-5m.parquet"),
        ("ETH/BTC", "1d", "json", "spot", "ETH_BTC-1d.json"),
        ("ETH/BTC", "1w", "jsongz", "spot", "ETH_BTC-1w.json.gz"),
        ("BTC/USDT:USDT", "8h", "feather", "mark", "BTC_USDT_USDT-8h-mark.feather"),
        ("1000PEPE/USDC.e @x$+", "15m", "feather", "spot", "1000PEPE_USDC_e__x__-15m.feather"),
    ],
)
def test_pair_to_filename_when_freqtrade_naming_then_expected_name(
    pair: str, timeframe: str, fmt: str, candle_type: str, expected: str
) -> None:
    # Act / Assert
    assert pair_to_filename(pair, timeframe, fmt, candle_type) == expected


def test_pair_path_when_futures_then_in_futures_folder(tmp_path: Path) -> None:
    # Act
    spot = pair_path(tmp_path, "BTC/USDT", "1h")
    futures = pair_path(tmp_path, "XRP/USDT:USDT", "5m", candle_type="futures")

    # Assert
    assert spot == tmp_path / "BTC_USDT-1h.feather"
    assert futures == tmp_path / "futures" / "XRP_USDT_USDT-5m-futures.feather"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "hdf5"}, "unknown data format 'hdf5'; expected one of feather, parquet, json, jsongz"),
        ({"timeframe": "2m"}, "unknown timeframe '2m'"),
        ({"candle_type": "funding_rate"}, "unknown candle type 'funding_rate'"),
        ({"pair": " "}, "pair must be a non-empty string"),
    ],
)
def test_pair_to_filename_when_bad_argument_then_invalid_input(kwargs: dict[str, str], message: str) -> None:
    # Arrange
    arguments = {"pair": "BTC/USDT", "timeframe": "5m", "fmt": "feather", "candle_type": "spot"} | kwargs

    # Act / Assert
    with pytest.raises(InvalidInput, match=message):
        pair_to_filename(**arguments)


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_then_load_pair_when_each_format_then_same_candles(tmp_path: Path, frame: pd.DataFrame, fmt: str) -> None:
    # Act
    path = write_pair(tmp_path, "XRP/USDT", "5m", frame, fmt)
    back = load_pair(tmp_path, "XRP/USDT", "5m", fmt)

    # Assert
    assert path == pair_path(tmp_path, "XRP/USDT", "5m", fmt)
    assert str(back["date"].dtype) == "datetime64[ms, UTC]"
    assert back["date"].equals(frame["date"])
    values = ["open", "high", "low", "close", "volume"]
    if fmt in ("feather", "parquet"):
        pd.testing.assert_frame_equal(back, frame, check_exact=True)
    else:
        # pandas' to_json (Freqtrade's writer) keeps 10 decimal places
        np.testing.assert_allclose(back[values].to_numpy(), frame[values].to_numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_then_load_pair_when_futures_then_read_back_from_futures_folder(
    tmp_path: Path, frame: pd.DataFrame, fmt: str
) -> None:
    # Act
    path = write_pair(tmp_path, "XRP/USDT:USDT", "5m", frame, fmt, candle_type="futures")
    back = load_pair(tmp_path, "XRP/USDT:USDT", "5m", candle_type="futures")

    # Assert
    assert path.parent == tmp_path / "futures"
    assert path.name.startswith("XRP_USDT_USDT-5m-futures.")
    assert len(back) == len(frame)


@pytest.mark.parametrize("fmt", ["json", "jsongz"])
def test_write_pair_when_json_then_freqtrade_list_of_epoch_ms_rows(
    tmp_path: Path, frame: pd.DataFrame, fmt: str
) -> None:
    # Act
    path = write_pair(tmp_path, "XRP/USDT", "5m", frame, fmt)

    # Assert
    opener = gzip.open if fmt == "jsongz" else open
    with opener(path, "rt") as handle:
        rows = json.load(handle)
    assert len(rows) == len(frame)
    assert all(len(row) == 6 for row in rows)
    assert rows[0][0] == int(START.timestamp() * 1000)
    assert isinstance(rows[0][0], int)
    assert rows[1][0] - rows[0][0] == 300_000
    assert rows[0][4] == pytest.approx(frame["close"].iloc[0], rel=1e-9)


def test_write_pair_when_feather_then_freqtrade_schema(tmp_path: Path, frame: pd.DataFrame) -> None:
    # Arrange: an index and an extra column that must not be written
    messy = frame.assign(extra=1.0).set_index(frame.index + 10)

    # Act
    path = write_pair(tmp_path, "XRP/USDT", "5m", messy)

    # Assert
    table = feather.read_table(path)
    assert table.column_names == ["date", "open", "high", "low", "close", "volume"]
    assert str(table.schema.field("date").type) == "timestamp[ms, tz=UTC]"
    assert all(str(table.schema.field(c).type) == "double" for c in table.column_names[1:])


def test_load_pair_when_json_written_by_hand_then_normalised(tmp_path: Path) -> None:
    # Arrange: Freqtrade-style json with ints where floats are expected
    rows = [[1515560100000, 1, 2, 0.5, 1.5, 10], [1515560400000, 1.5, 2.5, 1, 2, 0]]
    (tmp_path / "ETH_BTC-5m.json").write_text(json.dumps(rows))

    # Act
    back = load_pair(tmp_path, "ETH/BTC", "5m")

    # Assert
    assert back["date"].iloc[0] == pd.Timestamp("2018-01-10T04:55:00Z")
    assert back.dtypes.drop("date").tolist() == [np.dtype(np.float64)] * 5
    assert back["close"].tolist() == [1.5, 2.0]


def test_load_pair_when_format_not_given_then_finds_any_and_prefers_feather(
    tmp_path: Path, frame: pd.DataFrame
) -> None:
    # Arrange
    write_pair(tmp_path, "XRP/USDT", "5m", frame, "jsongz")
    only_jsongz = load_pair(tmp_path, "XRP/USDT", "5m")
    write_pair(tmp_path, "XRP/USDT", "5m", frame.iloc[:10], "feather")

    # Act
    preferred = load_pair(tmp_path, "XRP/USDT", "5m")

    # Assert
    assert len(only_jsongz) == len(frame)
    assert len(preferred) == 10


def test_load_pair_when_missing_then_invalid_input_names_every_path(tmp_path: Path) -> None:
    # Act
    with pytest.raises(InvalidInput) as caught:
        load_pair(tmp_path, "BTC/USDT", "1h")

    # Assert
    message = str(caught.value)
    for name in ("BTC_USDT-1h.feather", "BTC_USDT-1h.parquet", "BTC_USDT-1h.json", "BTC_USDT-1h.json.gz"):
        assert str(tmp_path / name) in message


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("feather", "X_Y-1h.feather"),
        ("json", "X_Y-1h.json"),
        ("jsongz", "X_Y-1h.json.gz"),
        ("parquet", "X_Y-1h.parquet"),
    ],
)
def test_load_pair_when_file_corrupt_then_invalid_input_names_path(tmp_path: Path, fmt: str, name: str) -> None:
    # Arrange
    (tmp_path / name).write_bytes(b"\x00not a candle file{")

    # Act / Assert
    with pytest.raises(InvalidInput, match=name.replace(".", r"\.")):
        load_pair(tmp_path, "X/Y", "1h", fmt)


def test_load_pair_when_file_holds_bad_candle_then_candle_error_names_pair_and_time(tmp_path: Path) -> None:
    # Arrange
    rows = [[1515560100000, 1, 2, 0.5, 1.5, 10], [1515560400000, 1.5, 0.09, 0.1, 1.5, 3]]
    (tmp_path / "ETH_BTC-5m.json").write_text(json.dumps(rows))

    # Act
    with pytest.raises(CandleError) as caught:
        load_pair(tmp_path, "ETH/BTC", "5m")

    # Assert
    assert caught.value.pair == "ETH/BTC"
    assert caught.value.time == "2018-01-10T05:00:00+00:00"
    assert caught.value.problem == "high 0.09 < low 0.1"


def test_load_pair_when_json_rows_have_wrong_width_then_candle_error(tmp_path: Path) -> None:
    # Arrange
    (tmp_path / "ETH_BTC-5m.json").write_text(json.dumps([[1515560100000, 1, 2, 0.5, 1.5]]))

    # Act / Assert
    with pytest.raises(CandleError, match="expected rows of 6 values"):
        load_pair(tmp_path, "ETH/BTC", "5m")


def test_load_pair_when_feather_dates_naive_then_candle_error(tmp_path: Path, frame: pd.DataFrame) -> None:
    # Arrange
    frame.assign(date=frame["date"].dt.tz_localize(None)).to_feather(tmp_path / "XRP_USDT-5m.feather")

    # Act / Assert
    with pytest.raises(CandleError, match="timezone-naive"):
        load_pair(tmp_path, "XRP/USDT", "5m")


def test_write_pair_when_frame_invalid_then_nothing_written(tmp_path: Path, frame: pd.DataFrame) -> None:
    # Arrange
    bad = frame.copy()
    bad.loc[3, "volume"] = -1.0

    # Act
    with pytest.raises(CandleError, match=r"volume -1\.0 is negative"):
        write_pair(tmp_path / "datadir", "XRP/USDT", "5m", bad)

    # Assert
    assert not (tmp_path / "datadir").exists()
