"""Tests of execdesk.risk.config: documented defaults, the drawdown ladder's rules, and errors that name the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from execdesk.desk.settings import load_desk_config
from execdesk.errors import SpecError
from execdesk.risk.config import LADDER_STEPS, DrawdownLadder, RiskConfig, StagingConfig


def test_risk_config_when_defaults_then_documented_values() -> None:
    cfg = RiskConfig()
    assert (cfg.risk_per_trade, cfg.max_position_fraction, cfg.max_gross_exposure) == (0.01, 0.25, 1.0)
    assert cfg.max_order_notional is None
    assert (cfg.max_correlated_exposure, cfg.throttle_count, cfg.throttle_window_s, cfg.price_band) == (
        0.30, 10, 60.0, 0.05)
    for ladder in (cfg.portfolio_drawdown, cfg.deployment_drawdown):
        assert [(n, level) for _s, n, level in ladder.levels()] == [
            ("alert", 0.10), ("reduce", 0.15), ("trim", 0.20), ("kill", 0.25)]
        assert (ladder.alert_size_multiplier, ladder.reduce_stop_multiplier, ladder.trim_fraction) == (0.5, 0.5, 0.5)
    assert cfg.staging == StagingConfig(enabled=True, steps=(0.10, 0.50, 1.00), period_days=7, fall_back_after=2,
                                        fall_back_to=0.50, remove_after=3)


@pytest.mark.parametrize("kwargs", [{"risk_per_trade": 0}, {"risk_per_trade": 0.5}, {"max_position_fraction": 1.5},
                                    {"unknown_key": 1}, {"max_open_positions": 0}, {"price_band": 0},
                                    {"throttle_count": 0}])
def test_risk_config_when_field_out_of_bounds_or_unknown_then_validation_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match=next(iter(kwargs))):
        RiskConfig(**kwargs)


def test_risk_config_when_built_then_frozen() -> None:
    cfg = RiskConfig()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.risk_per_trade = 0.02


def test_risk_config_when_pair_in_two_correlation_groups_then_error_names_both() -> None:
    with pytest.raises(ValidationError, match=r"SOL/USDT is in both 'alts' and 'l1s'"):
        RiskConfig(correlation_groups={"alts": ["SOL/USDT"], "l1s": ["ETH/USDT", "SOL/USDT"]})


# ---------------------------------------------------------------- the ladder
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"alert": 0.20}, r"alert \(0\.2\) must be below reduce \(0\.15\)"),
    ({"trim": 0.25}, r"trim \(0\.25\) must be below kill \(0\.25\)"),
    ({"reduce": None, "alert": 0.22}, r"alert \(0\.22\) must be below trim \(0\.2\)"),  # null steps skipped
])
def test_ladder_when_levels_do_not_increase_then_error_names_both_steps(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DrawdownLadder(**kwargs)


def test_ladder_when_a_step_is_null_then_it_is_skipped_and_the_rest_keep_their_numbers() -> None:
    ladder = DrawdownLadder(alert=None, trim=None)
    assert ladder.levels() == [(2, "reduce", 0.15), (4, "kill", 0.25)]
    # worked: 12% reaches nothing, 15% reduce (step 2), 30% kill (step 4)
    assert [ladder.step_at(dd) for dd in (0.12, 0.15, 0.24, 0.30)] == [0, 2, 2, 4]


def test_ladder_when_steps_reached_then_sizes_and_stops_follow() -> None:
    ladder = DrawdownLadder()
    assert [ladder.size_multiplier(s) for s in range(5)] == [1.0, 0.5, 0.5, 0.5, 0.5]
    assert [ladder.stop_multiplier(s) for s in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.5]


levels = st.lists(st.floats(0.01, 0.95), min_size=4, max_size=4, unique=True).map(sorted)


@given(levels, st.lists(st.booleans(), min_size=4, max_size=4), st.floats(0, 1), st.floats(0, 1))
def test_ladder_when_drawdown_deepens_then_it_only_tightens(values: list[float], keep: list[bool], dd1: float,
                                                            dd2: float) -> None:
    """Deeper drawdown -> a step at least as far up, sizes no larger, stops no looser, state no laxer."""
    ladder = DrawdownLadder(**{name: (v if k else None) for name, v, k in zip(LADDER_STEPS, values, keep,
                                                                               strict=True)})
    lo, hi = sorted((dd1, dd2))
    s_lo, s_hi = ladder.step_at(lo), ladder.step_at(hi)
    assert s_lo <= s_hi
    assert ladder.size_multiplier(s_hi) <= ladder.size_multiplier(s_lo)
    assert ladder.stop_multiplier(s_hi) <= ladder.stop_multiplier(s_lo)
    # every step reached is a step that is set, and its level is at or below the drawdown
    assert all(level <= hi for step, _n, level in ladder.levels() if step <= s_hi)


# ---------------------------------------------------------------- from the desk config: errors name the key
@pytest.mark.parametrize(("risk", "key"), [
    ({"portfolio_drawdown": {"reduce": 0.05}}, "risk.portfolio_drawdown"),
    ({"deployment_drawdown": {"kill": 1.5}}, "risk.deployment_drawdown.kill"),
    ({"portfolio_drawdown": {"halve": 0.1}}, "risk.portfolio_drawdown.halve"),
    ({"staging": {"steps": [0.5, 0.1]}}, "risk.staging"),
    ({"staging": {"fall_back_to": 0.3}}, "risk.staging"),
    ({"staging": {"period_days": 0}}, "risk.staging.period_days"),
    ({"staging": {"fall_back_after": 4}}, "risk.staging"),
    ({"max_correlated_exposure": -1}, "risk.max_correlated_exposure"),
])
def test_desk_config_when_risk_value_bad_then_spec_error_names_the_key(write_config: Callable[..., Path],
                                                                      risk: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as info:
        load_desk_config(write_config(risk=risk))
    assert key in str(info.value)


def test_desk_config_when_strategy_sets_its_own_ladder_then_loaded_and_bad_one_named(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    path = write_config()
    config = load_desk_config(path)
    entries = [e.model_dump(mode="json") for e in config.strategies]
    entries[0]["drawdown"] = {"alert": 0.05, "reduce": 0.08, "trim": None, "kill": 0.12}
    assert load_desk_config(write_config(strategies=entries)).strategies[0].drawdown == DrawdownLadder(
        alert=0.05, reduce=0.08, trim=None, kill=0.12)
    entries[0]["drawdown"] = {"reduce": 0.3}
    with pytest.raises(SpecError, match=r"strategies\.0\.drawdown"):
        load_desk_config(write_config(strategies=entries))
