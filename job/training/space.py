"""The search space and the model builders.

Spec hyperparameters become a Keras Tuner space; the spec's model becomes a `build_model(hp)`: the
built-in MLP, the user's function, or a Keras Tuner HyperModel's `build` (`HyperModelBuilder`,
which also carries its `fit`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from job.errors import BadInput
from job.spec.hyperparameters import BooleanHP, ChoiceHP, FixedHP, FloatHP, HyperParameter, IntHP
from job.spec.model import (
    ACTIVATIONS,
    BATCH_NORM,
    INITIALIZERS,
    OPTIMIZER_SETTINGS,
    OPTIMIZERS,
    CustomModel,
    DenseLayer,
    HyperModelClass,
    MlpModel,
    Schedule,
)
from job.spec.models import JobSpec
from job.spec.tuner import DEFAULT_OBJECTIVE
from job.training.imports import import_object, user_error

BuildModel = Callable[[kt.HyperParameters], keras.Model]


class BuilderError(BadInput):
    """A user's build_model cannot be imported or does not behave like one."""


def declare(hp: kt.HyperParameters, definition: HyperParameter) -> None:
    """Declare one spec hyperparameter in a Keras Tuner HyperParameters container."""
    match definition:
        case IntHP():
            hp.Int(
                definition.name,
                min_value=definition.min,
                max_value=definition.max,
                step=definition.step,
                sampling=definition.sampling,
                default=None if definition.default is None else int(definition.default),
            )
        case FloatHP():
            hp.Float(
                definition.name,
                min_value=definition.min,
                max_value=definition.max,
                step=definition.step,
                sampling=definition.sampling,
                default=definition.default,
            )
        case ChoiceHP():
            hp.Choice(
                definition.name,
                list(definition.values),
                ordered=definition.ordered,
                default=definition.default,
            )
        case BooleanHP():
            hp.Boolean(definition.name, default=definition.default)
        case FixedHP():
            hp.Fixed(definition.name, definition.value)


def declared_space(job: JobSpec) -> kt.HyperParameters:
    """The spec's hyperparameters as a Keras Tuner search space (before any builder runs). With a
    tuned depth, a layer's own hyperparameters are declared in a conditional scope of the depth:
    active only in trials deep enough to build the layer (`layer_conditions`)."""
    hp = kt.HyperParameters()
    depth, conditions = layer_conditions(job)
    definitions = list(enumerate(job.spec.hyperparameters))
    # The depth first: a conditional scope names a hyperparameter that exists.
    definitions.sort(key=lambda item: item[1].name != depth)
    for i, definition in definitions:
        try:
            if depth is not None and definition.name in conditions:
                with hp.conditional_scope(depth, conditions[definition.name]):
                    declare(hp, definition)
            else:
                declare(hp, definition)
        except (ValueError, TypeError) as err:  # a combination the spec checks let through
            raise BuilderError(f"spec.hyperparameters[{i}]: Keras Tuner refused it: {err}") from None
    return hp


def layer_conditions(job: JobSpec) -> tuple[str | None, dict[str, list[int]]]:
    """With a tuned depth (model.depth names a hyperparameter): its name, and for each
    hyperparameter only hidden layers name, first layer i, when layer i is not always built, the
    depths that build it (i + 1 up to the deepest). (None, {}) otherwise."""
    model = job.spec.model
    if not isinstance(model, MlpModel) or not isinstance(model.depth, str):
        return None, {}
    definition = next(h for h in job.spec.hyperparameters if h.name == model.depth)
    depths = _whole_numbers(definition)
    training = job.spec.training
    elsewhere = {name for path, name in model.hp_refs() if not path.startswith("hidden[")}
    elsewhere |= {ref for ref in (training.epochs, training.batch_size) if isinstance(ref, str)}
    conditions = {
        name: [d for d in depths if d > first]
        for name, first in model.layer_hps().items()
        if name not in elsewhere and first >= min(depths)
    }
    return model.depth, conditions


