"""Retries for temporary venue errors: exponential backoff with full jitter, and nothing else retried.

``delay(attempt) = uniform(0, min(max_delay, base_delay x 2^attempt))`` ("full jitter": retries from
many clients do not arrive in waves); a venue that says when to come back (``retry_after``, e.g. an
HTTP 429's Retry-After) is waited for at least that long. Only
:class:`~execdesk.errors.TemporaryError` is retried: a rejection or a bug surfaces at once.
The jitter is drawn from a seeded generator and the sleep is injectable, so tests run the real
schedule without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from execdesk.errors import TemporaryError

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """attempts [5] in all (the first call included); base_delay_s [0.2]; max_delay_s [5.0]."""

    attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    seed: int = 0
    sleep: Callable[[float], None] = time.sleep
    retries: int = 0  # how many retries were made (all calls): for the team's capacity figures
    slept_s: float = 0.0
    rate_limited: int = 0  # retries the venue asked to wait for (HTTP 429 / Retry-After)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, not {self.attempts}")
        self._rng = random.Random(self.seed)  # noqa: S311 — jitter, not cryptography

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait before retry number ``attempt`` (0-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2.0 ** attempt)
        wait = self._rng.uniform(0.0, cap)
        return max(wait, retry_after) if retry_after is not None else wait

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on :class:`TemporaryError` up to ``attempts`` times; the last error is raised."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except TemporaryError as exc:
                if attempt + 1 >= self.attempts:
                    raise
                retry_after = getattr(exc, "retry_after", None)
                wait = self.delay(attempt, retry_after)
                self.retries += 1
                self.rate_limited += retry_after is not None  # the venue said when to come back: a rate limit
                self.slept_s += wait
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover
