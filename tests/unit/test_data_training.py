"""Training your own way, in process: a trial's batch size, epochs and optimizer from its
hyperparameter values; the built-in MLP on a regression; streamed data; Keras Tuner HyperModels
whose build and fit are used as Keras Tuner uses them; HyperModel references that are wrong."""

from __future__ import annotations

import gc
import logging
import textwrap
import weakref
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from job.output.attempts import publish_checkpoint
from job.spec import validate_spec
from job.spec.tuner import Objective
from job.storage import Store
from job.training.checkpoint import Checkpointer, fingerprint, load_resume
from job.training.data import DataError, Dataset
from job.training.data.dataset import Streams
from job.training.space import (
    BuilderError,
    HyperModelBuilder,
    declared_space,
    import_hypermodel,
    make_builder,
    search_space,
)
from job.training.trial import check_fit, freeze_long_lived, run_trial, training_values
from tests.support.specs import BASE_SPEC, merge

ACCURACY = Objective(name="val_accuracy", direction="max")


def arrays(n: int = 60, features: int = 5, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, features), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
    cut = n * 3 // 4
    return Dataset(x[:cut], y[:cut], x[cut:], y[cut:], classes, "test arrays")


def job_with(changes: dict[str, Any]) -> Any:
    return validate_spec(merge(BASE_SPEC, changes))


def test_a_trial_trains_with_its_own_batch_size_epochs_and_optimizer() -> None:
    job = job_with(
        {
            "spec": {
                "hyperparameters": [
                    *BASE_SPEC["spec"]["hyperparameters"],
                    {"name": "bs", "type": "choice", "values": [5, 9]},
                    {"name": "ep", "type": "int", "min": 1, "max": 3},
                    {"name": "opt", "type": "choice", "values": ["adam", "sgd"]},
                ],
                "model": {"optimizer": "opt"},
                "training": {"batchSize": "bs", "epochs": "ep", "stepsPerExecution": "auto"},
            }
        }
    )
    data = arrays()
    build = make_builder(job, data.output_units, data.input_shape, None)
    hp = search_space(job, build)
    hp.values.update(bs=9, ep=3, opt="sgd")
    assert training_values(job.spec.training, hp) == (9, 3)
    outcome = run_trial(hp, build, data, job.spec.training, ACCURACY)
    assert outcome.ok, outcome.error
    assert len(outcome.history[0]) == 3
    assert outcome.model is not None
    assert type(outcome.model.optimizer) is keras.optimizers.SGD
    assert outcome.model.steps_per_execution == 45 // 9  # the trial's batch size sets the steps


def test_the_mlp_does_regression() -> None:
    job = job_with(
        {
            "spec": {
                "model": {"output": {"units": 1, "activation": "linear"}, "loss": "mse", "metrics": ["mae"]},
                "tuner": {"objective": {"name": "val_mae", "direction": "min"}},
            }
        }
    )
    rng = np.random.default_rng(0)
    x = rng.random((50, 4), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)
    data = Dataset(x[:40], y[:40], x[40:], y[40:], 0, "sums", outputs=1)
    build = make_builder(job, data.output_units, data.input_shape, None)
    hp = search_space(job, build)
    outcome = run_trial(hp, build, data, job.spec.training, job.spec.tuner.objective)
    assert outcome.ok, outcome.error
    assert "val_mae" in outcome.metrics
    assert outcome.model is not None and outcome.model.output_shape == (None, 1)


def streamed(classes: int = 3, one_hot: bool = True) -> Dataset:
    plain = arrays(classes=classes)
    y_train = plain.y_train if one_hot else plain.y_train.argmax(axis=1)
    y_val = plain.y_val if one_hot else plain.y_val.argmax(axis=1)
    train = tf.data.Dataset.from_tensor_slices((plain.x_train, y_train)).batch(8)
    validation = tf.data.Dataset.from_tensor_slices((plain.x_val, y_val)).batch(8)
    streams = Streams(train, validation, True, (5,), train_batches=int(train.cardinality()))
    return Dataset(None, None, None, None, classes if one_hot else 0, "stream", streams=streams)


def test_streamed_data_is_passed_to_fit_as_it_is() -> None:
    job = job_with({})
    data = streamed()
    build = make_builder(job, data.output_units, data.input_shape, None)
    outcome = run_trial(search_space(job, build), build, data, job.spec.training, ACCURACY)
    assert outcome.ok, outcome.error
    assert len(outcome.history[0]) == job.spec.training.epochs


