"""Anomaly detectors: worked examples."""

from __future__ import annotations

import numpy as np
import pytest

from execdesk.monitor.anomalies import (
    current_losing_streak,
    is_stale,
    losing_streak_limit,
    spread_widening,
    volume_spikes,
)


def test_volume_spikes_when_one_bar_trades_ten_times_the_usual_then_only_it_exceeds_3_sigma() -> None:
    # Arrange: log volume alternates 1000 / 1100 (a small, steady spread), then one bar of 10,000
    volume = np.array([1000.0, 1100.0] * 30 + [10_000.0, 1000.0, 1100.0])

    # Act
    z = volume_spikes(volume, window=48, min_periods=24)

    # Assert: nothing before 24 bars of history; the spike's z is huge; the next bars, measured against
    # a window that now holds the spike, are not spikes
    assert np.isnan(z[:24]).all()
    assert z[60] > 3
    assert (z[24:60] <= 3).all()
    assert (z[61:] <= 3).all()


def test_volume_spikes_when_volume_is_zero_then_nan_not_an_error() -> None:
    z = volume_spikes(np.array([0.0] * 30 + [5.0]), min_periods=5)
    assert np.isnan(z).all()


def test_spread_widening_when_spread_jumps_then_flagged() -> None:
    spreads = np.array([2.0, 2.2, 1.8, 2.1, 1.9] * 10 + [9.0])
    assert spread_widening(spreads, window=50, min_periods=20)[-1] > 3


@pytest.mark.parametrize(("win_rate", "n", "expected"), [
    (0.55, 100, 12),  # 100 x 0.45^k <= 0.01: k >= ln(1e-4)/ln(0.45) = 11.53 -> 12
    (0.5, 50, 13),    # 50 x 0.5^k <= 0.01: k >= log2(5000) = 12.29 -> 13
    (0.9, 200, 5),    # 200 x 0.1^k <= 0.01: k >= 4.30 -> 5
    (1.0, 100, 0),    # never lost in its backtest: any loss is news
])
def test_losing_streak_limit_when_worked_examples_then_hand_values(win_rate: float, n: int, expected: int) -> None:
    assert losing_streak_limit(win_rate, n) == expected


def test_current_losing_streak_when_last_trades_lose_then_counted_until_a_win_or_draw() -> None:
    assert current_losing_streak(np.array([0.01, -0.02, -0.01, -0.03])) == 3
    assert current_losing_streak(np.array([-0.01, 0.0, -0.02])) == 1
    assert current_losing_streak(np.array([])) == 0


def test_is_stale_when_next_bar_overdue_beyond_grace_then_true() -> None:
    h = 3600
    last = 10 * h  # the 10:00 bar; the 11:00 bar closes at 12:00
    assert not is_stale(last, 12 * h + 60, h)
    assert is_stale(last, 12 * h + 61, h)


def test_spread_widening_when_a_spread_is_not_positive_then_nan_and_left_out_of_the_windows() -> None:
    # Arrange: a zero spread (a locked book) among steady ones, then a spread four times the usual
    spreads = np.array([2.0, 2.2, 1.8, 2.1, 1.9] * 10 + [0.0, 8.0])

    # Act
    z = spread_widening(spreads, window=60, min_periods=20)

    # Assert: the zero is NaN (log scale), and does not dilute the window the widening is measured against
    assert np.isnan(z[-2])
    assert z[-1] > 3
