"""Trial throughput: plain Keras Tuner, as the study notes write it, against hptune on the same search.

Both sides run the study notes' MNIST MLP search (RandomSearch, the same seed, trials and epochs,
batch 32) on the same data, each in a fresh process, alternating, on this machine. Prints seconds
per trial for each, the ratio, and each side's validation accuracy over the same trials.

    python -m benchmarks.trial_throughput --trials 4 --rounds 2     # MNIST from HPTUNE_DATA_DIR

Timing covers the search itself (trials), not process start or loading the dataset, on both sides.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.child import REPO, in_child


def _mnist(data_dir: Path) -> tuple[Any, ...]:
    import keras
    import numpy as np

    with np.load(data_dir / "mnist.npz") as npz:
        x_train, y_train, x_test, y_test = (npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    x_train = x_train.reshape(-1, 784).astype("float32") / 255
    x_test = x_test.reshape(-1, 784).astype("float32") / 255
    return (x_train, keras.utils.to_categorical(y_train, 10), x_test, keras.utils.to_categorical(y_test, 10))


def plain_keras_tuner(trials: int, epochs: int, seed: int, data_dir: Path) -> dict[str, Any]:
    """The study notes' search with Keras Tuner's defaults."""
    import keras
    import keras_tuner as kt

    x_train, y_train, x_test, y_test = _mnist(data_dir)

    def build_model(hp: kt.HyperParameters) -> keras.Model:
        model = keras.Sequential()
        model.add(keras.Input(shape=(784,)))
        model.add(keras.layers.Dense(hp.Int("hidden1", 32, 512, step=32), activation="relu"))
        model.add(keras.layers.Dropout(hp.Float("dropout1", 0.1, 0.5, step=0.1)))
        model.add(keras.layers.Dense(hp.Int("hidden2", 16, 128, step=16), activation="relu"))
        model.add(keras.layers.Dropout(hp.Float("dropout2", 0.1, 0.5, step=0.1)))
        model.add(keras.layers.Dense(10, activation="softmax"))
        model.compile(
            optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [0.0001, 0.001, 0.01])),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    with tempfile.TemporaryDirectory() as tmp:
        tuner = kt.RandomSearch(
            build_model,
            objective="val_accuracy",
            max_trials=trials,
            seed=seed,
            directory=tmp,
            project_name="plain",
            overwrite=True,
        )
        started = time.perf_counter()
        tuner.search(x_train, y_train, epochs=epochs, validation_data=(x_test, y_test), verbose=0)
        seconds = time.perf_counter() - started
        results = {t.trial_id: t.score for t in tuner.oracle.trials.values() if t.status == "COMPLETED"}
        values = {t.trial_id: t.hyperparameters.values for t in tuner.oracle.trials.values()}
    return {"seconds": seconds, "scores": results, "values": values}


def timed_trials(job: Any, build_model: Any, space: Any, data: Any) -> dict[str, Any]:
    """Run a search's trials in this process through hptune's trial loop (the standalone path,
    outputs in a temporary directory), timed; each completed trial's score and every trial's values."""
    from job.search.coordinator import Coordinator
    from job.search.oracles import make_oracle
    from job.search.retention import ModelRetention
    from job.search.worker import LocalAccess, TrialLoop
    from job.storage.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        coordinator = Coordinator(make_oracle(job, space), 600, 3, model_retention=ModelRetention(store, 3))
        worker = TrialLoop("tuner0", LocalAccess(coordinator, "tuner0"), job, build_model, data, store)
        started = time.perf_counter()
        worker.run()
        seconds = time.perf_counter() - started
        done = coordinator.trials()
    return {
        "seconds": seconds,
        "scores": {t.trial_id: t.score for t in done if t.status == "COMPLETED"},
        "values": {t.trial_id: t.hyperparameters.values for t in done},
    }


def hptune_search(
    trials: int, epochs: int, seed: int, data_dir: Path, scan_steps: bool | str = "auto"
) -> dict[str, Any]:
    """The same search through hptune's trial path (examples/mnist.yaml, standalone)."""
    from job.roles.common import prepare_model
    from job.spec import load_spec
    from job.training.data import load_dataset
    from job.training.device import resident

    job = load_spec(REPO / "examples" / "mnist.yaml")
    tuner = job.spec.tuner.model_copy(update={"max_trials": trials, "seed": seed})
    training = job.spec.training.model_copy(
        update={"epochs": epochs, "early_stopping": None, "scan_steps": scan_steps}
    )
    job = job.model_copy(update={"spec": job.spec.model_copy(update={"tuner": tuner, "training": training})})
    data = load_dataset(job.spec.data, data_dir)
    build_model, space = prepare_model(job, data, None)
    return timed_trials(job, build_model, space, resident(data))


