"""A tuned depth (spec.model.depth): a trial builds the first `depth` hidden layers; a layer's own
hyperparameters are conditional on the depth (Keras Tuner's conditional scopes), so the oracle gives
them values only in trials that build the layer, records list them as inactive elsewhere, and show
says so; fused groups keep trials of one depth together; a depth beyond the layers described is
refused with the spec."""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt
import pytest

from job.output.reading import SearchResults, TrialResult
from job.output.records import inactive_names, public_values
from job.spec import SpecError, validate_spec
from job.training import fused
from job.training.space import declared_space, layer_conditions, make_builder
from tests.support.specs import BASE_SPEC, merge

LAYERS = [
    {"units": "units_0"},
    {"units": "units_1", "dropout": "dropout_1"},
    {"units": "units_2", "activation": "act"},
]
SPACE = [
    {"name": "layers", "type": "int", "min": 1, "max": 3},
    {"name": "units_0", "type": "int", "min": 8, "max": 64, "step": 8},
    {"name": "units_1", "type": "int", "min": 8, "max": 64, "step": 8},
    {"name": "units_2", "type": "int", "min": 8, "max": 64, "step": 8},
    {"name": "dropout_1", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
    {"name": "act", "type": "choice", "values": ["relu", "tanh"]},
    {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
]


def depth_job(
    depth: Any = "layers", hidden: list[dict[str, Any]] | None = None, space: list | None = None
) -> Any:
    model = {"depth": depth, "hidden": hidden or LAYERS, "learningRate": "learning_rate"}
    return validate_spec(merge(BASE_SPEC, {"spec": {"model": model, "hyperparameters": space or SPACE}}))


def dense_units(model: keras.Model) -> list[int]:
    return [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_a_trial_builds_as_many_hidden_layers_as_its_depth() -> None:
    job = depth_job()
    build = make_builder(job, 10, (64,), None)
    hp = kt.HyperParameters()
    hp.values.update({"layers": 1, "units_0": 24, "learning_rate": 0.01})
    assert dense_units(build(hp)) == [24, 10]
    hp.values.update({"layers": 3, "units_1": 16, "dropout_1": 0.2, "units_2": 8, "act": "tanh"})
    model = build(hp)
    assert dense_units(model) == [24, 16, 8, 10]
    assert [type(layer).__name__ for layer in model.layers].count("Dropout") == 1
    assert model.layers[-2].get_config()["activation"] == "tanh"
    # A fixed depth: the first two layers described.
    fixed = make_builder(
        depth_job(2, hidden=[{"units": 32}, {"units": 16}, {"units": 8}], space=SPACE[6:]), 10, (64,), None
    )
    hp = kt.HyperParameters()
    hp.values["learning_rate"] = 0.01
    assert dense_units(fixed(hp)) == [32, 16, 10]


def test_a_layers_hyperparameters_are_active_only_in_trials_that_build_it() -> None:
    job = depth_job()
    depth, conditions = layer_conditions(job)
    assert depth == "layers"
    # units_0 and learning_rate always apply; the others from the layer that names them on.
    assert conditions == {"units_1": [2, 3], "dropout_1": [2, 3], "units_2": [3], "act": [3]}
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_accuracy", "max"),
        max_trials=40,
        hyperparameters=declared_space(job),
        seed=3,
    )
    seen: dict[int, set[str]] = {}
    for _ in range(40):
        values = oracle._random_values()
        if values is None:
            break
        seen.setdefault(values["layers"], set()).add(frozenset(values))
    assert set(seen) == {1, 2, 3}
    assert seen[1] == {frozenset({"layers", "units_0", "learning_rate"})}
    assert seen[2] == {frozenset({"layers", "units_0", "units_1", "dropout_1", "learning_rate"})}
    assert seen[3] == {
        frozenset({"layers", "units_0", "units_1", "dropout_1", "units_2", "act", "learning_rate"})
    }


def test_records_list_the_inactive_and_show_says_inactive() -> None:
    job = depth_job()
    hp = declared_space(job).copy()
    hp.values = {"layers": 1, "units_0": 24, "learning_rate": 0.01}
    assert inactive_names(hp) == ["units_1", "units_2", "dropout_1", "act"]
    assert public_values(hp) == {"layers": 1, "units_0": 24, "learning_rate": 0.01}
    definitions = {h.name: h.model_dump(mode="json") for h in job.spec.hyperparameters}
    trial = TrialResult("0", "completed", 1, 0.9, 0, public_values(hp), "")
    results = SearchResults("out", "s", "completed", None, "val_accuracy", "max", 1, [trial], definitions)
    assert results.hp_text("units_2", trial.hyperparameters.get("units_2")) == "inactive"
    assert results.hp_text("units_0", trial.hyperparameters.get("units_0")) == "24"
    assert results.hp_text("from_a_builder", None) == "-"  # not the spec's: nothing to say


def test_a_layer_hyperparameter_used_elsewhere_stays_active() -> None:
    # units_0 sets the first two layers: a name a layer every trial builds uses is never
    # conditional, whatever later layers use it too.
    hidden = [{"units": "units_0"}, {"units": "units_0"}, {"units": "units_2"}]
    space = [h for h in SPACE if h["name"] not in ("units_1", "dropout_1", "act")]
    _, conditions = layer_conditions(depth_job("layers", hidden, space))
    assert conditions == {"units_2": [3]}


def test_fused_groups_keep_one_depth() -> None:
    job = depth_job()
    model, training = job.spec.model, job.spec.training
    one, three = kt.HyperParameters(), kt.HyperParameters()
    one.values = {"layers": 1, "units_0": 8, "learning_rate": 0.01}
    three.values = {"layers": 3, "units_0": 8, "learning_rate": 0.01}
    assert fused.group_key(model, training, one) != fused.group_key(model, training, three)
    assert fused.group_key(model, training, one)[2] == 1


@pytest.mark.parametrize(
    ("depth", "space", "says"),
    [
        (4, SPACE, "is 4 layers, but model.hidden describes 3"),
        ("layers", [{**SPACE[0], "max": 5}, *SPACE[1:]], "goes up to 5 layers, but model.hidden describes 3"),
        (
            "layers",
            [{"name": "layers", "type": "float", "min": 1, "max": 3}, *SPACE[1:]],
            "it must be an int",
        ),
        (
            "layers",
            [{"name": "layers", "type": "choice", "values": [0, 2]}, *SPACE[1:]],
            "a choice including 0",
        ),
        ("layerz", SPACE, "'layerz', which is not defined in spec.hyperparameters (did you mean 'layers'?)"),
    ],
    ids=["too-deep", "hp-too-deep", "float", "zero", "unknown"],
)
def test_a_depth_that_cannot_be_built_is_refused_naming_the_field(depth: Any, space: list, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        depth_job(depth, space=space)
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert "spec.model.depth" in messages, messages
    assert says in messages["spec.model.depth"], messages
