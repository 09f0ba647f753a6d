"""Property tests on the spec validator, in-process: generated specs, valid and broken, get a `JobSpec`
or a `SpecError` and never anything else; a valid spec reads back from its own YAML unchanged; and
whatever hyperparameters the validator accepts, Keras Tuner accepts too.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from job.spec import JobSpec, SpecError, parse_spec, validate_spec
from tests.support.spec_yaml import dump_spec
from tests.support.specs import BASE_SPEC

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
WORDS = st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True)
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# Any value YAML can hold, nested a little: numbers of any size, NaN and infinities, text, null.
ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

# -- whatever the validator accepts, Keras Tuner accepts ---------------------------------------------


def _with_hyperparameters(hyperparameters: list[dict[str, Any]]) -> dict[str, Any]:
    """A spec with a custom builder, so that only the hyperparameters decide its validity."""
    model = {"type": "custom", "builder": "pkg.models:build_model"}
    return {
        **copy.deepcopy(BASE_SPEC),
        "spec": {**copy.deepcopy(BASE_SPEC["spec"]), "model": model, "hyperparameters": hyperparameters},
    }


def _keras_tuner_accepts(job: JobSpec) -> None:
    from job.training.space import declared_space

    space = declared_space(job)
    assert [hp.name for hp in space.space] == [hp.name for hp in job.spec.hyperparameters]


@pytest.mark.parametrize(
    "hyperparameter",
    [
        {"name": "lr", "type": "choice", "values": [1, 0.1, 0.01]},
        {"name": "units", "type": "int", "min": 8, "max": 512, "step": 2, "sampling": "log"},
        {"name": "decay", "type": "float", "min": 1e-4, "max": 1e-1, "sampling": "log", "step": 10},
        {"name": "act", "type": "choice", "values": ["relu", "tanh"]},
        {"name": "flag", "type": "choice", "values": [True, False], "default": False},
        {"name": "frozen", "type": "fixed", "value": "adam"},
    ],
    ids=["ints-and-floats", "log-int-with-step", "log-float-with-step", "strings", "booleans", "fixed"],
)
def test_a_hyperparameter_the_validator_accepts_is_one_keras_tuner_accepts(
    hyperparameter: dict[str, Any],
) -> None:
    _keras_tuner_accepts(validate_spec(_with_hyperparameters([hyperparameter])))


@st.composite
def any_hyperparameter(draw: st.DrawFn) -> dict[str, Any]:
    """A hyperparameter definition, most often well-formed, often wrong in some detail."""
    kind = draw(st.sampled_from(["int", "float", "choice", "boolean", "fixed", "integer"]))
    hp: dict[str, Any] = {"name": draw(NAMES), "type": kind}
    if kind in ("int", "float", "integer"):
        number = st.integers(-1000, 1000) if kind != "float" else FINITE
        hp["min"], hp["max"] = draw(number), draw(number)
        if draw(st.booleans()):
            hp["step"] = draw(number)
        hp["sampling"] = draw(st.sampled_from(["linear", "log", "reverse_log", "exp"]))
        if draw(st.booleans()):
            hp["default"] = draw(number)
    elif kind == "choice":
        values = draw(
            st.lists(st.integers(-100, 100), min_size=1, max_size=4)
            | st.lists(FINITE, min_size=1, max_size=4)
            | st.lists(st.integers(-100, 100) | FINITE, min_size=1, max_size=4)
            | st.lists(WORDS, min_size=0, max_size=4)
            | st.lists(st.booleans(), min_size=1, max_size=2)
        )
        hp["values"] = values
        if draw(st.booleans()):
            hp["ordered"] = draw(st.booleans())
        if values and draw(st.booleans()):
            hp["default"] = draw(st.sampled_from(values))
    elif kind == "boolean":
        hp["default"] = draw(st.booleans())
    else:
        hp["value"] = draw(st.integers(-100, 100) | FINITE | WORDS | st.booleans())
    return hp


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_hyperparameter(), max_size=4))
def test_generated_hyperparameters_are_refused_with_their_path_or_accepted_by_keras_tuner(
    hyperparameters: list[dict[str, Any]],
) -> None:
    try:
        job = validate_spec(_with_hyperparameters(hyperparameters))
    except SpecError as err:
        assert err.issues
        for issue in err.issues:
            assert issue.message
            assert issue.path.startswith("spec.hyperparameters["), issue.render(None)
    else:
        _keras_tuner_accepts(job)


# -- generated valid specs, and the same specs broken anywhere ---------------------------------------


@st.composite
def valid_hyperparameter(draw: st.DrawFn, name: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["int", "float", "choice", "boolean", "fixed"]))
    if kind == "int":
        log = draw(st.booleans())
        low = draw(st.integers(1, 100) if log else st.integers(-100, 100))
        high = low + draw(st.integers(1, 1000))
        hp: dict[str, Any] = {"name": name, "type": "int", "min": low, "max": high}
        hp["sampling"] = "log" if log else "linear"
        if draw(st.booleans()):  # with log sampling the step is a multiplier, greater than 1
            hp["step"] = draw(st.integers(2 if log else 1, 16))
        if draw(st.booleans()):
            hp["default"] = draw(st.integers(low, high))
        return hp
    if kind == "float":
        low = draw(st.floats(0.0001, 10))
        high = low + draw(st.floats(0.01, 100))
        hp = {"name": name, "type": "float", "min": low, "max": high}
        if draw(st.booleans()):
            hp["step"] = draw(st.floats(0.001, 1))
        elif draw(st.booleans()):
            hp["sampling"] = "log"
        return hp
    if kind == "choice":
        values = draw(
            st.lists(st.integers(-1000, 1000), min_size=1, max_size=5, unique=True)
            | st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=5, unique_by=repr)
            | st.lists(WORDS, min_size=1, max_size=5, unique=True)
            | st.sampled_from([[True, False], [False], [True]])
        )
        hp = {"name": name, "type": "choice", "values": values}
        if draw(st.booleans()):
            hp["default"] = draw(st.sampled_from(values))
        return hp
    if kind == "boolean":
        hp = {"name": name, "type": "boolean"}
        if draw(st.booleans()):
            hp["default"] = draw(st.booleans())
        return hp
    return {"name": name, "type": "fixed", "value": draw(st.integers(-5, 5) | WORDS | st.booleans())}


@st.composite
def valid_data(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(st.sampled_from(["digits", "mnist", "fashion_mnist", "npz"]))
    data: dict[str, Any] = {"source": source}
    if source == "npz":
        data["path"] = draw(st.sampled_from(["s3://data/set.npz", "./set.npz"]))
    validation = draw(
        st.none()
        | st.just({"source": "test"})
        | st.builds(lambda f: {"fraction": f}, st.floats(0.01, 0.99))
        | st.builds(lambda f: {"source": "split", "fraction": f}, st.floats(0.01, 0.99))
    )
    if validation is not None:
        data["validation"] = validation
    return data


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    hyperparameters = [draw(valid_hyperparameter(name)) for name in names]
    unit_names = [hp["name"] for hp in hyperparameters if hp["type"] == "int"]
    if unit_names and draw(st.booleans()):
        hidden = []
        for _ in range(draw(st.integers(1, 3))):
            layer: dict[str, Any] = {"units": draw(st.sampled_from(unit_names) | st.integers(1, 512))}
            dropout = draw(st.none() | st.sampled_from(names) | st.floats(0, 0.9))
            if dropout is not None:
                layer["dropout"] = dropout
            hidden.append(layer)
        model: dict[str, Any] = {
            "type": "mlp",
            "hidden": hidden,
            "optimizer": draw(st.sampled_from(["adam", "adamw", "sgd", "rmsprop"])),
            "learningRate": draw(st.sampled_from(names) | st.floats(1e-6, 1)),
        }
        objective = draw(st.sampled_from(["val_accuracy", "accuracy", "loss", "val_loss"]))
    else:
        model = {
            "type": "custom",
            "builder": draw(st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){0,2}:[a-z_]{1,12}", fullmatch=True)),
        }
        objective = draw(WORDS)
    has_continuous = any(hp["type"] == "float" and "step" not in hp for hp in hyperparameters)
    algorithm = draw(
        st.sampled_from(["random", "bayesian", "hyperband"] + ([] if has_continuous else ["grid"]))
    )
    tuner: dict[str, Any] = {
        "algorithm": algorithm,
        "objective": {"name": objective, "direction": draw(st.sampled_from(["min", "max"]))},
        "maxTrials": draw(st.integers(1, 1000)),
        "seed": draw(st.none() | st.integers(0, 2**31)),
        "maxConsecutiveFailedTrials": draw(st.integers(1, 10)),
    }
    if algorithm == "hyperband":
        tuner["hyperband"] = {"maxEpochs": draw(st.integers(1, 100)), "factor": draw(st.integers(2, 5))}
    if algorithm == "bayesian" and draw(st.booleans()):
        tuner["bayesian"] = {"numInitialPoints": draw(st.integers(1, 20)), "alpha": draw(st.floats(1e-6, 1))}
    heartbeat = draw(st.floats(0.5, 30))
    return {
        "apiVersion": "hptune/v1",
        "kind": "TuningJob",
        "metadata": {"name": draw(st.from_regex(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?", fullmatch=True))},
        "spec": {
            "data": draw(valid_data()),
            "model": model,
            "hyperparameters": hyperparameters,
            "tuner": tuner,
            "training": {
                "epochs": draw(st.integers(1, 100)),
                "batchSize": draw(st.integers(1, 4096)),
                "stepsPerExecution": draw(st.sampled_from(["auto", 1, 64])),
                "jitCompile": draw(st.sampled_from(["auto", True, False])),
            },
            "output": {
                "uri": draw(st.sampled_from(["s3://results/a", "./out", "gs://b/c/d"])),
                "keepModels": 2,
            },
            "distribution": {
                "workers": draw(st.integers(1, 64)),
                "heartbeatSeconds": heartbeat,
                "leaseSeconds": heartbeat * draw(st.floats(2, 10)),
            },
            "metrics": {"port": draw(st.integers(0, 65535))},
        },
    }


def _contains(whole: Any, part: Any) -> bool:
    """Every key and value of part is in whole (numbers compared as numbers, booleans as booleans)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and _contains(whole[k], v) for k, v in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and len(whole) == len(part) and all(map(_contains, whole, part))
    if isinstance(part, bool) or isinstance(whole, bool):
        return type(whole) is type(part) and whole == part
    return bool(whole == part)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs())
