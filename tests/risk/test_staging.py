"""Staged allocation: worked sequences of period returns and the decisions they give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from execdesk.risk.staging import period_returns, stage_allocation

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def periods(*returns: float) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(days=7 * (i + 1)), r) for i, r in enumerate(returns)]


def test_stage_when_periods_profit_then_10_50_100_percent() -> None:
    decisions = stage_allocation(periods(0.01, 0.02, 0.03))
    assert [d.fraction_after for d in decisions] == [0.5, 1.0, 1.0]
    assert [d.action for d in decisions] == ["promote", "promote", "hold"]


def test_stage_when_two_losing_periods_at_full_then_back_to_half() -> None:
    decisions = stage_allocation(periods(0.01, 0.01, -0.02, -0.01))
    assert [d.fraction_after for d in decisions] == [0.5, 1.0, 1.0, 0.5]
    assert decisions[-1].action == "fall_back"
    assert decisions[-1].losing_streak == 2


def test_stage_when_three_losing_periods_then_removal_proposed() -> None:
    decisions = stage_allocation(periods(0.01, -0.01, -0.01, -0.01))
    assert [d.action for d in decisions] == ["promote", "hold", "hold", "propose_removal"]
    # at 50% already, the second loss has nothing to fall back to
    assert decisions[2].fraction_after == 0.5
    assert "removal proposed" in decisions[3].reason


def test_stage_when_a_profit_breaks_the_streak_then_it_restarts() -> None:
    decisions = stage_allocation(periods(-0.01, -0.01, 0.01, -0.01, -0.01))
    assert [d.losing_streak for d in decisions] == [1, 2, 0, 1, 2]
    assert [d.action for d in decisions][-1] == "hold"  # at 50%: no fall back below it, no removal yet


def test_stage_when_a_flat_period_then_nothing_is_judged_and_the_streak_holds() -> None:
    # a week without a trade (or a mark-to-market change of float noise) is no evidence either way
    decisions = stage_allocation(periods(-0.01, 0.0, 1e-12, -0.01))
    assert [d.losing_streak for d in decisions] == [1, 1, 1, 2]
    assert [d.action for d in decisions[1:3]] == ["hold", "hold"]
    assert decisions[1].fraction_after == 0.10


def test_stage_when_losing_streak_goes_on_then_removal_is_proposed_once() -> None:
    decisions = stage_allocation(periods(-0.01, -0.01, -0.01, -0.01, 0.02))
    assert [d.action for d in decisions] == ["hold", "hold", "propose_removal", "hold", "promote"]
    assert "already proposed" in decisions[3].reason
    assert decisions[4].losing_streak == 0


def test_period_returns_when_daily_equity_then_whole_weeks_only() -> None:
    days = pd.date_range("2024-01-01", periods=16, freq="D", tz="UTC")
    equity = pd.Series([100.0 + i for i in range(16)], index=days)
    result = period_returns(equity, 7)
    # weeks: 100 -> 107, 107 -> 114; the last 1 day is a partial period
    assert [round(r, 10) for _, r in result] == [round(107 / 100 - 1, 10), round(114 / 107 - 1, 10)]
