"""Tests of the typed conditions of execdesk.risk.assessment: each renders the exact text the assessment's
files (as_dict, YAML) and the lead's risk gate have always shown."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from execdesk.risk.assessment import (
    AllocationCap,
    AssessmentLimits,
    Candidate,
    Condition,
    LiveDeployment,
    PortfolioSnapshot,
    StatedRisk,
    StoplossCap,
    Verdict,
    assess,
)

CORR = pd.DataFrame([[1.0, 0.8], [0.8, 1.0]], index=["BTC", "ETH"], columns=["BTC", "ETH"])


def _series(values: list[float], start: str = "2026-01-01") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="D", tz="UTC"))


@pytest.mark.parametrize(("condition", "text"), [
    (AllocationCap(50.0), "allocation <= 50.00"),
    (AllocationCap(70.12), "allocation <= 70.12"),
    (AllocationCap(1234.5), "allocation <= 1234.50"),
    (StoplossCap(0.035, 0.05), "stoploss tighter than 0.0350 (now 0.05; alternative to the allocation cut for "
                               "worst_case_drawdown)"),
    (StoplossCap(0.0251, 0.0712), "stoploss tighter than 0.0251 (now 0.0712; alternative to the allocation cut "
                                  "for worst_case_drawdown)"),
    (StoplossCap(0.1, 0.125), "stoploss tighter than 0.1000 (now 0.125; alternative to the allocation cut for "
                              "worst_case_drawdown)"),
    (StatedRisk("correlation with A unmeasured (insufficient overlap, 5 common days): review before deploying"),
     "correlation with A unmeasured (insufficient overlap, 5 common days): review before deploying"),
    (StatedRisk("no per-trade returns: the bootstrap worst case is unmeasured (counted as 0); review before "
                "deploying"),
     "no per-trade returns: the bootstrap worst case is unmeasured (counted as 0); review before deploying"),
])
def test_condition_when_rendered_then_the_historical_text(condition: Condition, text: str) -> None:
    assert condition.text == text
    assert str(condition) == text
    assert f"{condition}" == text
    assert type(condition.text) is str


def test_stoploss_cap_when_more_than_4_decimals_then_kept_as_its_text_shows_it() -> None:
    # the value applied is the one the text shows: float(f"{loosest:.4f}")
    cap = StoplossCap(0.035061, 0.05)
    assert cap.loosest == float(f"{0.035061:.4f}") == 0.0351
    assert cap.text.startswith("stoploss tighter than 0.0351 (now 0.05;")
    assert cap == StoplossCap(0.0351, 0.05)


def test_conditions_when_frozen_then_immutable_and_hashable() -> None:
    cap = AllocationCap(50.0)
    with pytest.raises(AttributeError):
        cap.max_allocation = 10.0  # type: ignore[misc]
    assert len({AllocationCap(50.0), cap, StoplossCap(0.035, 0.05), StatedRisk("x"), StatedRisk("x")}) == 3


def test_assessment_files_when_every_kind_of_condition_then_the_texts_in_order() -> None:
    # Arrange: a 5-day overlap (unmeasured correlation), no trades (unmeasured bootstrap), a deployed cap of 0.25
    live = LiveDeployment("A", 200.0, {"BTC": 150.0}, _series([-0.10] + [0.0] * 23))
    candidate = Candidate("C", 100.0, {"ETH": 100.0}, _series([0.01, -0.01] * 12, start="2026-01-20"), (), 0.05)

    # Act
    result = assess(PortfolioSnapshot(1000.0, (live,)), candidate, AssessmentLimits(max_deployed_fraction=0.25),
                    CORR)

    # Assert: typed in the assessment, text in its files
    texts = ["allocation <= 50.00",
             "correlation with A unmeasured (insufficient overlap, 5 common days): review before deploying",
             "no per-trade returns: the bootstrap worst case is unmeasured (counted as 0); review before deploying"]
    assert result.verdict is Verdict.CONDITIONAL
    assert result.conditions == (AllocationCap(50.0), StatedRisk(texts[1]), StatedRisk(texts[2]))
    assert result.as_dict()["conditions"] == texts
    assert json.loads(json.dumps(result.as_dict()))["conditions"] == texts
    assert yaml.safe_load(result.to_yaml())["conditions"] == texts
    assert ("conditions:\n- allocation <= 50.00\n- 'correlation with A unmeasured (insufficient overlap, 5 common "
            "days): review before deploying'\n- 'no per-trade returns: the bootstrap worst case is unmeasured "
            "(counted as 0); review before deploying'\nreasons:\n") in result.to_yaml()


def test_assessment_files_when_stop_driven_then_allocation_and_stoploss_texts() -> None:
    # Arrange: the worked example of test_assessment with a 0.027 worst-case limit
    live = LiveDeployment("A", 200.0, {"BTC": 150.0}, _series([-0.10] + [0.0] * 23))
    candidate = Candidate("C", 100.0, {"ETH": 100.0}, _series([0.0, -0.05] + [0.0] * 22), (-0.05, -0.05), 0.05)

    # Act
    result = assess(PortfolioSnapshot(1000.0, (live,)), candidate, AssessmentLimits(max_worst_case_drawdown=0.027),
                    CORR)

    # Assert
    assert result.conditions == (AllocationCap(70.12), StoplossCap(0.035, 0.05))
    assert result.as_dict()["conditions"] == [
        "allocation <= 70.12",
        "stoploss tighter than 0.0350 (now 0.05; alternative to the allocation cut for worst_case_drawdown)"]
