"""Report folders: performance, live vs backtest (JSON / YAML / Markdown) and PNG dashboards, append-only."""

from __future__ import annotations

import hashlib
import json
import struct
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from execdesk.cli import app
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import Event, EventKind
from execdesk.monitor.dashboard import backtest_path, drift_path
from execdesk.monitor.drift import METRICS
from execdesk.monitor.report import build_report, write_report
from execdesk.store.ledger import Ledger
from tests.conftest import small_desk

D = Decimal
DEP = "dep-1"
DAY = 86_400
T0 = 1_719_792_000  # 2024-07-01
FIELDS = ("metric", "backtest", "live", "drift", "status")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------------------------- a real desk

@pytest.fixture(scope="module")
def desk_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small desk (two example strategies, 45 days of hourly candles) run to completion."""
    root = tmp_path_factory.mktemp("desk")
    config = root / "desk.yaml"
    config.write_text(yaml.safe_dump(small_desk(root)))
    home = root / "home"
    run_desk(load_desk_config(config), home)
    return home


def test_report_when_desk_run_then_comparison_files_and_a_dashboard_per_deployment(desk_home: Path) -> None:
    # Act
    with Ledger.for_home(desk_home) as ledger:
        data, files = write_report(ledger, desk_home)

    # Assert: the five data files and one PNG per deployment, all in one new folder
    folder = files[0].parent
    names = {p.name for p in files}
    deployments = [d["id"] for d in data["deployments"]]
    assert deployments == ["STR-001-v1", "STR-004-v1"]
    assert names == {"report.json", "report.md", "comparison.json", "comparison.yaml", "comparison.md",
                     *(f"dashboard-{d}.png" for d in deployments)}
    assert all(p.parent == folder and p.stat().st_size > 0 for p in files)
    for dep in deployments:
        width, height = png_size(folder / f"dashboard-{dep}.png")
        assert (width, height) == (1200, 900)
    comparison = json.loads((folder / "comparison.json").read_text())
    assert [c["id"] for c in comparison["deployments"]] == deployments
    for c in comparison["deployments"]:
        assert c["verdict"] in ("continue", "review", "pause", "stop")
        assert [r["metric"] for r in c["rows"]] == list(METRICS)
        for row in c["rows"]:
            assert set(FIELDS) <= set(row)
            assert row["status"] in ("ok", "warn", "critical")
        assert c["live_metrics"]["trades"] == next(d["trades"] for d in data["deployments"] if d["id"] == c["id"])
        assert c["baseline"]["returns"] > 0
    assert comparison["portfolio"]["summary"].startswith("2 deployment(s):")
    # the same data three ways: YAML == JSON == report.json's comparison key
    assert yaml.safe_load((folder / "comparison.yaml").read_text()) == comparison
    report = json.loads((folder / "report.json").read_text())
    assert report["comparison"] == comparison
    # the existing keys are still there
    assert {"as_of", "trading_state", "trading_reason", "portfolio", "deployments"} <= set(report)
    assert {"metrics", "execution", "validation", "equity_curve"} <= set(report["deployments"][0])
    md = (folder / "comparison.md").read_text()
    assert all(f"## {d}" in md for d in deployments)
    assert "| metric | backtest | live | drift | status |" in md


def test_report_when_written_twice_then_two_folders_and_the_first_unchanged(desk_home: Path) -> None:
    # Arrange
    with Ledger.for_home(desk_home) as ledger:
        _data, first = write_report(ledger, desk_home)
    folder_1 = first[0].parent
    before = digest(folder_1)

    # Act
    with Ledger.for_home(desk_home) as ledger:
        _data, second = write_report(ledger, desk_home)

    # Assert
    folder_2 = second[0].parent
    assert folder_2 != folder_1
    assert folder_2.parent == folder_1.parent
    assert int(folder_2.name[:4]) > int(folder_1.name[:4])
    assert digest(folder_1) == before, "an earlier report folder was touched"
    assert {p.name for p in second} == set(before)


# ---------------------------------------------------------------------------------------------- a hand-made ledger

VALIDATION = {"period": {"start": "2024-01-01", "end": "2024-06-30"}, "trades": 40, "sharpe": 2.0,
              "max_drawdown": 0.05, "win_rate": 0.5, "profit_factor": 2.0, "avg_trade_duration": "PT6H",
              "slippage_budget_bps": 5.0}
#: the backtest: 40 trades alternating 0% and +2% (mean 1%, sd 1%)
BASELINE = [0.0, 0.02] * 20


def _order_and_fill(led: Ledger, n: int, side: str, price: str, t: int) -> None:
    coid = f"o{n}-{side}"
    led.record(Event(t, EventKind.ORDER_SUBMITTED, {
        "client_order_id": coid, "deployment_id": DEP, "pair": "BTC/USDT", "side": side, "direction": "LONG",
        "type": "MARKET", "qty": D(10), "reason": "entry_signal", "signal_time": t, "ref_price": D(100)}, DEP))
    led.record(Event(t, EventKind.ORDER_FILLED, {
        "client_order_id": coid, "fill_id": f"{coid}-1", "qty": D(10), "price": D(price), "fee": D(0),
        "slippage_bps": "5.00", "latency_s": "0", "liquidity": "taker"}, DEP))


@pytest.fixture
def losing_home(tmp_path: Path) -> Path:
    """A deployment of 10,000 whose 30 live trades (stake 1,000) lose 2% or 3% each, against a backtest that
    made 1% a trade; a snapshot after each day's trade."""
    home = tmp_path / "home"
    led = Ledger.for_home(home)
    led.record(Event(T0, EventKind.DESK_CONFIGURED, {"config": {}, "identity": {}, "quote": "USDT",
                                                     "capital": D(10000)}))
    led.record(Event(T0, EventKind.DEPLOYMENT_CREATED, {
        "deployment_id": DEP, "strategy_id": "S", "name": "s", "version": 1, "bundle_hash": "0", "timeframe": "1h",
        "pairs": ["BTC/USDT"], "allocation": D(1), "capital": D(10000), "validation": VALIDATION}, DEP))
    led.record(Event(T0, EventKind.MONITOR_BASELINE, {"deployment_id": DEP, "returns": BASELINE,
                                                      "source": "test"}, DEP))
    equity = 10_000.0
    for i in range(30):
        t = T0 + i * DAY
        exit_price = "98" if i % 2 == 0 else "97"
        _order_and_fill(led, i, "BUY", "100", t + 3600)
        _order_and_fill(led, i, "SELL", exit_price, t + 4 * 3600)
        equity -= 10 * (100 - float(exit_price))
        led.record(Event(t + DAY - 1, EventKind.EQUITY_SNAPSHOT, {
            "equity": equity, "drawdown": 1 - equity / 10_000,
            "deployments": {DEP: {"equity": equity, "drawdown": 1 - equity / 10_000}}}))
    led.flush()
    led.close()
    return home


