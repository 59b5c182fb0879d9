"""The drawdown ladders as pure functions (execdesk.risk.ladder): hand-worked examples on plain values.

The default ladder (execdesk.risk.config.DrawdownLadder) is alert 0.10 / reduce 0.15 / trim 0.20 / kill 0.25,
sizes x 0.5 from alert on, stops x 0.5 from reduce on, trim closes 50%.
"""

from __future__ import annotations

from execdesk.domain.marks import PORTFOLIO, Breach, Limit, step_name
from execdesk.domain.types import TradingState
from execdesk.risk.config import DrawdownLadder
from execdesk.risk.ladder import (
    CIRCUIT_BREAKER,
    KILL,
    STEP,
    LadderStep,
    ScopeSteps,
    armed_limits,
    crossed,
    deepest,
    size_multiplier,
    step_action,
    step_payload,
    stop_multiplier,
)

DEFAULT = DrawdownLadder()
ACTIVE = TradingState.ACTIVE
REDUCING = TradingState.REDUCING
HALTED = TradingState.HALTED


def breach(scope: str, level: str, drawdown: float = 0.3) -> Breach:
    return Breach(scope, level, DEFAULT.model_dump()[level], drawdown, 1000 * (1 - drawdown), 1000.0)


def desk(state: TradingState = ACTIVE, reason: str = "deployed", step: int = 0) -> ScopeSteps:
    return ScopeSteps(PORTFOLIO, state, reason, step)


# ---------------------------------------------------------------- step numbers and names
def test_step_numbers_when_default_steps_then_alert_1_to_kill_4() -> None:
    # Arrange / Act / Assert: the kill step is the ladder's last
    assert STEP == {"alert": 1, "reduce": 2, "trim": 3, "kill": 4}
    assert KILL == 4


def test_step_name_when_no_step_reached_then_none() -> None:
    # Act
    name = step_name(0)

    # Assert
    assert name is None


def test_step_name_when_steps_1_to_4_then_their_names_in_order() -> None:
    # Act
    names = [step_name(i) for i in range(1, 5)]

    # Assert
    assert names == ["alert", "reduce", "trim", "kill"]


# ---------------------------------------------------------------- crossed
def test_crossed_when_from_no_step_to_trim_then_alert_reduce_trim_in_order() -> None:
    # Act
    steps = crossed(DEFAULT, 0, "trim")

    # Assert
    assert steps == [LadderStep(1, "alert", 0.10), LadderStep(2, "reduce", 0.15), LadderStep(3, "trim", 0.20)]


def test_crossed_when_already_at_reduce_and_breach_at_kill_then_only_trim_and_kill() -> None:
    # Act
    steps = crossed(DEFAULT, 2, "kill")

    # Assert
    assert steps == [LadderStep(3, "trim", 0.20), LadderStep(4, "kill", 0.25)]


def test_crossed_when_breach_at_or_below_the_current_step_then_nothing() -> None:
    # Act
    same = crossed(DEFAULT, 3, "trim")
    below = crossed(DEFAULT, 3, "alert")

    # Assert: a step fires once and holds
    assert same == []
    assert below == []


def test_crossed_when_a_step_is_unset_then_it_is_skipped() -> None:
    # Arrange: no reduce step
    ladder = DrawdownLadder(reduce=None)

    # Act
    steps = crossed(ladder, 0, "trim")

    # Assert
    assert [(s.step, s.name) for s in steps] == [(1, "alert"), (3, "trim")]


def test_crossed_when_custom_levels_then_each_step_carries_its_own_level() -> None:
    # Arrange
    ladder = DrawdownLadder(alert=0.02, reduce=0.04, trim=0.06, kill=0.08)

    # Act
    steps = crossed(ladder, 0, "kill")

    # Assert
    assert [s.level for s in steps] == [0.02, 0.04, 0.06, 0.08]


# ---------------------------------------------------------------- deepest
def test_deepest_when_several_breaches_per_scope_then_the_deepest_step_of_each() -> None:
    # Arrange
    breaches = [breach(PORTFOLIO, "alert"), breach("d1", "reduce"), breach(PORTFOLIO, "trim"), breach("d1", "alert"),
                breach("d2", "kill"), breach(PORTFOLIO, "reduce")]

    # Act
    out = deepest(breaches)

    # Assert
    assert {scope: b.level for scope, b in out.items()} == {PORTFOLIO: "trim", "d1": "reduce", "d2": "kill"}


