"""Fused trials against one trial at a time and plain Keras Tuner, side by side on one machine.

The study notes' MNIST search (RandomSearch, the same seed, trials and epochs, batch 32), run by:
plain Keras Tuner; hptune one trial at a time (fuseTrials 1, today's path); hptune with fused
groups of 2, 4, 8 (and more with --groups). Each side runs in a fresh process on each backend asked
for, alternating. Prints seconds per trial, trials per hour against plain Keras Tuner on the same
backend, and each fused trial's validation accuracy against the same trial run alone (the same
hyperparameters: the same seed draws the same trials).

    python -m benchmarks.fused_trials --trials 8 --backends jax,tensorflow     # MNIST from HPTUNE_DATA_DIR

Timing covers the search itself (the trials), not process start or loading the dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.child import REPO, in_child


def fused_search(trials: int, epochs: int, seed: int, data_dir: Path, fuse: int) -> dict[str, Any]:
    """The study notes' search through hptune's trial loop, `fuse` trials per group."""
    from benchmarks.trial_throughput import timed_trials
    from job.roles.common import prepare_model
    from job.spec import load_spec
    from job.training.data import load_dataset
    from job.training.device import resident

    job = load_spec(REPO / "examples" / "mnist.yaml")
    spec = job.spec
    tuner = spec.tuner.model_copy(update={"max_trials": trials, "seed": seed})
    training = spec.training.model_copy(update={"epochs": epochs, "early_stopping": None})
    distribution = spec.distribution.model_copy(update={"fuse_trials": fuse})
    update = {"tuner": tuner, "training": training, "distribution": distribution}
    job = job.model_copy(update={"spec": spec.model_copy(update=update)})
    data = load_dataset(job.spec.data, data_dir)
    build_model, space = prepare_model(job, data, None)
    return timed_trials(job, build_model, space, resident(data))


def _child(side: str, backend: str, trials: int, epochs: int, seed: int, data_dir: str) -> dict[str, Any]:
    if side == "plain":
        call = f"plain_keras_tuner({trials}, {epochs}, {seed}, Path({data_dir!r}))"
        imports = "from benchmarks.trial_throughput import plain_keras_tuner"
    else:
        call = f"fused_search({trials}, {epochs}, {seed}, Path({data_dir!r}), {int(side)})"
        imports = "from benchmarks.fused_trials import fused_search"
    return in_child(imports, call, f"{side} on {backend}", KERAS_BACKEND=backend)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--groups", default="2,4,8", help="fused group sizes to time (each at most --trials)")
    parser.add_argument("--backends", default="jax,tensorflow")
    parser.add_argument("--rounds", type=int, default=1, help="alternating runs of each side")
    parser.add_argument("--no-plain", action="store_true", help="skip plain Keras Tuner")
    parser.add_argument("--data-dir", default=os.environ.get("HPTUNE_DATA_DIR"))
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("set HPTUNE_DATA_DIR or --data-dir to a directory holding mnist.npz")
    groups = [int(g) for g in args.groups.split(",") if g]
    if any(g > args.trials for g in groups):
        parser.error(f"every group size must be at most --trials ({args.trials})")
    sides = ([] if args.no_plain else ["plain"]) + ["1"] + [str(g) for g in groups]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for backend in args.backends.split(","):
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            for side in sides if round_ % 2 == 0 else sides[::-1]:
                result = _child(side, backend, args.trials, args.epochs, args.seed, args.data_dir)
                runs[side].append(result)
                print(
                    f"{backend:10} {_label(side):20}: {result['seconds'] / args.trials:6.2f} s/trial, "
                    f"best val_accuracy {max(result['scores'].values()):.4f}",
                    flush=True,
                )
        results[backend] = runs
    print()
    print(
        f"fused_trials: MNIST MLP, {args.trials} trials x {args.epochs} epochs, batch 32, seed {args.seed}, "
        f"median of {args.rounds} run(s) each"
    )
    for backend, runs in results.items():
        per_trial = {
            side: statistics.median(r["seconds"] for r in rs) / args.trials for side, rs in runs.items()
        }
        alone = runs["1"][0]["scores"]
        for side, seconds in per_trial.items():
            versus = [f"{per_trial['1'] / seconds:4.2f}x one at a time"]
            if "plain" in per_trial:
                versus.append(f"{per_trial['plain'] / seconds:4.2f}x plain Keras Tuner")
            scores = runs[side][0]["scores"]
            same = sorted(set(scores) & set(alone))
            accuracy = ""
            if side not in ("plain", "1") and same:
                diffs = [abs(scores[k] - alone[k]) for k in same]
                accuracy = (
                    f"; val_accuracy mean {statistics.mean(scores[k] for k in same):.4f} against "
                    f"{statistics.mean(alone[k] for k in same):.4f} alone, mean |difference| per trial "
                    f"{100 * statistics.mean(diffs):.2f} points"
                )
            print(f"  {backend:10} {_label(side):20}: {seconds:6.2f} s/trial ({', '.join(versus)}){accuracy}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


def _label(side: str) -> str:
    return {"plain": "plain Keras Tuner", "1": "hptune, one at a time"}.get(side, f"hptune, fused x{side}")


if __name__ == "__main__":
    main()
