"""Optuna's samplers as oracles (job/search/samplers.py), driven through the coordinator as workers
drive it: every sampler searches the spec's space (a conditional depth included), parallel asks get
distinct suggestions, a chief restored from its snapshot suggests what it would have uninterrupted,
and what Optuna cannot express is refused with the spec."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pytest

from job.kt_adapter import Status, Trial
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.spec import SpecError, validate_spec
from job.spec.models import JobSpec
from job.training.space import declared_space
from tests.support.coordination import FakeClock, ask
from tests.support.specs import BASE_SPEC, merge

SAMPLERS = ["tpe", "cmaes", "nsga2", "qmc"]
SPACE = [
    {"name": "layers", "type": "int", "min": 1, "max": 2},
    {"name": "units_0", "type": "int", "min": 8, "max": 64, "step": 8},
    {"name": "units_1", "type": "int", "min": 8, "max": 64, "step": 8},
    {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5},
    {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 1e-1, "sampling": "log"},
    {"name": "optimizer", "type": "choice", "values": ["adam", "sgd"]},
]


def sampler_job(algorithm: str, **tuner: Any) -> JobSpec:
    model = {
        "depth": "layers",
        "hidden": [{"units": "units_0", "dropout": "dropout"}, {"units": "units_1"}],
        "learningRate": "learning_rate",
        "optimizer": "optimizer",
    }
    spec = {"model": model, "hyperparameters": SPACE, "tuner": {"algorithm": algorithm, "seed": 5, **tuner}}
    return validate_spec(merge(BASE_SPEC, {"spec": spec}))


def coordinator(job: JobSpec) -> Coordinator:
    return Coordinator(
        make_oracle(job, declared_space(job)), lease_seconds=60.0, max_worker_losses=3, clock=FakeClock()
    )


def score(values: dict[str, Any]) -> float:
    """A smooth objective of the values: best near units 40, dropout 0.2, rate 0.01, adam."""
    return (
        1.0
        - abs(values["units_0"] - 40) / 100
        - abs(values["dropout"] - 0.2)
        - abs(math.log10(values["learning_rate"]) + 2) / 4
        - (0.1 if values["optimizer"] == "sgd" else 0.0)
    )


def finish(c: Coordinator, tuner_id: str, trial: Trial) -> None:
    value = score(trial.hyperparameters.values)
    c.update_trial(tuner_id, trial.trial_id, {"val_accuracy": value}, step=1)
    trial.metrics.update("val_accuracy", value, step=1)
    trial.status = Status.COMPLETED
    assert c.end_trial(tuner_id, trial)


def run(c: Coordinator, trials: int) -> list[dict[str, Any]]:
    drawn = []
    for _ in range(trials):
        trial = ask(c, "w0")
        drawn.append(dict(trial.hyperparameters.values))
        finish(c, "w0", trial)
    return drawn


@pytest.mark.parametrize("algorithm", SAMPLERS)
def test_each_sampler_searches_the_spaces_values_and_only_the_active_ones(algorithm: str) -> None:
    drawn = run(coordinator(sampler_job(algorithm, maxTrials=12)), 12)
    for values in drawn:
        assert 8 <= values["units_0"] <= 64 and values["units_0"] % 8 == 0
        assert 1e-4 <= values["learning_rate"] <= 1e-1 and values["optimizer"] in ("adam", "sgd")
        assert ("units_1" in values) == (values["layers"] == 2), values  # conditional on the depth
    assert len({json.dumps(v, sort_keys=True) for v in drawn}) >= 10, "the sampler explores"


def test_tpe_moves_toward_the_better_region_after_its_startup_trials() -> None:
    c = coordinator(sampler_job("tpe", maxTrials=40, sampler={"startupTrials": 10}))
    drawn = run(c, 40)
    first, last = [score(v) for v in drawn[:10]], [score(v) for v in drawn[-10:]]
    assert sum(last) / 10 > sum(first) / 10 + 0.1, (first, last)


def test_parallel_workers_get_distinct_suggestions() -> None:
    c = coordinator(sampler_job("tpe", maxTrials=30, sampler={"startupTrials": 5}))
    run(c, 5)
    running = [ask(c, f"w{i}") for i in range(6)]  # six workers ask before any reports
    values = [json.dumps(t.hyperparameters.values, sort_keys=True) for t in running]
    assert len(set(values)) == 6


@pytest.mark.parametrize("algorithm", SAMPLERS)
def test_a_restored_chief_suggests_what_it_would_have_uninterrupted(algorithm: str) -> None:
    job = sampler_job(
        algorithm, maxTrials=20, sampler={"startupTrials": 3} if algorithm in ("tpe", "cmaes") else {}
    )
    whole = coordinator(job)
    run(whole, 8)
    running = ask(whole, "w1")  # one trial in flight when the chief dies
    snapshot = json.loads(whole.snapshot_text())
    finish(whole, "w1", running)
    expected = run(whole, 6)

    restored = coordinator(job)
    restored.restore(snapshot)
    finish(restored, "w1", running)  # the worker reports to the new chief
    assert run(restored, 6) == expected


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        (
            {
                "hyperparameters": [
                    {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "sampling": "reverse_log"}
                ]
            },
            "spec.hyperparameters[0].sampling",
            "is reverse_log, which Optuna's samplers (algorithm: tpe) cannot draw from",
        ),
        (
            {
                "hyperparameters": [
                    {"name": "units", "type": "int", "min": 8, "max": 512, "step": 2, "sampling": "log"}
                ]
            },
            "spec.hyperparameters[0].step",
            "a multiplier on a log-sampled range, which Optuna's samplers",
        ),
        (
            {"tuner": {"algorithm": "tpe", "sampler": {"populationSize": 20}}},
            "spec.tuner.sampler.populationSize",
            "applies to algorithm nsga2, not tpe",
        ),
        (
            {"tuner": {"algorithm": "random", "sampler": {"constantLiar": False}}},
            "spec.tuner.sampler.constantLiar",
            "applies to algorithm tpe, not random",
        ),
    ],
    ids=["reverse-log", "log-step", "setting-of-another", "setting-without-sampler"],
)
def test_what_optuna_cannot_express_is_refused_naming_the_field(change: dict, field: str, says: str) -> None:
    spec = merge(
        {"model": {"hidden": [{"units": 8}], "learningRate": 0.01}, "tuner": {"algorithm": "tpe"}}, change
    )
    with pytest.raises(SpecError) as caught:
        validate_spec(merge(BASE_SPEC, {"spec": spec}))
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert field in messages and says in messages[field], messages


POINTS = [
    {"layers": 2, "units_0": 64, "units_1": 16, "dropout": 0.1, "learning_rate": 0.01, "optimizer": "sgd"},
    {"layers": 1, "units_0": 8, "units_1": 40},  # units_1 inactive at depth 1; the rest at defaults
]


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "tpe"])
def test_initial_points_run_first_then_the_algorithms_own(algorithm: str) -> None:
    job = sampler_job(algorithm, maxTrials=8, initialPoints=POINTS)
    c = coordinator(job)
    first, second, *rest = run(c, 5)
    assert first == POINTS[0]
    defaults = {"dropout": 0.0, "learning_rate": 1e-4, "optimizer": "adam"}  # their declared defaults
    assert second == {"layers": 1, "units_0": 8, **defaults}
    assert all(values not in POINTS for values in rest)
    if algorithm == "tpe":  # the sampler was told the points' results with its own trials
        assert len(c.oracle.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == 5


def test_a_restored_chief_goes_on_with_the_next_initial_point() -> None:
    job = sampler_job("tpe", maxTrials=8, initialPoints=POINTS)
    first = coordinator(job)
    run(first, 1)
    restored = coordinator(job)
    restored.restore(json.loads(first.snapshot_text()))
    assert run(restored, 1)[0]["units_0"] == 8


@pytest.mark.parametrize(
    ("tuner", "field", "says"),
    [
        (
            {"initialPoints": [{"unit_0": 8}]},
            "spec.tuner.initialPoints[0].unit_0",
            "(did you mean 'units_0'?)",
        ),
        ({"initialPoints": [{"units_0": 12}]}, "spec.tuner.initialPoints[0].units_0", "it steps by 8 from 8"),
        (
            {"initialPoints": [{"optimizer": "adagrad"}]},
            "spec.tuner.initialPoints[0].optimizer",
            "one of ['adam', 'sgd']",
        ),
        ({"initialPoints": [{"dropout": 0.9}]}, "spec.tuner.initialPoints[0].dropout", "between 0.0 and 0.5"),
        (
            {"algorithm": "grid", "initialPoints": [{"units_0": 8}]},
            "spec.tuner.initialPoints",
            "algorithm: grid",
        ),
    ],
    ids=["unknown-name", "off-the-step", "not-a-choice", "out-of-range", "grid"],
)
def test_initial_points_the_space_cannot_hold_are_refused(tuner: dict, field: str, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        sampler_job(tuner.pop("algorithm", "tpe"), **tuner)
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert field in messages and says in messages[field], messages