def test_deepest_when_two_breaches_of_equal_step_then_the_first_is_kept() -> None:
    # Arrange: same scope and level, different drawdowns
    first, second = breach("d1", "trim", 0.21), breach("d1", "trim", 0.22)

    # Act
    out = deepest([first, second])

    # Assert
    assert out["d1"] is first


def test_deepest_when_no_breaches_then_empty() -> None:
    # Act / Assert
    assert deepest([]) == {}


# ---------------------------------------------------------------- armed_limits
def test_armed_limits_when_desk_halted_then_none() -> None:
    # Arrange
    deps = [ScopeSteps("d1", ACTIVE, "deployed", 0)]

    # Act
    limits = armed_limits(DEFAULT, desk(HALTED, "drawdown_reduce"), deps, lambda _d: DEFAULT)

    # Assert
    assert limits == []


def test_armed_limits_when_circuit_breaker_tripped_then_none_even_before_halted() -> None:
    # Arrange: REDUCING by the circuit breaker (closing everything)
    deps = [ScopeSteps("d1", ACTIVE, "deployed", 0)]

    # Act
    limits = armed_limits(DEFAULT, desk(REDUCING, CIRCUIT_BREAKER, 4), deps, lambda _d: DEFAULT)

    # Assert
    assert limits == []


def test_armed_limits_when_nothing_reached_then_every_step_of_every_scope() -> None:
    # Arrange
    deps = [ScopeSteps("d1", ACTIVE, "deployed", 0)]

    # Act
    limits = armed_limits(DEFAULT, desk(), deps, lambda _d: DEFAULT)

    # Assert
    assert limits == [Limit(PORTFOLIO, "alert", 0.10), Limit(PORTFOLIO, "reduce", 0.15), Limit(PORTFOLIO, "trim", 0.20),
                      Limit(PORTFOLIO, "kill", 0.25), Limit("d1", "alert", 0.10), Limit("d1", "reduce", 0.15),
                      Limit("d1", "trim", 0.20), Limit("d1", "kill", 0.25)]


def test_armed_limits_when_steps_reached_then_only_the_steps_above_them() -> None:
    # Arrange: the desk at reduce (REDUCING by its ladder), d1 at trim
    deps = [ScopeSteps("d1", ACTIVE, "deployed", 3)]

    # Act
    limits = armed_limits(DEFAULT, desk(REDUCING, "drawdown_reduce", 2), deps, lambda _d: DEFAULT)

    # Assert
    assert limits == [Limit(PORTFOLIO, "trim", 0.20), Limit(PORTFOLIO, "kill", 0.25), Limit("d1", "kill", 0.25)]


def test_armed_limits_when_deployments_halted_killed_or_removed_then_they_have_none() -> None:
    # Arrange
    deps = [ScopeSteps("halted", HALTED, "reconciliation", 0),
            ScopeSteps("killed", REDUCING, "drawdown_kill", 4),
            ScopeSteps("removed", REDUCING, "drift_remove", 0),
            ScopeSteps("paused", REDUCING, "drift_pause", 3),
            ScopeSteps("reducing", REDUCING, "drawdown_reduce", 2)]

    # Act
    limits = armed_limits(DEFAULT, desk(step=4), deps, lambda _d: DEFAULT)

    # Assert: a paused or reducing deployment's ladder still climbs; the desk at kill has nothing left
    assert limits == [Limit("paused", "kill", 0.25), Limit("reducing", "trim", 0.20), Limit("reducing", "kill", 0.25)]


def test_armed_limits_when_a_deployment_has_its_own_ladder_then_its_levels_are_used() -> None:
    # Arrange: d1 trades with a ladder of its own, without a reduce step
    own = DrawdownLadder(alert=0.05, reduce=None, trim=0.12, kill=0.18)
    ladders = {"d1": own}
    deps = [ScopeSteps("d1", ACTIVE, "deployed", 1), ScopeSteps("d2", ACTIVE, "deployed", 3)]

    # Act
    limits = armed_limits(DEFAULT, desk(step=4), deps, lambda d: ladders.get(d, DEFAULT))

    # Assert
    assert limits == [Limit("d1", "trim", 0.12), Limit("d1", "kill", 0.18), Limit("d2", "kill", 0.25)]


# ---------------------------------------------------------------- multipliers
def test_size_multiplier_when_no_step_reached_then_full_size() -> None:
    # Act / Assert
    assert size_multiplier(DEFAULT, 0, DEFAULT, 0) == 1.0