SIDES = {
    "plain": plain_keras_tuner,
    "hptune": hptune_search,
    # hptune with Keras' own host loop of jitted steps instead of scanned steps (JAX A/B).
    "hptune-host-loop": functools.partial(hptune_search, scan_steps=False),
}


def _child(side: str, trials: int, epochs: int, seed: int, data_dir: str) -> dict[str, Any]:
    call = f"SIDES[{side!r}]({trials}, {epochs}, {seed}, Path({data_dir!r}))"
    return in_child("from benchmarks.trial_throughput import SIDES", call, f"{side} run")


def _mean_scores(side_runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each trial's validation accuracy, averaged over a side's runs."""
    ids = set.intersection(*(set(run["scores"]) for run in side_runs))
    return {k: statistics.mean(run["scores"][k] for run in side_runs) for k in ids}


def _run_to_run(side_runs: list[dict[str, Any]]) -> float:
    """Mean |difference| per trial between a side's first two runs: the noise floor."""
    first, second = side_runs[0]["scores"], side_runs[1]["scores"]
    return statistics.mean(abs(first[k] - second[k]) for k in set(first) & set(second))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("HPTUNE_DATA_DIR"),
        help="directory holding mnist.npz (default: HPTUNE_DATA_DIR)",
    )
    parser.add_argument(
        "--host-loop",
        action="store_true",
        help="also time hptune with scanSteps off (on JAX: what the scanned steps add)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("set HPTUNE_DATA_DIR or --data-dir to a directory holding mnist.npz")
    sides = ["plain", "hptune"] + (["hptune-host-loop"] if args.host_loop else [])
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in sides if round_ % 2 == 0 else sides[::-1]:
            result = _child(side, args.trials, args.epochs, args.seed, args.data_dir)
            runs[side].append(result)
            print(
                f"round {round_ + 1} {side:16}: {result['seconds'] / args.trials:6.2f} s/trial, "
                f"best val_accuracy {max(result['scores'].values()):.4f}",
                flush=True,
            )
    per_trial = {side: statistics.median(r["seconds"] for r in rs) / args.trials for side, rs in runs.items()}
    plain = runs["plain"][0]
    same_values = all(run["values"] == plain["values"] for side_runs in runs.values() for run in side_runs)
    accuracy = {side: _mean_scores(rs) for side, rs in runs.items()}
    ids = sorted(set(accuracy["plain"]) & set(accuracy["hptune"]))
    diffs = [abs(accuracy["plain"][k] - accuracy["hptune"][k]) for k in ids]
    print()
    print(
        f"trial_throughput: MNIST MLP, {args.trials} trials x {args.epochs} epochs, batch 32, "
        f"seed {args.seed}, median of {args.rounds} runs each"
    )
    for side in sides:
        seconds = per_trial[side]
        label = "plain Keras Tuner" if side == "plain" else side
        speed_up = "" if side == "plain" else f", {per_trial['plain'] / seconds:.2f}x trials per hour"
        print(f"  {label:18}: {seconds:6.2f} s/trial  ({3600 / seconds:5.0f} trials/hour{speed_up})")
    print(f"  same hyperparameters trial by trial, every run: {same_values}")
    print(
        "  val_accuracy (each trial averaged over the runs): best plain "
        f"{max(accuracy['plain'].values()):.4f}, hptune {max(accuracy['hptune'].values()):.4f}; "
        f"mean plain {statistics.mean(accuracy['plain'][k] for k in ids):.4f}, "
        f"hptune {statistics.mean(accuracy['hptune'][k] for k in ids):.4f}; "
        f"mean |difference| per trial {100 * statistics.mean(diffs):.2f} points"
    )
    if args.rounds > 1:
        noise = _run_to_run(runs["plain"])
        print(f"  run-to-run noise  : plain Keras Tuner against itself, {100 * noise:.2f} points per trial")
    if args.json:
        results = {"per_trial_seconds": per_trial, "runs": runs}
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
