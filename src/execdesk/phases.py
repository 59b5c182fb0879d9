"""What long work is doing now, for whoever shows it: a command calls :func:`phase` as it enters each step (a
backtest, charts, a review); the CLI shows the step (a spinner with its name in a terminal, one line a step with
its time otherwise); with nobody listening it costs a lookup. Nothing the desk decides depends on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_listener: ContextVar[Callable[[str], None] | None] = ContextVar("execdesk_phase_listener", default=None)


def phase(name: str) -> None:
    """The work now enters the step ``name`` (a few words: "backtesting over the validation period")."""
    listener = _listener.get()
    if listener is not None:
        listener(name)


@contextmanager
def listening(listener: Callable[[str], None]) -> Iterator[None]:
    """Within this block, every :func:`phase` goes to ``listener``."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
