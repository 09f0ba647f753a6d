"""Custom loader against built-in source: what `source: custom` costs a search on arrays.

Both sides run the same search (examples/digits.yaml's MLP, RandomSearch, the same seed, trials and
epochs) on the same arrays, each in a fresh process, alternating, on this machine: once with the
built-in source (digits, or MNIST from HPTUNE_DATA_DIR, cut to --samples), once with
`source: custom` and a loader (`builtin_arrays` below) that returns those very arrays. Prints the
seconds per trial of each, their ratio, the run-to-run spread of each side, and the load times.

    python -m benchmarks.custom_loader --trials 6 --rounds 3             # digits, offline
    python -m benchmarks.custom_loader --source mnist --samples 12000    # an MNIST subset

Timing covers the search itself (trials), not process start or loading the data, on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.child import REPO, in_child

LOADER = "benchmarks.custom_loader:builtin_arrays"


def builtin_arrays(**data: Any) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The loader of the custom side: the built-in source's own arrays, as a team's loader would
    return prepared arrays."""
    from job.spec.data import DataSpec
    from job.training.data.builtin import load_builtin

    data_dir = os.environ.get("HPTUNE_DATA_DIR")
    loaded = load_builtin(DataSpec.model_validate(data), Path(data_dir) if data_dir else None)
    return (loaded.x_train, loaded.y_train), (loaded.x_val, loaded.y_val)


def _data(source: str, samples: int | None) -> dict[str, Any]:
    if source == "digits":
        return {"source": "digits", "validation": {"source": "split", "fraction": 0.2}}
    return {
        "source": source,
        "validation": {"source": "test"},
        "maxTrainSamples": samples,
        "maxValidationSamples": max(1, (samples or 60000) // 6),
    }


def search(
    side: str, source: str, samples: int | None, trials: int, epochs: int, seed: int
) -> dict[str, Any]:
    """One side's search through hptune's trial path (standalone), in this process."""
    from benchmarks.trial_throughput import timed_trials
    from job.roles.common import prepare_model
    from job.spec import load_spec
    from job.spec.loader import validate_spec
    from job.training.data import load_dataset
    from job.training.device import resident

    doc = load_spec(REPO / "examples" / "digits.yaml").model_dump(mode="json", by_alias=True)
    spec = doc["spec"]
    spec["tuner"].update(maxTrials=trials, seed=seed)
    spec["training"].update(epochs=epochs)
    data = _data(source, samples)
    spec["data"] = {"source": "custom", "loader": LOADER, "args": data} if side == "custom" else data
    job = validate_spec(doc)
    data_dir = os.environ.get("HPTUNE_DATA_DIR")
    started = time.perf_counter()
    dataset = load_dataset(job.spec.data, Path(data_dir) if data_dir else None, REPO)
    build_model, space = prepare_model(job, dataset, REPO)
    dataset = resident(dataset)
    load_seconds = time.perf_counter() - started
    timed = timed_trials(job, build_model, space, dataset)
    return {**timed, "load_seconds": load_seconds, "samples": dataset.train_samples}


def _child(side: str, args: argparse.Namespace) -> dict[str, Any]:
    call = f"search({side!r}, {args.source!r}, {args.samples!r}, {args.trials}, {args.epochs}, {args.seed})"
    return in_child("from benchmarks.custom_loader import search", call, f"{side} run")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--samples", type=int, default=None, help="mnist: training samples to keep")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.source == "mnist" and not os.environ.get("HPTUNE_DATA_DIR"):
        parser.error("set HPTUNE_DATA_DIR to a directory holding mnist.npz")
    sides = ["builtin", "custom"]
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side in sides if round_ % 2 == 0 else sides[::-1]:
            result = _child(side, args)
            runs[side].append(result)
            print(
                f"round {round_ + 1} {side:8}: {result['seconds'] / args.trials:6.3f} s/trial, "
                f"loaded in {result['load_seconds']:.2f} s, "
                f"best val_accuracy {max(result['scores'].values()):.4f}",
                flush=True,
            )
    per_trial = {side: [r["seconds"] / args.trials for r in rs] for side, rs in runs.items()}
    median = {side: statistics.median(values) for side, values in per_trial.items()}
    same_values = all(run["values"] == runs["builtin"][0]["values"] for rs in runs.values() for run in rs)
    same_scores = runs["builtin"][0]["scores"] == runs["custom"][0]["scores"]
    print()
    print(
        f"custom_loader: {args.source} ({runs['builtin'][0]['samples']} training samples), MLP, "
        f"{args.trials} trials x {args.epochs} epochs, seed {args.seed}, median of {args.rounds} runs each"
    )
    for side in sides:
        low, high = min(per_trial[side]), max(per_trial[side])
        label = "built-in source" if side == "builtin" else "custom loader"
        loads = statistics.median(r["load_seconds"] for r in runs[side])
        print(
            f"  {label:16}: {median[side]:6.3f} s/trial (runs {low:.3f}..{high:.3f}, spread "
            f"{high - low:.3f}); data loaded and checked in {loads:.2f} s"
        )
    print(f"  custom / built-in: {median['custom'] / median['builtin']:.3f}x seconds per trial")
    print(f"  same hyperparameters trial by trial, every run: {same_values}; same scores: {same_scores}")
    if args.json:
        args.json.write_text(
            json.dumps({"per_trial_seconds": per_trial, "runs": runs}, indent=2, default=float)
        )


if __name__ == "__main__":
    main()
