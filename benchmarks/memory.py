"""Memory: a worker's resident memory over many trials, hptune against plain Keras Tuner.

Each side runs the same search (the study notes' MLP space) in a fresh process and records its
resident set size after every trial. Target: hptune's RSS after 30 trials within 10 % of its RSS
after 3.

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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    """Current resident set size of this process, in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _job(trials: int, mnist: bool) -> Any:
    from job.spec import load_spec

    job = load_spec(REPO / "examples" / ("mnist.yaml" if mnist else "digits.yaml"))
    tuner = job.spec.tuner.model_copy(update={"max_trials": trials, "seed": 1})
    training = job.spec.training.model_copy(update={"epochs": 2, "early_stopping": None})
    data = job.spec.data.model_copy(update={"max_train_samples": 10000} if mnist else {})
    return job.model_copy(
        update={"spec": job.spec.model_copy(update={"tuner": tuner, "training": training, "data": data})}
    )


def hptune_side(trials: int, mnist: bool, data_dir: str | None) -> list[float]:
    import keras_tuner as kt

    from job.coordinator import Coordinator
    from job.data import load_dataset
    from job.results import ModelPruner
    from job.search import prepare_model
    from job.storage import Store
    from job.tuning import make_oracle
    from job.worker import LocalAccess, Worker

    job = _job(trials, mnist)
    data = load_dataset(job.spec.data, Path(data_dir) if data_dir else None)
    build_model, space = prepare_model(job, data, None)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        coordinator = Coordinator(make_oracle(job, space), 600, 3, pruner=ModelPruner(store, 3))
        worker = Worker("tuner0", LocalAccess(coordinator, "tuner0"), job, build_model, data, store)
        while True:
            trial = coordinator.create_trial("tuner0")
            if trial.status != kt.engine.trial.TrialStatus.RUNNING:
                break
            worker.run_one(trial)
            samples.append(rss_mib())
    return samples


def plain_side(trials: int, mnist: bool, data_dir: str | None) -> list[float]:
    import keras_tuner as kt

    from job.data import load_dataset
    from job.space import mlp_builder

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
    return samples


def _declare(hp: Any, job: Any) -> Any:
    from job.space import declare

    for definition in job.spec.hyperparameters:
        declare(hp, definition)
    return hp


SIDES = {"hptune": hptune_side, "plain": plain_side}


def _child(side: str, trials: int, mnist: bool, data_dir: str | None) -> list[float]:
    code = (
        "import json; from benchmarks.memory import SIDES; "
        f"print('RESULT ' + json.dumps(SIDES[{side!r}]({trials}, {mnist}, {data_dir!r})))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{side} failed:\n{out.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--mnist", action="store_true", help="MNIST (first 10,000 samples) instead of digits")
    parser.add_argument("--data-dir", default=os.environ.get("HPTUNE_DATA_DIR"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {side: _child(side, args.trials, args.mnist, args.data_dir) for side in ("hptune", "plain")}
    print(f"memory: worker RSS over {args.trials} trials ({'MNIST' if args.mnist else 'digits'}, 2 epochs)")
    for side, samples in results.items():
        early, late = samples[2], samples[-1]
        print(
            f"  {side:7}: after trial 3 {early:7.1f} MiB, after trial {len(samples)} {late:7.1f} MiB "
            f"({100 * (late - early) / early:+.1f} %)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
