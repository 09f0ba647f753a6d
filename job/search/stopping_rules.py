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
from collections.abc import Callable
from typing import Any

from job.kt_adapter import Oracle, Status
from job.spec.objective import is_better
from job.spec.tuner import NoImprovement

log = logging.getLogger(__name__)


class StoppingRules(Oracle):
    """Stops a search when its budget is spent or its best stops improving (see the module)."""

    stop_after_seconds: float | None = None
    without_improvement: NoImprovement | None = None
    clock: Callable[[], float] = time.time
    started: float | None = None
    stopped_early: str | None = None

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
        scores = [
            float(t.score)
            for t in (self.trials[i] for i in self.end_order)
            if t.status == Status.COMPLETED and t.score is not None
        ]
        if len(scores) <= rule.trials:
            return None
        direction = self.objective.direction
        before, recent = scores[: -rule.trials], scores[-rule.trials :]
        best_before = max(before) if direction == "max" else min(before)
        target = best_before + rule.min_delta if direction == "max" else best_before - rule.min_delta
        if any(is_better(score, target, direction) for score in recent):
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