def test_a_tuned_batch_size_with_a_stream_is_refused_before_training() -> None:
    job = job_with(
        {
            "spec": {
                "hyperparameters": [
                    *BASE_SPEC["spec"]["hyperparameters"],
                    {"name": "bs", "type": "choice", "values": [8, 16]},
                ],
                "training": {"batchSize": "bs"},
            }
        }
    )
    with pytest.raises(DataError, match=r"batchSize names hyperparameter 'bs', but the data is"):
        check_fit(job.spec.training, streamed())


def test_the_mlp_on_sparse_labels_in_a_stream_needs_its_output_units() -> None:
    job = job_with({})
    data = streamed(one_hot=False)
    with pytest.raises(BuilderError, match=r"spec.model.output.units: is required here"):
        make_builder(job, data.output_units, data.input_shape, None)


# -- HyperModels ---------------------------------------------------------------------------------

HYPERMODELS = """
import keras
import keras_tuner as kt


class Plain(kt.HyperModel):
    def __init__(self, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, hp):
        model = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation="relu"),
            keras.layers.Dense(self.classes, activation="softmax"),
        ])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model


class ChoosesBatchAndEpochs(Plain):
    seen = []

    def fit(self, hp, model, *args, **kwargs):
        ChoosesBatchAndEpochs.seen.append(sorted(kwargs))
        return model.fit(*args, batch_size=hp.Choice("batch", [4, 8]), epochs=1, **kwargs)


class KeepsDefaults(Plain):
    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, shuffle=hp.Boolean("shuffle"), **kwargs)


class OwnLoop(Plain):
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        return 0.25 + hp.get("units") / 100


class ReturnsNothing(Plain):
    def fit(self, hp, model, *args, **kwargs):
        model.fit(*args, **{k: v for k, v in kwargs.items() if k != "callbacks"})


class ReturnsError(Plain):
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        return 0.5 + hp.get("units") / 100


class ReturnsDict(Plain):
    def fit(self, hp, model, x, y, validation_data, **kwargs):
        model.fit(x, y, **kwargs)
        return {"metric_a": hp.get("units") / 10, "metric_b": 7}


class ReturnsList(Plain):
    def fit(self, hp, model, *args, **kwargs):
        return [1.0, 3]


class ReturnsText(Plain):
    def fit(self, hp, model, *args, **kwargs):
        return "good"


class DropsCallbacks(Plain):
    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, **{k: v for k, v in kwargs.items() if k != "callbacks"})


class Seeded(Plain):
    def build(self, hp):
        seeded = keras.initializers.GlorotUniform(seed=1)
        model = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu", kernel_initializer=seeded),
            keras.layers.Dense(self.classes, activation="softmax", kernel_initializer=seeded),
        ])
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        return model


class PassesCallbacksOnly(Seeded):
    def fit(self, hp, model, x, y, validation_data, callbacks, **kwargs):
        return model.fit(x, y, validation_data=validation_data, callbacks=callbacks, shuffle=False)


class NoBuild(kt.HyperModel):
    pass


instance = Plain(classes=3)


def build_model(hp):
    return None
"""


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    (tmp_path / "tuned_models.py").write_text(textwrap.dedent(HYPERMODELS))
    return tmp_path


ACCURACY_SPEC = {"name": "val_accuracy", "direction": "max"}


def hypermodel_job(
    name: str,
    args: dict[str, Any] | None = None,
    epochs: int = 2,
    objective: dict[str, str] | None = ACCURACY_SPEC,
) -> Any:
    """A HyperModel's spec; `objective` None leaves tuner.objective out (Keras Tuner's default)."""
    model = {"type": "hypermodel", "class": f"tuned_models:{name}", "hidden": None, "learningRate": None}
    if args is not None:
        model["args"] = args
    tuner = {} if objective is None else {"objective": objective}
    return job_with({"spec": {"model": model, "training": {"epochs": epochs}, "tuner": tuner}})


def trial(models_dir: Path, name: str, **kwargs: Any) -> tuple[Any, kt.HyperParameters, Any]:
    job = hypermodel_job(name, **kwargs)
    build = make_builder(job, 0, (), models_dir)
    assert isinstance(build, HyperModelBuilder)
    hp = search_space(job, build)
    outcome = run_trial(hp, build, arrays(), job.spec.training, job.spec.tuner.objective)
    return build, hp, outcome


def test_a_hypermodel_builds_and_trains_as_keras_tuner_does(models_dir: Path) -> None:
    build, hp, outcome = trial(models_dir, "Plain", args={"classes": 3})
    assert not build.overrides_fit
    assert "units" in [p.name for p in hp.space]  # build's own hyperparameter joins the space
    assert outcome.ok, outcome.error
    assert len(outcome.history[0]) == 2