def test_comparison_when_live_trades_clearly_worse_then_not_continue_and_return_rules_alarm(
        losing_home: Path) -> None:
    # Act
    with Ledger.for_home(losing_home) as ledger:
        data = build_report(ledger)

    # Assert: 30 trades of -2.5% on average against +1% (z about -3.5 each): Sharpe and Page-Hinkley are
    # critical; 15 x 20 + 15 x 30 = 750 lost from the first snapshot's 9,980 (7.3%) is past the backtest's
    # 5% drawdown: stop
    (c,) = data["comparison"]["deployments"]
    rows = {r["metric"]: r for r in c["rows"]}
    assert c["verdict"] == "stop"
    assert rows["sharpe"]["status"] in ("warn", "critical")
    assert rows["page_hinkley"]["status"] in ("warn", "critical")
    assert rows["page_hinkley"]["drift"] > 15
    # the rule's drawdown is the strategy's, on its compounded trade returns (as the monitor in the loop
    # measures it); the equity drawdown, unrealised swings included, is reported beside it
    assert rows["max_drawdown"]["live"] > 0.5
    assert c["equity_max_drawdown"] == pytest.approx(1 - 9_250 / 9_980)
    assert rows["max_drawdown"]["status"] == "critical"
    assert rows["avg_trade_duration"]["backtest"] == 360  # "PT6H" as the ledger holds it, read back
    assert c["live_metrics"]["trades"] == 30
    assert c["live_metrics"]["win_rate"] == 0.0
    assert data["comparison"]["portfolio"]["worst_verdict"] == "stop"
    assert data["comparison"]["portfolio"]["attention"] == [DEP]


