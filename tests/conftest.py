"""Shared fixtures: example bundles and small desk configs written into a temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.postgres import PostgresServer, postgres_server

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "execdesk" / "examples"
BUNDLES = EXAMPLES / "bundles"
EXAMPLE_FILES = ("trend_ema_cross.yaml", "mean_revert_bbands.yaml", "momentum_macd.yaml", "breakout_4h.yaml")


OPEN_ASSESSMENT = {"max_deployed_fraction": 1.0, "max_worst_case_drawdown": 1.0, "max_correlated_exposure": 10.0}


def small_desk(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A desk config of two example strategies over 45 days of generated hourly candles."""
    config: dict[str, Any] = {
        "desk": {"name": "test", "capital": 50_000, "quote": "USDT", "seed": 3},
        "venue": {"kind": "paper", "fee_bps": 10, "slippage_bps": 5},
        "market": {
            "source": "generated", "timeframe": "1h",
            "start": "2024-03-01T00:00:00Z", "end": "2024-04-15T00:00:00Z",
            "pairs": {"BTC/USDT": {"start_price": 60000, "annual_vol": 0.6, "base_volume": 20000},
                      "ETH/USDT": {"start_price": 3000, "annual_vol": 0.75, "base_volume": 300000}},
        },
        "risk": {"risk_per_trade": 0.02, "max_position_fraction": 0.5},
        "strategies": [
            {"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5},
            {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3},
        ],
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    # the small desk deploys 80% of its capital through the risk gate: its assessment allows that (a test
    # about the gate sets its own ``assessment``)
    config["risk"] = {**config["risk"], "assessment": config["risk"].get("assessment", OPEN_ASSESSMENT)}
    return config


@pytest.fixture(scope="session", autouse=True)
def review_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The signal generator's review cache for this test session only: every strategy source the tests deploy is
    reviewed for real once (with Freqtrade's loader), then taken from the cache like on a user's machine."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers of one run share it (entries are written atomically)
        shared = tmp_path_factory.getbasetemp().parent / "review-cache"
        shared.mkdir(exist_ok=True)
        os.environ["EXECDESK_CACHE_DIR"] = str(shared)
    else:
        os.environ["EXECDESK_CACHE_DIR"] = str(tmp_path_factory.mktemp("review-cache"))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a desk config (``small_desk`` with overrides like ``market__end="..."``) and return its path."""
    counter = {"n": 0}

    def write(**overrides: Any) -> Path:
        counter["n"] += 1
        path = tmp_path / f"desk-{counter['n']}.yaml"
        path.write_text(yaml.safe_dump(small_desk(tmp_path, **overrides)))
        return path

    return write



@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 for this test process (:mod:`tests.postgres`)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server: its URL (``postgresql://``, psycopg 3)."""
    return postgres.database()

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (the crash drills, then the other slow ones), so that with several workers
    (``scripts/test.sh`` runs two) they overlap with the quick ones instead of finishing alone."""
    def weight(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("crash") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=weight)
