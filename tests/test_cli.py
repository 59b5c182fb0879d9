"""The command line as a user (or an agent) drives it: output, --json, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from execdesk.cli import app
from execdesk.desk.identity import local_identity
from execdesk.domain.events import EventKind
from execdesk.risk.config import LADDER_STEPS
from execdesk.store.ledger import Ledger
from tests.conftest import BUNDLES, small_desk
from tests.kit import desk_running, new_token

runner = CliRunner()


def _json(result) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return json.loads(result.stdout)


def test_help_when_imported_then_freqtrade_and_heavy_modules_are_not_loaded() -> None:
    code = ("import sys, execdesk.cli; heavy = [m for m in ('freqtrade', 'talib', 'pandas', 'sqlalchemy') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_when_run_as_a_program_then_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "execdesk.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "demo", "intake", "status", "report"):
        assert command in out.stdout


def test_run_when_json_then_one_object_with_deployments_and_exit_0(write_config: Callable[..., Path],
                                                                   tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(write_config()), "--home", str(tmp_path / "home"), "--json"])
    assert result.exit_code == 0, result.output
    data = _json(result)
    assert data["ok"] is True
    ids = {d["id"] for d in data["deployments"]}
    assert ids == {"STR-001-v1", "STR-004-v1"}
    for d in data["deployments"]:
        assert {"id", "strategy", "trades", "pnl", "max_drawdown", "state"} <= set(d)
    assert Path(data["ledger"]).is_file()
    assert all(Path(p).is_file() for p in data["reports"])


def test_error_when_longer_than_the_terminal_then_still_one_line(tmp_path: Path) -> None:
    # Arrange: a path far longer than 80 columns
    deep = tmp_path / ("a-folder-with-a-long-name-" * 6) / "nope.yaml"
    # Act
    result = runner.invoke(app, ["run", str(deep), "--home", str(tmp_path)], env={"COLUMNS": "80"})
    # Assert
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(deep) in lines[0]


def test_run_when_config_missing_then_exit_2_and_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml"), "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.output


def test_run_when_config_has_a_bad_key_then_exit_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "desk.yaml"
    path.write_text(f"market: {{start: 2024-01-01, end: 2024-02-01}}\nrisk: {{risk_per_trade: 7}}\n"
                    f"strategies: [{{bundle: {BUNDLES / 'trend_ema_cross.yaml'}, allocation: 0.5}}]\n")
    result = runner.invoke(app, ["run", str(path), "--home", str(tmp_path / "h"), "--json"])
    assert result.exit_code == 2
    error = _json(result)["error"]
    assert error["type"] == "SpecError"
    assert "risk.risk_per_trade" in error["message"]


def test_intake_when_inbox_holds_good_and_bad_then_each_reported_and_exit_2(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_good.yaml").write_text((BUNDLES / "trend_ema_cross.yaml").read_text())
    (inbox / "b_bad.yaml").write_text("id: X\nname: [\n")
    (inbox / "c_binary.json").write_bytes(b"\x00\x01\xff")
    result = runner.invoke(app, ["intake", str(inbox), "--json"])
    assert result.exit_code == 2
    results = _json(result)["results"]
    assert [r["ok"] for r in results] == [True, False, False]
    assert results[0]["bundle"]["id"] == "STR-001"
    assert results[1]["errors"]
    assert results[2]["errors"]


def test_intake_when_all_good_then_exit_0_and_human_lines(tmp_path: Path) -> None:
    result = runner.invoke(app, ["intake", str(BUNDLES / "momentum_macd.yaml")])
    shown = runner.invoke(app, ["intake", str(BUNDLES / "momentum_macd.yaml"), "--show"])
    assert result.exit_code == 0, result.output
    assert "accepted" in result.stdout
    assert "STR-003" in result.stdout
    # a few lines: its rules and validation figures; --show prints the bundle in full
    assert len(result.stdout.splitlines()) <= 6
    assert "entry long:" in result.stdout
    assert "validated on 58 trades" in result.stdout
    assert len(shown.stdout.splitlines()) > 20
    assert "returns:" in shown.stdout


def test_status_when_no_ledger_then_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 2
    assert "no ledger" in _json(result)["error"]["message"]


def test_status_and_report_when_run_then_reflect_the_ledger(write_config: Callable[..., Path],
                                                            tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["run", str(write_config()), "--home", str(home)]).exit_code == 0
    status = runner.invoke(app, ["status", "--home", str(home), "--json"])
    assert status.exit_code == 0
    data = _json(status)
    assert data["completed"] is True
    assert {d["id"] for d in data["deployments"]} == {"STR-001-v1", "STR-004-v1"}
    # the risk manager's persisted state: each deployment's ladder step and the allocation it has in use
    with Ledger.for_home(home) as ledger:
        state = ledger.state
        assert data["ladder_step"] == (None if state.ladder_step == 0 else LADDER_STEPS[state.ladder_step - 1])
        for d in data["deployments"]:
            assert d["allocation_in_use"] == float(state.deployments[d["id"]].stage_fraction)
        # health: the monitor's latest verdict against the approved backtest, and the lead's decision
        verdicts = {e.payload["deployment_id"]: e.payload["verdict"]
                    for e in ledger.events({EventKind.DRIFT_ASSESSED})}
        for d in data["deployments"]:
            assert d["health"] == verdicts.get(d["id"], "continue")
            assert d["version"] == 1
    human = runner.invoke(app, ["status", "--home", str(home)], terminal_width=200)
    assert "drawdown ladder:" in human.stdout
    assert "of 50%" in human.stdout  # STR-001's allocation in use, of its 50%
    first = runner.invoke(app, ["report", "--home", str(home), "--json"])
    second = runner.invoke(app, ["report", "STR-001-v1", "--home", str(home), "--json"])
    assert first.exit_code == 0
    assert second.exit_code == 0
    files_1, files_2 = _json(first)["files"], _json(second)["files"]
    assert set(files_1).isdisjoint(files_2), "reports are append-only: a new folder each time"
    assert [d["id"] for d in _json(second)["deployments"]] == ["STR-001-v1"]


def test_report_when_deployment_unknown_then_exit_2_listing_known(write_config: Callable[..., Path],
                                                                 tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner.invoke(app, ["run", str(write_config()), "--home", str(home)])
    result = runner.invoke(app, ["report", "STR-999", "--home", str(home)])
    assert result.exit_code == 2
    assert "STR-001-v1" in result.stderr


@pytest.mark.parametrize("args", [["demo", "--seed", "-1"], ["run", "x.yaml", "--seed", "-5"]])
def test_seed_when_negative_then_exit_2(args: list[str], tmp_path: Path) -> None:
    if args[0] == "run":
        args = ["run", str(BUNDLES.parent / "demo.yaml"), *args[2:]]
    result = runner.invoke(app, [*args, "--home", str(tmp_path)])
    assert result.exit_code == 2


def test_db_url_when_given_then_the_ledger_lives_there_and_status_reads_it(write_config: Callable[..., Path],
                                                                           tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    home = tmp_path / "home"
    result = runner.invoke(app, ["run", str(write_config()), "--home", str(home), "--db-url", url, "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result)["ledger"] == str(tmp_path / "elsewhere.db")
    assert not (home / "ledger.sqlite").exists()
    status = runner.invoke(app, ["status", "--home", str(home), "--json"], env={"EXECDESK_DB_URL": url})
    assert status.exit_code == 0, status.output
    assert _json(status)["completed"] is True


def test_db_url_when_unusable_then_exit_2_without_the_password(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--home", str(tmp_path), "--db-url", "nosuchdb://user:s3cret@host/db"])
    assert result.exit_code == 2
    assert "s3cret" not in result.output
    assert "***" in result.stderr


def test_codegen_when_bundle_good_then_strategy_and_review_written_and_exit_0(tmp_path: Path) -> None:
    result = runner.invoke(app, ["codegen", str(BUNDLES / "trend_ema_cross.yaml"), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = _json(result)
    assert data["ok"] is True
    assert (tmp_path / "ema_cross_rsi_v1.py").is_file()
    assert (tmp_path / "review.json").is_file()
    assert (tmp_path / "README.md").is_file()


def test_codegen_when_bundle_invalid_then_exit_2_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: X\nname: x\nentry: {long: \"__import__('os')\"}\n")
    result = runner.invoke(app, ["codegen", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_codegen_when_verification_refutes_the_bundle_then_exit_3(tmp_path: Path) -> None:
    from tests.kit import validated_bundle

    bundle, datadir = validated_bundle(tmp_path, trades_offset=7)
    result = runner.invoke(app, ["codegen", str(bundle), "--out", str(tmp_path / "out"), "--verify",
                                 "--data", str(datadir), "--json"])
    assert result.exit_code == 3, result.output
    assert "verification.validation_figures" in _json(result)["failed_checks"]


def test_codegen_when_default_then_stake_sized_by_the_risk_manager(tmp_path: Path) -> None:
    result = runner.invoke(app, ["codegen", str(BUNDLES / "momentum_macd.yaml"), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    source = (tmp_path / "macd_momentum_v1.py").read_text()
    assert "def custom_stake_amount" in source
    assert _json(result)["sizing"]["method"] == "risk"


@pytest.mark.parametrize(("args", "option"), [(["--risk-per-trade", "0.5"], "--risk-per-trade"),
                                              (["--max-position-fraction", "0"], "--max-position-fraction"),
                                              (["--stake", "-1"], "--stake"),
                                              (["--stake", "100", "--risk-per-trade", "0.01"], "--stake")])
def test_codegen_when_sizing_option_bad_then_exit_2_naming_it(tmp_path: Path, args: list[str], option: str) -> None:
    result = runner.invoke(app, ["codegen", str(BUNDLES / "trend_ema_cross.yaml"), "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert option in result.stderr


def test_assess_when_home_is_empty_then_a_verdict_with_every_rule_and_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["assess", str(BUNDLES / "trend_ema_cross.yaml"), "--home", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = _json(result)
    assert data["verdict"] in {"APPROVED", "CONDITIONAL"}
    assert {r["name"] for r in data["rules"]} == {"deployed_fraction", "correlated_exposure", "pairwise_correlation",
                                                  "worst_case_drawdown"}
    assert all(Path(p).is_file() for p in data["files"])


def test_assess_when_a_desk_runs_then_live_deployments_counted_and_the_verdict_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    from execdesk.domain.events import EventKind
    from execdesk.store.ledger import Ledger

    home = tmp_path / "home"
    assert runner.invoke(app, ["run", str(write_config()), "--home", str(home)]).exit_code == 0
    result = runner.invoke(app, ["assess", str(BUNDLES / "momentum_macd.yaml"), "--home", str(home),
                                 "--allocation", "0.2", "--json"])
    assert result.exit_code in (0, 3), result.output
    data = _json(result)
    with Ledger.for_home(home) as ledger:
        recorded = [e.payload for e in ledger.events({EventKind.RISK_ASSESSED})]
        live = [d.id for d in ledger.state.deployments.values() if d.state.value != "HALTED"]
    assert data["live_deployments"] == live
    assert [r["verdict"] for r in recorded] == [data["verdict"]]


def test_assess_when_allocation_out_of_range_then_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["assess", str(BUNDLES / "trend_ema_cross.yaml"), "--home", str(tmp_path),
                                 "--allocation", "1.5"])
    assert result.exit_code == 2
    assert "--allocation" in result.stderr


def _assess_datadir(tmp_path: Path, pairs: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"), start: str = "2023-12-30",
                    end: str = "2024-07-01") -> Path:
    """A Freqtrade datadir of seeded 1h candles (trend_ema_cross's validation period is 2024-01-01..06-30)."""
    from datetime import datetime

    from execdesk.data import PairProfile, generate_market
    from execdesk.data.datadir import write_pair

    frames = generate_market({p: PairProfile(start_price=100.0, base_volume=1e6) for p in pairs}, "1h",
                             datetime.fromisoformat(start + "T00:00:00+00:00"),
                             datetime.fromisoformat(end + "T00:00:00+00:00"), seed=5)
    datadir = tmp_path / "data"
    for pair, frame in frames.items():
        write_pair(datadir, pair, "1h", frame)
    return datadir


def test_assess_when_datadir_given_then_its_candles_over_the_validation_period_are_used(tmp_path: Path) -> None:
    datadir = _assess_datadir(tmp_path)
    args = ["assess", str(BUNDLES / "trend_ema_cross.yaml"), "--home", str(tmp_path / "home"), "--json"]

    real = runner.invoke(app, [*args, "--datadir", str(datadir)])
    generated = runner.invoke(app, args)

    assert real.exit_code in (0, 3), real.output
    data, other = _json(real), _json(generated)
    assert data["data_source"].startswith(f"Freqtrade datadir {datadir}")
    assert "validation period 2024-01-01T00:00:00+00:00 to 2024-07-01T00:00:00+00:00" in data["data_source"]
    assert "generated" in other["data_source"]
    assert data["backtest_trades"] != other["backtest_trades"] or data["rules"] != other["rules"]


@pytest.mark.parametrize(("make", "expected"), [
    (lambda tmp: tmp / "missing", ["--datadir", "missing", "is not a folder"]),
    (lambda tmp: _assess_datadir(tmp, pairs=("BTC/USDT",)), ["no 1h spot candle file for ETH/USDT",
                                                             "data/ETH_USDT-1h.feather"]),
    (lambda tmp: _assess_datadir(tmp, start="2024-02-01"), ["--datadir", "BTC/USDT", "do not cover the validation",
                                                             "2024-01-01..2024-06-30", "2024-02-01 00:00"]),
    (lambda tmp: _assess_datadir(tmp, end="2024-06-30"), ["--datadir", "BTC/USDT", "do not cover the validation"]),
])
def test_assess_when_datadir_unusable_then_exit_2_naming_what_is_wrong(
        tmp_path: Path, make: Callable[[Path], Path], expected: list[str]) -> None:
    datadir = make(tmp_path)

    result = runner.invoke(app, ["assess", str(BUNDLES / "trend_ema_cross.yaml"), "--home", str(tmp_path / "home"),
                                 "--datadir", str(datadir)])

    assert result.exit_code == 2, result.output
    squeezed = "".join(result.stderr.split())  # the console wraps long lines, even inside paths
    for text in expected:
        assert "".join(text.split()) in squeezed
    assert "Traceback" not in result.output


def test_assess_when_datadir_lacks_a_live_pair_then_exit_2_naming_it(write_config: Callable[..., Path],
                                                                     tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["run", str(write_config()), "--home", str(home)]).exit_code == 0
    datadir = _assess_datadir(tmp_path, pairs=("SOL/USDT",))

    result = runner.invoke(app, ["assess", str(BUNDLES / "mean_revert_bbands.yaml"), "--home", str(home),
                                 "--datadir", str(datadir)])

    assert result.exit_code == 2, result.output
    assert "candlefileforBTC/USDT" in "".join(result.stderr.split())


def test_assess_when_datadir_and_a_desk_then_each_correlation_names_its_window_source_and_n(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a desk trading STR-001 (1h) and STR-004 (4h) since 2024-03-01; a datadir of 1h candles only
    home = tmp_path / "home"
    assert runner.invoke(app, ["run", str(write_config()), "--home", str(home)]).exit_code == 0
    datadir = _assess_datadir(tmp_path, pairs=("BTC/USDT", "ETH/USDT", "SOL/USDT"))
    args = ["assess", str(BUNDLES / "mean_revert_bbands.yaml"), "--home", str(home), "--datadir", str(datadir)]

    # Act
    data = _json(runner.invoke(app, [*args, "--json"]))
    table = runner.invoke(app, args)

    # Assert: the window is the candidate's validation period on the datadir's candles; STR-001's live days
    # (market data) take precedence on its dates; STR-004 trades 4h candles the datadir does not hold: its live
    # days alone are measured
    assert (data["correlation_window"]["start"], data["correlation_window"]["end"]) == ("2024-01-01", "2024-06-30")
    by_id = {c["deployment_id"]: c for c in data["correlations"]}
    trend, breakout = by_id["STR-001-v1"], by_id["STR-004-v1"]
    assert trend["status"] in ("ok", "above limit")
    assert trend["n"] == 182
    assert trend["window"] == {"start": "2024-01-01", "end": "2024-06-30"}
    assert trend["source"].startswith(f"datadir {datadir}: backtests of both strategies; its live ledger returns on")
    assert breakout["status"] in ("ok", "above limit")
    assert 20 <= breakout["n"] < 50  # the desk ran 45 days
    assert breakout["source"].startswith(f"datadir {datadir}: the candidate's backtest; its {breakout['n']} live "
                                         "ledger days")
    assert "no 4h spot candle file for BTC/USDT" in breakout["source"]
    assert table.exit_code in (0, 3), table.output
    flat = "".join(table.output.split())
    assert "livedeployment" in flat
    assert "2024-01-01..2024-06-30" in flat


# ---------------------------------------------------------------- the gated pipeline and deployments, as a user runs it
SOL = {"start_price": 140, "annual_vol": 0.9, "base_volume": 4_000_000}


@pytest.fixture(scope="module")
def desk_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small desk (STR-001-v1 and STR-004-v1, SOL/USDT in its market for STR-002) run to 2024-03-20, built once:
    each test works on its own copy (see ``_copy``)."""
    import yaml

    from execdesk.api import actions

    root = tmp_path_factory.mktemp("cli-desk")
    market = {"source": "generated", "timeframe": "1h", "start": "2024-03-01T00:00:00Z", "end": "2024-03-20T00:00:00Z",
              "pairs": {"BTC/USDT": {"start_price": 60000, "annual_vol": 0.6, "base_volume": 20000},
                        "ETH/USDT": {"start_price": 3000, "annual_vol": 0.75, "base_volume": 300000},
                        "SOL/USDT": SOL}}
    config = root / "desk.yaml"
    config.write_text(yaml.safe_dump(small_desk(root, market=market)))
    home = root / "home"
    actions.run_config(config, home, report=False)
    return home


def _copy(desk_home: Path, tmp_path: Path) -> Path:
    """This test's own copy of the shared desk home (its ledger, files and all)."""
    import shutil

    return Path(shutil.copytree(desk_home, tmp_path / "home"))


def _deploy(home: Path, *args: str) -> list[str]:
    return ["deploy", str(BUNDLES / "mean_revert_bbands.yaml"), "--home", str(home), *args]


def _lifecycles(home: Path) -> dict[str, str]:
    status = runner.invoke(app, ["status", "--home", str(home), "--json"])
    assert status.exit_code == 0, status.output
    return {d["id"]: d["lifecycle"] for d in _json(status)["deployments"]}


def test_deploy_when_every_gate_passes_then_exit_0_and_json_names_six_gates(desk_home: Path, tmp_path: Path) -> None:
    # Arrange
    home = _copy(desk_home, tmp_path)
    # Act
    result = runner.invoke(app, _deploy(home, "--allocation", "0.15", "--reason", "validated", "--json"))
    # Assert
    assert result.exit_code == 0, result.output
    data = _json(result)
    assert (data["status"], data["deployment_id"], data["venue"]) == ("deployed", "STR-002-v1", "paper")
    assert [g["gate"] for g in data["gates"]] == ["intake", "signal_generator", "risk", "approval", "deploy",
                                                  "monitor"]
    assert data["refused"] is None
    assert _lifecycles(home)["STR-002-v1"] == "live"
    with Ledger.for_home(home) as ledger:  # no --token: the local user, recorded as who asked
        assert {e.payload["by"] for e in ledger.events({EventKind.GATE})
                if e.payload["deployment_id"] == "STR-002-v1"} == {local_identity().name}


def test_deploy_when_human_output_then_a_table_of_the_gates(desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, _deploy(home), terminal_width=200)

    assert result.exit_code == 0, result.output
    assert "STR-002-v1 -> paper: deployed" in result.stdout
    rows = _rows(result.stdout, "gate")
    assert list(rows[0]) == ["gate", "outcome", "reason"]
    outcomes = {row["gate"]: row["outcome"] for row in rows}
    assert list(outcomes) == ["intake", "signal_generator", "risk", "approval", "deploy", "monitor"]
    assert outcomes["approval"] == "not_required"  # the paper venue trades no real money


def test_deploy_when_it_carries_a_kelly_sizing_then_recorded_with_the_deployment_and_shown_by_status(
        desk_home: Path, tmp_path: Path) -> None:
    # Arrange: mean_revert_bbands names no sizing of its own (the desk's fixed fractional)
    home = _copy(desk_home, tmp_path)

    # Act
    result = runner.invoke(app, _deploy(home, "--sizing", "{method: kelly, fraction: 0.5, cap: 0.2}", "--json"))
    status = runner.invoke(app, ["status", "--home", str(home), "--json"])
    wide = runner.invoke(app, ["status", "--home", str(home), "--wide"], terminal_width=300)

    # Assert: the plan, the ledger and status all carry the deployment's own sizing
    assert result.exit_code == 0, result.output
    assert _json(result)["sizing"] == {"method": "kelly", "fraction": 0.5, "cap": 0.2}
    with Ledger.for_home(home) as ledger:
        created = next(iter(ledger.events({EventKind.DEPLOYMENT_CREATED}, deployment_id="STR-002-v1")))
    assert created.payload["sizing"] == {"method": "kelly", "fraction": 0.5, "cap": 0.2}
    sizing = {d["id"]: d["sizing"] for d in _json(status)["deployments"]}
    assert sizing["STR-002-v1"] == {"method": "kelly", "fraction": 0.5, "cap": 0.2, "source": "deployment"}
    assert sizing["STR-001-v1"] is None  # the desk's default
    assert wide.exit_code == 0, wide.output
    assert {"kelly", "fraction=0.5", "cap=0.2", "(deployment)", "fixed_fractional"} <= set(wide.stdout.split())


@pytest.mark.parametrize(("sizing", "named"), [
    ("{method: kelly, fraction: 1.5}", "--sizing.fraction: got 1.5; expected less than or equal to 1"),
    ("{method: kelly, atr_period: 14}", "--sizing.atr_period: got 14; expected a setting of kelly (fraction, cap)"),
    ("{method: martingale}", "--sizing.method: got 'martingale'"),
    ("kelly", "--sizing: got 'kelly'; expected a mapping"),
], ids=["out_of_range", "foreign_setting", "unknown_method", "not_a_mapping"])
def test_deploy_when_the_sizing_block_is_invalid_then_exit_2_naming_the_field_and_nothing_recorded(
        desk_home: Path, tmp_path: Path, sizing: str, named: str) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, _deploy(home, "--sizing", sizing, "--json"))

    assert result.exit_code == 2, result.output
    assert named in _json(result)["error"]["message"]
    assert "STR-002-v1" not in _lifecycles(home)


@pytest.mark.parametrize(("args", "gate", "why"), [
    (["deploy", str(BUNDLES / "trend_ema_cross.yaml")], "intake", "deployed already"),
    (["deploy", str(BUNDLES / "momentum_macd.yaml")], "deploy", "AVAX/USDT"),
])
def test_deploy_when_a_gate_refuses_then_exit_3_and_a_json_error_naming_the_gate(
        desk_home: Path, tmp_path: Path, args: list[str], gate: str, why: str) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, [*args, "--home", str(home), "--json"])

    assert result.exit_code == 3, result.output
    data = _json(result)
    assert data["ok"] is False
    error = data["error"]
    assert (error["type"], error["exit_code"]) == ("Refused", 3)
    assert f"the {gate} gate refused it" in error["message"]
    assert why in error["message"]
    assert "Traceback" not in result.output


