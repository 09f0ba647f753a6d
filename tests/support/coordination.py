"""The coordinator driven as a worker drives it, on a clock the test moves."""

from __future__ import annotations

from job.kt_adapter import Trial, trial_from_proto
from job.search.coordinator import Coordinator


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def received(trial: Trial) -> Trial:
    """The worker's own copy of a trial, as it arrives over gRPC."""
    return trial_from_proto(trial.to_proto())


def ask(coordinator: Coordinator, tuner_id: str) -> Trial:
    return received(coordinator.create_trial(tuner_id))
