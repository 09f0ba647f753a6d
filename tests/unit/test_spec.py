"""Spec validation, example by example: each rule's exact error (field path and message), positions.

Generated specs (round trips, specs broken anywhere) are in `test_spec_properties.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from job.spec import SpecError, json_schema, load_spec, parse_spec, validate_spec
from tests.support.specs import BASE_SPEC, merge


def issues(changes: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        validate_spec(merge(BASE_SPEC, changes))
    return [(i.path, i.message) for i in caught.value.issues]


def hp(*definitions: dict[str, Any]) -> dict[str, Any]:
    """Replace the hyperparameters with these (keeping the ones the model refers to)."""
    base = [
        {"name": "hidden1", "type": "int", "min": 16, "max": 64, "step": 16},
        {"name": "dropout1", "type": "float", "min": 0.1, "max": 0.3},
        {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
    ]
    return {"spec": {"hyperparameters": base + list(definitions)}}


def test_the_base_spec_is_valid() -> None:
    job = validate_spec(BASE_SPEC)
    assert job.name == "digits-test"
    assert job.spec.tuner.max_trials == 3
    assert job.output_uri == "./hptune-output/digits-test"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            hp({"name": "x", "type": "int", "min": 5, "max": 5}),
            [("spec.hyperparameters[3].max", "must be greater than min (5); got 5")],
        ),
        (
            hp({"name": "x", "type": "float", "min": 0.1, "max": 1.0, "step": 0}),
            [("spec.hyperparameters[3].step", "must be greater than 0; got 0.0")],
        ),
        (
            hp({"name": "x", "type": "int", "min": 1, "max": 9, "step": -2}),
            [("spec.hyperparameters[3].step", "must be greater than 0; got -2")],
        ),
        (
            hp({"name": "x", "type": "float", "min": 0.0, "max": 1.0, "sampling": "log"}),
            [("spec.hyperparameters[3].min", "must be greater than 0 with log sampling; got 0.0")],
        ),
        (
            hp({"name": "x", "type": "int", "min": -1, "max": 8, "sampling": "reverse_log"}),
            [
                (
                    "spec.hyperparameters[3].min",
                    "must be greater than 0 with reverse_log sampling; got -1",
                )
            ],
        ),
        (
            hp({"name": "x", "type": "choice", "values": []}),
            [("spec.hyperparameters[3].values", "must list at least one value")],
        ),
        (
            hp({"name": "x", "type": "choice", "values": [1, "two"]}),
            [
                (
                    "spec.hyperparameters[3].values",
                    "must all be of one type (numbers, strings or booleans); got ['number', 'string']",
                )
            ],
        ),
        (
            hp({"name": "hidden1", "type": "boolean"}),
            [
                (
                    "spec.hyperparameters[3].name",
                    "'hidden1' is already defined at hyperparameters[0]",
                )
            ],
        ),
        (
            hp({"name": "x", "type": "integer", "min": 1, "max": 2}),
            [
                (
                    "spec.hyperparameters[3].type",
                    "type must be one of int, float, choice, boolean, fixed",
                )
            ],
        ),
        (
            hp({"name": "x", "type": "float", "min": 0.1, "max": 0.9, "sampling": "cubic"}),
            [
                (
                    "spec.hyperparameters[3].sampling",
                    "'cubic' is not valid; expected 'linear', 'log' or 'reverse_log'",
                )
            ],
        ),
        (
            {"spec": {"model": {"hidden": [{"units": "hiden1"}]}}},
            [
                (
                    "spec.model.hidden[0].units",
                    "refers to hyperparameter 'hiden1', which is not defined in "
                    "spec.hyperparameters (did you mean 'hidden1'?)",
                )
            ],
        ),
        (
            {"spec": {"model": {"learningRate": "lr"}}},
            [
                (
                    "spec.model.learningRate",
                    "refers to hyperparameter 'lr', which is not defined in spec.hyperparameters",
                )
            ],
        ),
        (
            {"spec": {"model": {"hidden": []}}},
            [
                (
                    "spec.model.hidden",
                    "List should have at least 1 item after validation, not 0; got []",
                )
            ],
        ),
        (
            {"spec": {"model": {"type": "cnn"}}},
            [("spec.model.type", "type must be mlp, custom or hypermodel")],
        ),
        (
            {
                "spec": {
                    "model": {
                        "type": "custom",
                        "builder": "no-colon",
                        "hidden": None,
                        "learningRate": None,
                    }
                }
            },
            [
                (
                    "spec.model.builder",
                    "must look like \"package.module:build_model\"; got 'no-colon'",
                )
            ],
        ),
        (
            {"spec": {"data": {"source": "npz"}}},
            [("spec.data.path", "is required with source: npz (a file URI)")],
        ),
        (
            {"spec": {"data": {"source": "imagenet"}}},
            [
                (
                    "spec.data.source",
                    "'imagenet' is not valid; expected 'mnist', 'fashion_mnist', 'digits', 'npz', "
                    "'custom', 'images' or 'table'",
                )
            ],
        ),
        (
            {"spec": {"data": {"validation": {"fraction": 1.5}}}},
            [("spec.data.validation.fraction", "Input should be less than 1; got 1.5")],
        ),
        (
            {"spec": {"tuner": {"algorithm": "hyperband"}}},
            [("spec.tuner.hyperband", "is required with algorithm: hyperband (maxEpochs, factor)")],
        ),
        (
            {"spec": {"tuner": {"algorithm": "hyperband", "hyperband": {"factor": 3}}}},
            [("spec.tuner.hyperband.maxEpochs", "is required")],
        ),
        (
            {"spec": {"tuner": {"bayesian": {"alpha": 0.1}}}},
            [("spec.tuner.bayesian", "applies only to algorithm: bayesian")],
        ),
        (
            merge(hp(), {"spec": {"tuner": {"algorithm": "grid"}}}),
            [
                (
                    "spec.hyperparameters[1].step",
                    "is required with algorithm: grid (a continuous float range has no grid)",
                )
            ],
        ),
        (
            {"spec": {"tuner": {"maxTrials": 0}}},
            [("spec.tuner.maxTrials", "Input should be greater than or equal to 1; got 0")],
        ),
        (
            {"spec": {"tuner": {"maxTrials": "ten"}}},
            [
                (
                    "spec.tuner.maxTrials",
                    "Input should be a valid integer, unable to parse string as an integer; got 'ten'",
                )
            ],
        ),
        (
            {"spec": {"tuner": {"objective": {"name": "val_f1"}}}},
            [
                (
                    "spec.tuner.objective.name",
                    "'val_f1' is not a metric this model reports; one of "
                    "['accuracy', 'loss', 'val_accuracy', 'val_loss']",
                )
            ],
        ),
        (
            {"spec": {"model": {"metrics": []}}},
            [
                (
                    "spec.tuner.objective",
                    "is not set, and its default, 'val_accuracy', is not a metric this model reports (it "
                    "reports ['loss', 'val_loss']: add accuracy to model.metrics for a classifier); set it, "
                    "e.g. {name: val_loss, direction: min}",
                )
            ],
        ),
        (
            {
                "spec": {
                    "model": {"type": "hypermodel", "class": "m:H", "hidden": None, "learningRate": None},
                    "tuner": {"pruning": {"type": "median"}},
                }
            },
            [
                (
                    "spec.tuner.pruning",
                    "needs an objective that epochs report, but tuner.objective is Keras Tuner's default "
                    "(default_objective: the number a HyperModel's fit returns when it ends); set "
                    "tuner.objective to a metric its epochs report, or leave pruning out",
                )
            ],
        ),
        (
            {"spec": {"tuner": {"objective": {"direction": "up"}}}},
            [("spec.tuner.objective.direction", "'up' is not valid; expected 'max' or 'min'")],
        ),
        (
            {"spec": {"training": {"epochz": 3}}},
            [
                (
                    "spec.training.epochz",
                    "unknown key (did you mean 'epochs'?); valid keys here: batchSize, checkpointSeconds, "
                    "earlyStopping, epochs, jitCompile, mixedPrecision, reduceLrOnPlateau, scanSteps, "
                    "stepsPerExecution, validationBatchSize, verbose",
                )
            ],
        ),
        (
            {"spec": {"distribution": {"heartbeatSeconds": 40, "leaseSeconds": 60}}},
            [
                (
                    "spec.distribution.heartbeatSeconds",
                    "must be at most half of leaseSeconds (60.0); got 40.0",
                )
            ],
        ),
        (
            {"metadata": {"name": "My_Search"}},
            [
                (
                    "metadata.name",
                    "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
                    "starting and ending with a letter or digit; got 'My_Search'",
                )
            ],
        ),
        (
            {"kind": "Job"},
            [("kind", "'Job' is not valid; expected 'TuningJob'")],
        ),
        (
            {"apiVersion": None},
            [("apiVersion", "is required")],
        ),
        (
            {"spec": {"output": {"awsSecretAccessKey": "abc"}}},
            [
                (
                    "spec.output.awsSecretAccessKey",
                    "looks like a credential; a spec must not hold secrets. Give credentials through "
                    "the environment (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS), a mounted "
                    "file or workload identity",
                )
            ],
        ),
    ],
    ids=lambda value: None,
)
def test_each_rule_reports_its_field_and_message(
    changes: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert issues(changes) == expected


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("- a\n- b\n", "list.yaml")
    assert caught.value.render() == (
        "list.yaml:1: a spec must be a mapping with apiVersion, kind, metadata and spec; "
        "this document is a list"
    )


def test_an_unknown_key_names_line_column_and_suggestion(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE_SPEC, sort_keys=False).replace("batchSize:", "batchsize:")
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "batchsize" in row)
    column = text.splitlines()[line - 1].index("batchsize") + 1
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.render() == (
        f"{path}:{line}:{column}: spec.training.batchsize: unknown key (did you mean "
        "'batchSize'?); valid keys here: batchSize, checkpointSeconds, earlyStopping, epochs, "
        "jitCompile, mixedPrecision, reduceLrOnPlateau, scanSteps, stepsPerExecution, "
        "validationBatchSize, verbose"
    )


def test_value_errors_point_at_the_value(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_SPEC, {"spec": {"training": {"epochs": -1}}}), sort_keys=False))
    lines = path.read_text().splitlines()
    line = next(i for i, row in enumerate(lines, 1) if "epochs: -1" in row)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    issue = caught.value.issues[0]
    assert (issue.path, issue.line, issue.column) == (
        "spec.training.epochs",
        line,
        lines[line - 1].index("-1") + 1,
    )


def test_yaml_aliases_are_refused() -> None:
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n'
    with pytest.raises(SpecError) as caught:
        parse_spec(bomb, "bomb.yaml")
    assert caught.value.render() == (
        "bomb.yaml:2:8: YAML syntax error: YAML aliases (*name) are not allowed in a job spec"
    )


def test_files_too_big_or_not_utf8_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(SpecError, match=r"big.yaml: is 2097152 bytes; a spec may be at most 1048576"):
        load_spec(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin.yaml: is not UTF-8 text \(byte 9\): save it as UTF-8"):
        load_spec(latin)


def test_several_problems_are_reported_together() -> None:
    found = issues({"spec": {"training": {"epochs": 0, "batchSize": 0}}})
    assert [path for path, _ in found] == ["spec.training.batchSize", "spec.training.epochs"]


def test_schema_is_json_schema_of_the_document() -> None:
    import jsonschema

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(BASE_SPEC, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merge(BASE_SPEC, {"spec": {"training": {"epochz": 1}}}), schema)


def test_the_fingerprint_ignores_where_and_how_the_search_runs() -> None:
    job = validate_spec(BASE_SPEC)
    moved = validate_spec(
        merge(BASE_SPEC, {"spec": {"output": {"uri": "s3://b/p"}, "distribution": {"workers": 8}}})
    )
    changed = validate_spec(merge(BASE_SPEC, {"spec": {"tuner": {"maxTrials": 4}}}))
    assert job.fingerprint() == moved.fingerprint() != changed.fingerprint()


def test_exponent_numbers_without_a_dot_are_numbers() -> None:
    doc = yaml.safe_dump(BASE_SPEC).replace("- 0.001\n", "- 1e-07\n")
    assert "1e-07" in doc
    job = parse_spec(doc)
    assert job.spec.hyperparameters[2].values == [1e-07, 0.01]
