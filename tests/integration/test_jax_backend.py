"""The job on Keras' JAX backend (CPU build here), which is what GPU machines without TensorFlow run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.commands import child_result, hptune, hptune_env
from tests.support.specs import REPO

# Trains one digits model twice from the same seed, through Keras' own loop of jitted steps and
# through hptune's scanned steps, and prints each epoch's metrics and what ran the steps.
COMPARE = """
import json, keras, keras_tuner as kt
from job.training.data import load_dataset
from job.training.space import declare, make_builder
from job.spec import load_spec
from job.training.trial import tune_execution

job = load_spec({spec!r})
data = load_dataset(job.spec.data)
build = make_builder(job, data.num_classes, data.input_shape, None)
results = {{}}
for scan in (False, True):
    keras.utils.set_random_seed(7)
    hp = kt.HyperParameters()
    for definition in job.spec.hyperparameters:
        declare(hp, definition)
    model = build(hp)
    training = job.spec.training.model_copy(update={{"steps_per_execution": 4, "scan_steps": scan}})
    tune_execution(model, training, len(data.x_train))
    history = model.fit(
        data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
        epochs=3, batch_size=training.batch_size, verbose=0,
    )
    results[str(scan)] = {{"history": history.history, "steps": model.train_function.__qualname__}}
print("RESULT " + json.dumps(results))
"""


def test_scanned_steps_train_exactly_as_keras_own_loop(write_spec: Callable[..., Path]) -> None:
    spec = write_spec()
    result = subprocess.run(
        [sys.executable, "-c", COMPARE.format(spec=str(spec))],
        env=hptune_env(KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, result.stderr[-3000:]
    runs = json.loads(line[len("RESULT ") :])
    keras_loop, scanned = runs["False"], runs["True"]
    assert keras_loop["steps"].startswith("JAXTrainer.")
    assert scanned["steps"].startswith("scanned_train_function.")
    # 1149 training images in batches of 64: stacks of 4 steps, a shorter rest and a partial batch.
    assert set(scanned["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, values in keras_loop["history"].items():
        assert scanned["history"][name] == pytest.approx(values, rel=1e-5, abs=1e-6), name


def test_a_search_runs_end_to_end_on_the_jax_backend(write_spec: Callable[..., Path], tmp_path: Path) -> None:
    spec = write_spec({"spec": {"training": {"scanSteps": True}}})
    result = hptune("run", str(spec), env=hptune_env(KERAS_BACKEND="jax"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    board = (tmp_path / "out" / "leaderboard.csv").read_text().splitlines()
    assert len(board) == 1 + 3
    assert all(",completed," in row for row in board[1:])
    assert (tmp_path / "out" / "best" / "model.keras").exists()
    assert json.loads((tmp_path / "out" / "best" / "manifest.json").read_text())


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_trial_over_four_devices_learns_what_it_learns_on_one(backend: str) -> None:
    """gpusPerTrial: the same trial, data parallel over 4 CPU devices (Keras' DataParallel on JAX,
    a MirroredStrategy on TensorFlow) and on one: same global batch, same batches in the same
    order, same initial weights: the same metrics every epoch, to float tolerance."""
    runs = {}
    for devices in (1, 4):
        runs[devices] = child_result("tests.support.replicas", str(devices), backend=backend)
    one, four = runs[1], runs[4]
    assert len(four["devices"]) == 4 and one["train"] == four["train"]
    assert len(one["history"]) == len(four["history"]) == 3
    for alone, split in zip(one["history"], four["history"], strict=True):
        assert alone.keys() == split.keys()
        for name in alone:
            assert split[name] == pytest.approx(alone[name], rel=1e-4, abs=1e-5), (name, alone, split)


def test_a_resumed_trial_ends_as_it_would_have_uninterrupted_on_the_jax_backend() -> None:
    """The same-result checks of tests/integration/test_resume.py (in order, and shuffled by the
    trial's EpochOrder, which JAX feeds from a generator rather than TensorFlow's tf.data; killed
    after a checkpoint, and stopped by a signal that writes the epoch held in memory), and the
    feed's own checks, run on the JAX backend."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_resume.py::test_a_resumed_trial_ends_as_it_would_have_uninterrupted",
            "tests/unit/test_order.py",
        ],
        env=hptune_env(KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "7 passed" in done.stdout