def test_a_hypermodel_fit_may_choose_its_batch_size_and_epochs(models_dir: Path) -> None:
    build, hp, outcome = trial(models_dir, "ChoosesBatchAndEpochs")
    assert build.overrides_fit
    assert outcome.ok, outcome.error
    assert len(outcome.history[0]) == 1  # its own epochs=1 won over the spec's 2
    assert "batch" in hp.values  # declared in fit, as Keras Tuner records it
    seen = build.hypermodel.seen[-1]
    assert "callbacks" in seen and "validation_data" in seen
    assert "batch_size" not in seen and "epochs" not in seen


def test_a_hypermodel_fit_gets_the_spec_settings_as_defaults(models_dir: Path) -> None:
    _, _, outcome = trial(models_dir, "KeepsDefaults", epochs=3)
    assert outcome.ok, outcome.error
    assert len(outcome.history[0]) == 3


def test_a_hypermodel_fit_may_return_the_objective(models_dir: Path) -> None:
    _, hp, outcome = trial(models_dir, "OwnLoop")
    assert outcome.ok, outcome.error
    assert outcome.metrics == {"val_accuracy": pytest.approx(0.25 + hp.get("units") / 100)}


def test_a_hypermodel_fit_that_returns_nothing_fails_its_trial_as_keras_tuner_says(models_dir: Path) -> None:
    _, _, outcome = trial(models_dir, "ReturnsNothing")
    assert not outcome.ok
    said = (
        "The return value of tuned_models:ReturnsNothing.fit is None. Did you forget to return the metrics?"
    )
    assert said in (outcome.error or "")


# -- what fit returns, by Keras Tuner's rules (job/training/returns.py) -------------------------------


def test_without_an_objective_a_hypermodels_fit_returns_the_number_to_minimize(models_dir: Path) -> None:
    # The guide's "custom metric" shape: model.fit with the callbacks (epochs report only loss), then
    # its own evaluation, one number returned; tuner.objective left out.
    job = hypermodel_job("ReturnsError", objective=None)
    assert job.spec.tuner.objective.model_dump() == {"name": "default_objective", "direction": "min"}
    _, hp, outcome = trial(models_dir, "ReturnsError", objective=None)
    assert outcome.ok, outcome.error
    assert outcome.metrics == {"default_objective": pytest.approx(0.5 + hp.get("units") / 100)}
    assert [set(epoch) for epoch in outcome.history[0]] == [{"loss", "accuracy"}] * 2, "epochs recorded"
    assert outcome.model is not None


def test_a_hypermodels_fit_may_return_a_dict_holding_the_objective(models_dir: Path) -> None:
    _, hp, outcome = trial(models_dir, "ReturnsDict", objective={"name": "metric_a", "direction": "max"})
    assert outcome.ok, outcome.error
    assert outcome.metrics == {
        "metric_a": pytest.approx(hp.get("units") / 10),
        "metric_b": pytest.approx(7.0),
    }


def test_a_list_of_results_is_averaged(models_dir: Path) -> None:
    _, _, outcome = trial(models_dir, "ReturnsList", objective=None)
    assert outcome.ok, outcome.error
    assert outcome.metrics == {"default_objective": pytest.approx(2.0)}


@pytest.mark.parametrize(
    ("name", "objective", "says"),
    [
        (
            "KeepsDefaults",
            None,
            "Expected the return value of tuned_models:KeepsDefaults.fit to be a single float when "
            "`objective` is left unspecified",
        ),
        (
            "ReturnsDict",
            {"name": "metric_c", "direction": "max"},
            "Expected the returned dictionary from tuned_models:ReturnsDict.fit to have the specified "
            "objective, metric_c, as one of the keys.",
        ),
        (
            "ReturnsText",
            ACCURACY_SPEC,
            "Expected the return value of tuned_models:ReturnsText.fit to be one of float, dict, "
            "keras.callbacks.History, or a list of one of these types. Received return value: 'good' "
            "of type str.",
        ),
    ],
    ids=["history-without-objective", "dict-without-the-objective", "text"],
)
def test_what_keras_tuner_refuses_fails_the_trial_with_its_words(
    models_dir: Path, name: str, objective: dict[str, str] | None, says: str
) -> None:
    _, _, outcome = trial(models_dir, name, objective=objective)
    assert not outcome.ok
    assert says in (outcome.error or "")
    assert "Traceback" not in (outcome.error or "")


def test_a_hypermodel_without_its_own_fit_needs_an_objective_before_any_training(models_dir: Path) -> None:
    with pytest.raises(BuilderError) as caught:
        make_builder(hypermodel_job("Plain", objective=None), 0, (), models_dir)
    message = str(caught.value)
    assert message.startswith("spec.tuner.objective: not set, so Keras Tuner's default applies")
    assert "tuned_models:Plain does not override fit" in message


