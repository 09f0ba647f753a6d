"""The one retry policy (job/retry.py), on a fake clock: what storage, the worker's chief
connection and the Kubernetes calls all rely on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from job import retry
from job.retry import Backoff


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def flaky(failures: int, error: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return calls, fn


def test_transient_errors_are_retried_until_the_call_works() -> None:
    t = FakeTime()
    calls, fn = flaky(3, ConnectionError("refused"))
    result = retry.call(fn, Backoff(seconds=60, jitter=0.0), lambda e: True, sleep=t.sleep, clock=t.clock)
    assert result == "done"
    assert len(calls) == 4
    assert t.waits == [0.5, 1.0, 2.0], "exponential backoff from base_seconds"


def test_a_final_error_is_raised_at_once() -> None:
    t = FakeTime()
    calls, fn = flaky(5, PermissionError("denied"))
    with pytest.raises(PermissionError):
        retry.call(fn, Backoff(), lambda e: not isinstance(e, PermissionError), sleep=t.sleep, clock=t.clock)
    assert len(calls) == 1 and t.waits == []


def test_the_budget_bounds_the_time_spent_and_the_last_error_is_kept() -> None:
    t = FakeTime()
    calls, fn = flaky(1000, TimeoutError("slow"))
    with pytest.raises(retry.GaveUp) as gave_up:
        retry.call(fn, Backoff(seconds=60), lambda e: True, sleep=t.sleep, clock=t.clock)
    assert t.now <= 60.0, "no retry starts after the budget"
    assert max(t.waits) <= 16.0, "no single wait beyond max_delay_seconds"
    assert isinstance(gave_up.value.error, TimeoutError)
    assert gave_up.value.attempts == len(calls)
    assert 7 <= len(calls) <= 12, "about nine attempts over a minute"


def test_an_attempt_cap_bounds_the_count() -> None:
    t = FakeTime()
    calls, fn = flaky(10, ConnectionError("reset"))
    policy = Backoff(base_seconds=0.5, jitter=0.0, attempts=4)
    with pytest.raises(retry.GaveUp):
        retry.call(fn, policy, lambda e: True, sleep=t.sleep, clock=t.clock)
    assert len(calls) == 4
    assert t.waits == [0.5, 1.0, 2.0]


def test_a_zero_budget_tries_once() -> None:
    t = FakeTime()
    calls, fn = flaky(1, ConnectionError("refused"))
    with pytest.raises(retry.GaveUp):
        retry.call(fn, Backoff(seconds=0), lambda e: True, sleep=t.sleep, clock=t.clock)
    assert len(calls) == 1


def test_every_wait_is_announced_and_every_attempt_prepared() -> None:
    t = FakeTime()
    announced: list[float] = []
    prepared: list[int] = []
    _, fn = flaky(2, ConnectionError("refused"))
    retry.call(
        fn,
        Backoff(jitter=0.0),
        lambda e: True,
        on_retry=lambda err, delay: announced.append(delay),
        before=lambda: prepared.append(1),
        sleep=t.sleep,
        clock=t.clock,
    )
    assert announced == t.waits == [0.5, 1.0]
    assert len(prepared) == 3
