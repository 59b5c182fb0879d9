"""The monitor inside the loop, on whole replays: healthy deployments across seeds (the strategy's
validation report is what its backtest gave; the live market comes from the same generator) and the
false-alarm rate; see tests/e2e/test_demo.py for a degrading
deployment flagged within a bounded number of trades."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from execdesk.backtest.engine import BacktestConfig, run_backtest
from execdesk.backtest.metrics import compute_metrics
from execdesk.codegen.pipeline import _PROFILES, market_for_bundle
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES, small_desk

SEEDS = range(1, 9)


def _honest_bundle(name: str, folder: Path) -> Path:
    """An example strategy whose validation report is what its backtest over the validation period really
    gave (the native backtester, on the generated candles the desk also draws its baseline from)."""
    bundle = load_bundle(BUNDLES / name)
    frames, _ = market_for_bundle(bundle)
    wallet = 10_000.0
    result = run_backtest(bundle, frames, BacktestConfig(stake_amount=wallet / len(bundle.pairs),
                                                         max_open_trades=len(bundle.pairs), dry_run_wallet=wallet,
                                                         tradable_balance_ratio=1.0))
    start = min(f["date"].iloc[0] for f in frames.values()).to_pydatetime()
    end = max(f["date"].iloc[-1] for f in frames.values()).to_pydatetime()
    m = compute_metrics(result.trades, wallet, start, end)
    spec: dict[str, Any] = bundle.to_canonical_dict()
    validation = spec["validation"]
    validation.pop("returns", None)  # the desk takes the sample from the same backtest
    validation.update(trades=m.trades, sharpe=float(m.sharpe), max_drawdown=float(min(max(m.max_drawdown, 0), 1)),
                      win_rate=float(m.win_rate), profit_factor=float(m.profit_factor),
                      avg_trade_duration=max(int(m.avg_trade_duration.total_seconds() // 60), 1))
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.slow
def test_watch_when_deployments_are_healthy_across_seeds_then_no_critical_drift_alarm(tmp_path: Path) -> None:
    bundles = [_honest_bundle(n, tmp_path) for n in ("trend_ema_cross.yaml", "breakout_4h.yaml")]
    pairs = {"BTC/USDT": {"start_price": _PROFILES["BTC"][0], "base_volume": _PROFILES["BTC"][1]},
             "ETH/USDT": {"start_price": _PROFILES["ETH"][0], "base_volume": _PROFILES["ETH"][1]}}
    levels: Counter[str] = Counter()
    flagged: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    runs = 0
    for seed in SEEDS:
        config = small_desk(tmp_path, desk={"name": "healthy", "capital": 50_000, "quote": "USDT", "seed": seed},
                            market={"source": "generated", "timeframe": "1h", "start": "2024-01-01T00:00:00Z",
                                    "end": "2024-07-01T00:00:00Z", "pairs": pairs},
                            risk={"risk_per_trade": 0.02, "max_position_fraction": 0.5, "staging": {"enabled": False},
                                  "portfolio_drawdown": {"alert": None, "reduce": None, "trim": None, "kill": None},
                                  "deployment_drawdown": {"alert": None, "reduce": None, "trim": None, "kill": None}},
                            strategies=[{"bundle": str(bundles[0]), "allocation": 0.5},
                                        {"bundle": str(bundles[1]), "allocation": 0.3}])
        path = tmp_path / f"desk-{seed}.yaml"
        path.write_text(yaml.safe_dump(config))
        home = tmp_path / f"home-{seed}"
        run_desk(load_desk_config(path), home)
        with Ledger.for_home(home) as ledger:
            for e in ledger.events({EventKind.ALERT_RAISED}):
                if e.payload["code"].startswith("drift_"):
                    levels[e.payload["level"]] += 1
                    flagged[f"{seed}:{e.deployment_id}:{e.payload['level']}"] += 1
                    codes[f"{e.payload['code']}:{e.payload['level']}"] += 1
            runs += len(ledger.state.deployments)
    warned = len({k.rsplit(":", 1)[0] for k in flagged})
    critical = len({k.rsplit(":", 1)[0] for k in flagged if k.endswith("CRITICAL")})
    print(f"\nhealthy deployment runs: {runs}; drift alerts: {dict(codes)}; "
          f"runs with any drift alert: {warned}/{runs}; with a critical one: {critical}/{runs}")
    # measured (seeds 1-8, 16 deployment runs): no critical; 6 of 16 runs warned at least once (mostly the
    # drawdown rule at 0.8x its reference, and KS) - warnings ask for a review, they stop nothing
    assert critical == 0, codes
    assert warned <= runs * 0.5
