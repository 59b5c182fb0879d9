"""Staged allocation: worked sequences of period returns and the decisions they give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from execdesk.errors import InvalidInput
from execdesk.risk.staging import StagingConfig, period_returns, stage_allocation

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


def test_stage_when_a_flat_period_then_it_counts_as_losing() -> None:
    assert stage_allocation(periods(0.0))[0].losing_streak == 1


def test_period_returns_when_daily_equity_then_whole_weeks_only() -> None:
    days = pd.date_range("2024-01-01", periods=16, freq="D", tz="UTC")
    equity = pd.Series([100.0 + i for i in range(16)], index=days)
    result = period_returns(equity, 7)
    # weeks: 100 -> 107, 107 -> 114; the last 1 day is a partial period
    assert [round(r, 10) for _, r in result] == [round(107 / 100 - 1, 10), round(114 / 107 - 1, 10)]


@pytest.mark.parametrize(("kwargs", "key"), [({"steps": (0.5, 0.1)}, "staging.steps"),
                                             ({"fall_back_to": 0.3}, "staging.fall_back_to"),
                                             ({"period_days": 0}, "staging.period_days"),
                                             ({"fall_back_after": 4}, "staging.fall_back_after")])
def test_config_when_bad_then_invalid_input_naming_the_key(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(InvalidInput, match=key):
        StagingConfig(**kwargs)  # type: ignore[arg-type]
