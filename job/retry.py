"""The one retry policy: exponential backoff with jitter, within a time budget.

Storage operations, the worker's calls to its chief and the chief's Kubernetes API requests all
retry with a `Backoff`; each decides for itself which errors are transient. The n-th retry waits
``min(max_delay_seconds, base_seconds * 2**n)`` scaled by a random factor in
[1 - jitter, 1]; no retry starts later than `seconds` after the first attempt, and at most
`attempts` attempts are made when that is set.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How long, and how often, transient errors are retried.

    The defaults give about nine attempts over a minute (waits of about 0.5, 1, 2, 4, 8, 16, 16,
    ... seconds). ``Backoff(seconds=0)`` tries once.
    """

    seconds: float = 60.0
    base_seconds: float = 0.5
    max_delay_seconds: float = 16.0
    jitter: float = 0.5
    attempts: int | None = None

    def delay(self, retry: int, elapsed: float) -> float | None:
        """Seconds to wait before retry number `retry` (0 for the first), or None: give up."""
        remaining = self.seconds - elapsed
        if remaining <= 0 or (self.attempts is not None and retry + 1 >= self.attempts):
            return None
        backoff = min(self.max_delay_seconds, self.base_seconds * 2**retry)
        return min(remaining, backoff * random.uniform(1.0 - self.jitter, 1.0))


class GaveUp(Exception):
    """Raised by `call` when the budget is spent; `error` is the last transient error."""

    def __init__(self, error: BaseException, attempts: int, elapsed: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts
        self.elapsed = elapsed


def call(
    fn: Callable[[], T],
    policy: Backoff,
    transient: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, float], None] = lambda err, delay: None,
    before: Callable[[], None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run fn until it returns, retrying errors that `transient` accepts within the policy.

    A non-transient error propagates at once; when the budget is spent, `GaveUp` carries the last
    error (raised from it). `before` runs ahead of every attempt; `on_retry(err, delay)` before
    every wait.
    """
    started = clock()
    attempt = 0
    while True:
        before()
        try:
            return fn()
        except Exception as err:
            if not transient(err):
                raise
            elapsed = clock() - started
            delay = policy.delay(attempt, elapsed)
            attempt += 1
            if delay is None:
                raise GaveUp(err, attempt, elapsed) from err
            on_retry(err, delay)
            sleep(delay)
