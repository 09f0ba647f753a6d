"""Every GPU of a machine at work: the study notes' MNIST search on one GPU, then on all of them.

Runs `hptune local SPEC --gpus 0` (one worker on GPU 0) and `hptune local SPEC` (one worker per
GPU, each pinned to its own), the spec's first `--samples` training images, and samples every
GPU's utilisation through NVML twice a second meanwhile. Prints, per side: wall time, trials per
hour per GPU used, and each GPU's busy fraction (mean utilisation while the search ran). Needs a
machine with NVIDIA GPUs (the device machine: benchmarks/gpu/run.sh); elsewhere it says so.

    HPTUNE_DATA_DIR=../shared/data python -m benchmarks.every_gpu --trials 16 --samples 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from job.supervision.gpus import visible_gpus

REPO = Path(__file__).resolve().parents[1]


def _busy(stop: threading.Event, samples: dict[int, list[float]]) -> None:
    import pynvml

    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(k) for k in range(pynvml.nvmlDeviceGetCount())]
        while not stop.wait(0.5):
            for index, handle in enumerate(handles):
                samples.setdefault(index, []).append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    finally:
        pynvml.nvmlShutdown()


def run_side(spec: Path, gpus: str, trials: int) -> dict[str, Any]:
    samples: dict[int, list[float]] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_busy, args=(stop, samples), daemon=True)
    sampler.start()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "job", "local", str(spec), "--gpus", gpus],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if done.returncode != 0:
        raise RuntimeError(f"hptune local --gpus {gpus} failed:\n{done.stderr[-3000:]}")
    used = 1 if gpus != "all" else len(samples)
    return {
        "gpus": used,
        "wall_seconds": round(wall, 1),
        "trials_per_hour_per_gpu": round(trials / wall * 3600 / used, 1),
        "busy_fraction": {k: round(sum(v) / len(v) / 100, 3) for k, v in sorted(samples.items()) if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    found = visible_gpus(os.environ)
    if not found.gpus:
        print(f"every_gpu: no GPU here ({found.reason}); run it on a machine with NVIDIA GPUs")
        return
    with tempfile.TemporaryDirectory(prefix="hptune-every-gpu-") as tmp:
        doc = yaml.safe_load((REPO / "examples" / "mnist.yaml").read_text())
        doc["spec"]["tuner"]["maxTrials"] = args.trials
        doc["spec"]["data"]["maxTrainSamples"] = args.samples
        results = {}
        for name, gpus in (("one GPU", "0"), (f"all {len(found.gpus)} GPUs", "all")):
            doc["spec"]["output"] = {"uri": str(Path(tmp) / name.replace(" ", "-"))}
            spec = Path(tmp) / "spec.yaml"
            spec.write_text(yaml.safe_dump(doc))
            results[name] = run_side(spec, gpus, args.trials)
            print(f"{name:12}: {json.dumps(results[name])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
