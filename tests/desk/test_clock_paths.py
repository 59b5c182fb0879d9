"""The loop on a clock that is not a replay clock: it only acts on bars that have closed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from execdesk.clock import ReplayClock
from execdesk.desk.runner import run_desk
from execdesk.desk.settings import load_desk_config
from execdesk.domain.events import Event, EventKind
from execdesk.store.ledger import Ledger
from tests.desk.test_runner import _trading_events


class SteppingClock:
    """A test clock that behaves like a wall clock whose waits pass instantly: time only moves forward
    when the loop waits for it, and the loop must not act on what that time has not reached."""

    def __init__(self) -> None:
        self.t = 0
        self.waits = 0

    def now(self) -> int:
        return self.t

    def wait_until(self, t: int) -> None:
        self.waits += 1
        self.t = max(self.t, t)


def test_loop_when_clock_is_live_then_no_event_is_stamped_after_the_clock_and_result_equals_replay(
        write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange
    config = load_desk_config(write_config())
    clock = SteppingClock()
    original = Ledger.record
    late: list[Event] = []

    def record(self: Ledger, event: Event) -> Event:
        if clock.t and event.time > clock.t:  # recorded before its time came: a look into the future
            late.append(event)
        return original(self, event)

    monkeypatch.setattr(Ledger, "record", record)
    # Act
    run_desk(config, tmp_path / "live", clock=clock)
    monkeypatch.setattr(Ledger, "record", original)
    run_desk(config, tmp_path / "replay", clock=ReplayClock())
    # Assert
    assert late == []
    assert clock.waits > 100, "the live path waits for bars to close"
    assert _trading_events(tmp_path / "live") == _trading_events(tmp_path / "replay")


class LateClock(SteppingClock):
    """A wall clock that has run on past the data: the feed's candles stop a day before 'now'."""

    def __init__(self, now: int) -> None:
        super().__init__()
        self.t = now


def test_loop_when_clock_runs_past_the_last_candle_then_stale_data_is_a_critical_alert(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Arrange: the market ends 2024-04-15 00:00 (1h bars); the clock says 2024-04-16 00:00
    config = load_desk_config(write_config())
    now = 1_713_225_600

    # Act
    run_desk(config, tmp_path / "late", clock=LateClock(now))

    # Assert: the last candle opened 2024-04-14 23:00; the next one closes at 2024-04-15 01:00 and is 23 h late
    with Ledger.for_home(tmp_path / "late") as ledger:
        stale = [e for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "stale_data"]
        assert len(stale) == 1
        assert stale[0].payload["level"] == "CRITICAL"
        assert stale[0].payload["evidence"]["overdue_s"] == now - (1_713_135_600 + 2 * 3600)


def test_loop_when_clock_is_replay_then_no_stale_data_alert(write_config: Callable[..., Path], tmp_path: Path) -> None:
    run_desk(load_desk_config(write_config()), tmp_path / "replay", clock=ReplayClock())
    with Ledger.for_home(tmp_path / "replay") as ledger:
        assert not [e for e in ledger.events({EventKind.ALERT_RAISED}) if e.payload["code"] == "stale_data"]


def test_loop_when_clock_is_live_then_quiet_bars_are_on_disk_as_they_close(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    import json
    import sqlite3

    home = tmp_path / "live"
    seen: list[tuple[int, int | None]] = []

    class Watching(SteppingClock):
        """Reads, as another process would, the last bar the desk has on disk at every 25th wait."""

        def wait_until(self, t: int) -> None:
            if self.waits % 25 == 24 and (home / "ledger.sqlite").is_file():
                with sqlite3.connect(home / "ledger.sqlite") as db:
                    row = db.execute("SELECT payload FROM events WHERE kind = 'run.progress' "
                                     "ORDER BY seq DESC LIMIT 1").fetchone()
                seen.append((self.t, None if row is None else int(json.loads(row[0])["bar_time"])))
            super().wait_until(t)

    run_desk(load_desk_config(write_config()), home, clock=Watching())

    assert len(seen) > 20
    # from the first bars on, what a reader sees trails the clock by a few bars at most, quiet stretches included
    lags = [now - bar for now, bar in seen[2:] if bar is not None]
    assert len(lags) == len(seen) - 2
    assert max(lags) <= 4 * 3600, max(lags)  # (before: nothing on disk until the run ended — None throughout)
