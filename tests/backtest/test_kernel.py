"""Tests of execdesk.backtest._kernel's helpers: price-step regimes, month bounds, step checks, the
interleaved candle layout, and the quiet-candle test that lets the trade loop skip candles."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from execdesk.backtest import _kernel

POW10 = _kernel.powers_of_ten(400)


def reference_step_inverses(
    time: np.ndarray, cols: tuple[np.ndarray, ...], market_inverse: float
) -> list[float]:
    """Rule 7 written out slowly: per calendar month the most decimals of any positive finite price
    (``_fraction_digits``), a month without decimals keeping the step before it."""
    out: list[float] = []
    current = market_inverse
    i = 0
    while i < len(time):
        month = datetime.fromtimestamp(int(time[i]), tz=UTC).strftime("%Y-%m")
        j = i
        while j < len(time) and datetime.fromtimestamp(int(time[j]), tz=UTC).strftime("%Y-%m") == month:
            j += 1
        best = -1
        for col in cols:
            for v in col[i:j]:
                if v > 0 and math.isfinite(v):
                    best = max(best, _kernel._fraction_digits(float(v), _kernel._decade(float(v))))
        if best >= 0:
            current = float(POW10[best])  # 10.0 ** best as compiled code computes it (1e23: not Python's)
        out.extend([current] * (j - i))
        i = j
    return out


def expand(rows: np.ndarray, inverses: np.ndarray, n: int) -> list[float]:
    return list(np.repeat(inverses, np.diff(np.append(rows, n))))


def test_month_bounds_match_the_calendar() -> None:
    rng = np.random.default_rng(7)
    moments = [0, -1, 951_782_400, 951_868_799, 4_107_542_400, 1_703_980_800, 1_704_067_199]
    for s in [*moments, *(int(x) for x in rng.integers(-3_000_000_000, 8_000_000_000, 3000))]:
        d = datetime.fromtimestamp(s, tz=UTC)
        first = datetime(d.year, d.month, 1, tzinfo=UTC)
        following = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
        assert _kernel.month_bounds(s) == (int(first.timestamp()), int(following.timestamp())), s


def test_more_digits_agrees_with_fraction_digits() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([
        10.0 ** rng.uniform(-12, 12, 1500), 10.0 ** rng.uniform(-323, 308, 300),
        np.concatenate([np.round(rng.uniform(0, 1000, 100), d) for d in range(12)]),
        [1.0, 0.5, 2.5, 99999999999999.5, 9.999999999999999, 5e-324, 2.2e-308, 1.7e308, 1e22, 1e23],
    ])  # fmt: skip
    for v in values:
        if not v > 0:
            continue
        e = _kernel._decade(float(v))
        digits = _kernel._fraction_digits(float(v), e)
        for best in range(-1, 25):
            assert _kernel._more_digits(float(v), e, best, POW10) == (digits > best), (v, best)


def test_powers_of_ten_are_exact_where_floats_can_be() -> None:
    assert [POW10[k] for k in range(23)] == [float(10**k) for k in range(23)]


def test_first_bad_step_across_block_edges() -> None:
    for n in (0, 1, 2, 63, 64, 65, 130, 1000):
        time = np.arange(n, dtype=np.int64) * 300
        assert _kernel.first_bad_step(time, 300) == -1
        for bad in {0, 62, 63, 64, 127, n - 2} if n > 1 else set():
            if 0 <= bad < n - 1:
                broken = time.copy()
                broken[bad + 1 :] += 300
                assert _kernel.first_bad_step(broken, 300) == bad, (n, bad)


def test_run_end_finds_the_first_value_outside() -> None:
    values = np.arange(300, dtype=np.int64)
    assert _kernel._run_end(values, 0, 0, 1000) == 300
    assert _kernel._run_end(values, 5, 0, 200) == 200
    assert _kernel._run_end(values, 70, 0, 70) == 70
    values[150] = -5  # out of order: the run ends there, as grouping consecutive months did
    assert _kernel._run_end(values, 0, 0, 1000) == 150


def test_price_step_table_regimes_follow_the_months_and_merge() -> None:
    jan, feb, mar, apr = 1_704_067_200, 1_706_745_600, 1_709_251_200, 1_711_929_600  # 2024-01-01 .. 04-01
    time = np.array([jan, jan + 60, feb, mar, mar + 60, apr], dtype=np.int64)
    prices = np.array([1.5, 2.25, 3.0, 0.125, 7.0, 0.5])
    rows, inverses = _kernel.price_step_table(time, prices, prices, prices, prices, 1e8)
    # January: 2 decimals; February none (January's step); March 3 decimals; April 1
    assert list(rows) == [0, 3, 5]
    assert list(inverses) == [100.0, 1000.0, 10.0]
    nothing = np.full(6, np.nan)
    rows, inverses = _kernel.price_step_table(time, nothing, nothing, nothing, nothing, 1e8)
    assert (list(rows), list(inverses)) == ([0], [1e8])  # no price at all: the market's step throughout


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 1e8, 100.0]))
def test_price_step_table_matches_rule_seven(seed: int, market_inverse: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    step = int(rng.choice([3600, 86400, 5 * 86400]))
    time = int(rng.integers(1_000_000_000, 2_000_000_000)) + np.cumsum(rng.integers(0, 3, n)) * step
    months = (time - time[0]) // (28 * 86400)
    decimals = rng.integers(-2, 15, int(months.max()) + 1)[months]
    scale = 10.0 ** rng.uniform(-9, 9)
    cols = []
    for _ in range(4):
        x = rng.uniform(0.5, 2.0, n) * scale
        x = np.array([np.round(v, int(d)) if d < 14 else v for v, d in zip(x, decimals, strict=True)])
        r = rng.random(n)
        x[r < 0.03] = np.nan
        x[(r >= 0.03) & (r < 0.05)] = 0.0
        x[(r >= 0.05) & (r < 0.06)] = -1.0
        x[(r >= 0.06) & (r < 0.07)] = np.inf
        cols.append(x)
    rows, inverses = _kernel.price_step_table(time, *cols, market_inverse)
    assert rows[0] == 0
    assert list(rows) == sorted(set(rows.tolist()))
    assert all(a != b for a, b in itertools.pairwise(inverses))  # regimes merged
    assert expand(rows, inverses, n) == reference_step_inverses(time, tuple(cols), market_inverse)


def test_interleave_writes_rows_of_four() -> None:
    out = np.zeros((7, 4))
    o, h, lo, c = (np.arange(5.0) + k for k in (0.0, 0.25, 0.5, 0.75))
    _kernel.interleave(o, h, lo, c, out, 2)
    assert out[:2].sum() == 0.0
    assert list(out[3]) == [1.0, 1.25, 1.5, 1.75]
    assert list(out[6]) == [4.0, 4.25, 4.5, 4.75]


@settings(max_examples=500, deadline=None)
@given(
    st.booleans(), st.floats(0.5, 2000.0), st.floats(0.0, 0.01), st.sampled_from([0.0, 0.01, 0.1, -1.0, 3.0]),
    st.floats(-2e-7, 2e-7), st.floats(0.0, 0.2), st.booleans(), st.booleans(), st.booleans(),
)
def test_a_quiet_candle_has_no_exit_to_decide(
    is_short: bool, open_rate: float, fee: float, roi: float, near: float, spread: float,
    enter_flag: bool, exit_flag: bool, use_exit_signal: bool,
) -> None:
    # the candle's best price lies within `near` (relative) of the ROI rate, where the profit's
    # rounding to 8 decimals decides; a quiet candle must have no exit signal, no stop hit and no ROI
    amount = round(100.0 / open_rate, 8)
    value = amount * open_rate * ((1.0 - fee) if is_short else (1.0 + fee))
    side = -1.0 if is_short else 1.0
    roi_rate = value * (1.0 + side * roi) / (amount * ((1.0 + fee) if is_short else (1.0 - fee)))
    best = roi_rate * (1.0 + near) if roi_rate > 0 else open_rate
    hh, ll = (best * (1.0 + spread), best) if is_short else (best, best * (1.0 - spread))
    stop = open_rate * (1.0 + side * 0.05)
    if not _kernel._quiet(is_short, enter_flag, exit_flag, use_exit_signal, stop, hh, ll, 0, roi, amount, value,
                          fee):
        return
    assert not (use_exit_signal and exit_flag and not enter_flag)
    assert (stop > hh) if is_short else (stop < ll)
    assert not _kernel.profit_ratio(is_short, amount, value, ll if is_short else hh, fee) > roi


def test_quiet_is_decided_close_to_the_roi_rate() -> None:
    # 1e-8 of profit short of a 10% ROI: quiet; at the rate (rounded profit above the ROI): not
    amount, fee, roi = 1.0, 0.001, 0.1
    value = 100.0 * (1.0 + fee)
    rate = value * (1.0 + roi) / (amount * (1.0 - fee))
    assert _kernel._quiet(False, False, False, True, 90.0, rate * (1.0 - 1e-7), 99.0, 0, roi, amount, value, fee)
    assert not _kernel._quiet(False, False, False, True, 90.0, rate * (1.0 + 1e-7), 99.0, 0, roi, amount, value, fee)
    assert not _kernel._quiet(False, False, True, True, 90.0, 101.0, 99.0, 0, roi, amount, value, fee)  # exit signal
    assert not _kernel._quiet(False, False, False, True, 99.5, 101.0, 99.0, 0, roi, amount, value, fee)  # stop hit
    assert _kernel._quiet(False, False, False, True, 90.0, 1e9, 99.0, -1, roi, amount, value, fee)  # no ROI entry
