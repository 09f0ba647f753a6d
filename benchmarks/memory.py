"""Memory: a worker's resident memory over many trials, hptune against plain Keras Tuner.

The same search (the study notes' MLP space) three ways: a real hptune chief and worker process as
shipped (the worker restarts itself between trials once it has outgrown its first trial's memory by
`spec.distribution.restartOnMemoryGrowth`), the same with restarts off, and plain Keras Tuner in
one process. Records the worker's resident set size after every trial, its peak, its restarts and
the wall time (what the restarts cost). Target: RSS after 30 trials within 10 % of RSS after 3.

    python -m benchmarks.memory --trials 30                 # digits (offline, quick)
    python -m benchmarks.memory --trials 30 --mnist         # MNIST from HPTUNE_DATA_DIR
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

from benchmarks.child import REPO, in_child
from job.spec.settings import DistributionSpec
from job.supervision.processes import free_port
from job.supervision.recycle import resident_bytes


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process (this one by default), in MiB."""
    return resident_bytes(pid) / 2**20


def _job(trials: int, mnist: bool) -> Any:
    from job.spec import load_spec

    job = load_spec(REPO / "examples" / ("mnist.yaml" if mnist else "digits.yaml"))
    tuner = job.spec.tuner.model_copy(update={"max_trials": trials, "seed": 1})
    training = job.spec.training.model_copy(update={"epochs": 2, "early_stopping": None})
    data = job.spec.data.model_copy(update={"max_train_samples": 10000} if mnist else {})
    return job.model_copy(
        update={"spec": job.spec.model_copy(update={"tuner": tuner, "training": training, "data": data})}
    )


def hptune_side(trials: int, mnist: bool, data_dir: str | None, growth: float) -> dict[str, Any]:
    """A real chief and one real worker process (`hptune run` with the Keras Tuner variables).

    The worker's resident memory is read from /proc when it starts its next trial (so after each
    trial, and after a restart if it restarted) and polled throughout for its peak.
    """
    import yaml

    job = _job(trials, mnist)
    dist = job.spec.distribution.model_copy(update={"restart_on_memory_growth": growth, "linger_seconds": 5})
    metrics = job.spec.metrics.model_copy(update={"port": 0})
    samples: list[float] = []
    peak = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        output = job.spec.output.model_copy(update={"uri": f"{tmp}/out"})
        job = job.model_copy(
            update={
                "spec": job.spec.model_copy(
                    update={"distribution": dist, "metrics": metrics, "output": output}
                )
            }
        )
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(yaml.safe_dump(job.model_dump(mode="json", by_alias=True, exclude_none=True)))
        port = str(free_port())
        base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERASTUNER_ORACLE_IP": "127.0.0.1"}
        if data_dir:
            base["HPTUNE_DATA_DIR"] = data_dir

        def start(tuner_id: str, stdout: int) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "job", "run", str(spec)],
                env={**base, "KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_PORT": port},
                cwd=REPO,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                text=True,
            )

        chief, worker = start("chief", subprocess.DEVNULL), start("tuner0", subprocess.PIPE)
        done = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, rss_mib(worker.pid))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        restarts = 0
        assert worker.stdout is not None
        for line in worker.stdout:
            if ": running trial " in line or "the search is over" in line:
                samples.append(rss_mib(worker.pid))
            restarts += "restarting this worker" in line
        done.set()
        worker.wait()
        chief.wait(timeout=120)
    # The first sample is taken before any trial.
    return {"after_trial": samples[1:], "peak": peak, "restarts": restarts}


def plain_side(trials: int, mnist: bool, data_dir: str | None) -> dict[str, Any]:
    """Keras Tuner's own RandomSearch over the same space, in this process."""
    import keras_tuner as kt

    from job.training.data import load_dataset
    from job.training.space import mlp_builder

    job = _job(trials, mnist)
    data = load_dataset(job.spec.data, Path(data_dir) if data_dir else None)
    build = mlp_builder(job.spec.model, data.num_classes, data.input_shape)
    samples: list[float] = []

    class Measured(kt.RandomSearch):
        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            samples.append(rss_mib())

    with tempfile.TemporaryDirectory() as tmp:
        tuner = Measured(
            lambda hp: build(_declare(hp, job)),
            objective="val_accuracy",
            max_trials=trials,
            seed=1,
            directory=tmp,
            project_name="plain",
        )
        tuner.search(
            data.x_train,
            data.y_train,
            epochs=2,
            validation_data=(data.x_val, data.y_val),
            batch_size=32,
            verbose=0,
        )
    return {"after_trial": samples, "peak": max(samples), "restarts": 0}


def _declare(hp: Any, job: Any) -> Any:
    from job.training.space import declare

    for definition in job.spec.hyperparameters:
        declare(hp, definition)
    return hp


def _plain_in_child(trials: int, mnist: bool, data_dir: str | None) -> dict[str, Any]:
    call = f"plain_side({trials}, {mnist}, {data_dir!r})"
    return in_child("from benchmarks.memory import plain_side", call, "plain Keras Tuner")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--mnist", action="store_true", help="MNIST (first 10,000 samples) instead of digits")
    parser.add_argument("--data-dir", default=os.environ.get("HPTUNE_DATA_DIR"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.trials < 4:
        parser.error("--trials must be at least 4 (memory after trial 3 is the reference)")
    growth = DistributionSpec.model_fields["restart_on_memory_growth"].default
    sides = {
        f"hptune worker (restartOnMemoryGrowth {growth})": lambda: hptune_side(
            args.trials, args.mnist, args.data_dir, growth
        ),
        "hptune worker (restarts off)": lambda: hptune_side(args.trials, args.mnist, args.data_dir, 0.0),
        "plain Keras Tuner": lambda: _plain_in_child(args.trials, args.mnist, args.data_dir),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, measure in sides.items():
        started = time.perf_counter()
        results[name] = {**measure(), "seconds": time.perf_counter() - started}
    dataset = "MNIST, 10,000 images" if args.mnist else "digits"
    print(f"memory: a worker's resident memory over {args.trials} trials ({dataset}, 2 epochs each)")
    for name, result in results.items():
        samples = result["after_trial"]
        early, late = samples[2], samples[-1]
        print(
            f"  {name:40}: after trial 3 {early:7.1f} MiB, after trial {len(samples)} {late:7.1f} MiB "
            f"({100 * (late - early) / early:+5.1f} %), peak {result['peak']:7.1f} MiB, "
            f"{result['restarts']} restarts, {result['seconds']:5.0f} s in all"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
