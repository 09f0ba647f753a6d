"""Search algorithms side by side: Keras Tuner's own oracles against Optuna's samplers behind the
same interface (job/search/samplers.py), on real trials and on suggestion cost.

Quality: for each algorithm and seed, a search of `--trials` real trials of the digits MLP (widths,
dropout, learning rate on a log scale, the optimizer; 2 epochs each, trained in this process with
hptune's own trial code, driven through the chief's coordinator as workers drive it). Prints the
best val_accuracy after 10, 20 and 40 trials, averaged over the seeds.

Suggestion cost: each oracle fed completed trials of a cheap synthetic objective; prints the
median time of one suggestion (create_trial) once the search holds 100 and 1,000 trials.

    python -m benchmarks.samplers --seeds 3 --trials 40
    python -m benchmarks.samplers --cost-only --sizes 100 1000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

from job.kt_adapter import Status, Trial
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.spec import validate_spec
from job.spec.models import JobSpec
from job.training.data import load_dataset
from job.training.space import declared_space, make_builder
from job.training.trial import run_trial

ALGORITHMS = ["random", "bayesian", "tpe", "cmaes", "nsga2", "qmc"]
CHECKPOINTS = (10, 20, 40)


def _job(algorithm: str, seed: int, trials: int) -> JobSpec:
    return validate_spec(
        {
            "apiVersion": "hptune/v1",
            "kind": "TuningJob",
            "metadata": {"name": "samplers"},
            "spec": {
                "data": {"source": "digits", "validation": {"source": "split", "fraction": 0.25}},
                "model": {
                    "hidden": [{"units": "hidden1", "dropout": "dropout1"}, {"units": "hidden2"}],
                    "learningRate": "learning_rate",
                    "optimizer": "optimizer",
                },
                "hyperparameters": [
                    {"name": "hidden1", "type": "int", "min": 8, "max": 256, "step": 8},
                    {"name": "dropout1", "type": "float", "min": 0.0, "max": 0.6},
                    {"name": "hidden2", "type": "int", "min": 8, "max": 128, "step": 8},
                    {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 0.3, "sampling": "log"},
                    {"name": "optimizer", "type": "choice", "values": ["adam", "sgd", "rmsprop"]},
                ],
                "tuner": {"algorithm": algorithm, "maxTrials": trials, "seed": seed},
                "training": {"epochs": 2, "batchSize": 64},
            },
        }
    )


def _coordinator(job: JobSpec) -> Coordinator:
    return Coordinator(make_oracle(job, declared_space(job)), lease_seconds=3600.0, max_worker_losses=3)


def _end(coordinator: Coordinator, trial: Trial, value: float) -> None:
    coordinator.update_trial("w0", trial.trial_id, {"val_accuracy": value}, step=0)
    trial.metrics.update("val_accuracy", value, step=0)
    trial.status = Status.COMPLETED
    coordinator.end_trial("w0", trial)


def quality(algorithm: str, seed: int, trials: int) -> list[float]:
    """The best val_accuracy after each trial of one search."""
    job = _job(algorithm, seed, trials)
    data = load_dataset(job.spec.data)
    build = make_builder(job, data.output_units, data.input_shape, None, train_samples=data.train_samples)
    coordinator = _coordinator(job)
    best, curve = 0.0, []
    for _ in range(trials):
        trial = coordinator.create_trial("w0")
        if trial.status != Status.RUNNING:
            break
        outcome = run_trial(trial.hyperparameters, build, data, job.spec.training, job.spec.tuner.objective)
        value = outcome.metrics.get("val_accuracy", 0.0) if outcome.ok else 0.0
        _end(coordinator, trial, value)
        best = max(best, value)
        curve.append(best)
    return curve


def _synthetic(values: dict[str, Any]) -> float:
    return (
        1.0
        - abs(values["hidden1"] - 128) / 512
        - abs(values["dropout1"] - 0.2)
        - abs(math.log10(values["learning_rate"]) + 2) / 8
    )


def suggestion_cost(algorithm: str, sizes: list[int]) -> dict[int, float]:
    """Median seconds of one create_trial once the search holds each of `sizes` trials."""
    job = _job(algorithm, 1, max(sizes) + 20)
    coordinator = _coordinator(job)
    found: dict[int, float] = {}
    done = 0
    for size in sorted(sizes):
        while done < size - 10:
            trial = coordinator.create_trial("w0")
            _end(coordinator, trial, _synthetic(trial.hyperparameters.values))
            done += 1
        times = []
        for _ in range(10):
            started = time.perf_counter()
            trial = coordinator.create_trial("w0")
            times.append(time.perf_counter() - started)
            _end(coordinator, trial, _synthetic(trial.hyperparameters.values))
            done += 1
        found[size] = statistics.median(times)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algorithms", nargs="+", default=ALGORITHMS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cost-only", action="store_true")
    parser.add_argument(
        "--bayesian-cap", type=int, default=1000, help="largest size Keras Tuner's GP is timed at"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if not args.cost_only:
        print(f"best val_accuracy on digits after N trials (mean of {args.seeds} seeds; 2-epoch MLP trials)")
        marks = [n for n in CHECKPOINTS if n <= args.trials]
        print(f"  {'algorithm':10} " + " ".join(f"{n:>7}" for n in marks) + "   seconds")
        for algorithm in args.algorithms:
            started = time.perf_counter()
            curves = [quality(algorithm, seed, args.trials) for seed in range(1, args.seeds + 1)]
            means = [statistics.mean(c[min(n, len(c)) - 1] for c in curves) for n in marks]
            results[algorithm] = {"best_after": dict(zip(marks, means, strict=True)), "curves": curves}
            print(
                f"  {algorithm:10} "
                + " ".join(f"{m:7.4f}" for m in means)
                + f"   {time.perf_counter() - started:.0f}",
                flush=True,
            )
    print("median seconds per suggestion, by trials already in the search")
    for algorithm in args.algorithms:
        sizes = [s for s in args.sizes if algorithm != "bayesian" or s <= args.bayesian_cap]
        cost = suggestion_cost(algorithm, sizes)
        results.setdefault(algorithm, {})["suggestion_seconds"] = cost
        print(f"  {algorithm:10} " + "  ".join(f"{n}: {cost[n] * 1000:.1f} ms" for n in sizes), flush=True)
    print(
        "RESULT " + json.dumps({a: {k: v for k, v in r.items() if k != "curves"} for a, r in results.items()})
    )


if __name__ == "__main__":
    main()
