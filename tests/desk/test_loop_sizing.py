"""The bundle's sizing method on a running desk: every entry's ``order.submitted`` carries its method's arithmetic
(Kelly from the validation report, a volatility target from the pair's ATR), exits are never sized."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.errors import SpecError
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES
from tests.kit import example_with


@pytest.mark.parametrize(("sizing", "formula"), [
    ({"method": "kelly", "fraction": 0.5, "cap": 0.2}, "f* = W "),
    ({"method": "volatility_target", "target_risk": 0.01, "atr_period": 14, "atr_multiple": 2.0}, "/ (atr "),
], ids=["kelly", "volatility_target"])
def test_desk_when_a_bundle_names_its_sizing_then_every_entry_carries_that_methods_arithmetic(
        write_config: Callable[..., Path], tmp_path: Path, sizing: dict[str, Any], formula: str) -> None:
    sized = example_with(tmp_path, "trend_ema_cross.yaml", sizing=sizing)
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


def _entries(ledger: Ledger) -> dict[str, list[dict[str, Any]]]:
    """Each deployment's entries' sizing arithmetic (``order.submitted``'s verdict), in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for e in ledger.events({EventKind.ORDER_SUBMITTED}):
        if "sizing" in e.payload["verdict"]:
            out.setdefault(e.payload["deployment_id"], []).append(e.payload["verdict"]["sizing"])
    return out


def test_desk_when_a_deployment_overrides_a_fixed_fractional_bundle_with_kelly_then_its_entries_carry_kellys_arithmetic(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: the same bundle (no sizing of its own: fixed fractional) deployed with and without an override
    kelly = {"method": "kelly", "fraction": 0.5, "cap": 0.2}
    own = write_config(strategies=[{"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5,
                                    "sizing": kelly},
                                   {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3}])
    plain = write_config(strategies=[{"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5},
                                     {"bundle": str(BUNDLES / "breakout_4h.yaml"), "allocation": 0.3}])

    # Act
    run_desk(load_desk_config(own), tmp_path / "own")
    run_desk(load_desk_config(plain), tmp_path / "plain")

    # Assert: the deployment records its sizing, and each of its entries shows Kelly's arithmetic with its settings
    with Ledger.for_home(tmp_path / "own") as ledger:
        created = next(iter(ledger.events({EventKind.DEPLOYMENT_CREATED}, deployment_id="STR-001-v1")))
        entries = _entries(ledger)
    assert created.payload["sizing"] == kelly
    assert created.payload["bundle"].get("sizing") is None  # the bundle itself is unchanged
    assert entries["STR-001-v1"], "the sized deployment entered"
    assert {s["method"] for s in entries["STR-001-v1"]} == {"kelly"}
    assert all("f* = W " in s["formula"] and s["inputs"]["fraction"] == "0.5" and s["inputs"]["cap"] == "0.2"
               for s in entries["STR-001-v1"])
    assert {s["method"] for s in entries.get("STR-004-v1", [])} <= {"fixed_fractional"}
    # ... where the same bundle without the override sizes at the desk's fixed fraction
    with Ledger.for_home(tmp_path / "plain") as ledger:
        assert {s["method"] for s in _entries(ledger)["STR-001-v1"]} == {"fixed_fractional"}
        created = next(iter(ledger.events({EventKind.DEPLOYMENT_CREATED}, deployment_id="STR-001-v1")))
    assert "sizing" not in created.payload


def test_desk_config_when_a_strategys_sizing_is_invalid_then_refused_up_front_naming_the_field(
        write_config: Callable[..., Path]) -> None:
    config = write_config(strategies=[{"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5,
                                       "sizing": {"method": "kelly", "target_risk": 0.01}}])

    with pytest.raises(SpecError) as err:
        load_desk_config(config)

    assert err.value.exit_code == 2
    assert "strategies.0.sizing.target_risk: got 0.01; expected a setting of kelly (fraction, cap)" in str(err.value)
