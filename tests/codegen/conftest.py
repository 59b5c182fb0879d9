"""Shared fixtures of the codegen tests: the example bundles, a bundle builder, seeded candles."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from execdesk.data import PairProfile, generate_market, timeframe_to_seconds
from execdesk.strategy import StrategyBundle, load_bundle, validate_bundle
from tests.conftest import BUNDLES as EXAMPLES
from tests.conftest import EXAMPLE_FILES

BASE: dict[str, Any] = {
    "id": "STR-950",
    "name": "codegen_test",
    "version": 1,
    "timeframe": "1h",
    "pairs": ["BTC/USDT", "ETH/USDT"],
    "indicators": {
        "ema_fast": {"fn": "EMA", "period": 12},
        "ema_slow": {"fn": "EMA", "period": 26},
        "rsi": {"fn": "RSI", "period": 14},
        "macd": {"fn": "MACD"},
        "bb": {"fn": "BBANDS", "period": 20, "stddev": 2.0},
        "st": {"fn": "STOCH"},
        "atr": {"fn": "ATR", "period": 14},
        "adx": {"fn": "ADX"},
        "cci": {"fn": "CCI"},
        "mfi": {"fn": "MFI"},
        "obv": {"fn": "OBV"},
        "sma_hi": {"fn": "SMA", "period": 10, "source": "high"},
    },
    "entry": {"long": "crossed_above(ema_fast, ema_slow) and rsi < 70"},
    "exit": {"long": "crossed_below(ema_fast, ema_slow) or rsi > 80"},
    "stoploss": -0.05,
    "minimal_roi": {"0": 0.10, "120": 0.03},
    "validation": {
        "period": {"start": "2024-01-01", "end": "2024-06-30"},
        "trades": 10,
        "sharpe": 1.0,
        "max_drawdown": 0.1,
        "win_rate": 0.5,
        "profit_factor": 1.2,
        "avg_trade_duration": "5h",
        "slippage_budget_bps": 5,
    },
}


def make_bundle(**overrides: Any) -> StrategyBundle:
    """A valid bundle (every indicator kind declared) with top-level fields replaced."""
    data = copy.deepcopy(BASE)
    data.update(overrides)
    return validate_bundle(data, "<test bundle>")


def market(pairs: tuple[str, ...], timeframe: str, candles: int, seed: int = 5) -> dict[str, pd.DataFrame]:
    """Seeded generated candles: ``candles`` per pair from 2024-01-01 UTC."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = start + timedelta(seconds=candles * timeframe_to_seconds(timeframe))
    profiles = {p: PairProfile(start_price=100.0 * (i + 1), base_volume=50_000.0) for i, p in enumerate(pairs)}
    return generate_market(profiles, timeframe, start, end, seed)


@pytest.fixture(scope="session")
def examples() -> dict[str, StrategyBundle]:
    """The four example bundles, by file name."""
    return {name: load_bundle(EXAMPLES / name) for name in EXAMPLE_FILES}


@pytest.fixture
def bundle_factory() -> Callable[..., StrategyBundle]:
    """:func:`make_bundle` as a fixture."""
    return make_bundle