def test_deploy_when_live_ccxt_then_pending_until_denied_and_a_second_answer_exits_2(
        desk_home: Path, tmp_path: Path) -> None:
    # Arrange
    home = _copy(desk_home, tmp_path)
    ana, officer, other = (new_token(home, "ana", "lead"), new_token(home, "risk-officer", "risk"),
                           new_token(home, "someone-else", "lead"))
    pending = runner.invoke(app, _deploy(home, "--venue", "ccxt:binance", "--live", "--token", ana, "--json"))
    assert pending.exit_code == 0, pending.output
    plan = _json(pending)
    assert plan["status"] == "pending_approval"
    request = plan["approval_request"]
    assert request.startswith("dr-")
    # Act
    denied = runner.invoke(app, ["deny", request, "--token", officer, "--reason", "testnet first",
                                 "--home", str(home), "--json"])
    again = runner.invoke(app, ["approve", request, "--token", other, "--reason", "second answer",
                                "--home", str(home), "--json"])
    # Assert
    assert denied.exit_code == 0, denied.output
    assert (_json(denied)["status"], _json(denied)["decision"]) == ("refused", "deny")
    assert _json(denied)["refused"]["outcome"] == "denied"
    assert again.exit_code == 2, again.output
    assert "not waiting for approval" in _json(again)["error"]["message"]
    assert "STR-002-v1" not in _lifecycles(home)
    with Ledger.for_home(home) as ledger:
        decided = [(e.payload["decision"], e.payload["by"]) for e in ledger.events({EventKind.APPROVAL_DECIDED})]
    assert decided == [("denied", "risk-officer")]


