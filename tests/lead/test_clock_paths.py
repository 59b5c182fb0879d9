"""The loop on a clock that is not a replay clock: it only acts on bars that have closed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from execdesk.clock import ReplayClock
from execdesk.domain.events import Event
from execdesk.lead.config import load_desk_config
from execdesk.lead.desk import run_desk
from execdesk.store.ledger import Ledger
from tests.lead.test_desk import _trading_events


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
