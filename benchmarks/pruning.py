"""Trial pruning, side by side in one run: worker time and epochs to reach the same accuracy.

The study notes' MNIST search (examples/mnist.yaml: the 784-512-128-10 MLP, tuning hidden1,
dropout1, hidden2, dropout2 and the learning rate) on a fixed subset of the training images, with
10-epoch trials, as a real `hptune local` search (a chief and 2 workers on loopback), once per
configuration and seed:

    none       every trial trains its 10 epochs
    median     spec.tuner.pruning {type: median}
    asha       spec.tuner.pruning {type: asha}
    hyperband  Keras Tuner's Hyperband oracle (algorithm: hyperband, maxEpochs 10), its own brackets

For each it prints the worker-seconds spent training (the sum of every trial's seconds), the epochs
trained, the trials run and pruned, the best val_accuracy and the wall time; then each against no
pruning, and no pruning's run-to-run noise (its best val_accuracy across seeds).

    HPTUNE_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.pruning --trials 20 --seeds 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS: dict[str, dict[str, Any]] = {
    "none": {},
    "median": {"pruning": {"type": "median", "minEpochs": 2, "minTrials": 3}},
    "asha": {"pruning": {"type": "asha", "minEpochs": 1, "minTrials": 3, "reductionFactor": 3}},
    "hyperband": {"algorithm": "hyperband", "maxTrials": None, "hyperband": {"maxEpochs": 10, "factor": 3}},
}


def subset(source: Path, target: Path, samples: int) -> None:
    """mnist.npz with the first `samples` training images (all 10,000 test images validate)."""
    with np.load(source / "mnist.npz") as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][:samples], arrays["y_train"][:samples]
    target.mkdir(parents=True, exist_ok=True)
    np.savez(target / "mnist.npz", **arrays)


def spec(config: str, seed: int, trials: int, epochs: int, batch: int, out: Path) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "examples" / "mnist.yaml").read_text())
    doc["metadata"]["name"] = f"prune-{config}-{seed}"
    tuner = {"algorithm": "random", "objective": {"name": "val_accuracy", "direction": "max"}}
    tuner |= {"maxTrials": trials, "seed": seed} | CONFIGS[config]
    doc["spec"]["tuner"] = {k: v for k, v in tuner.items() if v is not None}
    doc["spec"]["training"] = {"epochs": epochs, "batchSize": batch}  # no earlyStopping: pruning alone
    doc["spec"]["output"] = {"uri": str(out)}
    doc["spec"]["metrics"] = {"port": 0}
    return doc


def run(config: str, seed: int, args: argparse.Namespace, data_dir: Path, work: Path) -> dict[str, Any]:
    out = work / f"{config}-{seed}" / "out"
    path = out.parent / "spec.yaml"
    out.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec(config, seed, args.trials, args.epochs, args.batch, out)))
    env = {**os.environ, "HPTUNE_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "job", "local", str(path), "--workers", str(args.workers)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{config} seed {seed} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    records = [json.loads(p.read_text()) for p in (out / "trials").glob("*/trial.json")]
    best = json.loads((out / "best" / "metrics.json").read_text())
    return {
        "config": config,
        "seed": seed,
        "worker_seconds": sum(r["seconds"] for r in records),
        "epochs": sum(len(execution) for r in records for execution in r["history"]),
        "trials": len(records),
        "pruned": sum(r["status"] == "pruned" for r in records),
        "best": best["objective"]["value"],
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32, help="the study notes' batch size")
    parser.add_argument("--samples", type=int, default=10_000, help="training images used")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--data-dir", default=os.environ.get("HPTUNE_DATA_DIR"), help="holds mnist.npz")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("set HPTUNE_DATA_DIR or --data-dir to a directory holding mnist.npz")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hptune-pruning-") as tmp:
        work = Path(tmp)
        subset(Path(args.data_dir), work / "data", args.samples)
        for seed in args.seeds:  # configurations alternate within each seed: drift hits all alike
            for config in args.configs:
                r = run(config, seed, args, work / "data", work)
                results.append(r)
                print(
                    f"{config:9} seed {seed}: {r['worker_seconds']:7.1f} worker-s, {r['epochs']:4d} epochs, "
                    f"{r['trials']:3d} trials ({r['pruned']} pruned), best val_accuracy {r['best']:.4f}, "
                    f"wall {r['wall']:.0f} s",
                    flush=True,
                )

    def mean(config: str, key: str) -> float:
        return statistics.mean(r[key] for r in results if r["config"] == config)

    print()
    print(
        f"pruning: MNIST MLP on {args.samples} training images, {args.trials} trials x {args.epochs} epochs, "
        f"batch {args.batch}, {args.workers} workers, seeds {args.seeds} (means over seeds)"
    )
    base_seconds, base_best = mean("none", "worker_seconds"), mean("none", "best")
    for config in args.configs:
        seconds = mean(config, "worker_seconds")
        print(
            f"  {config:9}: {seconds:7.1f} worker-s ({base_seconds / seconds:4.2f}x less than none), "
            f"{mean(config, 'epochs'):6.1f} epochs, {mean(config, 'pruned'):4.1f} pruned, "
            f"best val_accuracy {mean(config, 'best'):.4f} "
            f"({100 * (mean(config, 'best') - base_best):+.2f} points)"
        )
    bests = [r["best"] for r in results if r["config"] == "none"]
    if len(bests) > 1:
        print(
            f"  run-to-run noise: no pruning's best val_accuracy spans "
            f"{100 * (max(bests) - min(bests)):.2f} points over the seeds"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
