"""`hptune lr-scan` (job/training/lr_scan.py): on digits, the range it suggests holds the learning
rate that trains best among a small grid; `--write` gives a valid spec searching that range; bad
settings exit 2 before any training."""

from __future__ import annotations

from pathlib import Path

import keras
import keras_tuner as kt
import pytest
import yaml

from job.cli import main
from job.errors import EXIT_BAD_INPUT
from job.spec import load_spec
from job.training.data import load_dataset
from job.training.lr_scan import scan_spec
from job.training.space import make_builder, search_space
from tests.support.commands import hptune
from tests.support.specs import REPO

pytestmark = pytest.mark.slow
DIGITS = REPO / "examples" / "digits.yaml"
GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def test_the_suggested_range_holds_the_rate_that_trains_best() -> None:
    job = load_spec(DIGITS)
    data = load_dataset(job.spec.data)
    build = make_builder(job, data.output_units, data.input_shape, None)
    space = search_space(job, build)
    scan = scan_spec(job, data, build, space)
    low, high = scan.range
    assert scan.rates == sorted(scan.rates) and scan.rates[0] == pytest.approx(1e-6)
    assert min(scan.smoothed) < scan.smoothed[0], "the loss fell somewhere along the scan"

    accuracy = {}
    for rate in GRID:
        keras.utils.set_random_seed(0)
        hp = kt.HyperParameters()
        hp.values.update({**space.values, "learning_rate": rate})
        model = build(hp)
        history = model.fit(
            data.x_train,
            data.y_train,
            validation_data=(data.x_val, data.y_val),
            epochs=3,
            batch_size=32,
            verbose=0,
        )
        accuracy[rate] = max(history.history["val_accuracy"])
    best = max(accuracy, key=accuracy.__getitem__)
    assert low <= best <= high, f"range {low:.3g}-{high:.3g}, grid {accuracy}"


def test_the_command_draws_the_scan_and_writes_a_spec_searching_the_range(tmp_path: Path) -> None:
    written, plot = tmp_path / "scanned.yaml", tmp_path / "scan.html"
    result = hptune("lr-scan", str(DIGITS), "--steps", "120", "--plot", str(plot), "--write", str(written))
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout
    assert "suggested learning rate" in said and "range to search" in said
    assert plot.read_text().count("smoothed loss") >= 1
    job = load_spec(written)
    (rate,) = [hp for hp in job.spec.hyperparameters if hp.name == "learning_rate"]
    assert rate.type == "float" and rate.sampling == "log" and rate.min < rate.max
    assert f"{rate.min:.3g} to {rate.max:.3g}" in said
    original = yaml.safe_load(DIGITS.read_text())
    assert yaml.safe_load(written.read_text())["spec"]["tuner"] == original["spec"]["tuner"], (
        "the rest as it was"
    )


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--low", "0.1", "--high", "0.01"], "--low and --high must satisfy 0 < low < high"),
        (["--steps", "3"], "--steps must be at least 10"),
    ],
)
def test_bad_settings_exit_2_before_any_training(
    arguments: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lr-scan", str(DIGITS), *arguments]) == EXIT_BAD_INPUT
    assert says in capsys.readouterr().err


def test_an_existing_spec_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken.yaml"
    taken.write_text("mine")
    assert main(["lr-scan", str(DIGITS), "--write", str(taken)]) == EXIT_BAD_INPUT
    assert "exists" in capsys.readouterr().err and taken.read_text() == "mine"