def test_deploy_when_live_ccxt_and_human_output_then_says_how_to_approve(desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, _deploy(home, "--venue", "ccxt:binance", "--live"),
                           terminal_width=200)

    assert result.exit_code == 0, result.output
    assert "pending_approval" in result.stdout
    assert "waiting for a human: execdesk approve dr-" in result.stdout


def test_pause_resume_when_run_then_status_follows_and_a_second_resume_exits_3_naming_why(
        desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    who = ["--token", new_token(home, "ana", "operator"), "--reason", "looks off", "--home", str(home)]

    paused = runner.invoke(app, ["pause", "STR-001-v1", *who, "--json"])
    after_pause = _lifecycles(home)
    resumed = runner.invoke(app, ["resume", "STR-001-v1", *who])
    after_resume = _lifecycles(home)
    again = runner.invoke(app, ["resume", "STR-001-v1", *who])

    assert paused.exit_code == 0, paused.output
    assert (_json(paused)["state"], _json(paused)["reason"]) == ("REDUCING", "paused")
    assert after_pause == {"STR-001-v1": "paused", "STR-004-v1": "live"}
    assert resumed.exit_code == 0, resumed.output
    assert "STR-001-v1: resume by ana -> ACTIVE (resumed)" in resumed.stdout
    assert after_resume["STR-001-v1"] == "live"
    assert again.exit_code == 3, again.output
    message = " ".join(again.stderr.split())
    assert "STR-001-v1 is live" in message
    assert "only a paused deployment resumes" in message


def test_status_when_human_then_venue_and_lifecycle_columns(desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    assert runner.invoke(app, ["pause", "STR-004-v1", "--reason", "r", "--home", str(home)]
                         ).exit_code == 0

    wide = runner.invoke(app, ["status", "--home", str(home), "--wide"])
    compact = runner.invoke(app, ["status", "--home", str(home)])

    assert wide.exit_code == 0, wide.output
    rows = {row["deployment"]: row for row in _rows(wide.stdout, "deployment")}
    assert (rows["STR-001-v1"]["venue"], rows["STR-001-v1"]["lifecycle"]) == ("paper", "live")
    assert (rows["STR-004-v1"]["venue"], rows["STR-004-v1"]["lifecycle"]) == ("paper", "paused")
    assert (rows["STR-004-v1"]["state"], rows["STR-004-v1"]["reason"]) == ("REDUCING", "paused")
    # the default table: a lifecycle's usual reason left out, any other shown
    rows = {row["deployment"]: row for row in _rows(compact.stdout, "deployment")}
    assert (rows["STR-001-v1"]["lifecycle (reason)"], rows["STR-004-v1"]["lifecycle (reason)"]) == ("live", "paused")
    assert list(rows["STR-001-v1"]) == ["deployment", "lifecycle (reason)", "health", "in use", "trades", "P&L net",
                                        "open"]


def test_status_when_a_terminal_of_80_columns_then_every_line_fits_and_no_id_or_word_is_cut(
        desk_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from execdesk import cli

    shown = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=shown, width=80, highlight=False, soft_wrap=True))
    result = runner.invoke(app, ["status", "--home", str(desk_home)])

    assert result.exit_code == 0, result.output
    lines = shown.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80, shown.getvalue()
    with Ledger.for_home(desk_home) as ledger:
        ids = [d.id for d in ledger.state.deployments.values()]
    assert [line.split()[0] for line in lines if line.startswith("STR-")] == ids  # each id whole, on its row
    assert "…" not in shown.getvalue()


def _rows(text: str, first: str) -> list[dict[str, str]]:
    """A borderless table's rows (the CLI's tables: a header line, a rule, rows; cells apart by 3+ spaces) as
    header -> cell; a wrapped cell's continuation lines (starting blank) are left out."""
    import re

    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(first))
    names = re.split(r"\s{3,}", lines[at].strip())
    rows = []
    for line in lines[at + 2:]:
        if not line.strip() or set(line.strip()) <= set("─━"):
            break
        if line.startswith(" "):
            continue
        rows.append(dict(zip(names, re.split(r"\s{3,}", line.strip()), strict=False)))
    return rows


