"""The spec for your own data and training: which data fields go with which source, training
settings that name hyperparameters, the MLP's optimizer as a hyperparameter, HyperModel classes.
Each mistake is reported at its field path; each example spec is valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from job.spec import SpecError, load_spec, validate_spec
from job.spec.model import HyperModelClass
from tests.support.specs import BASE_SPEC, merge

REPO = Path(__file__).resolve().parents[2]
HPS = BASE_SPEC["spec"]["hyperparameters"]
NO_MLP = {"hidden": None, "learningRate": None}


def issues(changes: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        validate_spec(merge(BASE_SPEC, changes))
    return [(i.path, i.message) for i in caught.value.issues]


def with_hp(hp: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"spec": {"hyperparameters": [*HPS, hp], **spec}}


@pytest.mark.parametrize(
    "example", sorted(p.relative_to(REPO).as_posix() for p in (REPO / "examples").rglob("*.yaml"))
)
def test_every_example_is_valid(example: str) -> None:
    load_spec(REPO / example)


def test_batch_size_and_epochs_may_name_int_hyperparameters() -> None:
    job = validate_spec(
        merge(
            BASE_SPEC,
            {
                "spec": {
                    "hyperparameters": [
                        *HPS,
                        {"name": "bs", "type": "choice", "values": [16, 32]},
                        {"name": "ep", "type": "int", "min": 1, "max": 4},
                    ],
                    "training": {"batchSize": "bs", "epochs": "ep"},
                }
            },
        )
    )
    assert (job.spec.training.batch_size, job.spec.training.epochs) == ("bs", "ep")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"spec": {"training": {"batchSize": "bs"}}},
            (
                "spec.training.batchSize",
                "Input should be a valid integer or the name of a hyperparameter; 'bs' is not defined in "
                "spec.hyperparameters",
            ),
        ),
        (
            {"spec": {"training": {"batchSize": "dropout1"}}},
            (
                "spec.training.batchSize",
                "names hyperparameter 'dropout1' (hyperparameters[1]), a float hyperparameter; it must be an "
                "int choice or int range of values of at least 1 (for example type: choice, values: "
                "[32, 64, 128])",
            ),
        ),
        (
            with_hp({"name": "bs", "type": "choice", "values": [0.5, 1.0]}, training={"batchSize": "bs"}),
            (
                "spec.training.batchSize",
                "names hyperparameter 'bs' (hyperparameters[3]), a choice of ['number']",
            ),
        ),
        (
            with_hp({"name": "bs", "type": "int", "min": 0, "max": 4}, training={"batchSize": "bs"}),
            (
                "spec.training.batchSize",
                "names hyperparameter 'bs' (hyperparameters[3]), an int range from 0",
            ),
        ),
        (
            with_hp({"name": "ep", "type": "fixed", "value": "ten"}, training={"epochs": "ep"}),
            ("spec.training.epochs", "names hyperparameter 'ep' (hyperparameters[3]), fixed at 'ten'"),
        ),
        (
            with_hp(
                {"name": "ep", "type": "int", "min": 1, "max": 4},
                training={"epochs": "ep"},
                tuner={"algorithm": "hyperband", "hyperband": {"maxEpochs": 4}, "maxTrials": None},
            ),
            ("spec.training.epochs", "cannot name a hyperparameter with algorithm: hyperband"),
        ),
        (
            {"spec": {"training": {"batchSize": 2.5}}},
            ("spec.training.batchSize", "got a number with a fractional"),
        ),
        (
            {"spec": {"model": {"optimizer": "adamm"}}},
            (
                "spec.model.optimizer",
                "refers to hyperparameter 'adamm', which is not defined in spec.hyperparameters; or name an "
                "optimizer: adam, adamw, sgd, rmsprop",
            ),
        ),
        (
            with_hp(
                {"name": "opt", "type": "choice", "values": ["adam", "lbfgs"]}, model={"optimizer": "opt"}
            ),
            (
                "spec.model.optimizer",
                "values ['adam', 'lbfgs']; it must be a choice (or fixed value) among adam",
            ),
        ),
        ({"spec": {"data": {"source": "custom"}}}, ("spec.data.loader", "is required with source: custom")),
        (
            {"spec": {"data": {"source": "custom", "loader": "data.load"}}},
            ("spec.data.loader", "must look like \"package.module:load_data\"; got 'data.load'"),
        ),
        (
            {"spec": {"data": {"source": "custom", "loader": "d:load", "validation": {"fraction": 0.3}}}},
            (
                "spec.data.validation",
                "is not used with source: custom: the loader returns training and validation",
            ),
        ),
        (
            {"spec": {"data": {"source": "custom", "loader": "d:load", "path": "x.npz"}}},
            ("spec.data.path", "is not used with source: custom; pass it to the loader in args"),
        ),
        ({"spec": {"data": {"args": {"n": 1}}}}, ("spec.data.args", "applies only to source: custom")),
        (
            {"spec": {"data": {"source": "images"}}},
            ("spec.data.path", "is required with source: images (a folder URI)"),
        ),
        (
            {"spec": {"data": {"source": "images", "path": "x", "label": "y"}}},
            ("spec.data.label", "applies only to source: table"),
        ),
        (
            {"spec": {"data": {"source": "images", "path": "x", "validation": {"source": "test"}}}},
            (
                "spec.data.validation.source",
                "test is not available with source: images (no test set); use split",
            ),
        ),
        (
            {"spec": {"data": {"source": "digits", "maxFetchBytes": 10}}},
            ("spec.data.maxFetchBytes", "applies only to source: images or table"),
        ),
        (
            {"spec": {"data": {"source": "table", "path": "t.csv"}}},
            ("spec.data.label", "is required with source: table (the column to predict)"),
        ),
        (
            {"spec": {"data": {"source": "table", "path": "t.csv", "label": "y", "features": ["a", "y"]}}},
            ("spec.data.features", "lists the label column 'y'"),
        ),
        (
            {
                "spec": {
                    "data": {
                        "source": "table",
                        "path": "t.csv",
                        "label": "y",
                        "features": ["a"],
                        "categorical": ["b"],
                    }
                }
            },
            ("spec.data.categorical", "['b'] are not among spec.data.features"),
        ),
        (
            {"spec": {"model": {"type": "hypermodel", "class": "models.Tuned", **NO_MLP}}},
            ("spec.model.class", "must look like \"package.module:MyHyperModel\"; got 'models.Tuned'"),
        ),
        (
            {"spec": {"model": {"type": "keras", **NO_MLP}}},
            ("spec.model.type", "type must be mlp, custom or hypermodel"),
        ),
    ],
    ids=lambda value: None,
)
def test_each_rule_reports_its_field(changes: dict[str, Any], expected: tuple[str, str]) -> None:
    found = issues(changes)
    assert len(found) == 1, found
    path, message = found[0]
    assert path == expected[0]
    assert expected[1] in message, message


def test_a_hypermodel_spec_reads_back_unchanged() -> None:
    doc = merge(
        BASE_SPEC,
        {"spec": {"model": {"type": "hypermodel", "class": "tuned:Model", "args": {"classes": 3}, **NO_MLP}}},
    )
    job = validate_spec(doc)
    assert isinstance(job.spec.model, HyperModelClass)
    assert job.spec.model.class_ == "tuned:Model"
    again = validate_spec(job.model_dump(mode="json", by_alias=True))
    assert again == job and again.fingerprint() == job.fingerprint()
    # Without a type, "class" says what the model is.
    untyped = merge(BASE_SPEC, {"spec": {"model": None}})
    untyped["spec"]["model"] = {"class": "tuned:Model"}
    assert isinstance(validate_spec(untyped).spec.model, HyperModelClass)


def test_source_fields_left_unset_are_not_written_out() -> None:
    """A spec of a built-in source dumps, and so fingerprints, as before the other sources existed."""
    data = validate_spec(BASE_SPEC).spec.data
    dumped = data.model_dump(mode="json", by_alias=True)
    assert set(dumped) == {
        "source",
        "path",
        "validation",
        "preprocessing",
        "maxTrainSamples",
        "maxValidationSamples",
    }
    table = validate_spec(
        merge(BASE_SPEC, {"spec": {"data": {"source": "table", "path": "t.csv", "label": "y"}}})
    )
    assert table.spec.data.model_dump(by_alias=True)["label"] == "y"
