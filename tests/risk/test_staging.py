"""Staged allocation: worked sequences of period returns and the decisions they give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from execdesk.risk.config import StagingConfig
from execdesk.risk.staging import StagedDeployment, due_decision, period_returns, stage_allocation

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


# ---------------------------------------------------------------- due_decision
WEEK = 7 * 86_400
SINCE = int(T0.timestamp())


def staged(step: int = 0, streak: int = 0, since: int | None = SINCE, anchor: float = 1000.0,
           halted: bool = False) -> StagedDeployment:
    return StagedDeployment("d1", step, streak, since, anchor, halted)


def test_due_decision_when_period_not_over_then_none() -> None:
    # Arrange: one second before the 7-day period ends
    dep = staged()

    # Act
    payload = due_decision(dep, {"d1": 1100.0}, SINCE + WEEK - 1, StagingConfig())

    # Assert
    assert payload is None


def test_due_decision_when_deployment_halted_then_none() -> None:
    # Act
    payload = due_decision(staged(halted=True), {"d1": 1100.0}, SINCE + WEEK, StagingConfig())

    # Assert
    assert payload is None


def test_due_decision_when_staging_disabled_then_none() -> None:
    # Act
    payload = due_decision(staged(), {"d1": 1100.0}, SINCE + WEEK, StagingConfig(enabled=False))

    # Assert
    assert payload is None


def test_due_decision_when_equity_missing_from_the_snapshot_then_none() -> None:
    # Act
    payload = due_decision(staged(), {"other": 1100.0}, SINCE + WEEK, StagingConfig())

    # Assert
    assert payload is None


def test_due_decision_when_no_period_started_then_none() -> None:
    # Act: staging never started for it (since None)
    payload = due_decision(staged(since=None), {"d1": 1100.0}, SINCE + WEEK, StagingConfig())

    # Assert
    assert payload is None


def test_due_decision_when_a_profitable_period_ended_then_promote_with_its_numbers() -> None:
    # Arrange: anchor 1000, equity 1100 at the snapshot, a day after the period's end
    t = SINCE + WEEK + 86_400

    # Act
    payload = due_decision(staged(), {"d1": 1100.0}, t, StagingConfig())

    # Assert: 1100 / 1000 - 1 = +10%; from the first step (10%) up to 50%; the next period starts at t
    assert payload is not None
    assert payload["action"] == "promote"
    assert payload["period_return"] == round(1100 / 1000 - 1, 8)
    assert (payload["fraction_before"], payload["fraction_after"], payload["step"]) == (0.10, 0.50, 1)
    assert payload["losing_streak"] == 0
    assert (payload["period_from"], payload["period_to"], payload["next_period_from"]) == (SINCE, t, t)
    assert (payload["equity"], payload["anchor_equity"]) == (1100.0, 1000.0)
    assert payload["deployment_id"] == "d1"
    assert payload["by"] == "risk"
    assert payload["period_end"] == datetime.fromtimestamp(t, UTC).isoformat()


def test_due_decision_when_period_ends_exactly_now_then_it_is_due() -> None:
    # Act: t == since + period_days
    payload = due_decision(staged(), {"d1": 1010.0}, SINCE + WEEK, StagingConfig())

    # Assert
    assert payload is not None
    assert payload["action"] == "promote"


def test_due_decision_when_second_losing_period_at_full_then_fall_back_with_the_streak() -> None:
    # Arrange: at 100% (step 2) with one losing period behind it; anchor 2000 -> 1900: -5%
    dep = staged(step=2, streak=1, anchor=2000.0)

    # Act
    payload = due_decision(dep, {"d1": 1900.0}, SINCE + WEEK, StagingConfig())

    # Assert
    assert payload is not None
    assert payload["action"] == "fall_back"
    assert payload["period_return"] == round(1900 / 2000 - 1, 8)
    assert (payload["losing_streak"], payload["step"], payload["fraction_after"]) == (2, 1, 0.5)


def test_due_decision_when_period_days_configured_then_due_after_that_many_days() -> None:
    # Arrange
    config = StagingConfig(period_days=3)

    # Act
    before = due_decision(staged(), {"d1": 1100.0}, SINCE + 3 * 86_400 - 1, config)
    at = due_decision(staged(), {"d1": 1100.0}, SINCE + 3 * 86_400, config)

    # Assert
    assert before is None
    assert at is not None


def test_due_decision_when_anchor_equity_is_zero_then_a_flat_period_holds() -> None:
    # Act: no anchor to measure against: a return of 0, nothing judged
    payload = due_decision(staged(anchor=0.0), {"d1": 500.0}, SINCE + WEEK, StagingConfig())

    # Assert
    assert payload is not None
    assert (payload["action"], payload["period_return"], payload["step"]) == ("hold", 0.0, 0)
