"""spec.model: the built-in MLP (widths, dropouts, optimizer, learning rate), a custom builder or a
Keras Tuner HyperModel."""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from job.spec.base import BUILDER_REF, SpecModel

HpRef = Annotated[str, Field(min_length=1, description="The name of a hyperparameter.")]
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
# Names Keras knows (keras.activations.get / keras.initializers.get; tests/unit/test_model_settings.py
# checks each against Keras), so a misspelling is refused with the spec, before any training.
ACTIVATIONS = (
    "relu",
    "tanh",
    "sigmoid",
    "softmax",
    "linear",
    "elu",
    "selu",
    "gelu",
    "silu",
    "swish",
    "softplus",
    "softsign",
    "exponential",
    "leaky_relu",
    "relu6",
    "mish",
    "hard_sigmoid",
    "hard_silu",
    "log_softmax",
)
INITIALIZERS = (
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
    "ones",
)
BATCH_NORM = ("before", "after", "off")
# The optimizer settings of the built-in model, as Keras names them, and the optimizers they apply to.
OPTIMIZER_SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "momentum": ("momentum", ("sgd", "rmsprop")),
    "nesterov": ("nesterov", ("sgd",)),
    "weight_decay": ("weight_decay", ("adamw", "sgd")),
    "beta1": ("beta_1", ("adam", "adamw")),
    "beta2": ("beta_2", ("adam", "adamw")),
    "epsilon": ("epsilon", ("adam", "adamw", "rmsprop")),
    "clip_norm": ("clipnorm", OPTIMIZERS),
}


def _count_or_name(value: Any) -> Any:
    """A whole number of at least 1, or the name of a hyperparameter (checked by `Spec`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "int_type", "Input should be a valid integer or the name of a hyperparameter"
        )
    if isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError(
            "int_from_float", "Input should be a valid integer, got a number with a fractional part"
        )
    if value < 1:
        raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 1")
    return int(value)


def _optimizer_or_name(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError(
            "string_type",
            f"Input should be one of {', '.join(OPTIMIZERS)} or the name of a hyperparameter",
        )
    return value


# A count (epochs, batch size) or the name of an int hyperparameter that chooses it per trial.
Count = Annotated[Annotated[int, Field(ge=1)] | HpRef, BeforeValidator(_count_or_name)]
Optimizer = Annotated[Literal["adam", "adamw", "sgd", "rmsprop"] | HpRef, BeforeValidator(_optimizer_or_name)]


def _coefficient_or_name(value: Any) -> Any:
    """A number of at least 0, or the name of a hyperparameter (checked by `Spec`)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("float_type", "Input should be a number or the name of a hyperparameter")
    if value < 0:
        raise PydanticCustomError("greater_than_equal", "Input should be greater than or equal to 0")
    return float(value)


# An L1/L2 coefficient or weight decay: a number of at least 0, or a hyperparameter's name.
Coefficient = Annotated[float | HpRef | None, BeforeValidator(_coefficient_or_name)]


class DenseLayer(SpecModel):
    units: Annotated[int, Field(gt=0)] | HpRef = Field(
        description="Number of units, or the name of an int/choice hyperparameter."
    )
    dropout: Annotated[float, Field(ge=0, lt=1)] | HpRef | None = Field(
        None, description="Dropout rate after the layer, or the name of a hyperparameter."
    )
    activation: str = Field(
        "relu", description=f"A Keras activation ({', '.join(ACTIVATIONS)}), or the name of a choice of them."
    )
    kernel_initializer: str | None = Field(
        None,
        description=f"How the weights start ({', '.join(INITIALIZERS)}; Keras' default: glorot_uniform), "
        "or the name of a choice of them.",
    )
    l1: Coefficient = Field(None, description="L1 penalty on the weights (≥ 0), or a hyperparameter's name.")
    l2: Coefficient = Field(None, description="L2 penalty on the weights (≥ 0), or a hyperparameter's name.")
    batch_norm: str = Field(
        "off",
        description="Batch normalisation: before the activation, after it, or off; or the name of a "
        "choice of those.",
    )


class OutputLayer(SpecModel):
    units: int | None = Field(None, gt=0, description="Output units; the number of classes if unset.")
    activation: str = "softmax"