def _whole_numbers(definition: HyperParameter) -> list[int]:
    """Every value a depth hyperparameter may take (checked to be whole numbers by the spec)."""
    match definition:
        case IntHP():
            return list(range(definition.min, definition.max + 1))
        case ChoiceHP():
            return sorted(int(v) for v in definition.values)
        case FixedHP():
            return [int(definition.value)]
    raise AssertionError(f"a depth hyperparameter of type {definition.type}")


def mlp_builder(
    model: MlpModel,
    num_classes: int,
    input_shape: tuple[int, ...],
    schedule_steps: Callable[[kt.HyperParameters], tuple[int, int]] | None = None,
) -> BuildModel:
    """The built-in MLP: Dense(+Dropout) layers, an output layer (softmax over the classes, or
    linear units for regression), a compiled optimizer. `num_classes` is the output units the data
    implies (its classes, or the regression target's width), used when the spec sets none.
    `schedule_steps`: a trial's (steps per epoch, epochs), for a learning-rate schedule (without
    it, one step an epoch: a model built only to read the search space)."""
    if not (model.output.units or num_classes):
        raise BuilderError(
            "spec.model.output.units: is required here: the data does not say how many classes there "
            "are (integer labels in a stream); set it to the number of classes"
        )

    def value(hp: kt.HyperParameters, ref: str | float | int | None) -> Any:
        return hp.get(ref) if isinstance(ref, str) else ref

    def build_model(hp: kt.HyperParameters) -> keras.Model:
        layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
        if len(input_shape) > 1:
            layers.append(keras.layers.Flatten())
        depth = len(model.hidden) if model.depth is None else int(value(hp, model.depth))
        for layer in model.hidden[:depth]:
            layers += _hidden_layer(layer, hp)
        units = model.output.units or num_classes
        # The output stays float32 under mixed precision, for a numerically stable softmax.
        layers.append(keras.layers.Dense(units, activation=model.output.activation, dtype="float32"))
        net = keras.Sequential(layers)
        kind = model.optimizer if model.optimizer in OPTIMIZERS else str(hp.get(model.optimizer))
        rate = float(value(hp, model.learning_rate))
        steps, epochs = schedule_steps(hp) if schedule_steps is not None else (1, 1)
        config: dict[str, Any] = {
            "learning_rate": learning_rate(model.learning_rate_schedule, rate, steps, epochs, hp)
        }
        for name, setting in model.optimizer_settings().items():
            keras_name, applies = OPTIMIZER_SETTINGS[name]
            if kind in applies:  # a choice of optimizers: each gets the settings it has
                config[keras_name] = setting if isinstance(setting, bool) else float(value(hp, setting))
        optimizer = keras.optimizers.get({"class_name": kind, "config": config})
        net.compile(optimizer=optimizer, loss=model.loss, metrics=list(model.metrics))
        return net

    return build_model


def learning_rate(
    schedule: Schedule | None, rate: float, steps: int, epochs: int, hp: kt.HyperParameters
) -> Any:
    """The optimizer's learning rate: the number, or one of Keras' own schedules over optimizer
    steps (`steps` an epoch, `epochs` in the trial), so the saved model reloads with plain Keras.
    A schedule setting that names a hyperparameter takes the trial's value (`hp`)."""

    def setting(value: float | str | None) -> float | None:
        return float(hp.get(value)) if isinstance(value, str) else value

    warmup_epochs = setting(schedule.warmup_epochs) if schedule is not None else 0.0
    if schedule is None or (schedule.type == "constant" and not warmup_epochs):
        return rate
    warmup = round((warmup_epochs or 0.0) * steps)
    period = max(1, round((setting(schedule.decay_epochs) or epochs) * steps))
    schedules = keras.optimizers.schedules
    if schedule.type in ("step", "exponential"):
        return schedules.ExponentialDecay(
            rate,
            decay_steps=period,
            decay_rate=setting(schedule.decay_rate),
            staircase=schedule.type == "step",
        )
    # cosine, or constant after a warmup (a cosine that decays to alpha = 1: not at all)
    alpha = 1.0 if schedule.type == "constant" else setting(schedule.alpha)
    if not warmup:
        return schedules.CosineDecay(rate, decay_steps=period, alpha=alpha)
    return schedules.CosineDecay(
        0.0, decay_steps=max(1, period - warmup), alpha=alpha, warmup_target=rate, warmup_steps=warmup
    )