def test_pause_when_a_desk_is_running_then_queued_and_status_lists_the_pending_request(
        desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    with desk_running(home):
        queued = runner.invoke(app, ["pause", "STR-001-v1", "--reason", "r", "--home", str(home),
                                     "--json"])
        human = runner.invoke(app, ["status", "--home", str(home)], terminal_width=250)
        data = runner.invoke(app, ["status", "--home", str(home), "--json"])

    assert queued.exit_code == 0, queued.output
    name = Path(_json(queued)["queued"]).name
    assert name.startswith("pause-")
    assert _json(data)["pending_requests"] == [name]
    assert _lifecycles(home)["STR-001-v1"] == "live"  # nothing recorded while the desk holds the ledger
    assert f"requests waiting for the desk's next bar: {name}" in human.stdout


def test_rollback_when_the_strategy_has_one_version_then_exit_3(desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, ["rollback", "STR-001", "--reason", "nothing before", "--home",
                                 str(home), "--json"])

    assert result.exit_code == 3, result.output
    assert "STR-001-v1 is the first version of STR-001" in _json(result)["error"]["message"]
    assert _lifecycles(home)["STR-001-v1"] == "live"


def test_deploy_when_by_given_then_exit_2_naming_by_as_no_option(desk_home: Path, tmp_path: Path) -> None:
    # who asks is the authenticated identity (--token, else the local user), never free text
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, _deploy(home, "--by", "ana"))

    assert result.exit_code == 2, result.output
    assert "--by" in result.stderr
    assert "Traceback" not in result.output
    assert "STR-002-v1" not in _lifecycles(home)