def test_generated_valid_specs_round_trip_through_yaml_unchanged(doc: dict[str, Any]) -> None:
    job = parse_spec(dump_spec(doc), "generated.yaml")
    assert validate_spec(doc) == job  # the mapping and its YAML are the same spec
    dumped = job.model_dump(mode="json", by_alias=True)
    assert _contains(dumped, doc), dumped  # nothing the document says is lost or changed
    assert parse_spec(dump_spec(dumped)).model_dump(mode="json", by_alias=True) == dumped
    # Written without its nulls (unset fields), it still reads back as the same spec.
    sparse = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert parse_spec(dump_spec(sparse)) == job


def _nodes(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The path of every value under node: whole sections and lists as well as their leaves."""
    if isinstance(node, dict):
        children: list[tuple[str | int, Any]] = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    else:
        children = []
    below = [found for key, value in children for found in _nodes(value, (*path, key))]
    return [path, *below] if path else below


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_specs(), st.data())
def test_a_spec_broken_at_any_node_is_refused_with_a_spec_error_or_still_valid(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    """Any value (a leaf or a whole section) replaced, its key renamed, or a key added beside it."""
    path = data.draw(st.sampled_from(_nodes(doc)), label="node")
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    ways = ["replace", "rename the key", "add a key beside it"] if isinstance(key, str) else ["replace"]
    way = data.draw(st.sampled_from(ways), label="how")
    if way == "rename the key":
        parent[data.draw(st.text(min_size=1, max_size=12), label="new key")] = parent.pop(key)
    elif way == "add a key beside it":
        parent[data.draw(st.text(min_size=1, max_size=12), label="new key")] = data.draw(ANYTHING)
    else:
        parent[key] = data.draw(ANYTHING, label="value")
    try:
        job = parse_spec(dump_spec(doc), "broken.yaml")
    except SpecError as err:
        assert err.issues
        rendered = err.render()
        assert rendered.startswith("broken.yaml") and "Traceback" not in rendered
        assert all(issue.message for issue in err.issues)
    else:
        assert isinstance(job, JobSpec)  # some changes leave a valid spec (an unchanged value, say)
