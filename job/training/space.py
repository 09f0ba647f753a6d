"""The search space and the model builders.

Spec hyperparameters become a Keras Tuner space; the spec's model becomes a `build_model(hp)`.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from job.errors import BadInput
from job.spec.models import (
    BooleanHP,
    ChoiceHP,
    CustomModel,
    FixedHP,
    FloatHP,
    HyperParameter,
    IntHP,
    JobSpec,
    MlpModel,
)

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
    """The spec's hyperparameters as a Keras Tuner search space (before any builder runs)."""
    hp = kt.HyperParameters()
    for i, definition in enumerate(job.spec.hyperparameters):
        try:
            declare(hp, definition)
        except (ValueError, TypeError) as err:  # a combination the spec checks let through
            raise BuilderError(f"spec.hyperparameters[{i}]: Keras Tuner refused it: {err}") from None
    return hp


def mlp_builder(model: MlpModel, num_classes: int, input_shape: tuple[int, ...]) -> BuildModel:
    """The built-in MLP: Dense(+Dropout) layers, a softmax output, a compiled optimizer."""

    def value(hp: kt.HyperParameters, ref: str | float | int | None) -> Any:
        return hp.get(ref) if isinstance(ref, str) else ref

    def build_model(hp: kt.HyperParameters) -> keras.Model:
        layers: list[keras.layers.Layer] = [keras.Input(shape=input_shape)]
        if len(input_shape) > 1:
            layers.append(keras.layers.Flatten())
        for layer in model.hidden:
            layers.append(keras.layers.Dense(int(value(hp, layer.units)), activation=layer.activation))
            rate = value(hp, layer.dropout)
            if rate:
                layers.append(keras.layers.Dropout(float(rate)))
        units = model.output.units or num_classes
        # The output stays float32 under mixed precision, for a numerically stable softmax.
        layers.append(keras.layers.Dense(units, activation=model.output.activation, dtype="float32"))
        net = keras.Sequential(layers)
        optimizer = keras.optimizers.get(
            {
                "class_name": model.optimizer,
                "config": {"learning_rate": float(value(hp, model.learning_rate))},
            }
        )
        net.compile(optimizer=optimizer, loss=model.loss, metrics=list(model.metrics))
        return net

    return build_model


def import_builder(reference: str, search_path: Path | None) -> BuildModel:
    """Import "package.module:function"; the spec's directory is tried first on the import path."""
    module_name, _, attr = reference.partition(":")
    added = False
    if search_path is not None and str(search_path) not in sys.path:
        sys.path.insert(0, str(search_path))
        added = True
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        where = f" (looked in {search_path} and the Python path)" if search_path else ""
        raise BuilderError(
            f"spec.model.builder: cannot import module {module_name!r}{where}: {err}"
        ) from None
    except Exception as err:  # the user's module raised while importing
        raise BuilderError(
            f"spec.model.builder: importing {module_name!r} raised {type(err).__name__}: {err}"
        ) from None
    finally:
        if added:
            sys.path.remove(str(search_path))
    function = getattr(module, attr, None)
    if function is None:
        raise BuilderError(f"spec.model.builder: module {module_name!r} has no {attr!r}")
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


def make_builder(
    job: JobSpec, num_classes: int, input_shape: tuple[int, ...], spec_dir: Path | None
) -> BuildModel:
    model = job.spec.model
    if isinstance(model, CustomModel):
        return import_builder(model.builder, spec_dir)
    return mlp_builder(model, num_classes, input_shape)


def search_space(job: JobSpec, build_model: BuildModel) -> kt.HyperParameters:
    """The full space: the spec's hyperparameters plus any the builder declares itself.

    The builder is run once on default values, as Keras Tuner does before a search; its result
    must be a compiled keras.Model, checked here so a broken builder fails before any training.
    """
    hp = declared_space(job)
    try:
        model = build_model(hp)
    except Exception as err:
        raise BuilderError(
            f"spec.model: building a model with default hyperparameter values failed: "
            f"{type(err).__name__}: {err}"
        ) from err
    check_model(model)
    keras.backend.clear_session()
    return hp


def check_model(model: object) -> None:
    if not isinstance(model, keras.Model):
        raise BuilderError(
            f"spec.model.builder: build_model(hp) must return a keras.Model; got {type(model).__name__}"
        )
    if not model.compiled:
        raise BuilderError(
            "spec.model.builder: build_model(hp) returned a model that is not compiled; "
            "call model.compile(optimizer=..., loss=..., metrics=[...]) before returning it"
        )
