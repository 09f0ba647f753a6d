"""The built-in model's per-layer and optimizer settings (job/spec/model.py, built by
job/training/space.py): each reaches the Keras model, as a value and as a hyperparameter; the names
the spec accepts are names Keras knows; what does not apply is refused with the spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import pytest

from job.spec import SpecError, validate_spec
from job.spec.model import ACTIVATIONS, INITIALIZERS
from job.training import fused
from job.training.space import make_builder
from job.training.trial import run_trial
from tests.support.fused import in_order
from tests.support.specs import BASE_SPEC, merge


def job_with(model: dict[str, Any], hyperparameters: list[dict[str, Any]] | None = None) -> Any:
    base = [
        {"name": "hidden1", "type": "int", "min": 16, "max": 64, "step": 16},
        {"name": "dropout1", "type": "float", "min": 0.1, "max": 0.3, "step": 0.1},
        {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
    ]
    return validate_spec(
        merge(BASE_SPEC, {"spec": {"model": model, "hyperparameters": base + (hyperparameters or [])}})
    )


def built(job: Any, **values: Any) -> keras.Model:
    hp = kt.HyperParameters()
    hp.values.update({"hidden1": 32, "dropout1": 0.1, "learning_rate": 0.01, **values})
    return make_builder(job, 10, (64,), None)(hp)


def layers_of(model: keras.Model) -> list[tuple[str, dict[str, Any]]]:
    return [(type(layer).__name__, layer.get_config()) for layer in model.layers]


def test_the_names_the_spec_accepts_are_names_keras_knows() -> None:
    for name in ACTIVATIONS:
        assert keras.activations.get(name) is not None, name
    for name in INITIALIZERS:
        assert keras.initializers.get(name) is not None, name


def test_each_layer_setting_reaches_the_model() -> None:
    layer = {
        "units": "hidden1",
        "dropout": "dropout1",
        "activation": "tanh",
        "kernelInitializer": "he_normal",
        "l1": 0.01,
        "l2": 0.001,
        "batchNorm": "before",
    }
    kinds = layers_of(built(job_with({"hidden": [layer]})))
    assert [kind for kind, _ in kinds] == ["Dense", "BatchNormalization", "Activation", "Dropout", "Dense"]
    dense = kinds[0][1]
    assert dense["units"] == 32 and dense["activation"] == "linear", "the activation comes after the norm"
    assert dense["kernel_initializer"]["class_name"] == "HeNormal"
    assert dense["kernel_regularizer"]["config"] == pytest.approx({"l1": 0.01, "l2": 0.001})
    assert kinds[2][1]["activation"] == "tanh"
    after = layers_of(built(job_with({"hidden": [{**layer, "batchNorm": "after"}]})))
    assert [kind for kind, _ in after][:3] == ["Dense", "BatchNormalization", "Dropout"]
    assert after[0][1]["activation"] == "tanh"


def test_layer_settings_named_by_hyperparameters_take_the_trials_values() -> None:
    job = job_with(
        {
            "hidden": [
                {
                    "units": "hidden1",
                    "activation": "act",
                    "kernelInitializer": "init",
                    "l2": "l2",
                    "batchNorm": "bn",
                }
            ]
        },
        [
            {"name": "act", "type": "choice", "values": ["relu", "gelu"]},
            {"name": "init", "type": "choice", "values": ["glorot_uniform", "lecun_normal"]},
            {"name": "l2", "type": "float", "min": 1e-5, "max": 1e-2, "sampling": "log"},
            {"name": "bn", "type": "choice", "values": ["off", "after"]},
        ],
    )
    kinds = layers_of(built(job, act="gelu", init="lecun_normal", l2=0.005, bn="after"))
    assert [kind for kind, _ in kinds] == ["Dense", "BatchNormalization", "Dense"]
    assert kinds[0][1]["activation"] == "gelu"
    assert kinds[0][1]["kernel_initializer"]["class_name"] == "LecunNormal"
    assert kinds[0][1]["kernel_regularizer"]["config"]["l2"] == pytest.approx(0.005)
    plain = layers_of(built(job, act="relu", init="glorot_uniform", l2=0.005, bn="off"))
    assert [kind for kind, _ in plain] == ["Dense", "Dense"]


def test_optimizer_settings_reach_the_optimizer_each_type_only_its_own() -> None:
    job = job_with(
        {
            "hidden": [{"units": "hidden1"}],
            "optimizer": "opt",
            "learningRate": "learning_rate",
            "momentum": "momentum",
            "nesterov": True,
            "weightDecay": 1e-4,
            "beta1": 0.8,
            "clipNorm": 1.0,
        },
        [
            {"name": "opt", "type": "choice", "values": ["sgd", "adam"]},
            {"name": "momentum", "type": "float", "min": 0.5, "max": 0.9, "step": 0.1},
        ],
    )
    sgd = built(job, opt="sgd", momentum=0.9).optimizer.get_config()
    assert (sgd["momentum"], sgd["nesterov"], sgd["clipnorm"]) == (pytest.approx(0.9), True, 1.0)
    assert sgd["weight_decay"] == pytest.approx(1e-4) and sgd["learning_rate"] == pytest.approx(0.01)
    adam = built(job, opt="adam", momentum=0.9).optimizer.get_config()
    assert adam["beta_1"] == pytest.approx(0.8) and adam["clipnorm"] == 1.0
    assert adam.get("weight_decay") is None, "adam has no decoupled weight decay: adamw has"


def test_fused_trials_say_which_settings_keep_them_apart() -> None:
    job = job_with({"hidden": [{"units": "hidden1", "l2": 0.01}], "optimizer": "sgd", "momentum": 0.9})
    reason = fused.blocker(job)
    assert reason is not None and "model.hidden[0].l2" in reason and "model.momentum" in reason
    assert fused.blocker(job_with({"hidden": [{"units": "hidden1", "activation": "tanh"}]})) is None


def test_the_plateau_rule_lowers_the_rate_and_keeps_trials_apart_from_fused_groups() -> None:
    # No epoch improves loss by 100: after the first, each of the three others halves the rate.
    plateau = {"monitor": "loss", "patience": 0, "minDelta": 100.0, "factor": 0.5}
    job = validate_spec(merge(BASE_SPEC, {"spec": {"training": {"epochs": 4, "reduceLrOnPlateau": plateau}}}))
    data = in_order()
    build = make_builder(job, data.output_units, data.input_shape, None)
    hp = kt.HyperParameters()
    hp.values.update({"hidden1": 16, "dropout1": 0.1, "learning_rate": 0.01})
    outcome = run_trial(hp, build, data, job.spec.training, job.spec.tuner.objective)
    assert outcome.ok and outcome.model is not None, outcome.error
    rate = float(keras.ops.convert_to_numpy(outcome.model.optimizer.learning_rate))
    assert rate == pytest.approx(0.01 / 8)
    reason = fused.blocker(job)
    assert reason is not None and "training.reduceLrOnPlateau" in reason


@pytest.mark.parametrize(
    ("training", "model", "field", "says"),
    [
        (
            {"reduceLrOnPlateau": {"monitor": "val_acuracy"}},
            {},
            "spec.training.reduceLrOnPlateau.monitor",
            "is not a metric this model reports",
        ),
        (
            {"earlyStopping": {"monitor": "val_los"}},
            {},
            "spec.training.earlyStopping.monitor",
            "(did you mean 'val_loss'?)",
        ),
        (
            {"reduceLrOnPlateau": {}},
            {"learningRateSchedule": {"type": "cosine"}},
            "spec.training.reduceLrOnPlateau",
            "model.learningRateSchedule (cosine) already sets the learning rate",
        ),
        ({"reduceLrOnPlateau": {"factor": 1.5}}, {}, "spec.training.reduceLrOnPlateau.factor", "less than 1"),
    ],
    ids=["monitor", "early-stopping-monitor", "with-a-schedule", "factor"],
)
def test_a_plateau_rule_that_cannot_work_is_refused(
    training: dict[str, Any], model: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        validate_spec(merge(BASE_SPEC, {"spec": {"training": training, "model": model}}))
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert field in messages, messages
    assert says in messages[field], messages


@pytest.mark.parametrize(
    ("model", "hyperparameters", "field", "says"),
    [
        (
            {"hidden": [{"units": 8, "activation": "rleu"}]},
            [],
            "spec.model.hidden[0].activation",
            "(did you mean 'relu'?)",
        ),
        (
            {"hidden": [{"units": 8, "kernelInitializer": "xavier"}]},
            [],
            "spec.model.hidden[0].kernelInitializer",
            "'xavier' is neither one Keras knows nor a hyperparameter",
        ),
        (
            {"hidden": [{"units": 8, "kernelInitializer": "init"}]},
            [{"name": "init", "type": "choice", "values": ["he_normal", "kaiming"]}],
            "spec.model.hidden[0].kernelInitializer",
            "values ['kaiming']; it must be a choice among",
        ),
        (
            {"hidden": [{"units": 8}], "momentum": 0.9},
            [],
            "spec.model.momentum",
            "adam has no momentum; it applies to sgd, rmsprop",
        ),
        (
            {"hidden": [{"units": 8}], "optimizer": "rmsprop", "weightDecay": 0.01},
            [],
            "spec.model.weightDecay",
            "rmsprop has no weight_decay; it applies to adamw, sgd",
        ),
        ({"hidden": [{"units": 8, "l2": -0.1}]}, [], "spec.model.hidden[0].l2", "greater than or equal to 0"),
        (
            {"hidden": [{"units": 8, "batchNorm": "middle"}]},
            [],
            "spec.model.hidden[0].batchNorm",
            "one of before, after, off",
        ),
    ],
    ids=[
        "activation",
        "initializer",
        "initializer-choice",
        "momentum-on-adam",
        "decay-on-rmsprop",
        "negative-l2",
        "batch-norm",
    ],
)
def test_what_does_not_apply_is_refused_naming_the_field(
    model: dict[str, Any], hyperparameters: list[dict[str, Any]], field: str, says: str
) -> None:
    with pytest.raises(SpecError) as caught:
        job_with({**model, "learningRate": 0.01}, hyperparameters)
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert field in messages, messages
    assert says in messages[field]


# -- learning-rate schedules -----------------------------------------------------------------------

# 640 training samples in batches of 64 (BASE_SPEC's batch size): 10 steps an epoch, 60 in 6 epochs.


# Hyperparameters a schedule's settings may name, and the values the trial built here draws.
SCHEDULE_HPS = [
    {"name": "decay", "type": "float", "min": 0.2, "max": 0.8, "step": 0.1},
    {"name": "period", "type": "choice", "values": [1, 2, 4]},
    {"name": "warmup", "type": "choice", "values": [0, 1, 2]},
]
DRAWN = {"decay": 0.25, "period": 4, "warmup": 2}


def scheduled(schedule: dict[str, Any], epochs: int = 6, hyperparameters: list | None = None) -> keras.Model:
    space = [*BASE_SPEC["spec"]["hyperparameters"], *(hyperparameters or [])]
    job = validate_spec(
        merge(
            BASE_SPEC,
            {
                "spec": {
                    "model": {"learningRateSchedule": schedule},
                    "training": {"epochs": epochs},
                    "hyperparameters": space,
                }
            },
        )
    )
    hp = kt.HyperParameters()
    hp.values.update({"hidden1": 16, "dropout1": 0.1, "learning_rate": 0.01, **DRAWN})
    return make_builder(job, 10, (64,), None, train_samples=640)(hp)


def rate_at(model: keras.Model, step: int) -> float:
    """The rate the optimizer's schedule gives at `step`, read from its saved configuration."""
    schedule = keras.optimizers.schedules.deserialize(model.optimizer.get_config()["learning_rate"])
    return float(keras.ops.convert_to_numpy(schedule(step)))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"type": "step", "decayEpochs": 2, "decayRate": 0.5}, {0: 0.01, 19: 0.01, 20: 0.005, 45: 0.0025}),
        (
            {"type": "exponential", "decayEpochs": 2, "decayRate": 0.5},
            {0: 0.01, 10: 0.01 * 0.5**0.5, 20: 0.005},
        ),
        ({"type": "cosine", "alpha": 0.1}, {0: 0.01, 30: 0.01 * 0.55, 60: 0.001}),  # half-way: (1 + a) / 2
        ({"type": "cosine", "warmupEpochs": 1}, {0: 0.0, 5: 0.005, 10: 0.01, 60: 0.0}),
        ({"type": "constant", "warmupEpochs": 2}, {0: 0.0, 10: 0.005, 20: 0.01, 59: 0.01}),
    ],
    ids=["step", "exponential", "cosine", "cosine-warmup", "constant-warmup"],
)
def test_a_schedules_rate_at_chosen_steps_is_its_formula(
    schedule: dict[str, Any], expected: dict[int, float]
) -> None:
    model = scheduled(schedule)
    for step, rate in expected.items():
        assert rate_at(model, step) == pytest.approx(rate, rel=1e-5, abs=1e-9), (step, schedule)