def test_size_multiplier_when_either_ladder_at_alert_then_halved() -> None:
    # Act
    by_portfolio = size_multiplier(DEFAULT, 1, DEFAULT, 0)
    by_deployment = size_multiplier(DEFAULT, 0, DEFAULT, 3)

    # Assert
    assert (by_portfolio, by_deployment) == (0.5, 0.5)


def test_size_multiplier_when_both_ladders_at_alert_then_the_stricter_not_the_product() -> None:
    # Arrange: the deployment's own ladder sizes at 0.25 from its alert on
    own = DrawdownLadder(alert_size_multiplier=0.25)

    # Act
    both = size_multiplier(DEFAULT, 1, own, 1)
    own_only = size_multiplier(DEFAULT, 0, own, 1)
    portfolio_only = size_multiplier(DEFAULT, 2, own, 0)

    # Assert: min(0.5, 0.25), never 0.5 * 0.25
    assert (both, own_only, portfolio_only) == (0.25, 0.25, 0.5)


def test_stop_multiplier_when_below_reduce_then_stops_unchanged() -> None:
    # Act / Assert: alert cuts sizes, not stops
    assert stop_multiplier(DEFAULT, 1, DEFAULT, 1) == 1.0


def test_stop_multiplier_when_a_ladder_at_reduce_or_beyond_then_the_stricter_tightening() -> None:
    # Arrange
    own = DrawdownLadder(reduce_stop_multiplier=0.3)

    # Act
    portfolio_at_reduce = stop_multiplier(DEFAULT, 2, own, 0)
    deployment_at_trim = stop_multiplier(DEFAULT, 0, own, 3)
    both = stop_multiplier(DEFAULT, 4, own, 2)

    # Assert
    assert (portfolio_at_reduce, deployment_at_trim, both) == (0.5, 0.3, 0.3)


# ---------------------------------------------------------------- step_action
def test_step_action_when_alert_then_the_size_multiplier_in_words() -> None:
    # Act / Assert
    assert step_action(DEFAULT, "alert", portfolio=True) == "new positions sized x 0.5"


def test_step_action_when_reduce_then_reducing_and_the_stop_multiplier() -> None:
    # Arrange
    ladder = DrawdownLadder(reduce_stop_multiplier=0.4)

    # Act / Assert
    assert step_action(ladder, "reduce", portfolio=False) == "REDUCING: no new positions; stops tightened to x 0.4"


def test_step_action_when_trim_then_the_fraction_for_every_or_each_of_its_positions() -> None:
    # Arrange
    ladder = DrawdownLadder(trim_fraction=0.25)

    # Act
    portfolio = step_action(ladder, "trim", portfolio=True)
    deployment = step_action(ladder, "trim", portfolio=False)

    # Assert
    assert portfolio == "close 25% of every position"
    assert deployment == "close 25% of each of its positions"


def test_step_action_when_kill_then_close_everything_until_rearmed() -> None:
    # Act / Assert: the same words for either scope
    expected = "close everything; HALTED once flat, until re-armed by hand"
    assert step_action(DEFAULT, "kill", portfolio=True) == expected
    assert step_action(DEFAULT, "kill", portfolio=False) == expected


# ---------------------------------------------------------------- step_payload
def test_step_payload_when_portfolio_then_scope_portfolio_and_every_key() -> None:
    # Arrange
    step = LadderStep(2, "reduce", 0.15)
    evidence = {"drawdown": 0.16, "equity": 840.0}

    # Act
    payload = step_payload(None, step, evidence, "the action")

    # Assert
    assert payload == {"scope": PORTFOLIO, "step": 2, "level": "reduce",
                       "evidence": {"drawdown": 0.16, "equity": 840.0}, "action": "the action", "by": "risk"}


def test_step_payload_when_deployment_then_its_id_as_scope() -> None:
    # Act
    payload = step_payload("d1", LadderStep(4, "kill", 0.25), {}, "x")

    # Assert
    assert (payload["scope"], payload["step"], payload["level"], payload["by"]) == ("d1", 4, "kill", "risk")


def test_step_payload_when_evidence_changes_later_then_the_payload_keeps_its_copy() -> None:
    # Arrange
    evidence: dict[str, object] = {"drawdown": 0.11}
    payload = step_payload(None, LadderStep(1, "alert", 0.10), evidence, "x")

    # Act
    evidence["drawdown"] = 0.99

    # Assert
    assert payload["evidence"] == {"drawdown": 0.11}
