"""--verify on the market a bundle was validated on: Freqtrade must reproduce the bundle's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from execdesk.codegen import generate
from execdesk.errors import Refused
from tests.kit import validated_bundle


def test_verify_when_data_is_the_validation_market_then_figures_are_reproduced(tmp_path: Path) -> None:
    bundle, datadir = validated_bundle(tmp_path)
    report = generate(bundle, tmp_path / "out", verify=True, data=datadir)
    assert report.verification is not None
    assert report.verification.check("validation_figures").passed, report.verification.check("validation_figures")
    assert report.passed


def test_verify_when_figures_do_not_match_the_data_then_refused_with_the_difference(tmp_path: Path) -> None:
    bundle, datadir = validated_bundle(tmp_path, trades_offset=7)
    report = generate(bundle, tmp_path / "out", verify=True, data=datadir)
    assert report.verification is not None
    check = report.verification.check("validation_figures")
    assert not check.passed
    assert "trades" in " ".join(m.detail for m in report.verification.mismatches)
    assert report.exit_code == Refused.exit_code


def test_verify_when_candles_are_generated_then_no_validation_comparison(tmp_path: Path) -> None:
    bundle, _datadir = validated_bundle(tmp_path, trades_offset=7)
    report = generate(bundle, tmp_path / "out", verify=True)
    assert report.verification is not None
    with pytest.raises(KeyError):
        report.verification.check("validation_figures")