@pytest.mark.parametrize("token", ["edk_000000000000_" + "A" * 43, "not-a-token", ""])
def test_deploy_when_the_token_is_not_a_live_one_then_exit_2_and_nothing_recorded(
        desk_home: Path, tmp_path: Path, token: str) -> None:
    home = _copy(desk_home, tmp_path)
    new_token(home, "ana", "lead")
    with Ledger.for_home(home) as ledger:
        before = ledger.state.last_seq

    result = runner.invoke(app, [*_deploy(home, "--token", token), "--json"])

    assert result.exit_code == 2, result.output
    assert _json(result)["error"]["type"] == "Unauthenticated"
    with Ledger.for_home(home) as ledger:
        assert ledger.state.last_seq == before


@pytest.mark.parametrize(("args", "option"), [(["--venue", "binance"], "--venue"),
                                              (["--venue", "ccxt:"], "--venue"),
                                              (["--venue", "paper", "--live"], "--live"),
                                              (["--allocation", "0"], "--allocation"),
                                              (["--positions", "keep"], "--positions"),
                                              (["--at", "next tuesday"], "--at")])
def test_deploy_when_an_option_is_bad_then_exit_2_naming_it(desk_home: Path, tmp_path: Path, args: list[str],
                                                           option: str) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, [*_deploy(home, *args), "--json"])

    assert result.exit_code == 2, result.output
    assert _json(result)["error"]["message"].startswith(f"{option}: ")
    assert not (home / "deployments" / "STR-002-v1").exists()


