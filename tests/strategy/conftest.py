"""Shared fixtures of the strategy tests: seeded candles, the example bundles, a valid bundle dict."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import BUNDLES as EXAMPLES  # noqa: F401 - re-exported to the strategy tests
from tests.conftest import EXAMPLE_FILES  # noqa: F401 - re-exported to the strategy tests

VALID: dict[str, Any] = {
    "id": "STR-900",
    "name": "test_strategy",
    "version": 1,
    "timeframe": "1h",
    "pairs": ["BTC/USDT", "ETH/USDT"],
    "indicators": {
        "ema_fast": {"fn": "EMA", "period": 12},
        "ema_slow": {"fn": "EMA", "period": 26},
        "rsi": {"fn": "RSI", "period": 14},
    },
    "entry": {"long": "crossed_above(ema_fast, ema_slow) and rsi < 70"},
    "exit": {"long": "crossed_below(ema_fast, ema_slow) or rsi > 80"},
    "stoploss": -0.05,
    "minimal_roi": {"0": 0.10, "120": 0.03},
    "validation": {
        "period": {"start": "2024-01-01", "end": "2024-06-30"},
        "trades": 87,
        "sharpe": 1.4,
        "max_drawdown": 0.12,
        "win_rate": 0.54,
        "profit_factor": 1.6,
        "avg_trade_duration": "7h",
        "slippage_budget_bps": 5,
    },
}


def make_ohlcv(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    """A seeded geometric random walk with consistent OHLC and positive volume."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.005, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.005, n))
    volume = rng.uniform(10.0, 1000.0, n)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


@pytest.fixture
def ohlcv() -> dict[str, np.ndarray]:
    """2,000 seeded candles."""
    return make_ohlcv(2000)


@pytest.fixture
def valid() -> dict[str, Any]:
    """A fresh deep copy of a valid bundle mapping, free to mutate."""
    return copy.deepcopy(VALID)


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[..., Path]:
    """Write a mapping (or raw text) as ``tmp_path/<name>`` and return the path."""

    def write(data: Any, name: str = "bundle.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