def test_report_cli_when_json_then_comparison_and_files_included(losing_home: Path) -> None:
    # Act
    result = CliRunner().invoke(app, ["report", "--home", str(losing_home), "--json"])

    # Assert
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["comparison"]["deployments"][0]["verdict"] == "stop"
    assert {r["metric"] for r in data["comparison"]["deployments"][0]["rows"]} == set(METRICS)
    names = {Path(p).name for p in data["files"]}
    assert {"comparison.json", "comparison.yaml", "comparison.md", f"dashboard-{DEP}.png"} <= names
    assert all(Path(p).is_file() for p in data["files"])


def test_report_cli_when_human_then_rule_table_verdict_and_files(losing_home: Path) -> None:
    result = CliRunner().invoke(app, ["report", "--home", str(losing_home)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "verdict: stop" in result.stdout
    assert "Page-Hinkley (live: mean z of the trade returns)" in result.stdout  # each row says what it measures
    assert "SR* " in result.stdout  # PSR: its benchmark and a probability, not the Sharpe figures again
    assert "critical" in result.stdout
    assert "comparison.yaml" in result.stdout
    assert f"dashboard-{DEP}.png" in result.stdout


# ---------------------------------------------------------------------------------------------- dashboard series

def test_backtest_path_when_spread_by_time_then_trades_at_the_backtest_pace_and_cut_at_the_end() -> None:
    import pandas as pd

    start = pd.Timestamp("2024-07-01", tz="UTC")
    # 4 trades over a 4-day backtest: one a day; the live period is 2.5 days, so two trades fit
    path = backtest_path([0.1, -0.1, 0.1, 0.1], start, start + pd.Timedelta(hours=60), 4.0, fraction=0.5)
    assert list(path.index) == [start, start + pd.Timedelta(days=1), start + pd.Timedelta(days=2)]
    assert path.to_numpy() == pytest.approx([1.0, 1.05, 1.05 * 0.95])


def test_drift_path_when_trades_lose_then_page_hinkley_rises_trade_by_trade() -> None:
    import pandas as pd

    trades = pd.DataFrame({"profit_ratio": [-0.02] * 5,
                           "close_date": pd.date_range("2024-07-01", periods=5, freq="D", tz="UTC")})
    ph = drift_path(trades, BASELINE)
    assert ph is not None
    # z = (-0.02 - 0.01) / 0.01 = -3 each: PH grows by 3 - 0.5 = 2.5 a trade
    assert ph.to_numpy() == pytest.approx(np.arange(1, 6) * 2.5)
    assert drift_path(trades, None) is None


# ------------------------------------------------------------------ the run's report: recorded, then written, once
def test_run_report_when_asked_again_or_its_folder_lost_then_the_same_report_once(tmp_path: Path) -> None:
    import os

    from execdesk.monitor.report import run_report

    home = tmp_path / "h"
    path = tmp_path / "desk.yaml"
    path.write_text(yaml.safe_dump(small_desk(tmp_path)))
    run_desk(load_desk_config(path), home)
    stale = home / "reports" / f".report-{2**22 + 7}-1.tmp"  # a writer killed mid-report (no such process)
    stale.mkdir(parents=True)
    with Ledger.for_home(home) as ledger:
        first = run_report(ledger, home)
        again = run_report(ledger, home)
        folder = first[0].parent
        original = {p.name: p.read_bytes() for p in first}
        # a crash after the event was committed, before the folder was renamed into place
        for p in first:
            p.unlink()
        folder.rmdir()
        rewritten = run_report(ledger, home)
        written = [e.payload for e in ledger.events({EventKind.REPORT_WRITTEN})]
    assert folder.name.startswith("0001-")
    assert again == first
    assert rewritten == first
    assert {p.name: p.read_bytes() for p in rewritten} == original
    assert written == [{"number": 1, "of": "run"}]
    assert not stale.exists()
    assert sorted(os.listdir(home / "reports")) == [folder.name]


def test_write_report_when_it_fails_midway_then_no_folder_is_left(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from execdesk.monitor import report

    home = tmp_path / "h"
    path = tmp_path / "desk.yaml"
    path.write_text(yaml.safe_dump(small_desk(tmp_path)))
    run_desk(load_desk_config(path), home)

    def broken(*_args: object) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(report, "write_dashboard", broken)
    with Ledger.for_home(home) as ledger, pytest.raises(OSError, match="disk full"):
        write_report(ledger, home)
    assert list((home / "reports").iterdir()) == []
