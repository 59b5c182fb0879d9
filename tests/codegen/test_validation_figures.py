"""--verify on the market a bundle was validated on: Freqtrade must reproduce the bundle's figures."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from execdesk.backtest.engine import BacktestConfig, run_backtest
from execdesk.codegen import generate
from execdesk.data import PairProfile, generate_market
from execdesk.data.datadir import write_pair
from execdesk.errors import Refused
from execdesk.strategy import validate_bundle
from tests.codegen.conftest import BASE


def _validated_bundle(tmp_path: Path, trades_offset: int = 0) -> tuple[Path, Path]:
    """A datadir of seeded candles, and a bundle whose validation figures are the native engine's
    results on them (the engine reproduces Freqtrade trade for trade)."""
    spec = copy.deepcopy(BASE)
    spec["validation"]["period"] = {"start": "2024-01-03", "end": "2024-02-20"}
    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e6) for p in spec["pairs"]}, "1h",
                             datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 21, tzinfo=UTC), seed=11)
    datadir = tmp_path / "data"
    for pair, frame in frames.items():
        write_pair(datadir, pair, "1h", frame)
    bundle = validate_bundle(spec)
    result = run_backtest(bundle, frames, BacktestConfig(stake_amount=100.0, max_open_trades=3))
    inside = result.trades[result.trades["open_date"] >= "2024-01-03"]
    wins, losses = inside[inside.profit_abs > 0].profit_abs.sum(), -inside[inside.profit_abs < 0].profit_abs.sum()
    assert len(inside) > 5
    spec["validation"].update(trades=len(inside) + trades_offset, win_rate=float((inside.profit_abs > 0).mean()),
                              profit_factor=float(wins / losses))
    path = tmp_path / "bundle.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, datadir


def test_verify_when_data_is_the_validation_market_then_figures_are_reproduced(tmp_path: Path) -> None:
    bundle, datadir = _validated_bundle(tmp_path)
    report = generate(bundle, tmp_path / "out", verify=True, data=datadir)
    assert report.verification is not None
    assert report.verification.check("validation_figures").passed, report.verification.check("validation_figures")
    assert report.passed


def test_verify_when_figures_do_not_match_the_data_then_refused_with_the_difference(tmp_path: Path) -> None:
    bundle, datadir = _validated_bundle(tmp_path, trades_offset=7)
    report = generate(bundle, tmp_path / "out", verify=True, data=datadir)
    assert report.verification is not None
    check = report.verification.check("validation_figures")
    assert not check.passed
    assert "trades" in " ".join(m.detail for m in report.verification.mismatches)
    assert report.exit_code == Refused.exit_code


def test_verify_when_candles_are_generated_then_no_validation_comparison(tmp_path: Path) -> None:
    bundle, _datadir = _validated_bundle(tmp_path, trades_offset=7)
    report = generate(bundle, tmp_path / "out", verify=True)
    assert report.verification is not None
    with pytest.raises(KeyError):
        report.verification.check("validation_figures")