@pytest.mark.parametrize("at", ["", "nan"])
def test_deploy_when_at_is_empty_or_nan_then_exit_2_naming_at(desk_home: Path, tmp_path: Path, at: str) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, [*_deploy(home, "--at", at), "--json"])

    assert result.exit_code == 2, result.output
    assert _json(result)["error"]["message"].startswith("--at: ")


def test_deploy_when_at_is_given_then_the_deployment_is_scheduled(desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)

    result = runner.invoke(app, [*_deploy(home, "--at", "2024-04-01T00:00:00Z"), "--json"])

    assert result.exit_code == 0, result.output
    assert (_json(result)["status"], _json(result)["start_at"]) == ("deployed", 1711929600)
    assert _lifecycles(home)["STR-002-v1"] == "scheduled"


def test_deploy_when_live_ccxt_and_a_desk_is_running_then_the_output_still_names_the_approval_request(
        desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    with desk_running(home):
        result = runner.invoke(app, _deploy(home, "--venue", "ccxt:binance", "--live", "--json"))

    assert result.exit_code == 0, result.output
    data = _json(result)
    assert "queued" in data
    assert str(data.get("approval_request")).startswith("dr-")


@pytest.mark.parametrize(("args", "names"), [
    (["demo", "--seed", str(10**30)], "--seed"),
    (["codegen", str(BUNDLES / "trend_ema_cross.yaml"), "--out", "/dev/null/x"], "--out /dev/null/x"),
])
def test_bad_input_when_out_of_bounds_then_exit_2_one_line_and_nothing_written(
        tmp_path: Path, args: list[str], names: str) -> None:
    result = runner.invoke(app, [*args, "--home", str(tmp_path / "h")] if args[0] == "demo" else args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert names in lines[0]
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("version", 10**30, "version"),
    ("period", {"start": "0001-01-01", "end": "9999-12-31"}, "validation.period.start"),
])
def test_intake_when_a_value_is_out_of_bounds_then_refused_naming_it(tmp_path: Path, field: str, value: Any,
                                                                    expected: str) -> None:
    import yaml

    spec = yaml.safe_load((BUNDLES / "trend_ema_cross.yaml").read_text())
    if field == "version":
        spec["version"] = value
    else:
        spec["validation"]["period"] = value
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["intake", str(path), "--json"])
    data = json.loads(result.stdout)
    assert not data["results"][0]["ok"]
    assert any(e["path"] == expected for e in data["results"][0]["errors"]), data["results"][0]["errors"]


# ---------------------------------------------------------------- who may do what: tokens, roles, four eyes
def _events(home: Path, kind: EventKind) -> list[dict[str, Any]]:
    with Ledger.for_home(home) as ledger:
        return [e.payload for e in ledger.events({kind})]