class _Preempted(Exception):
    pass


def test_a_hypermodel_fit_that_passes_the_callbacks_on_is_checkpointed_and_resumed(
    models_dir: Path, tmp_path: Path
) -> None:
    # Its fit keeps only the callbacks: it continues at the checkpoint's epoch all the same.
    job = hypermodel_job("PassesCallbacksOnly", epochs=4)
    build = make_builder(job, 0, (), models_dir)
    hp, data, training = search_space(job, build), arrays(), job.spec.training
    whole = run_trial(hp, build, data, training, ACCURACY)
    assert whole.ok, whole.error

    store = Store(str(tmp_path / "out"))
    writer = Checkpointer(store, "0", "tuner0", fingerprint(job), 0.0, tmp_path)

    def lost_in_epoch_3(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 2:
            raise _Preempted

    first = run_trial(hp, build, data, training, ACCURACY, on_epoch=lost_in_epoch_3, checkpointer=writer)
    assert not first.ok
    assert publish_checkpoint(store, "0", "tuner0")
    resume = load_resume(store, "0", fingerprint(job), tmp_path, "tuner1")
    assert resume is not None and resume.state.epoch == 2
    rest = run_trial(hp, build, data, training, ACCURACY, resume=resume)
    assert rest.ok and rest.resumed == {"epochs": 2, "worker": "tuner0"}
    assert len(rest.history[0]) == 4, "epochs 3 and 4 trained, not 4 more"
    for a, b in zip(whole.history[0], rest.history[0], strict=True):
        assert b == pytest.approx(a, abs=1e-5)


def test_a_hypermodel_fit_that_drops_the_callbacks_is_said_once_to_go_unchecked(
    models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = hypermodel_job("DropsCallbacks")
    build = make_builder(job, 0, (), models_dir)
    hp = search_space(job, build)
    writer = Checkpointer(Store(str(tmp_path / "out")), "0", "tuner0", fingerprint(job), 0.0, tmp_path)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            outcome = run_trial(hp, build, arrays(), job.spec.training, ACCURACY, checkpointer=writer)
            assert outcome.ok, outcome.error
    said = "tuned_models:DropsCallbacks.fit does not pass the callbacks it is given on to model.fit"
    assert caplog.text.count(said) == 1
    assert not (tmp_path / "out" / "trials").exists(), "no checkpoint written"


def test_a_hypermodel_instance_is_used_as_it_is(models_dir: Path) -> None:
    build = import_hypermodel(hypermodel_job("instance").spec.model, models_dir)
    assert build.hypermodel.classes == 3


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        (
            "build_model",
            None,
            "spec.model.class: tuned_models:build_model is a function, not a keras_tuner.HyperModel",
        ),
        ("NoBuild", None, "spec.model.class: tuned_models:NoBuild does not define build(self, hp)"),
        (
            "Plain",
            {"colours": 3},
            "spec.model.class: tuned_models:Plain(**spec.model.args) raised TypeError",
        ),
        ("instance", {"classes": 2}, "spec.model.args: tuned_models:instance is a HyperModel instance"),
        ("Missing", None, "spec.model.class: module 'tuned_models' has no 'Missing'"),
    ],
    ids=["a-function", "no-build", "bad-args", "args-for-an-instance", "missing"],
)
def test_a_hypermodel_reference_that_is_not_one_is_refused(
    models_dir: Path, name: str, args: dict[str, Any] | None, says: str
) -> None:
    with pytest.raises(BuilderError) as caught:
        import_hypermodel(hypermodel_job(name, args).spec.model, models_dir)
    assert says in str(caught.value)


def test_the_chief_discovers_a_hypermodels_space_without_data(models_dir: Path) -> None:
    job = hypermodel_job("Plain")
    declared = declared_space(job)
    discovered = search_space(job, make_builder(job, 0, (), models_dir))
    assert len(discovered.space) == len(declared.space) + 1


def test_with_the_heap_frozen_a_trials_model_is_still_freed_by_the_next_trial() -> None:
    job = job_with({})
    data = arrays()
    build = make_builder(job, data.output_units, data.input_shape, None)
    hp = search_space(job, build)
    freeze_long_lived()
    try:
        first = run_trial(hp, build, data, job.spec.training, ACCURACY)
        assert first.ok, first.error
        model = weakref.ref(first.model)
        first.model = None
        second = run_trial(hp, build, data, job.spec.training, ACCURACY)
        assert second.ok, second.error
        assert model() is None, "the first trial's model outlived the next trial"
    finally:
        gc.unfreeze()
