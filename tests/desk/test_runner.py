"""The desk run end to end on small generated markets: determinism, resume, ledger invariants."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from execdesk.desk.assembly import build_market
from execdesk.desk.drill import differences
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import EventKind
from execdesk.errors import InvalidInput, SpecError
from execdesk.store.ledger import Ledger
from execdesk.store.projections import all_projection_rows
from execdesk.strategy import load_bundle
from tests.conftest import BUNDLES, small_desk
from tests.kit import replay_fills

# run bookkeeping, and the config (whose end date is what an extended run changes)
RUN_KINDS = {EventKind.RUN_STARTED.value, EventKind.RUN_PROGRESS.value, EventKind.RUN_COMPLETED.value,
             EventKind.DESK_CONFIGURED.value, EventKind.RECONCILED.value}


RUN_END_MESSAGES = ("portfolio_status", "live_feedback", "team_performance")


def _run(path: Path, home: Path, **kw: object):  # type: ignore[no-untyped-def]
    return run_desk(load_desk_config(path), home, **kw)  # type: ignore[arg-type]


def _trading_events(home: Path) -> list[str]:
    """Event contents that are decisions and trades (not run bookkeeping), in order."""
    with Ledger.for_home(home) as ledger:
        # (each run ends with reports: the portfolio's status to the Orchestrator, live feedback to Validation,
        # the team's performance to HR — bookkeeping of the run, like its completion)
        return [c for _seq, c, _h in ledger.event_contents() if c.split("|")[1] not in RUN_KINDS
                and not any(f'"kind":"{kind}"' in c for kind in RUN_END_MESSAGES)]


def test_run_when_same_seed_twice_then_ledgers_identical_byte_for_byte(write_config: Callable[..., Path],
                                                                       tmp_path: Path) -> None:
    # Arrange
    config = write_config()
    # Act
    _run(config, tmp_path / "a")
    _run(config, tmp_path / "b")
    # Assert: every event's content and hash (the chain covers all before it) is the same
    with Ledger.for_home(tmp_path / "a") as a, Ledger.for_home(tmp_path / "b") as b:
        contents_a, contents_b = a.event_contents(), b.event_contents()
    assert len(contents_a) > 50
    assert contents_a == contents_b


def test_run_when_seeds_differ_then_ledgers_differ(write_config: Callable[..., Path], tmp_path: Path) -> None:
    _run(write_config(), tmp_path / "a")
    _run(write_config(desk__seed=4), tmp_path / "b")
    assert _trading_events(tmp_path / "a") != _trading_events(tmp_path / "b")


def test_run_when_finished_then_projections_equal_the_fold_of_the_events(write_config: Callable[..., Path],
                                                                          tmp_path: Path) -> None:
    _run(write_config(), tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        assert ledger.read_projections() == all_projection_rows(ledger.rebuild_state())
        assert ledger.verify_chain() is None
        assert ledger.state.fills, "the run should have traded"


def test_run_when_finished_then_positions_equal_the_sum_of_fills_and_cash_agrees(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    path = write_config()
    summary = _run(path, tmp_path)
    config = load_desk_config(path)
    market = build_market(config, [load_bundle(s.bundle) for s in config.strategies])
    with Ledger.for_home(tmp_path) as ledger:
        state = ledger.state
        positions, cash = replay_fills(state, Decimal(50_000))
        for key, pos in state.positions.items():
            assert pos.qty == positions[key]
        assert state.cash() == cash
        # equity = cash + positions at the last closes, as the summary reports it
        marked = sum(float(p.qty) * float(market.pairs[p.pair].close[-1]) for p in state.open_positions())
        assert summary.equity == pytest.approx(float(cash) + marked, rel=1e-9)


def test_run_when_period_extended_then_carries_on_to_the_same_result_as_one_run(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: one home runs to 2024-03-25, then the same desk to 2024-04-15; another runs it in one go
    first = write_config(market__end="2024-03-25T00:00:00Z")
    full = write_config()
    # Act
    _run(first, tmp_path / "split")
    resumed = _run(full, tmp_path / "split")
    whole = _run(full, tmp_path / "whole")
    # Assert
    assert not resumed.already_complete
    assert _trading_events(tmp_path / "split") == _trading_events(tmp_path / "whole")
    assert resumed.equity == pytest.approx(whole.equity)


def test_run_when_run_again_on_a_complete_home_then_nothing_new_is_recorded(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    _run(config, tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        before = ledger.state.last_seq
    again = _run(config, tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        assert ledger.state.last_seq == before
    assert again.already_complete


@pytest.mark.parametrize("stop_at", [97, 401, 777])
def test_run_when_interrupted_mid_replay_then_rerun_resumes_to_the_same_ledger(
        write_config: Callable[..., Path], tmp_path: Path, stop_at: int) -> None:
    # Arrange: the progress callback raises, as a crash would stop the process mid-replay
    config = write_config()

    def crash(done: int, total: int) -> None:
        if done >= stop_at:
            raise KeyboardInterrupt

    # Act
    with pytest.raises(KeyboardInterrupt):
        _run(config, tmp_path / "crashed", progress=crash)
    _run(config, tmp_path / "crashed")
    _run(config, tmp_path / "clean")
    # Assert: the whole record — every event but the restart's own, every alert line, every message — as if the
    # desk had never stopped
    assert _trading_events(tmp_path / "crashed") == _trading_events(tmp_path / "clean")
    assert differences(tmp_path / "clean", tmp_path / "crashed") == []
    with Ledger.for_home(tmp_path / "crashed") as ledger:
        assert ledger.read_projections() == all_projection_rows(ledger.rebuild_state())


def test_run_when_home_holds_another_desk_then_invalid_input_names_the_difference(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _run(write_config(), tmp_path)
    with pytest.raises(InvalidInput, match=r"desk\.seed"):
        _run(write_config(desk__seed=9), tmp_path)


def test_run_when_nothing_may_open_then_entries_are_denied_with_the_rule(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # a free-cash cap of nothing: every entry is sized to zero and denied, with its numbers recorded
    config = write_config(risk={"max_order_notional": 0.01})
    _run(config, tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        denied = list(ledger.events({EventKind.ORDER_DENIED}))
        assert denied
        verdict = denied[0].payload["verdict"]
        assert verdict["approved"] is False
        assert verdict["rule"] == "max_order_notional"
        assert "notional" in verdict["numbers"]
        assert not ledger.state.fills


def test_config_when_allocations_exceed_one_then_spec_error_names_strategies(
        write_config: Callable[..., Path]) -> None:
    path = write_config(strategies=[
        {"bundle": "a.yaml", "allocation": 0.7}, {"bundle": "b.yaml", "allocation": 0.6}])
    with pytest.raises(SpecError, match=r"allocations sum to 1\.3"):
        load_desk_config(path)


def test_run_when_market_is_a_freqtrade_datadir_then_same_trades_as_the_generated_candles_it_holds(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: write the generated market to Freqtrade files, then run the same desk from them
    from execdesk.data.datadir import write_pair

    generated = write_config()
    config = load_desk_config(generated)
    market = build_market(config, [load_bundle(s.bundle) for s in config.strategies])
    datadir = tmp_path / "datadir"
    for pair, track in market.pairs.items():
        write_pair(datadir, pair, "1h", track.frame)
    from_files = write_config(market={**small_desk(tmp_path)["market"], "source": "datadir", "datadir": str(datadir)})
    # Act
    _run(generated, tmp_path / "generated")
    _run(from_files, tmp_path / "files")
    # Assert
    assert _trading_events(tmp_path / "generated") == _trading_events(tmp_path / "files")


def test_run_when_strategy_timeframe_finer_than_the_market_then_invalid_input_and_ledger_untouched(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config(market__timeframe="4h")  # the example strategies trade 1h and 4h candles
    with pytest.raises(InvalidInput, match="not a whole multiple"):
        _run(config, tmp_path)
    assert not (tmp_path / "ledger.sqlite").exists()


def test_run_when_a_bundle_turns_invalid_then_refused_and_the_ledger_keeps_everything(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: a finished run, then one of its bundles is replaced by a broken file
    bundle = tmp_path / "trend.yaml"
    bundle.write_text((BUNDLES / "trend_ema_cross.yaml").read_text())
    config = write_config(strategies=[{"bundle": str(bundle), "allocation": 0.5}])
    _run(config, tmp_path / "home")
    before = _trading_events(tmp_path / "home")
    bundle.write_text("id: STR-001\nstoploss: 0.5\n")
    # Act / Assert
    with pytest.raises(SpecError, match="stoploss"):
        _run(config, tmp_path / "home")
    assert _trading_events(tmp_path / "home") == before
    with Ledger.for_home(tmp_path / "home") as ledger:
        assert ledger.verify_chain() is None


def test_run_when_exits_are_sent_then_each_carries_the_backtesters_fill_price(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    _run(write_config(), tmp_path)
    with Ledger.for_home(tmp_path) as ledger:
        exits = [e.payload for e in ledger.events({EventKind.ORDER_SUBMITTED}) if e.payload["reason"] != "entry_signal"]
    assert exits
    assert all(Decimal(payload["backtest_price"]) > 0 for payload in exits)


def test_run_when_an_alert_sink_fails_then_each_failure_is_recorded_and_status_shows_them(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: an alerts file that cannot be written (a folder stands where the file should be)
    from typer.testing import CliRunner

    from execdesk.cli import app

    blocked = tmp_path / "alerts-here-is-a-folder.jsonl"
    blocked.mkdir()
    config = write_config(alerts={"sinks": [{"kind": "jsonl", "path": str(blocked)}]})
    # Act
    run_desk(load_desk_config(config), tmp_path / "h")
    status = CliRunner().invoke(app, ["status", "--home", str(tmp_path / "h"), "--json"])
    # Assert: one alert.delivery_failed per alert the sink could not take, with the sink's (redacted) error
    with Ledger.for_home(tmp_path / "h") as ledger:
        raised = list(ledger.events({EventKind.ALERT_RAISED}))
        failed = [e.payload for e in ledger.events({EventKind.ALERT_DELIVERY_FAILED})]
    assert raised
    assert len(failed) == len(raised)
    assert failed[0]["sink"].startswith("jsonl")
    assert failed[0]["error"]
    data = json.loads(status.stdout)
    assert data["alert_delivery_failures"]["count"] == len(failed)
