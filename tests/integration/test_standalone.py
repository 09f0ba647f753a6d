"""A real standalone search on digits: every artifact, a best model that scores what was recorded."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from job.spec import load_spec
from job.training.data import load_dataset
from tests.support.commands import hptune


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    import yaml

    from tests.support.specs import BASE_SPEC, merge

    root = tmp_path_factory.mktemp("standalone")
    spec = root / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            merge(
                BASE_SPEC,
                {
                    "spec": {
                        "tuner": {"maxTrials": 4},
                        "output": {"uri": str(root / "out"), "keepModels": 2},
                    }
                },
            )
        )
    )
    result = hptune("run", str(spec))
    assert result.returncode == 0, result.stderr
    return spec, root / "out", result.stdout + result.stderr


def test_every_artifact_is_written(finished: tuple[Path, Path, str]) -> None:
    _, out, _ = finished
    for name in (
        "search.json",
        "leaderboard.csv",
        "state/snapshot.json",
        "best/model.keras",
        "best/hyperparameters.json",
        "best/metrics.json",
        "best/README.md",
        "best/manifest.json",
    ):
        assert (out / name).is_file(), name
    records = sorted((out / "trials").glob("*/trial.json"))
    assert len(records) == 4
    record = json.loads(records[0].read_text())
    assert record["status"] == "completed"
    assert set(record["hyperparameters"]) == {"hidden1", "dropout1", "learning_rate"}
    assert [sorted(epoch) for epoch in record["history"][0]] == [
        ["accuracy", "loss", "val_accuracy", "val_loss"]
    ] * 2
    assert json.loads((out / "search.json").read_text())["state"] == "succeeded"


def test_only_the_best_k_trial_models_are_kept(finished: tuple[Path, Path, str]) -> None:
    _, out, _ = finished
    kept = sorted(p.parent.name for p in (out / "trials").glob("*/model.keras"))
    board = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert kept == sorted(row["trial_id"] for row in board[:2])


def test_the_leaderboard_has_one_sorted_row_per_trial(finished: tuple[Path, Path, str]) -> None:
    _, out, _ = finished
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert len(rows) == 4
    assert len({row["trial_id"] for row in rows}) == 4
    scores = [float(row["val_accuracy"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4"]


def test_the_best_model_scores_what_was_recorded(finished: tuple[Path, Path, str]) -> None:
    spec, out, _ = finished
    metrics = json.loads((out / "best/metrics.json").read_text())
    model = keras.models.load_model(out / "best" / "model.keras")
    data = load_dataset(load_spec(spec).spec.data)
    _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
    assert metrics["objective"]["name"] == "val_accuracy"
    assert abs(accuracy - metrics["objective"]["value"]) < 1e-3
    board = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert metrics["trialId"] == board[0]["trial_id"]
    assert np.isclose(float(board[0]["val_accuracy"]), metrics["objective"]["value"])


def test_the_summary_names_the_best_and_where_it_is(finished: tuple[Path, Path, str]) -> None:
    _, out, printed = finished
    assert "4 trials completed, 0 failed. Best: trial" in printed
    assert f"model: {out}/best/model.keras" in printed
    assert printed.count("completed: val_accuracy=") == 4  # one log line per trial end


def test_a_failing_trial_is_recorded_and_the_search_goes_on(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "flaky.py").write_text(
        "import keras\n"
        "def build_model(hp):\n"
        "    units = hp.Int('units', 8, 40, step=16)\n"
        "    if units == 24:\n"
        "        raise ValueError('24 units is not supported by this model')\n"
        "    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation='relu'),\n"
        "                              keras.layers.Dense(10, activation='softmax')])\n"
        "    model.compile('adam', 'categorical_crossentropy', metrics=['accuracy'])\n"
        "    return model\n"
    )
    spec = write_spec(
        {
            "spec": {
                "model": {
                    "type": "custom",
                    "builder": "flaky:build_model",
                    "hidden": None,
                    "learningRate": None,
                },
                "hyperparameters": [],
                "tuner": {"algorithm": "grid", "maxTrials": 3},
                "training": {"epochs": 1},
            }
        }
    )
    result = hptune("run", str(spec))
    assert result.returncode == 0, result.stderr
    rows = {row["units"]: row for row in csv.DictReader((tmp_path / "out/leaderboard.csv").open())}
    assert rows["24"]["status"] == "failed"
    assert rows["24"]["error"] == "ValueError: 24 units is not supported by this model"
    assert {rows["8"]["status"], rows["40"]["status"]} == {"completed"}
    failed = next(
        json.loads(p.read_text())
        for p in (tmp_path / "out/trials").glob("*/trial.json")
        if json.loads(p.read_text())["status"] == "failed"
    )
    assert "Traceback" in failed["error"] and "24 units is not supported" in failed["error"]
    assert "24 units is not supported by this model" in result.stderr


def test_a_search_over_depth_records_each_trials_layers_and_the_inactive_ones(
    write_spec: Callable[..., Path],
) -> None:
    # One to three hidden layers, each with its own width (Keras Tuner's units_0, units_1, ...).
    spec = write_spec(
        {
            "spec": {
                "model": {
                    "depth": "layers",
                    "hidden": [{"units": "units_0"}, {"units": "units_1"}, {"units": "units_2"}],
                },
                "hyperparameters": [
                    {"name": "layers", "type": "choice", "values": [1, 3]},
                    {"name": "units_0", "type": "int", "min": 16, "max": 32, "step": 16},
                    {"name": "units_1", "type": "int", "min": 8, "max": 16, "step": 8},
                    {"name": "units_2", "type": "int", "min": 8, "max": 16, "step": 8},
                    {"name": "learning_rate", "type": "fixed", "value": 0.01},
                ],
                "tuner": {"maxTrials": 6, "seed": 2},
                "training": {"epochs": 1},
                "output": {"keepModels": 6},
            }
        }
    )
    result = hptune("run", str(spec))
    assert result.returncode == 0, result.stderr
    out = spec.parent / "out"
    records = [json.loads(p.read_text()) for p in sorted((out / "trials").glob("*/trial.json"))]
    depths = {r["hyperparameters"]["layers"] for r in records}
    assert depths == {1, 3}, [r["hyperparameters"] for r in records]
    for record in records:
        deep = record["hyperparameters"]["layers"] == 3
        assert ("units_2" in record["hyperparameters"]) == deep
        assert record.get("inactive", []) == ([] if deep else ["units_1", "units_2"])
        model = keras.models.load_model(out / "trials" / record["trialId"] / "model.keras")
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        assert len(dense) == record["hyperparameters"]["layers"] + 1
    shown = hptune("show", str(out), "--wide")
    assert shown.returncode == 0, shown.stderr
    assert "inactive" in shown.stdout


def test_a_search_whose_best_stopped_improving_ends_early_and_says_why(
    write_spec: Callable[..., Path],
) -> None:
    rule = {"trials": 2, "minDelta": 0.05}
    spec = write_spec(
        {"spec": {"tuner": {"maxTrials": 20, "stopWithoutImprovement": rule}, "training": {"epochs": 1}}}
    )
    result = hptune("run", str(spec))
    assert result.returncode == 0, result.stderr
    out = spec.parent / "out"
    status = json.loads((out / "search.json").read_text())
    assert status["state"] == "succeeded" and status["trials"]["completed"] < 20
    assert "has not improved by 0.05 in the last 2 completed trials" in status["stoppedEarly"]
    shown = hptune("show", str(out))
    assert "stopped early: the best has not improved" in " ".join(shown.stdout.split())