class Schedule(SpecModel):
    """The learning rate over a trial, as one of Keras' own schedules (keras.optimizers.schedules),
    so a saved model reloads with plain Keras. Each number may instead name a hyperparameter."""

    type: Literal["constant", "step", "exponential", "cosine"] = Field(
        description="constant; step (multiplied by decayRate every decayEpochs); exponential (the "
        "same, continuously); cosine (annealed to alpha times the rate over decayEpochs).",
    )
    decay_epochs: Annotated[float, Field(gt=0)] | HpRef | None = Field(
        None, description="step, exponential: required; cosine: default, the trial's epochs."
    )
    decay_rate: Annotated[float, Field(gt=0, lt=1)] | HpRef = Field(
        0.5, description="step, exponential: the factor per decayEpochs."
    )
    alpha: Annotated[float, Field(ge=0, lt=1)] | HpRef = Field(
        0.0, description="cosine: the last rate, as a fraction of the first."
    )
    warmup_epochs: Annotated[float, Field(ge=0)] | HpRef = Field(
        0.0, description="constant, cosine: epochs of linear warmup from 0 up to the learning rate."
    )

    # What each setting may be, as a hyperparameter's values: (low, low included, high, high included).
    BOUNDS: ClassVar[dict[str, tuple[float, bool, float, bool]]] = {
        "decay_epochs": (0.0, False, math.inf, False),
        "decay_rate": (0.0, False, 1.0, False),
        "alpha": (0.0, True, 1.0, False),
        "warmup_epochs": (0.0, True, math.inf, False),
    }

    def hp_refs(self) -> list[tuple[str, str]]:
        """(setting, hyperparameter name) for each setting that names a hyperparameter."""
        return [(name, ref) for name in self.BOUNDS if isinstance(ref := getattr(self, name), str)]


