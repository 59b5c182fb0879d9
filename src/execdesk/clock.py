"""Clocks. Nothing in the desk reads the system time directly: a clock is passed in.

:class:`ReplayClock` is moved by the loop to each bar's time (replays are deterministic);
:class:`WallClock` is the real time, and waiting on it sleeps.
"""

from __future__ import annotations

import time as _time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Epoch seconds."""
        ...

    def wait_until(self, t: int) -> None:
        """Return once the clock reads ``t`` or later."""
        ...


class ReplayClock:
    """A clock the loop sets: ``wait_until`` jumps to the time (never backwards)."""

    def __init__(self, start: int = 0) -> None:
        self._now = start

    def now(self) -> int:
        return self._now

    def wait_until(self, t: int) -> None:
        self._now = max(self._now, t)


class WallClock:
    """The system's time; ``wait_until`` sleeps until then."""

    def __init__(self, sleep_step: float = 1.0) -> None:
        self.sleep_step = sleep_step

    def now(self) -> int:
        return int(_time.time())

    def wait_until(self, t: int) -> None:
        while (left := t - _time.time()) > 0:
            _time.sleep(min(left, self.sleep_step))
