"""Build the Keras Tuner oracle (the search algorithm) that the spec names: one of Keras Tuner's
own, or one of Optuna's samplers behind the same interface (job/search/samplers.py)."""

from __future__ import annotations

from typing import Any

import keras_tuner as kt

from job.kt_adapter import HyperParameters, Oracle, Status, Trial, active_values
from job.search.stopping_rules import StoppingRules
from job.spec.models import JobSpec
from job.spec.tuner import SAMPLERS

ORACLES: dict[str, type[Oracle]] = {
    "random": kt.oracles.RandomSearchOracle,
    "grid": kt.oracles.GridSearchOracle,
    "bayesian": kt.oracles.BayesianOptimizationOracle,
    "hyperband": kt.oracles.HyperbandOracle,
}


class _InMemoryState:
    """Keeps a Keras Tuner oracle's state in memory only.

    A stock oracle rewrites `oracle.json` (which grows with every trial) and a trial file on every
    create and end. hptune persists state itself, as one atomic snapshot written off the request
    path (`job/search/snapshot.py`), so these writes are dropped.
    """

    def save(self) -> None:
        return None

    def _save_trial(self, trial: Trial) -> None:
        return None


class _InitialPoints(Oracle):
    """The spec's initial points (tuner.initialPoints) are the search's first trials, in order; then
    the algorithm's own. Which point comes next is the number of trials created so far, so a chief
    restored from its snapshot goes on where it was."""

    initial_points: list[dict[str, Any]] = []

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        index = len(self.trials)
        if index < len(self.initial_points):
            point = self.initial_points[index]  # a name left out takes its default
            values = active_values(self.hyperparameters, lambda hp, default: point.get(hp.name, default))
            return {"status": Status.RUNNING, "values": values}
        return super().populate_space(trial_id)


_CLASSES: dict[str, type[Oracle]] = {
    name: type(f"InMemory{cls.__name__}", (_InMemoryState, StoppingRules, _InitialPoints, cls), {})
    for name, cls in ORACLES.items()
}


def make_oracle(job: JobSpec, space: HyperParameters) -> Oracle:
    tuner = job.spec.tuner
    kwargs: dict[str, Any] = {
        "objective": kt.Objective(tuner.objective.name, tuner.objective.direction),
        "hyperparameters": space,
        "seed": tuner.seed,
        "max_retries_per_trial": tuner.max_retries_per_trial,
        "max_consecutive_failed_trials": tuner.max_consecutive_failed_trials,
        "allow_new_entries": True,
        "tune_new_entries": True,
    }
    if tuner.algorithm == "hyperband":
        assert tuner.hyperband is not None
        kwargs.update(
            max_epochs=tuner.hyperband.max_epochs,
            factor=tuner.hyperband.factor,
            hyperband_iterations=tuner.hyperband.iterations,
        )
    else:
        kwargs["max_trials"] = tuner.max_trials
    if tuner.algorithm == "bayesian" and tuner.bayesian is not None:
        kwargs.update(
            num_initial_points=tuner.bayesian.num_initial_points,
            alpha=tuner.bayesian.alpha,
            beta=tuner.bayesian.beta,
        )
    if tuner.algorithm in SAMPLERS:
        from job.search.samplers import SamplerOracle  # Optuna, imported only when asked for

        bases = (_InMemoryState, StoppingRules, _InitialPoints, SamplerOracle)
        in_memory = type("InMemorySamplerOracle", bases, {})
        oracle = in_memory(tuner.algorithm, tuner.sampler, **kwargs)
    else:
        oracle = _CLASSES[tuner.algorithm](**kwargs)
    oracle.initial_points = list(tuner.initial_points)
    oracle.stop_after_seconds = tuner.stop_after_seconds
    oracle.without_improvement = tuner.stop_without_improvement
    oracle.verbose = 0  # progress is shown by job/observability/progress.py, not printed by the oracle
    return oracle
