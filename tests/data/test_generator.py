"""Tests of execdesk.data.generator: determinism, validity, statistical realism, errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from execdesk.data import (
    TIMEFRAMES,
    PairProfile,
    RegimeSpan,
    Shock,
    floor_epoch,
    generate_market,
    generate_pair,
    timeframe_to_seconds,
    validate_candles,
)
from execdesk.data.candles import epoch_seconds
from execdesk.errors import InvalidInput

START = datetime(2022, 1, 1, tzinfo=UTC)
END = datetime(2024, 1, 1, tzinfo=UTC)
PROFILES = {
    "BTC/USDT": PairProfile(start_price=30_000.0, annual_vol=0.6, beta=0.9, base_volume=1e4),
    "ETH/USDT": PairProfile(start_price=2_000.0, annual_vol=0.8, beta=1.1, base_volume=1e5),
    "SOL/USDT": PairProfile(start_price=100.0, annual_vol=1.1, beta=1.2, base_volume=1e6),
}
SMALL = {
    "A/USDT": PairProfile(start_price=10.0, base_volume=1e5),
    "B/USDT": PairProfile(start_price=5.0, base_volume=1e5),
}


def log_returns(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.diff(np.log(frame["close"].to_numpy()))


def same_bits(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    return list(left.columns) == list(right.columns) and all(
        np.array_equal(left[c].to_numpy(), right[c].to_numpy()) for c in left.columns
    )


@pytest.fixture(scope="module")
def market() -> dict[str, pd.DataFrame]:
    """Two years of hourly candles for three pairs: the long series the statistics run on."""
    return generate_market(PROFILES, "1h", START, END, seed=42)


def test_generate_market_when_called_twice_with_same_arguments_then_bit_identical() -> None:
    # Act
    first = generate_market(SMALL, "5m", START, START + timedelta(days=3), seed=7)
    second = generate_market(SMALL, "5m", START, START + timedelta(days=3), seed=7)

    # Assert
    assert all(same_bits(first[p], second[p]) for p in SMALL)


def test_generate_market_when_seed_differs_then_series_differ() -> None:
    # Act
    first = generate_market(SMALL, "5m", START, START + timedelta(days=3), seed=7)
    second = generate_market(SMALL, "5m", START, START + timedelta(days=3), seed=8)

    # Assert
    assert not np.array_equal(first["A/USDT"]["close"].to_numpy(), second["A/USDT"]["close"].to_numpy())


def test_generate_market_when_pair_added_then_existing_pairs_unchanged() -> None:
    # Arrange
    more = dict(SMALL) | {"C/USDT": PairProfile(start_price=1.0, beta=1.5, base_volume=1e6)}

    # Act
    before = generate_market(SMALL, "15m", START, START + timedelta(days=5), seed=3)
    after = generate_market(more, "15m", START, START + timedelta(days=5), seed=3)

    # Assert
    assert all(same_bits(before[p], after[p]) for p in SMALL)


def test_generate_pair_when_same_seed_then_equals_its_series_in_the_market() -> None:
    # Act
    market = generate_market(SMALL, "1h", START, START + timedelta(days=20), seed=11)
    single = generate_pair("B/USDT", SMALL["B/USDT"], "1h", START, START + timedelta(days=20), seed=11)

    # Assert
    assert same_bits(single, market["B/USDT"])


def test_generate_market_when_regime_and_shock_target_one_pair_then_other_pair_unchanged() -> None:
    # Arrange
    mid = START + timedelta(days=5)
    span = RegimeSpan(mid, mid + timedelta(days=3), "trend_up", strength=2.0)
    shock = Shock(mid, -0.2, pairs=("A/USDT",))

    # Act
    plain = generate_market(SMALL, "1h", START, START + timedelta(days=10), seed=2)
    forced = generate_market(
        SMALL, "1h", START, START + timedelta(days=10), seed=2, shocks=[shock], regimes={"A/USDT": [span]}
    )

    # Assert
    assert same_bits(plain["B/USDT"], forced["B/USDT"])
    assert not same_bits(plain["A/USDT"], forced["A/USDT"])
    before_span = plain["A/USDT"]["date"] < pd.Timestamp(mid)
    assert same_bits(plain["A/USDT"][before_span], forced["A/USDT"][before_span])


def test_generate_market_when_end_later_then_earlier_candles_unchanged() -> None:
    # Act
    short = generate_market(SMALL, "5m", START, START + timedelta(days=2), seed=9)
    long = generate_market(SMALL, "5m", START, START + timedelta(days=6), seed=9)

    # Assert
    assert all(same_bits(short[p], long[p].iloc[: len(short[p])]) for p in SMALL)


def test_generate_market_when_long_series_then_returns_fat_tailed(market: dict[str, pd.DataFrame]) -> None:
    # Act
    kurtosis = {pair: stats.kurtosis(log_returns(frame)) for pair, frame in market.items()}

    # Assert
    assert all(k > 1.0 for k in kurtosis.values()), kurtosis


def test_generate_market_when_long_series_then_volatility_clusters(market: dict[str, pd.DataFrame]) -> None:
    # Act
    size = {pair: np.abs(log_returns(frame)) for pair, frame in market.items()}
    acf = {pair: [np.corrcoef(a[:-k], a[k:])[0, 1] for k in range(1, 6)] for pair, a in size.items()}

    # Assert
    assert all(value > 0.05 for values in acf.values() for value in values), acf


def test_generate_market_when_long_series_then_pairs_correlate_like_crypto(
    market: dict[str, pd.DataFrame],
) -> None:
    # Act
    matrix = np.corrcoef(np.vstack([log_returns(frame) for frame in market.values()]))
    pairwise = matrix[np.triu_indices(len(market), 1)]

    # Assert
    assert np.all((pairwise > 0.3) & (pairwise < 0.95)), pairwise


def test_generate_market_when_long_series_then_volume_rises_with_abs_return(
    market: dict[str, pd.DataFrame],
) -> None:
    # Act
    rho = {
        pair: stats.spearmanr(frame["volume"].to_numpy()[1:], np.abs(log_returns(frame))).statistic
        for pair, frame in market.items()
    }

    # Assert
    assert all(value > 0.1 for value in rho.values()), rho


def test_generate_market_when_long_series_then_volatility_near_profile(market: dict[str, pd.DataFrame]) -> None:
    # Act
    annualised = {p: log_returns(f).std() * np.sqrt(365 * 24) / PROFILES[p].annual_vol for p, f in market.items()}

    # Assert
    assert all(0.7 < ratio < 1.4 for ratio in annualised.values()), annualised


def test_generate_market_when_long_series_then_candles_look_like_exchange_candles(
    market: dict[str, pd.DataFrame],
) -> None:
    # Arrange
    frame = market["ETH/USDT"]
    o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))

    # Act
    same_open = np.mean(o[1:] == c[:-1])
    has_upper_wick = np.mean(h > np.maximum(o, c))
    has_lower_wick = np.mean(lo < np.minimum(o, c))

    # Assert: about half the opens equal the previous close, the rest are a hair off; wicks everywhere
    assert 0.4 < same_open < 0.6
    assert np.max(np.abs(o[1:] / c[:-1] - 1.0)) < 0.01
    assert has_upper_wick > 0.95
    assert has_lower_wick > 0.95


def test_generate_pair_when_trend_down_forced_then_span_loses() -> None:
    # Arrange
    span_start, span_end = datetime(2023, 3, 1, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC)
    span = RegimeSpan(span_start, span_end, "trend_down")

    # Act
    frame = generate_pair(
        "SOL/USDT",
        PROFILES["SOL/USDT"],
        "1h",
        datetime(2023, 1, 1, tzinfo=UTC),
        datetime(2023, 7, 1, tzinfo=UTC),
        seed=42,
        regimes=[span],
    )

    # Assert
    closes = frame.set_index("date")["close"]
    before = closes[span_start - timedelta(hours=1)]
    last = closes[span_end - timedelta(hours=1)]
    assert last / before - 1.0 < -0.1


def test_generate_pair_when_range_forced_then_long_horizon_variance_shrinks() -> None:
    # Arrange
    span_start, span_end = datetime(2023, 2, 1, tzinfo=UTC), datetime(2023, 4, 1, tzinfo=UTC)
    span = RegimeSpan(span_start, span_end, "range", strength=2.0)

    # Act
    frame = generate_pair(
        "A/USDT",
        SMALL["A/USDT"],
        "1h",
        datetime(2023, 1, 1, tzinfo=UTC),
        datetime(2023, 5, 1, tzinfo=UTC),
        seed=4,
        regimes=[span],
    )

    # Assert: 48-bar returns vary far less than 48 one-bar returns would (variance ratio well below 1)
    inside = frame[(frame["date"] >= pd.Timestamp(span_start)) & (frame["date"] < pd.Timestamp(span_end))]
    log_close = np.log(inside["close"].to_numpy())
    ratio = np.var(log_close[48:] - log_close[:-48]) / (48 * np.var(np.diff(log_close)))
    assert ratio < 0.7


def test_generate_market_when_shock_then_close_moves_by_shock_and_volatility_jumps() -> None:
    # Arrange
    at = datetime(2022, 11, 8, tzinfo=UTC)
    shock = Shock(at, -0.35, bars=3, vol_multiplier=3.0, decay_bars=48)

    end = datetime(2023, 1, 1, tzinfo=UTC)

    # Act
    frames = generate_market(PROFILES, "1h", START, end, seed=42, shocks=[shock])
    calm = generate_market(PROFILES, "1h", START, end, seed=42)

    # Assert: the move, then (against the same series without the shock) the volatility after it
    for pair, frame in frames.items():
        closes = frame.set_index("date")["close"]
        move = closes[at + timedelta(hours=2)] / closes[at - timedelta(hours=1)] - 1.0
        assert move == pytest.approx(-0.35, abs=0.08)
        k = closes.index.get_loc(pd.Timestamp(at))
        after, counterfactual = log_returns(frame)[k + 3 : k + 27], log_returns(calm[pair])[k + 3 : k + 27]
        assert after.std() > 1.4 * counterfactual.std()


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_generate_market_when_any_timeframe_then_valid_aligned_candles(timeframe: str) -> None:
    # Arrange
    step = timeframe_to_seconds(timeframe)
    end = START + timedelta(seconds=step * 400)

    # Act
    frames = generate_market(SMALL, timeframe, START, end, seed=1)

    # Assert
    for pair, frame in frames.items():
        validate_candles(frame, pair)
        times = epoch_seconds(frame["date"])
        np.testing.assert_array_equal(floor_epoch(times, timeframe), times)
        assert np.all(np.diff(times) == step)
        assert frame["date"].iloc[-1] < pd.Timestamp(end)
        assert frame.dtypes.drop("date").tolist() == [np.dtype(np.float64)] * 5
        assert str(frame["date"].dtype) == "datetime64[ms, UTC]"
    if timeframe == "1w":
        assert set(frames["A/USDT"]["date"].dt.day_of_week) == {0}


def test_generate_market_when_start_unaligned_then_first_candle_at_next_boundary_and_end_exclusive() -> None:
    # Arrange
    start = START + timedelta(minutes=2)
    end = START + timedelta(hours=1)

    # Act
    frame = generate_pair("A/USDT", SMALL["A/USDT"], "5m", start, end, seed=1)

    # Assert
    assert frame["date"].iloc[0] == pd.Timestamp(START + timedelta(minutes=5))
    assert frame["date"].iloc[-1] == pd.Timestamp(START + timedelta(minutes=55))
    assert len(frame) == 11


def test_generate_pair_when_extreme_profile_then_prices_stay_positive_and_valid() -> None:
    # Arrange
    wild = PairProfile(start_price=1e-6, annual_vol=4.0, beta=3.0, drift=-8.0, base_volume=1e12, jumps_per_year=200)

    # Act
    frame = generate_pair("WILD/USDT", wild, "1d", START, START + timedelta(days=3000), seed=13)

    # Assert
    validate_candles(frame, "WILD/USDT")
    assert (frame[["open", "high", "low", "close"]].to_numpy() > 0).all()


def test_generate_market_when_five_pairs_of_100k_candles_then_each_complete_and_valid() -> None:
    # Arrange (its speed: benchmarks/bench_hotpaths.py)
    pairs = {f"P{i}/USDT": PairProfile(start_price=10.0 * (i + 1), base_volume=1e5) for i in range(5)}
    end = START + timedelta(minutes=5 * 100_000)

    # Act
    frames = generate_market(pairs, "5m", START, end, seed=0)

    # Assert
    assert all(len(frame) == 100_000 for frame in frames.values())
    for pair, frame in frames.items():
        validate_candles(frame, pair)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": END, "end": START}, "end must be after start"),
        ({"end": START}, "end must be after start"),
        ({"start": datetime(2022, 1, 1)}, "start must be a timezone-aware datetime"),
        ({"timeframe": "2m"}, "unknown timeframe '2m'"),
        ({"seed": -1}, "seed must be an int >= 0"),
        ({"pairs": {}}, "pairs must be at least one pair profile"),
        ({"shocks": [Shock(END, -0.1)]}, r"shocks\[0\].at must be inside the generated candles"),
        ({"shocks": [Shock(START, -0.1, pairs=("X/USDT",))]}, r"shocks\[0\].pairs must be names of generated"),
        ({"regimes": {"X/USDT": []}}, "regimes keys must be names of generated pairs"),
        (
            {
                "regimes": {
                    "A/USDT": [
                        RegimeSpan(START, START + timedelta(days=2), "range"),
                        RegimeSpan(START + timedelta(days=1), END, "chop"),
                    ]
                }
            },
            "not overlapping others",
        ),
        (
            {"regimes": {"A/USDT": [RegimeSpan(END, END + timedelta(days=1), "range")]}},
            "overlapping the generated candles",
        ),
    ],
)
def test_generate_market_when_bad_argument_then_invalid_input_names_field(kwargs: dict[str, Any], message: str) -> None:
    # Arrange
    arguments: dict[str, Any] = {"pairs": SMALL, "timeframe": "1h", "start": START, "end": END, "seed": 1} | kwargs

    # Act / Assert
    with pytest.raises(InvalidInput, match=message):
        generate_market(**arguments)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PairProfile(start_price=0.0, base_volume=1.0), "PairProfile.start_price must be a finite number > 0"),
        (lambda: PairProfile(start_price=1.0, base_volume=1.0, annual_vol=-0.5), "PairProfile.annual_vol"),
        (lambda: PairProfile(start_price=1.0, base_volume=0.0), "PairProfile.base_volume"),
        (lambda: PairProfile(start_price=float("nan"), base_volume=1.0), "PairProfile.start_price"),
        (lambda: PairProfile(start_price=1.0, base_volume=1.0, tail_df=2.0), "PairProfile.tail_df"),
        (lambda: RegimeSpan(END, START, "range"), "RegimeSpan.end must be after start"),
        (lambda: RegimeSpan(START, END, "sideways"), "RegimeSpan.kind must be one of"),  # type: ignore[arg-type]
        (lambda: RegimeSpan(START, END, "range", strength=0.0), "RegimeSpan.strength"),
        (lambda: Shock(datetime(2022, 1, 1), -0.1), "Shock.at must be a timezone-aware datetime"),
        (lambda: Shock(START, -1.0), "Shock.move must be a finite number > -1"),
        (lambda: Shock(START, -0.1, bars=0), "Shock.bars must be an int >= 1"),
        (lambda: Shock(START, -0.1, vol_multiplier=0.5), "Shock.vol_multiplier"),
        (lambda: Shock(START, -0.1, pairs="A/USDT"), "Shock.pairs must be a tuple of pair names"),  # type: ignore[arg-type]
    ],
)
def test_config_when_bad_value_then_invalid_input_names_field(build: Any, message: str) -> None:
    # Act / Assert
    with pytest.raises(InvalidInput, match=message):
        build()


def test_config_when_built_then_frozen_and_non_utc_times_accepted() -> None:
    # Arrange
    profile = PairProfile(start_price=1.0, base_volume=1.0)
    shock = Shock(datetime(2022, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), -0.1, pairs=["A/USDT"])  # type: ignore[arg-type]

    # Act / Assert
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.annual_vol = 2.0  # type: ignore[misc]
    assert shock.pairs == ("A/USDT",)
    frames = generate_market(SMALL, "1h", START, START + timedelta(days=1), seed=1, shocks=[shock])
    assert frames["A/USDT"]["close"].iloc[2] < frames["A/USDT"]["close"].iloc[0]


def test_first_order_filter_when_compared_with_scipy_then_bit_identical() -> None:
    from scipy.signal import lfilter as scipy_lfilter

    from execdesk.data.generator import lfilter

    x = np.random.default_rng(3).standard_normal(5000)
    assert np.array_equal(lfilter([1.0], [1.0, -0.97], x), scipy_lfilter([1.0], [1.0, -0.97], x))
    ours, ours_state = lfilter([1.0], [1.0, -0.5], x, zi=[0.25])
    theirs, their_state = scipy_lfilter([1.0], [1.0, -0.5], x, zi=[0.25])
    assert np.array_equal(ours, theirs)
    assert np.array_equal(ours_state, their_state)
