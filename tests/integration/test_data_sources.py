"""Your own data and model end to end, in real processes: every example under examples/ for them
runs as shipped (fewer trials); image folders and tables on S3 (moto's S3 API) are fetched once per
machine, through a transient outage; a Keras Tuner HyperModel runs distributed and keeps its trial
when a worker is killed mid-trial."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from job.spec.data import DataSpec
from job.training.data import load_dataset
from tests.support.commands import hptune, hptune_env
from tests.support.moto_s3 import BUCKET, S3Server
from tests.support.processes import search
from tests.support.specs import REPO

pytestmark = pytest.mark.slow


def leaderboard(out: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((out / "leaderboard.csv").open()))


# name, the script that writes its data (if any), changes that keep the run short
EXAMPLES = [
    ("wine", None, {}),
    ("diabetes", "write_table.py", {"training": {"epochs": 5}}),
    ("images", "write_images.py", {"training": {"epochs": 2}}),
    ("hypermodel", None, {}),
    ("tfdata", None, {}),
]


@pytest.mark.parametrize(("name", "writer", "changes"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_each_example_runs_as_shipped(
    tmp_path: Path, name: str, writer: str | None, changes: dict[str, Any]
) -> None:
    """The example copied as it is (its data written by its own script), two trials, from a
    working directory like the repository's."""
    folder = tmp_path / "examples" / name
    shutil.copytree(
        REPO / "examples" / name, folder, ignore=shutil.ignore_patterns("digits", "*.csv", "*.parquet")
    )
    if writer is not None:
        subprocess.run([sys.executable, str(folder / writer)], check=True, capture_output=True)
    doc = yaml.safe_load((folder / "spec.yaml").read_text())
    doc["spec"]["tuner"]["maxTrials"] = 2
    for section, values in changes.items():
        doc["spec"][section].update(values)
    (folder / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    result = hptune("run", f"examples/{name}/spec.yaml", "--output", str(out), cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = leaderboard(out)
    assert [row["status"] for row in rows] == ["completed", "completed"], rows
    assert (out / "best" / "model.keras").exists()
    if name == "wine":  # the trial's batch size, epochs and optimizer are hyperparameters
        assert {"batch_size", "epochs", "optimizer"} <= set(rows[0])
    if name == "diabetes":
        assert "val_mae" in result.stderr


# -- data on S3 -----------------------------------------------------------------------------------


def _put_folder(server: S3Server, local: Path, prefix: str) -> None:
    client = server.client()
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(local).as_posix()}")


def test_an_image_folder_and_a_table_on_s3_are_fetched_once_through_an_outage(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.url)
    pictures = tmp_path / "pictures"
    for label in ("left", "right"):
        (pictures / label).mkdir(parents=True)
        for i in range(6):
            pixels = np.full((8, 8), 40 * i, np.uint8)
            Image.fromarray(pixels).save(pictures / label / f"{i}.png")
    _put_folder(s3, pictures, "data/pictures")
    table = tmp_path / "table"
    table.mkdir()
    pq.write_table(pa.table({"x": list(range(20)), "y": [i % 2 for i in range(20)]}), table / "rows.parquet")
    _put_folder(s3, table, "data/table")

    caplog.set_level(logging.INFO, logger="job.training.data")
    s3.fail("GET", r"/data/pictures/left/3\.png", 1.0)  # the server goes away for a second mid-fetch
    images = DataSpec.model_validate(
        {
            "source": "images",
            "path": f"s3://{BUCKET}/data/pictures",
            "imageSize": [8, 8],
            "colorMode": "grayscale",
        }
    )
    data = load_dataset(images)
    assert len(data.x_train) + len(data.x_val) == 12 and data.num_classes == 2
    assert s3.faults(), "the outage did not happen"
    rows = load_dataset(
        DataSpec.model_validate(
            {"source": "table", "path": f"s3://{BUCKET}/data/table/rows.parquet", "label": "y"}
        )
    )
    assert rows.num_classes == 2 and len(rows.x_train) == 16
    fetched = [r.getMessage() for r in caplog.records if "fetched" in r.getMessage()]
    assert len(fetched) == 2 and "in 12 file(s)" in fetched[0]

    caplog.clear()
    before = len(s3.requests())
    load_dataset(images)  # a restarted worker, or the next trial process on this machine
    assert any("fetched before" in r.getMessage() for r in caplog.records)
    assert not [r for r in s3.requests()[before:] if r[0] == "GET" and r[1].endswith(".png")]

    limited = images.model_copy(update={"max_fetch_bytes": 100})
    with pytest.raises(Exception, match=r"is more than spec.data.maxFetchBytes \(100 bytes\)"):
        load_dataset(limited)


# -- a HyperModel, distributed -------------------------------------------------------------------

HYPERMODEL = """\
import keras
import keras_tuner as kt


class Digits(kt.HyperModel):
    def build(self, hp):
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, shuffle=hp.Boolean("shuffle", default=True), **kwargs)
"""


def test_a_hypermodel_runs_distributed_and_keeps_a_killed_workers_trial(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "digits_model.py").write_text(HYPERMODEL)
    model = {"type": "hypermodel", "class": "digits_model:Digits", "hidden": None, "learningRate": None}
    spec = write_spec(
        {
            "spec": {
                "model": model,
                "hyperparameters": [],
                "tuner": {"maxTrials": 4, "objective": {"name": "val_accuracy", "direction": "max"}},
                "training": {"epochs": 12, "batchSize": 16},
                "distribution": {
                    "leaseSeconds": 6,
                    "heartbeatSeconds": 1,
                    "chiefWaitSeconds": 60,
                    "lingerSeconds": 10,
                    "spareWorkers": 1,  # killed for good: the other worker takes its trial over
                },
            }
        }
    )
    with search(spec, tmp_path) as s:
        chief = s.chief()
        _, w1 = s.worker(0), s.worker(1)
        started = chief.wait_for_log(r"trial (\w+) started on tuner1", timeout=180)
        w1.wait_for_log(rf"running trial {started.group(1)} ", timeout=30)
        w1.kill(signal.SIGKILL)
        assert chief.wait(timeout=240) == 0, chief.log[-3000:]
    rows = {row["trial_id"]: row for row in leaderboard(tmp_path / "out")}
    assert len(rows) == 4 and {row["status"] for row in rows.values()} == {"completed"}
    assert rows[started.group(1)]["status"] == "completed"
    assert s.runs_per_trial()[started.group(1)] == 2
    records = [json.loads(p.read_text()) for p in (tmp_path / "out/trials").glob("*/trial.json")]
    assert all("units" in r["hyperparameters"] for r in records)


# The getting-started guide's "custom metric as the objective": fit trains with model.fit, then
# evaluates by itself and returns one number; no objective in the spec, so Keras Tuner's default
# (default_objective, minimized) applies.
OWN_METRIC = """\
import keras
import keras_tuner as kt
import numpy as np


class OwnMetric(kt.HyperModel):
    def build(self, hp):
        model = keras.Sequential([
            keras.Input((64,)),
            keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="categorical_crossentropy")
        return model

    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        x_val, y_val = validation_data
        return float(np.mean(np.abs(model.predict(x_val, verbose=0) - y_val)))
"""


def test_a_hypermodel_that_returns_its_own_metric_is_searched_for_its_smallest_value(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "own_metric.py").write_text(OWN_METRIC)
    model = {"type": "hypermodel", "class": "own_metric:OwnMetric", "hidden": None, "learningRate": None}
    spec = write_spec({"spec": {"model": model, "hyperparameters": [], "training": {"epochs": 1}}})
    result = hptune("run", str(spec), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = leaderboard(tmp_path / "out")
    assert len(rows) == 3 and {row["status"] for row in rows} == {"completed"}
    scores = [float(row["default_objective"]) for row in rows]
    assert scores == sorted(scores), "best (smallest) first"
    status = json.loads((tmp_path / "out" / "search.json").read_text())
    assert status["best"]["default_objective"] == pytest.approx(scores[0])


def test_the_study_notes_example_searches_their_whole_list(tmp_path: Path, mnist_dir: Path) -> None:
    """examples/mnist-notes.yaml as shipped, on 3,000 MNIST images, 2 trials of 2 epochs: the trials
    complete, and the best model, loaded by plain Keras, holds the settings its trial drew."""
    doc = yaml.safe_load((REPO / "examples" / "mnist-notes.yaml").read_text())
    doc["spec"]["data"]["maxTrainSamples"] = 3000
    doc["spec"]["tuner"]["maxTrials"] = 2
    doc["spec"]["training"]["epochs"] = 2
    doc["spec"]["output"]["uri"] = str(tmp_path / "out")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = hptune("run", str(spec), env=hptune_env(HPTUNE_DATA_DIR=str(mnist_dir)), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = leaderboard(tmp_path / "out")
    assert [row["status"] for row in rows] == ["completed", "completed"]
    drawn = json.loads((tmp_path / "out" / "best" / "hyperparameters.json").read_text())
    code = (
        "import json, sys, keras; m = keras.models.load_model(sys.argv[1]); "
        "print(json.dumps([[type(l).__name__, l.get_config()] for l in m.layers] + "
        "[m.optimizer.get_config()], default=str))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out" / "best" / "model.keras")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *layers, optimizer = json.loads(done.stdout.splitlines()[-1])
    dense = [config for kind, config in layers if kind == "Dense"]
    assert len(dense) == drawn["layers"] + 1, "the hidden layers of its depth, and the output"
    for i, config in enumerate(dense[:-1]):
        assert config["units"] == drawn[f"hidden{i + 1}"]
    assert not any(f"hidden{i + 1}" in drawn for i in range(drawn["layers"], 3)), "inactive: no value"
    assert dense[0]["activation"] == drawn["activation"]
    assert dense[0]["kernel_regularizer"]["config"]["l2"] == pytest.approx(drawn["l2"], rel=1e-5)
    initializer = {"glorot_uniform": "GlorotUniform", "he_normal": "HeNormal"}[drawn["initializer"]]
    assert dense[0]["kernel_initializer"]["class_name"] == initializer
    norms = sum(kind == "BatchNormalization" for kind, _ in layers)
    assert norms == (drawn["layers"] if drawn["batch_norm"] == "after" else 0)
    assert optimizer["name"] == drawn["optimizer"] and optimizer["clipnorm"] == 1.0
    assert optimizer["learning_rate"]["class_name"] == "CosineDecay"
    assert optimizer.get("momentum") == (0.9 if drawn["optimizer"] == "sgd" else None)
