"""`hptune import katib` (job/spec/katib.py): Katib Experiments (kubeflow.org/v1beta1, the files in
tests/data/katib/) as TuningJob specs: each mapped field checked, each unmapped one named, the spec
valid, and bad input refused with exit 2 before anything is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from job.cli import main
from job.errors import EXIT_BAD_INPUT
from job.spec import load_spec
from job.spec.katib import import_katib

DATA = Path(__file__).resolve().parents[1] / "data" / "katib"


def spec_of(name: str, algorithm: str | None = None) -> tuple[dict[str, Any], list[str]]:
    text, translation = import_katib(str(DATA / name), algorithm)
    return yaml.safe_load(text)["spec"], translation.unmapped


def test_random_search_parameters_objective_and_counts() -> None:
    spec, unmapped = spec_of("random.yaml")
    assert spec["hyperparameters"] == [
        {"name": "units", "type": "int", "min": 32, "max": 512, "step": 32},
        {"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "sampling": "log"},
        {"name": "optimizer", "type": "choice", "values": ["sgd", "adam"]},
    ]
    assert spec["tuner"] == {
        "objective": {"name": "val_accuracy", "direction": "max"},
        "algorithm": "random",
        "seed": 11,
        "maxTrials": 20,
        "maxConsecutiveFailedTrials": 3,
    }
    assert spec["distribution"] == {"workers": 4}
    assert spec["model"] == {"type": "custom", "builder": "my_model:build_model"}, "to fill in"
    said = "\n".join(unmapped)
    for field in (
        "spec.objective.goal (0.98)",
        "additionalMetricNames (accuracy)",
        "spec.maxFailedTrialCount (3)",
    ):
        assert field in said
    assert "spec.trialTemplate: the trial's containers cannot be translated" in said


def test_bayesian_settings_discrete_values_and_median_stopping() -> None:
    spec, unmapped = spec_of("bayesian.yaml")
    assert spec["tuner"]["algorithm"] == "bayesian"
    assert spec["tuner"]["objective"] == {"name": "val_loss", "direction": "min"}
    assert spec["tuner"]["bayesian"] == {"numInitialPoints": 5}
    assert spec["tuner"]["seed"] == 3
    assert spec["tuner"]["pruning"] == {"type": "median", "minTrials": 2, "minEpochs": 1}
    assert spec["hyperparameters"][0] == {"name": "batch", "type": "choice", "values": [16, 32, 64]}
    assert spec["hyperparameters"][1] == {"name": "dropout", "type": "float", "min": 0.1, "max": 0.5}
    said = "\n".join(unmapped)
    assert "algorithmSettings acq_func=gp_hedge: Keras Tuner's bayesian oracle has no such setting" in said
    assert "feasibleSpace.distribution (normal)" in said
    assert "base_estimator" not in said, "GP is what Keras Tuner's Bayesian oracle is"


def test_grid_keeps_its_steps() -> None:
    spec, _ = spec_of("grid.yaml")
    assert spec["tuner"]["algorithm"] == "grid"
    assert spec["hyperparameters"] == [
        {"name": "lr", "type": "float", "min": 0.01, "max": 0.03, "step": 0.01},
        {"name": "layers", "type": "int", "min": 2, "max": 3},
    ]


def test_hyperbands_resource_becomes_its_epochs() -> None:
    spec, unmapped = spec_of("hyperband.yaml")
    assert spec["tuner"]["hyperband"] == {"maxEpochs": 8, "factor": 2}
    assert [hp["name"] for hp in spec["hyperparameters"]] == ["lr"], "Hyperband schedules the epochs"
    assert not any("resource_name" in item or "eta" in item for item in unmapped)


def test_tpe_maps_to_optunas_sampler_with_its_startup_trials() -> None:
    spec, unmapped = spec_of("tpe.yaml")
    assert spec["tuner"]["algorithm"] == "tpe"
    assert spec["tuner"]["sampler"] == {"startupTrials": 5}
    assert not any("n_startup_trials" in item for item in unmapped)


def test_an_algorithm_without_an_equivalent_is_refused_with_the_nearest_or_replaced_on_request() -> None:
    with pytest.raises(Exception) as caught:
        spec_of("enas.yaml")
    assert "spec.algorithm.algorithmName: enas has no equivalent in hptune" in str(caught.value)
    assert "--algorithm random" in str(caught.value)
    spec, unmapped = spec_of("enas.yaml", algorithm="tpe")
    assert spec["tuner"]["algorithm"] == "tpe"
    said = "\n".join(unmapped)
    assert "spec.algorithm.algorithmName (enas): replaced by tpe (--algorithm)" in said
    assert "controller_hidden_size=64: a setting of enas" in said


def test_the_written_spec_validates_and_says_what_to_fill_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "spec.yaml"
    assert main(["import", "katib", str(DATA / "random.yaml"), "-o", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# A TuningJob from the Katib Experiment in")
    assert "#   - spec.objective.goal (0.98)" in text
    job = load_spec(target)
    assert job.name == "mlp-random" and job.spec.tuner.max_trials == 20
    printed = capsys.readouterr()
    assert "fill in spec.model and spec.data" in printed.out
    assert "not carried over, or changed:" in printed.err
    assert main(["import", "katib", str(DATA / "grid.yaml"), "-o", str(target)]) == EXIT_BAD_INPUT
    assert "--output" in capsys.readouterr().err and load_spec(target).name == "mlp-random", "not replaced"


def test_a_name_katib_allows_becomes_a_dns_label() -> None:
    text, _ = import_katib(str(DATA / "bayesian.yaml"))
    assert yaml.safe_load(text)["metadata"]["name"] == "tabular-bo-v2"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("apiVersion: batch/v1\nkind: Job\n", "not a Katib Experiment (kind: Experiment"),
        ("apiVersion: kubeflow.org/v1\nkind: Experiment\nspec: {}\n", "apiVersion 'kubeflow.org/v1'"),
        ("key: [unclosed\n", "not YAML"),
        (
            "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec:\n  objective: {type: maximize, "
            "objectiveMetricName: a}\n  algorithm: {algorithmName: random}\n  parameters:\n  - name: x\n"
            "    parameterType: int\n    feasibleSpace: {min: '1.5', max: '3'}\n",
            "spec.parameters[0] (x).feasibleSpace: '1.5' is not a whole number",
        ),
        (
            "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nspec:\n  objective: {type: maximize, "
            "objectiveMetricName: a}\n  algorithm: {algorithmName: random}\n  earlyStopping: "
            "{algorithmName: truncation}\n  parameters:\n  - {name: x, parameterType: categorical, "
            "feasibleSpace: {list: [a]}}\n",
            "spec.earlyStopping.algorithmName: 'truncation'",
        ),
    ],
    ids=["not-an-experiment", "other-version", "not-yaml", "fractional-int", "other-early-stopping"],
)
def test_bad_input_exits_2_naming_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, says: str
) -> None:
    source = tmp_path / "experiment.yaml"
    source.write_text(content)
    target = tmp_path / "spec.yaml"
    assert main(["import", "katib", str(source), "-o", str(target)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(source) in err and says in " ".join(err.split())
    assert not target.exists() and not list(tmp_path.glob(".*partial")), "nothing written"
