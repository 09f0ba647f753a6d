"""Scaling: trials per minute with 1 and 2 workers on the same search, and the parallel efficiency.

Runs `hptune local SPEC --workers N` for each N on the study notes' MNIST search (the first
`--samples` training images, to keep it short) and times the whole search, process start-up
included, as a user would see it.

    HPTUNE_DATA_DIR=../shared/data python -m benchmarks.scaling --trials 8 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def time_local_search(spec: Path, workers: int) -> float:
    """Seconds a whole `hptune local SPEC --workers N` takes, start-up included."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "job", "local", str(spec), "--workers", str(workers)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{spec} with {workers} worker(s) failed:\n{result.stderr[-3000:]}")
    return seconds


def run(workers: int, trials: int, samples: int) -> dict[str, float]:
    doc = yaml.safe_load((REPO / "examples" / "mnist.yaml").read_text())
    spec = doc["spec"]
    spec["tuner"].update(maxTrials=trials, seed=1)
    spec["training"].pop("earlyStopping", None)
    spec["data"]["maxTrainSamples"] = samples
    spec["metrics"] = {"port": 0}
    with tempfile.TemporaryDirectory(prefix="hptune-scaling-") as tmp:
        spec["output"] = {"uri": str(Path(tmp) / "out")}
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(doc))
        seconds = time_local_search(path, workers)
    return {"workers": workers, "seconds": round(seconds, 1), "trials_per_minute": 60 * trials / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=20000, help="training images used per trial")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [run(n, args.trials, args.samples) for n in args.workers]
    base = rows[0]
    print(
        f"scaling: MNIST MLP ({args.samples} training images), {args.trials} trials, "
        f"on {os.cpu_count()} cores"
    )
    for row in rows:
        speedup = row["trials_per_minute"] / base["trials_per_minute"]
        efficiency = speedup / (row["workers"] / base["workers"])
        print(
            f"  {row['workers']} worker(s): {row['trials_per_minute']:6.2f} trials/minute "
            f"({row['seconds']} s), speed-up {speedup:.2f}x, parallel efficiency {100 * efficiency:.0f} %"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