def test_a_model_with_a_schedule_reloads_with_plain_keras(tmp_path: Path) -> None:
    model = scheduled({"type": "cosine", "warmupEpochs": 1, "alpha": 0.1})
    path = tmp_path / "model.keras"
    model.save(path)
    code = (
        "import sys, keras; m = keras.models.load_model(sys.argv[1]); "
        "s = keras.optimizers.schedules.deserialize(m.optimizer.get_config()['learning_rate']); "
        "print(type(s).__name__, float(s(10)), 'job' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kind, rate, hptune_loaded = done.stdout.split()[-3:]
    assert kind == "CosineDecay" and float(rate) == pytest.approx(0.01) and hptune_loaded == "False"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"type": "step", "decayEpochs": "period", "decayRate": "decay"}, {39: 0.01, 40: 0.0025}),
        ({"type": "cosine", "warmupEpochs": "warmup", "alpha": 0.0}, {10: 0.005, 20: 0.01, 60: 0.0}),
    ],
    ids=["step", "cosine-warmup"],
)
def test_schedule_settings_named_by_hyperparameters_take_the_trials_values(
    schedule: dict[str, Any], expected: dict[int, float]
) -> None:
    # Drawn: decay 0.25 every 4 epochs (40 steps); a 2-epoch (20-step) warmup.
    model = scheduled(schedule, hyperparameters=SCHEDULE_HPS)
    for step, rate in expected.items():
        assert rate_at(model, step) == pytest.approx(rate, abs=1e-9), step


