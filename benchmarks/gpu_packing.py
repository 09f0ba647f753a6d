"""GPU packing: trials per GPU-hour and GPU busy fraction with 1, 2, 4, 8 trial processes on one GPU.

For each packing n, runs the study notes' MNIST search with `hptune local --workers 1` and
`distribution.trialsPerGpu: n` (n trial processes sharing the GPU, each with 1/n of its memory),
samples `nvidia-smi` utilisation every half second, and prints trials per hour and the mean
busy fraction. Needs an NVIDIA GPU and `nvidia-smi`; use KERAS_BACKEND=jax where there is no
TensorFlow.

    python -m benchmarks.gpu_packing --packings 1 2 4 8 --trials-per-process 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
from pathlib import Path

import yaml

from benchmarks.scaling import time_local_search

REPO = Path(__file__).resolve().parents[1]


class GpuSampler:
    """Samples nvidia-smi's GPU utilisation (percent) in a background thread."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                self.samples.append(float(out.stdout.strip().splitlines()[0]))
            self._stop.wait(self.interval)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def packed_spec(tmp: Path, packing: int, trials: int, epochs: int) -> Path:
    doc = yaml.safe_load((REPO / "examples" / "mnist.yaml").read_text())
    spec = doc["spec"]
    spec["tuner"].update(maxTrials=trials, seed=1)
    spec["training"].update(epochs=epochs)
    spec["training"].pop("earlyStopping", None)
    spec["output"] = {"uri": str(tmp / "out")}
    spec["metrics"] = {"port": 0}
    spec["distribution"] = {"trialsPerGpu": packing, "leaseSeconds": 120, "heartbeatSeconds": 5}
    path = tmp / f"packed-{packing}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_packing(packing: int, trials_per_process: int, epochs: int) -> dict[str, float]:
    trials = packing * trials_per_process
    with tempfile.TemporaryDirectory(prefix="hptune-packing-") as tmp:
        spec = packed_spec(Path(tmp), packing, trials, epochs)
        with GpuSampler() as sampler:
            seconds = time_local_search(spec, workers=1)
    return {
        "packing": packing,
        "trials": trials,
        "seconds": round(seconds, 1),
        "trials_per_hour": round(3600 * trials / seconds, 1),
        "gpu_busy_mean_percent": round(statistics.mean(sampler.samples), 1) if sampler.samples else -1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packings", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--trials-per-process", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    for packing in args.packings:
        row = run_packing(packing, args.trials_per_process, args.epochs)
        rows.append(row)
        print(
            f"{packing} trial process(es): {row['trials_per_hour']:8.1f} trials/GPU-hour, "
            f"GPU busy {row['gpu_busy_mean_percent']:5.1f} % ({row['trials']} trials in {row['seconds']} s)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
