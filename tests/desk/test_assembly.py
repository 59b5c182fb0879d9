"""The strategies a desk config lists, through the gated pipeline at its first run: a refusal stops the run, or, for
an entry that says ``if_refused: skip``, is recorded once (its gates and a WARNING) and the desk runs without it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from execdesk.api import actions
from execdesk.domain.events import EventKind
from execdesk.errors import Refused
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES, small_desk


def _config(tmp_path: Path, **entry: object) -> Path:
    """The small desk's STR-001 and, at 0.1, a second team's copy of it (the risk gate measures them on the same
    dates: correlation 1.0, above the 0.30 limit)."""
    strategies = [{"bundle": str(BUNDLES / "trend_ema_cross.yaml"), "allocation": 0.5},
                  {"bundle": str(BUNDLES / "trend_ema_cross_team_b.yaml"), "allocation": 0.1, **entry}]
    config = small_desk(tmp_path, strategies=strategies, market__end="2024-03-20T00:00:00Z",
                        risk={"risk_per_trade": 0.02, "max_position_fraction": 0.5,
                              "assessment": {"max_deployed_fraction": 1.0, "max_worst_case_drawdown": 1.0}})
    path = tmp_path / "desk.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_desk_config_when_a_strategy_is_refused_then_the_run_is_refused_naming_the_gate(tmp_path: Path) -> None:
    with pytest.raises(Refused, match=r"STR-005-v1: the risk gate refused it: REJECTED: pairwise_correlation"):
        actions.run_config(_config(tmp_path), tmp_path / "h", report=False)


def test_desk_config_when_a_refused_strategy_says_skip_then_the_desk_runs_without_it_recording_it_once(
        tmp_path: Path) -> None:
    config = _config(tmp_path, if_refused="skip")
    actions.run_config(config, tmp_path / "h", report=False)
    again = config.with_name("later.yaml")
    data = yaml.safe_load(config.read_text())
    data["market"]["end"] = "2024-03-25T00:00:00Z"
    again.write_text(yaml.safe_dump(data))
    actions.run_config(again, tmp_path / "h", report=False)  # carried on: not assessed again

    with Ledger.for_home(tmp_path / "h") as ledger:
        assert set(ledger.state.deployments) == {"STR-001-v1"}
        refused = [e.payload for e in ledger.events({EventKind.GATE}) if e.payload["outcome"] == "refused"]
        alerts = [e.payload for e in ledger.events({EventKind.ALERT_RAISED})
                  if e.payload["code"] == "deployment_refused"]
    assert [(g["deployment_id"], g["gate"]) for g in refused] == [("STR-005-v1", "risk")]
    rule = refused[0]["evidence"]["rules"]["pairwise_correlation"]
    assert rule["value"] > 0.95
    assert not rule["passed"]
    assert "correlate 1.0000 with live deployment STR-001-v1" in refused[0]["reason"]
    assert len(alerts) == 1
    assert alerts[0]["level"] == "WARNING"
    assert "the desk runs without it (if_refused: skip)" in alerts[0]["message"]


def test_desk_config_when_if_refused_is_left_out_then_the_recorded_config_is_as_before(tmp_path: Path) -> None:
    from execdesk.desk.settings import load_desk_config

    plain = load_desk_config(_config(tmp_path)).canonical()
    assert all("if_refused" not in s for s in plain["strategies"])
    skip = load_desk_config(_config(tmp_path, if_refused="skip")).canonical()
    assert skip["strategies"][1]["if_refused"] == "skip"