def test_approve_when_the_lead_who_asked_for_a_live_deployment_approves_it_then_refused_and_another_lead_may(
        desk_home: Path, tmp_path: Path) -> None:
    # Arrange: a lead asks for a real-money deployment; it waits for a human's approval
    home = _copy(desk_home, tmp_path)
    ana, bo = new_token(home, "ana", "lead"), new_token(home, "bo", "lead")
    pending = runner.invoke(app, _deploy(home, "--venue", "ccxt:binance", "--live", "--token", ana, "--json"))
    assert pending.exit_code == 0, pending.output
    assert _json(pending)["status"] == "pending_approval"
    request = _json(pending)["approval_request"]
    # Act: the same lead approves it; then another lead does
    same = runner.invoke(app, ["approve", request, "--token", ana, "--reason", "mine", "--home", str(home), "--json"])
    other = runner.invoke(app, ["approve", request, "--token", bo, "--reason", "checked", "--home", str(home),
                                "--json"])
    # Assert: four eyes: the requester's approval refused (exit 3, naming the rule), nothing approved by it
    assert same.exit_code == 3, same.output
    error = _json(same)["error"]
    assert (error["type"], error["exit_code"]) == ("NotAllowed", 3)
    assert "four eyes" in error["message"]
    assert "ana requested this live deployment and cannot approve it" in error["message"]
    # the other lead's approval passes the approval gate (this paper desk's deploy gate then stops a real-money
    # deployment: no exchange here)
    assert other.exit_code == 3, other.output
    assert "the deploy gate refused it" in _json(other)["error"]["message"]
    assert "four eyes" not in _json(other)["error"]["message"]
    assert [(p["decision"], p["by"]) for p in _events(home, EventKind.APPROVAL_DECIDED)] == [("approved", "bo")]
    approvals = [g for g in _events(home, EventKind.GATE) if g["deployment_id"] == "STR-002-v1"
                 and g["gate"] == "approval"]
    assert [g["outcome"] for g in approvals] == ["pending", "approved"]
    received = [(p["action"], p["identity"]["name"]) for p in _events(home, EventKind.COMMAND_RECEIVED)]
    assert received == [("deploy", "ana"), ("approve", "bo")]


def test_approve_when_refused_by_four_eyes_then_the_ledger_records_the_refusal_with_its_identity(
        desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    ana = new_token(home, "ana", "lead")
    pending = runner.invoke(app, _deploy(home, "--venue", "ccxt:binance", "--live", "--token", ana, "--json"))
    request = _json(pending)["approval_request"]

    same = runner.invoke(app, ["approve", request, "--token", ana, "--reason", "mine", "--home", str(home)])

    assert same.exit_code == 3, same.output
    refused = _events(home, EventKind.COMMAND_REFUSED)
    assert [(p["action"], p["identity"]["name"], p["exit_code"]) for p in refused] == [("approve", "ana", 3)]
    assert "four eyes" in refused[0]["error"]


def test_pause_when_a_viewer_asks_then_exit_3_naming_the_rule_recorded_and_an_operator_may(
        desk_home: Path, tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    viewer, operator = new_token(home, "vic", "viewer"), new_token(home, "ops", "operator")

    refused = runner.invoke(app, ["pause", "STR-001-v1", "--token", viewer, "--reason", "curious", "--home",
                                  str(home)])
    paused = runner.invoke(app, ["pause", "STR-001-v1", "--reason", "looks off", "--home", str(home), "--json"],
                           env={"EXECDESK_TOKEN": operator})

    # Assert: the viewer refused (exit 3, naming the rule) and that refusal on record with its identity; the
    # operator's pause applied, taken in under the operator's identity
    assert refused.exit_code == 3, refused.output
    assert "vic (viewer) may not pause" in " ".join(refused.stderr.split())
    assert paused.exit_code == 0, paused.output
    assert _lifecycles(home)["STR-001-v1"] == "paused"
    refusals = _events(home, EventKind.COMMAND_REFUSED)
    assert [(p["action"], p["by"], p["identity"]["name"], p["identity"]["role"], p["identity"]["via"],
             p["reason"], p["exit_code"]) for p in refusals] == [
        ("pause", "vic", "vic", "viewer", "token", "curious", 3)]
    assert "may not pause" in refusals[0]["error"]
    received = _events(home, EventKind.COMMAND_RECEIVED)
    assert [(p["action"], p["by"], p["identity"]["name"], p["identity"]["role"]) for p in received] == [
        ("pause", "ops", "ops", "operator")]


def test_token_create_when_a_viewer_asks_then_exit_3_and_no_token_made(tmp_path: Path) -> None:
    home = tmp_path / "h"
    viewer = new_token(home, "vic", "viewer")

    created = runner.invoke(app, ["token", "create", "--name", "eve", "--role", "admin", "--home", str(home),
                                  "--token", viewer, "--json"])
    listed = runner.invoke(app, ["token", "list", "--home", str(home), "--token", viewer])
    revoked = runner.invoke(app, ["token", "revoke", "vic", "--home", str(home), "--token", viewer])

    assert (created.exit_code, listed.exit_code, revoked.exit_code) == (3, 3, 3), created.output
    assert _json(created)["error"]["type"] == "NotAllowed"
    assert "vic (viewer) may not tokens" in _json(created)["error"]["message"]
    records = json.loads((home / "tokens.json").read_text())["tokens"]
    assert [(r["name"], r["revoked_at"]) for r in records] == [("vic", None)]


def test_token_when_created_then_shown_once_listed_without_secrets_and_refused_once_revoked(tmp_path: Path) -> None:
    home = tmp_path / "h"
    # Act: the local user (the home's admin) makes two tokens, one as a table, one as JSON
    human = runner.invoke(app, ["token", "create", "--name", "ana", "--role", "lead", "--home", str(home)],
                          terminal_width=200)
    created = runner.invoke(app, ["token", "create", "--name", "bo", "--role", "admin", "--home", str(home), "--json"])
    listed = runner.invoke(app, ["token", "list", "--home", str(home), "--json"])
    assert (human.exit_code, created.exit_code, listed.exit_code) == (0, 0, 0), human.output + created.output
    ana = human.stdout.strip().splitlines()[-1]
    bo = _json(created)["token"]
    # Assert: shown once (the token's own answer), never again; its record names who made it
    assert ana.startswith("edk_")
    assert bo.startswith("edk_")
    assert "shown once" in human.stdout
    assert (_json(created)["name"], _json(created)["role"], _json(created)["created_by"]) == (
        "bo", "admin", local_identity().name)
    assert "sha256" not in _json(created)
    assert sorted((t["name"], t["role"]) for t in _json(listed)["tokens"]) == [("ana", "lead"), ("bo", "admin")]
    assert ana not in listed.stdout
    assert bo not in listed.stdout
    assert all("sha256" not in t for t in _json(listed)["tokens"])
    # a second live token of one name is refused; a token acts with its role (bo, an admin, lists; revokes ana)
    again = runner.invoke(app, ["token", "create", "--name", "ana", "--role", "viewer", "--home", str(home)])
    assert again.exit_code == 2, again.output
    assert "a live token named 'ana' exists" in " ".join(again.stderr.split())
    revoked = runner.invoke(app, ["token", "revoke", "ana", "--home", str(home), "--token", bo, "--json"])
    assert revoked.exit_code == 0, revoked.output
    assert _json(revoked)["revoked_at"] is not None
    # a revoked token is refused (exit 2), whatever it asks
    after = runner.invoke(app, ["token", "list", "--home", str(home), "--token", ana])
    assert after.exit_code == 2, after.output
    assert "not a live token" in " ".join(after.stderr.split())
    human_list = runner.invoke(app, ["token", "list", "--home", str(home)], terminal_width=200)
    assert "ana  lead  revoked" in human_list.stdout
    assert "bo  admin  live" in human_list.stdout


# ------------------------------------------------------------------ the console entry point: usage errors, --json
@pytest.mark.parametrize(("argv", "said"), [
    (["status", "--bogus"], "No such option: --bogus (see execdesk status --help)"),
    (["deploy"], "Missing argument 'bundle'. (see execdesk deploy --help)"),
    (["nosuch"], "No such command 'nosuch'. (see execdesk --help)"),
])
def test_main_when_a_usage_error_then_one_line_naming_it_and_its_help_exit_2(
        argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    from execdesk.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    captured = capsys.readouterr()
    assert exited.value.code == 2
    assert captured.err.strip() == f"error: {said}"
    assert captured.out == ""


def test_main_when_a_usage_error_with_json_then_the_json_error_object(capsys: pytest.CaptureFixture[str]) -> None:
    from execdesk.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["status", "--bogus", "--json"])
    assert exited.value.code == 2
    assert json.loads(capsys.readouterr().out) == {
        "ok": False, "error": {"type": "UsageError", "message": "No such option: --bogus", "exit_code": 2}}


def test_main_when_version_json_then_ok_and_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    from execdesk import __version__
    from execdesk.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["version", "--json"])
    assert exited.value.code == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "version": __version__}