def _chosen(hp: kt.HyperParameters, text: str, known: tuple[str, ...]) -> str:
    """A name Keras knows as written, or the value of the hyperparameter it names."""
    return text if text in known else str(hp.get(text))


def _hidden_layer(layer: DenseLayer, hp: kt.HyperParameters) -> list[keras.layers.Layer]:
    """One hidden layer of the built-in MLP: Dense with its initializer and L1/L2 penalty, batch
    normalisation before or after the activation, then dropout; each setting a value or the value
    of the hyperparameter it names."""

    def number(ref: str | float | None) -> float:
        return float(hp.get(ref)) if isinstance(ref, str) else float(ref or 0.0)

    activation = _chosen(hp, layer.activation, ACTIVATIONS)
    norm = _chosen(hp, layer.batch_norm, BATCH_NORM)
    l1, l2 = number(layer.l1), number(layer.l2)
    dense: dict[str, Any] = {"activation": None if norm == "before" else activation}
    if layer.kernel_initializer is not None:
        dense["kernel_initializer"] = _chosen(hp, layer.kernel_initializer, INITIALIZERS)
    if l1 or l2:
        dense["kernel_regularizer"] = keras.regularizers.L1L2(l1=l1, l2=l2)
    units = int(hp.get(layer.units)) if isinstance(layer.units, str) else layer.units
    layers: list[keras.layers.Layer] = [keras.layers.Dense(units, **dense)]
    if norm == "before":
        layers += [keras.layers.BatchNormalization(), keras.layers.Activation(activation)]
    elif norm == "after":
        layers.append(keras.layers.BatchNormalization())
    rate = number(layer.dropout)
    if rate:
        layers.append(keras.layers.Dropout(rate))
    return layers


