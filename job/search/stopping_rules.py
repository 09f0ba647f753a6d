"""When a search stops before maxTrials: a wall-clock budget (`tuner.stopAfterSeconds`), or a best
that has stopped improving (`tuner.stopWithoutImprovement`).

`StoppingRules` is mixed into every oracle (job/search/oracles.py): before the algorithm picks the
next trial, it checks the rules; once one holds, no new trial starts (the oracle answers STOPPED,
as when maxTrials is reached), the trials running finish and are recorded, and `stopped_early`
says why (search.json's `stoppedEarly`, the chief's log). The search's start is part of the oracle's
state, so a restarted chief counts the seconds from the first start.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from job.kt_adapter import Oracle, Status
from job.spec.objective import Direction, is_better
from job.spec.tuner import NoImprovement

log = logging.getLogger(__name__)


@dataclass
class _Window:
    """The last `size` completed trials' scores, and the best of those before them, kept as trials
    end, so a check costs the trials ended since the last one, not the whole search."""

    size: int
    direction: Direction
    counted: int = 0  # entries of the oracle's end order read so far
    recent: deque[float] = field(default_factory=deque)
    best_before: float | None = None

    def add(self, score: float) -> None:
        self.recent.append(score)
        if len(self.recent) > self.size:
            left = self.recent.popleft()
            if self.best_before is None or is_better(left, self.best_before, self.direction):
                self.best_before = left


class StoppingRules(Oracle):
    """Stops a search when its budget is spent or its best stops improving (see the module)."""

    stop_after_seconds: float | None = None
    without_improvement: NoImprovement | None = None
    clock: Callable[[], float] = time.time
    started: float | None = None
    stopped_early: str | None = None
    _window: _Window | None = None  # derived from the trials: rebuilt after a restore

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if self.started is None:
            self.started = self.clock()
        reason = self.stopped_early or self._spent()
        if reason is not None:
            if self.stopped_early is None:
                log.info("search stopping: %s; the trials running finish", reason)
            self.stopped_early = reason
            return {"status": Status.STOPPED, "values": None}
        return super().populate_space(trial_id)

    def _spent(self) -> str | None:
        assert self.started is not None
        elapsed = self.clock() - self.started
        if self.stop_after_seconds is not None and elapsed >= self.stop_after_seconds:
            return f"its budget of {self.stop_after_seconds:g} s is spent (tuner.stopAfterSeconds)"
        rule = self.without_improvement
        if rule is None:
            return None
        direction = self.objective.direction
        window = self._window or _Window(rule.trials, direction)
        for trial_id in self.end_order[window.counted :]:  # only the trials ended since the last ask
            trial = self.trials[trial_id]
            if trial.status == Status.COMPLETED and trial.score is not None:
                window.add(float(trial.score))
        window.counted, self._window = len(self.end_order), window
        if window.best_before is None:
            return None  # no more completed trials than the window holds
        delta = rule.min_delta if direction == "max" else -rule.min_delta
        if any(is_better(score, window.best_before + delta, direction) for score in window.recent):
            return None
        return (
            f"the best has not improved by {rule.min_delta:g} in the last {rule.trials} completed trials "
            "(tuner.stopWithoutImprovement)"
        )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["stopping"] = {"started": self.started, "stoppedEarly": self.stopped_early}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("stopping", {})
        self.started = saved.get("started")
        self.stopped_early = saved.get("stoppedEarly")
        self._window = None