def test_every_json_answer_when_it_succeeds_then_it_carries_ok_true(desk_home: Path) -> None:
    for args in (["status"], ["team"], ["verify"]):
        result = runner.invoke(app, [*args, "--home", str(desk_home), "--json"])
        assert result.exit_code == 0, result.output
        assert _json(result)["ok"] is True, args


@pytest.mark.parametrize(("until", "said"), [("2024-09-01", "expected a time after the demo's end"),
                                             ("next week", "expected an ISO 8601 time")])
def test_demo_when_until_is_not_after_its_end_then_exit_2_and_nothing_made(tmp_path: Path, until: str,
                                                                             said: str) -> None:
    result = runner.invoke(app, ["demo", "--until", until, "--home", str(tmp_path / "h")])
    assert result.exit_code == 2, result.output
    assert said in result.stderr
    assert not (tmp_path / "h").exists()


def test_report_when_not_a_terminal_then_each_step_a_line_on_stderr_with_its_time(desk_home: Path,
                                                                                 tmp_path: Path) -> None:
    home = _copy(desk_home, tmp_path)
    result = runner.invoke(app, ["report", "--home", str(home)])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.startswith("report [")]
    assert "loading the report's tools" in steps[0]
    assert any("comparing each deployment with its backtest" in s for s in steps)
    assert any("chart (1 of" in s for s in steps)
    # and nothing of it in --json's stdout
    quiet = runner.invoke(app, ["report", "--home", str(home), "--json"])
    assert json.loads(quiet.stdout)["ok"] is True
    assert "report [" not in quiet.stderr



@pytest.mark.parametrize("command", ["codegen", "demo", "deploy", "intake", "status"])
def test_help_when_shown_then_flags_take_no_value(command: str) -> None:
    shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert shown.exit_code == 0
    assert "--json" in shown.stdout
    # (Typer's own --help row still says <bool>)
    assert [line for line in shown.stdout.splitlines() if "<bool>" in line and "--help" not in line] == []


def test_status_when_piped_then_ids_and_names_whole(desk_home: Path) -> None:
    shown = runner.invoke(app, ["status", "--home", str(desk_home), "--wide"])
    assert shown.exit_code == 0, shown.output
    assert "…" not in shown.stdout
    with Ledger.for_home(desk_home) as ledger:
        for d in ledger.state.deployments.values():
            assert f"{d.name} v{d.version}" in shown.stdout
            assert d.id in shown.stdout


def test_demo_when_fresh_with_a_bad_until_then_exit_2_and_the_home_kept(tmp_path: Path) -> None:
    kept = tmp_path / "h" / "demo" / "seed-7" / "ledger.sqlite"
    kept.parent.mkdir(parents=True)
    kept.write_text("recorded")
    result = runner.invoke(app, ["demo", "--fresh", "--until", "2024-09-01", "--home", str(tmp_path / "h")])
    assert result.exit_code == 2, result.output
    assert "expected a time after the demo's end" in result.stderr
    assert kept.read_text() == "recorded"
