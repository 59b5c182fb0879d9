"""Tests of execdesk.retry.RetryPolicy: backoff bounds, Retry-After, only temporary errors retried."""

from __future__ import annotations

import pytest

from execdesk.errors import InvalidInput, TemporaryError
from execdesk.retry import RetryPolicy
from execdesk.venues.base import VenueUnavailable


class Flaky:
    """Fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_call_when_temporary_errors_then_retried_until_it_answers_with_growing_capped_delays() -> None:
    # Arrange: base 0.2 s, cap 1 s: caps per retry 0.2, 0.4, 0.8, 1.0 (full jitter draws within each)
    waits: list[float] = []
    policy = RetryPolicy(attempts=5, base_delay_s=0.2, max_delay_s=1.0, seed=3, sleep=waits.append)
    fn = Flaky(4, TemporaryError("timeout"))

    # Act
    result = policy.call(fn)

    # Assert
    assert (result, fn.calls, policy.retries) == ("ok", 5, 4)
    assert all(0 <= w <= cap for w, cap in zip(waits, [0.2, 0.4, 0.8, 1.0], strict=True))
    assert policy.slept_s == pytest.approx(sum(waits))


def test_call_when_attempts_run_out_then_the_last_temporary_error_is_raised() -> None:
    policy = RetryPolicy(attempts=3, sleep=lambda _s: None)
    fn = Flaky(10, VenueUnavailable("x", "down"))
    with pytest.raises(VenueUnavailable, match="down"):
        policy.call(fn)
    assert fn.calls == 3


def test_call_when_error_is_not_temporary_then_raised_at_once() -> None:
    policy = RetryPolicy(sleep=lambda _s: pytest.fail("no sleep for a permanent error"))
    fn = Flaky(1, InvalidInput("bad order"))
    with pytest.raises(InvalidInput):
        policy.call(fn)
    assert fn.calls == 1


def test_call_when_venue_says_retry_after_then_waits_at_least_that_long() -> None:
    waits: list[float] = []
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=0.01, sleep=waits.append)
    policy.call(Flaky(2, VenueUnavailable("x", "429", retry_after=2.5)))
    assert waits == [2.5, 2.5]
    assert (policy.retries, policy.rate_limited) == (2, 2)  # the team's capacity figures count them


def test_call_when_timeouts_without_retry_after_then_retries_counted_but_no_rate_limit() -> None:
    policy = RetryPolicy(base_delay_s=0.0, max_delay_s=0.0, sleep=lambda _s: None)
    policy.call(Flaky(3, VenueUnavailable("x", "timeout")))
    assert (policy.retries, policy.rate_limited) == (3, 0)


def test_delay_when_same_seed_then_same_schedule_and_other_seed_differs() -> None:
    def schedule(seed: int) -> list[float]:
        policy = RetryPolicy(seed=seed)
        return [policy.delay(i) for i in range(6)]

    assert schedule(1) == schedule(1)
    assert schedule(1) != schedule(2)


def test_policy_when_no_attempt_then_value_error() -> None:
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        RetryPolicy(attempts=0)