class MlpModel(SpecModel):
    type: Literal["mlp"] = "mlp"
    hidden: list[DenseLayer] = Field(min_length=1, description="Hidden Dense layers, in order.")
    depth: Count | None = Field(
        None,
        description="How many of the hidden layers a trial builds: the first `depth` of `hidden` (all "
        "when unset), or the name of an int hyperparameter choosing it per trial. A layer's "
        "hyperparameters (name them per layer: units_0, units_1, ...) are active only in trials that "
        "build the layer (Keras Tuner's conditional scopes); records, show and the report show them "
        "as inactive in the others.",
    )
    output: OutputLayer = OutputLayer()
    optimizer: Optimizer = Field(
        "adam", description="adam, adamw, sgd or rmsprop, or the name of a choice hyperparameter of them."
    )
    learning_rate: Annotated[float, Field(gt=0)] | HpRef = Field(
        1e-3, description="A number, or the name of a hyperparameter."
    )
    momentum: Annotated[float, Field(ge=0, lt=1)] | HpRef | None = Field(
        None, description="sgd and rmsprop: momentum, or a hyperparameter's name."
    )
    nesterov: bool | None = Field(None, description="sgd: Nesterov momentum.")
    weight_decay: Coefficient = Field(None, description="adamw and sgd: decoupled weight decay, or a name.")
    beta1: Annotated[float, Field(gt=0, lt=1)] | HpRef | None = Field(
        None, description="adam, adamw: beta_1."
    )
    beta2: Annotated[float, Field(gt=0, lt=1)] | HpRef | None = Field(
        None, description="adam, adamw: beta_2."
    )
    epsilon: Annotated[float, Field(gt=0)] | HpRef | None = Field(
        None, description="adam, adamw and rmsprop: epsilon."
    )
    clip_norm: Annotated[float, Field(gt=0)] | HpRef | None = Field(
        None, description="Gradients clipped to this norm (any optimizer), or a hyperparameter's name."
    )
    learning_rate_schedule: Schedule | None = Field(
        None, description="How the learning rate changes over a trial; constant when unset."
    )
    loss: str = "categorical_crossentropy"
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"])

    def hp_refs(self) -> list[tuple[str, str]]:
        """(field path, hyperparameter name) for every field that names a hyperparameter. Names in
        activation, kernelInitializer and batchNorm are hyperparameters when they are not values
        Keras knows (checked by `Spec`)."""
        refs = []
        for i, layer in enumerate(self.hidden):
            for name in ("units", "dropout", "l1", "l2"):
                ref = getattr(layer, name)
                if isinstance(ref, str):
                    refs.append((f"hidden[{i}].{name}", ref))
        if isinstance(self.depth, str):
            refs.append(("depth", self.depth))
        if isinstance(self.learning_rate, str):
            refs.append(("learningRate", self.learning_rate))
        if self.optimizer not in OPTIMIZERS:
            refs.append(("optimizer", self.optimizer))
        for name in OPTIMIZER_SETTINGS:
            ref = getattr(self, name)
            if isinstance(ref, str):
                refs.append((to_camel(name), ref))
        if self.learning_rate_schedule is not None:
            for name, ref in self.learning_rate_schedule.hp_refs():
                refs.append((f"learningRateSchedule.{to_camel(name)}", ref))
        return refs

    def named_values(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(field path, text, the values Keras knows) for the fields that hold a name Keras knows or
        the name of a hyperparameter choosing among them."""
        named: list[tuple[str, str, tuple[str, ...]]] = []
        for i, layer in enumerate(self.hidden):
            named.append((f"hidden[{i}].activation", layer.activation, ACTIVATIONS))
            if layer.kernel_initializer is not None:
                named.append((f"hidden[{i}].kernelInitializer", layer.kernel_initializer, INITIALIZERS))
            named.append((f"hidden[{i}].batchNorm", layer.batch_norm, BATCH_NORM))
        return named

    def layer_hps(self) -> dict[str, int]:
        """Each hyperparameter the hidden layers name, with the first layer that names it."""
        first: dict[str, int] = {}
        for i, layer in enumerate(self.hidden):
            names: list[Any] = [getattr(layer, name) for name in ("units", "dropout", "l1", "l2")]
            named = (
                (layer.activation, ACTIVATIONS),
                (layer.kernel_initializer, INITIALIZERS),
                (layer.batch_norm, BATCH_NORM),
            )
            names += [text for text, known in named if text is not None and text not in known]
            for name in names:
                if isinstance(name, str):
                    first.setdefault(name, i)
        return first

    def optimizer_settings(self) -> dict[str, Any]:
        """The optimizer settings the spec sets, by field name (values or hyperparameter names)."""
        return {name: getattr(self, name) for name in OPTIMIZER_SETTINGS if getattr(self, name) is not None}


class CustomModel(SpecModel):
    type: Literal["custom"] = "custom"
    builder: str = Field(
        description='"package.module:function": a build_model(hp) returning a compiled keras.Model. '
        "The spec file's directory is on the import path."
    )

    @field_validator("builder")
    @classmethod
    def _check_ref(cls, value: str) -> str:
        if not BUILDER_REF.match(value):
            raise ValueError(f'must look like "package.module:build_model"; got {value!r}')
        return value


class HyperModelClass(SpecModel):
    type: Literal["hypermodel"] = "hypermodel"
    class_: str = Field(
        alias="class",
        description='"package.module:MyHyperModel": a keras_tuner.HyperModel subclass (or an instance of '
        "one); its build(hp) and, when overridden, fit(hp, model, *args, **kwargs) are used as Keras "
        "Tuner uses them. The spec file's directory is on the import path.",
    )
    args: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the class, when it is a class."
    )

    @field_validator("class_")
    @classmethod
    def _check_ref(cls, value: str) -> str:
        if not BUILDER_REF.match(value):
            raise ValueError(f'must look like "package.module:MyHyperModel"; got {value!r}')
        return value


def _model_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "type" in value:
            return value["type"]
        if "class" in value:
            return "hypermodel"
        return "custom" if "builder" in value else "mlp"
    return getattr(value, "type", None)


ModelSpec = Annotated[
    Annotated[MlpModel, Tag("mlp")]
    | Annotated[CustomModel, Tag("custom")]
    | Annotated[HyperModelClass, Tag("hypermodel")],
    Discriminator(
        _model_tag,
        custom_error_type="spec_model_kind",
        custom_error_message="type must be mlp, custom or hypermodel",
    ),
]
