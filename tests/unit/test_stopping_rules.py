"""A search that stops before maxTrials (job/search/stopping_rules.py): a spent wall-clock budget
or a best that stopped improving ends it like an exhausted oracle, with the reason in search.json;
a restarted chief counts the budget from the first start."""

from __future__ import annotations

import json
from typing import Any

import pytest

from job.kt_adapter import Status
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.search.snapshot import search_status
from job.spec import SpecError, validate_spec
from job.spec.models import JobSpec
from job.training.space import declared_space
from tests.support.coordination import FakeClock, ask
from tests.support.specs import BASE_SPEC, merge


def stopping_job(algorithm: str = "random", **tuner: Any) -> JobSpec:
    return validate_spec(
        merge(BASE_SPEC, {"spec": {"tuner": {"algorithm": algorithm, "maxTrials": 30, **tuner}}})
    )


def coordinator(job: JobSpec, clock: FakeClock) -> Coordinator:
    c = Coordinator(
        make_oracle(job, declared_space(job)), lease_seconds=3600.0, max_worker_losses=3, clock=clock
    )
    c.oracle.clock = clock
    return c


def scored(c: Coordinator, value: float) -> None:
    trial = ask(c, "w0")
    c.update_trial("w0", trial.trial_id, {"val_accuracy": value}, step=0)
    trial.metrics.update("val_accuracy", value, step=0)
    trial.status = Status.COMPLETED
    assert c.end_trial("w0", trial)


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_a_best_that_stopped_improving_ends_the_search(algorithm: str) -> None:
    job = stopping_job(algorithm, stopWithoutImprovement={"trials": 3, "minDelta": 0.01})
    c = coordinator(job, FakeClock())
    for value in (0.5, 0.8, 0.805, 0.7, 0.79):  # none of the last three beats 0.8 by 0.01
        scored(c, value)
    assert c.create_trial("w0").status == Status.STOPPED
    said = search_status(c, job, "running")["stoppedEarly"]
    assert said == (
        "the best has not improved by 0.01 in the last 3 completed trials (tuner.stopWithoutImprovement)"
    )


def test_an_improvement_within_the_window_keeps_it_going() -> None:
    job = stopping_job(stopWithoutImprovement={"trials": 3, "minDelta": 0.01})
    c = coordinator(job, FakeClock())
    for value in (0.5, 0.8, 0.805, 0.82, 0.79):  # 0.82 beats 0.8 by more than 0.01
        scored(c, value)
    assert c.create_trial("w0").status == Status.RUNNING
    assert search_status(c, job, "running")["stoppedEarly"] is None


def test_a_spent_budget_ends_the_search_and_a_restarted_chief_counts_from_the_first_start() -> None:
    job = stopping_job(stopAfterSeconds=60)
    clock = FakeClock(now=1000.0)
    c = coordinator(job, clock)
    scored(c, 0.5)
    clock.advance(30)
    scored(c, 0.6)
    snapshot = json.loads(c.snapshot_text())
    clock.advance(31)  # 61 s since the first trial was asked for
    restored = coordinator(job, clock)
    restored.restore(snapshot)
    assert restored.create_trial("w0").status == Status.STOPPED
    assert "budget of 60 s is spent" in search_status(restored, job, "running")["stoppedEarly"]


@pytest.mark.parametrize(
    ("tuner", "field"),
    [
        ({"stopWithoutImprovement": {"trials": 0}}, "spec.tuner.stopWithoutImprovement.trials"),
        (
            {"stopWithoutImprovement": {"trials": 3, "minDelta": -0.1}},
            "spec.tuner.stopWithoutImprovement.minDelta",
        ),
        ({"stopAfterSeconds": 0}, "spec.tuner.stopAfterSeconds"),
    ],
    ids=["no-trials", "negative-delta", "no-seconds"],
)
def test_a_rule_that_cannot_hold_is_refused_naming_the_field(tuner: dict, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        stopping_job(**tuner)
    assert field in {issue.path for issue in caught.value.issues}