def import_builder(reference: str, search_path: Path | None) -> BuildModel:
    """Import "package.module:function"; the spec's directory is tried first on the import path."""
    function = import_object(reference, search_path, "spec.model.builder", BuilderError)
    if not callable(function):
        raise BuilderError(f"spec.model.builder: {reference} is not a function")
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = None
    if parameters is not None:
        required = [
            p
            for p in parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(required) != 1:
            raise BuilderError(
                f"spec.model.builder: {reference} must take exactly one argument (hp); "
                f"it takes {[p.name for p in parameters.values()]}"
            )
    return function


class HyperModelBuilder:
    """A Keras Tuner HyperModel, used as Keras Tuner uses it: `build(hp)` makes each trial's model
    (this object is that builder), `declare_hyperparameters(hp)` adds to the space before the first
    build, and `fit(hp, model, *args, **kwargs)` trains it when the class overrides fit."""

    def __init__(self, hypermodel: kt.HyperModel, reference: str) -> None:
        self.hypermodel = hypermodel
        self.reference = reference
        self.overrides_fit = type(hypermodel).fit is not kt.HyperModel.fit

    def __call__(self, hp: kt.HyperParameters) -> keras.Model:
        return self.hypermodel.build(hp)

    def declare(self, hp: kt.HyperParameters) -> None:
        self.hypermodel.declare_hyperparameters(hp)

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        return self.hypermodel.fit(hp, model, *args, **kwargs)


def import_hypermodel(spec: HyperModelClass, search_path: Path | None) -> HyperModelBuilder:
    """The HyperModel "package.module:Name" names: a subclass of keras_tuner.HyperModel, made with
    spec.model.args, or an instance of one."""
    reference = spec.class_
    found = import_object(reference, search_path, "spec.model.class", BuilderError)
    if isinstance(found, type) and issubclass(found, kt.HyperModel):
        if getattr(found, "build", None) is kt.HyperModel.build:
            raise BuilderError(f"spec.model.class: {reference} does not define build(self, hp)")
        try:
            hypermodel = found(**spec.args)
        except Exception as err:
            raise BuilderError(
                user_error("spec.model.class", f"{reference}(**spec.model.args)", err)
            ) from None
    elif isinstance(found, kt.HyperModel):
        if spec.args:
            raise BuilderError(f"spec.model.args: {reference} is a HyperModel instance, not a class to make")
        hypermodel = found
    else:
        what = (
            f"the class {found.__module__}.{found.__qualname__}"
            if isinstance(found, type)
            else (f"a {type(found).__name__}")
        )
        raise BuilderError(
            f"spec.model.class: {reference} is {what}, not a keras_tuner.HyperModel; subclass "
            "keras_tuner.HyperModel and define build(self, hp) (and fit, to train your own way)"
        )
    return HyperModelBuilder(hypermodel, reference)


def make_builder(
    job: JobSpec,
    num_classes: int,
    input_shape: tuple[int, ...],
    spec_dir: Path | None,
    train_samples: int = 0,
) -> BuildModel:
    """The trials' model builder. `train_samples`: the training samples per epoch, for the built-in
    model's learning-rate schedule (0: unknown; the chief builds a model only to read the space)."""
    model = job.spec.model
    if isinstance(model, CustomModel):
        return import_builder(model.builder, spec_dir)
    if isinstance(model, MlpModel) and model.learning_rate_schedule is not None and train_samples:
        training = job.spec.training

        def schedule_steps(hp: kt.HyperParameters) -> tuple[int, int]:
            def count(setting: int | str) -> int:
                return int(hp.get(setting)) if isinstance(setting, str) else setting

            return math.ceil(train_samples / count(training.batch_size)), count(training.epochs)

        return mlp_builder(model, num_classes, input_shape, schedule_steps)
    if isinstance(model, HyperModelClass):
        hypermodel = import_hypermodel(model, spec_dir)
        if job.spec.tuner.objective == DEFAULT_OBJECTIVE and not hypermodel.overrides_fit:
            raise BuilderError(
                f"spec.tuner.objective: not set, so Keras Tuner's default applies (default_objective, "
                f"minimized: the number a HyperModel's own fit returns), but {model.class_} does not "
                "override fit, and model.fit returns a History, not one number. Set "
                "spec.tuner.objective, e.g. {name: val_accuracy, direction: max}"
            )
        return hypermodel
    return mlp_builder(model, num_classes, input_shape)


def search_space(job: JobSpec, build_model: BuildModel) -> kt.HyperParameters:
    """The full space: the spec's hyperparameters plus any the builder declares itself.

    The builder is run once on default values, as Keras Tuner does before a search; its result
    must be a compiled keras.Model, checked here so a broken builder fails before any training.
    """
    hp = declared_space(job)
    try:
        if isinstance(build_model, HyperModelBuilder):
            build_model.declare(hp)
        model = build_model(hp)
    except Exception as err:
        raise BuilderError(
            f"spec.model: building a model with default hyperparameter values failed: "
            f"{type(err).__name__}: {err}"
        ) from err
    check_built(build_model, model)
    keras.backend.clear_session()
    return hp


def check_built(build_model: BuildModel, model: object) -> None:
    """What a builder returned is a keras.Model, compiled unless a HyperModel's own fit trains it."""
    if isinstance(build_model, HyperModelBuilder):
        check_model(
            model, f"spec.model.class: {build_model.reference}.build(hp)", not build_model.overrides_fit
        )
    else:
        check_model(model)


def check_model(
    model: object, what: str = "spec.model.builder: build_model(hp)", compiled: bool = True
) -> None:
    if not isinstance(model, keras.Model):
        raise BuilderError(f"{what} must return a keras.Model; got {type(model).__name__}")
    if compiled and not model.compiled:
        raise BuilderError(
            f"{what} returned a model that is not compiled; "
            "call model.compile(optimizer=..., loss=..., metrics=[...]) before returning it"
        )