@pytest.mark.parametrize(
    ("schedule", "field", "says"),
    [
        ({"type": "step"}, "spec.model.learningRateSchedule.decayEpochs", "is required with type: step"),
        (
            {"type": "exponential", "decayEpochs": 2, "warmupEpochs": 1},
            "spec.model.learningRateSchedule.warmupEpochs",
            "exponential has none: use type cosine",
        ),
        (
            {"type": "cosine", "warmupEpochs": 6},
            "spec.model.learningRateSchedule.warmupEpochs",
            "is 6, but trials train 6 epochs at the fewest: the warmup would never end",
        ),
        (
            {"type": "cosine", "warmupEpochs": "warmup"},
            "spec.model.learningRateSchedule.warmupEpochs",
            "goes up to 2, but trials train 2 epochs at the fewest",
        ),
        (
            {"type": "step", "decayEpochs": 1, "decayRate": "period"},
            "spec.model.learningRateSchedule.decayRate",
            "names hyperparameter 'period' (hyperparameters[4]), whose values [1, 2, 4] are not all "
            "numbers in (0, 1)",
        ),
        (
            {"type": "cosine", "alpha": "alfa"},
            "spec.model.learningRateSchedule.alpha",
            "refers to hyperparameter 'alfa', which is not defined",
        ),
    ],
    ids=[
        "decay-without-period",
        "warmup-on-exponential",
        "warmup-too-long",
        "warmup-hp-too-long",
        "decay-hp-beyond-1",
        "unknown-hp",
    ],
)
def test_a_schedule_that_cannot_work_is_refused(schedule: dict[str, Any], field: str, says: str) -> None:
    epochs = 2 if schedule.get("warmupEpochs") == "warmup" else 6
    with pytest.raises(SpecError) as caught:
        scheduled(schedule, epochs, SCHEDULE_HPS)
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert field in messages and says in messages[field], messages
