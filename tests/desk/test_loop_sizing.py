"""The bundle's sizing method on a running desk: every entry's ``order.submitted`` carries its method's arithmetic
(Kelly from the validation report, a volatility target from the pair's ATR), exits are never sized."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES


def _with_sizing(tmp_path: Path, name: str, sizing: dict[str, Any]) -> Path:
    bundle = yaml.safe_load((BUNDLES / name).read_text())
    bundle["sizing"] = sizing
    path = tmp_path / f"sized-{name}"
    path.write_text(yaml.safe_dump(bundle))
    return path


@pytest.mark.parametrize(("sizing", "formula"), [
    ({"method": "kelly", "fraction": 0.5, "cap": 0.2}, "f* = W "),
    ({"method": "volatility_target", "target_risk": 0.01, "atr_period": 14, "atr_multiple": 2.0}, "/ (atr "),
], ids=["kelly", "volatility_target"])
def test_desk_when_a_bundle_names_its_sizing_then_every_entry_carries_that_methods_arithmetic(
        write_config: Callable[..., Path], tmp_path: Path, sizing: dict[str, Any], formula: str) -> None:
    sized = _with_sizing(tmp_path, "trend_ema_cross.yaml", sizing)
    config = write_config(strategies=[{"bundle": str(sized), "allocation": 0.5},
                                      {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3}])

    run_desk(load_desk_config(config), tmp_path / "h")

    with Ledger.for_home(tmp_path / "h") as ledger:
        submitted = [e.payload for e in ledger.events({EventKind.ORDER_SUBMITTED})]
    entries = {p["deployment_id"]: [] for p in submitted}
    for p in submitted:
        if "sizing" in p["verdict"]:
            entries[p["deployment_id"]].append(p["verdict"]["sizing"])
    own, other = entries["STR-001-v1"], entries["STR-004-v1"]
    assert own, "the sized strategy entered"
    assert {s["method"] for s in own} == {sizing["method"]}
    assert all(formula in s["formula"] for s in own)
    if sizing["method"] == "kelly":  # W and R from the validation report's per-trade returns
        assert {s["inputs"]["payoff_source"] for s in own} == {"returns"}
        assert all(s["inputs"]["fraction"] == "0.5" and s["inputs"]["cap"] == "0.2" for s in own)
    else:  # the pair's ATR on the strategy's candles, a positive number once 14 have closed
        assert all(float(s["inputs"]["atr"]) > 0 and s["inputs"]["atr_period"] == "14" for s in own)
    assert {s["method"] for s in other} <= {"fixed_fractional"}  # the other strategy: the desk's default
