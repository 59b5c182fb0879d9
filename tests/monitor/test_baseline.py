"""The strategy drawdown measured alike on both sides: the live path kept trade by trade, the backtest's bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from execdesk.monitor.baseline import TradePath, bootstrap_drawdown, trade_path_drawdown


def test_trade_path_drawdown_worked_example() -> None:
    # +10%, -20%, +5%: path 1.10, 0.88, 0.924; peak 1.10; drawdown 1 - 0.88 / 1.10
    assert trade_path_drawdown([0.10, -0.20, 0.05]) == pytest.approx(0.2)


@pytest.mark.parametrize("seed", range(20))
def test_trade_path_when_kept_trade_by_trade_then_the_same_figure_to_the_bit_as_the_whole_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.001, 0.03, int(rng.integers(1, 400))).tolist()
    path = TradePath()
    for i, r in enumerate(returns):
        path.add(r)
        assert path.drawdown == trade_path_drawdown(returns[: i + 1])  # exact, not approximate
        assert path.n == i + 1


def test_trade_path_when_only_winners_then_no_drawdown() -> None:
    path = TradePath()
    for r in (0.01, 0.02, 0.0, 0.03):
        path.add(r)
    assert path.drawdown == 0.0 == trade_path_drawdown([0.01, 0.02, 0.0, 0.03])


def test_bootstrap_drawdown_when_asked_again_for_a_size_on_the_same_grid_step_then_the_cached_figure() -> None:
    sample = np.random.default_rng(1).normal(0.002, 0.02, 200).tolist()
    cache: dict[int, float] = {}
    first = bootstrap_drawdown(sample, 57, cache)
    assert bootstrap_drawdown(sample, 57, {}) == first  # seeded: the same figure without the cache
    assert len(cache) == 1
    assert bootstrap_drawdown(sample, 55, cache) == first  # 55 and 57 round up to one grid size
    assert len(cache) == 1
    bootstrap_drawdown(sample, 200, cache)  # a longer record: its own grid size
    assert len(cache) == 2
