"""spec.model: the built-in MLP (widths, dropouts, optimizer, learning rate), a custom builder or a
Keras Tuner HyperModel."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

from job.spec.base import BUILDER_REF, SpecModel

HpRef = Annotated[str, Field(min_length=1, description="The name of a hyperparameter.")]
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


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


class DenseLayer(SpecModel):
    units: Annotated[int, Field(gt=0)] | HpRef = Field(
        description="Number of units, or the name of an int/choice hyperparameter."
    )
    dropout: Annotated[float, Field(ge=0, lt=1)] | HpRef | None = Field(
        None, description="Dropout rate after the layer, or the name of a hyperparameter."
    )
    activation: str = "relu"


class OutputLayer(SpecModel):
    units: int | None = Field(None, gt=0, description="Output units; the number of classes if unset.")
    activation: str = "softmax"


class MlpModel(SpecModel):
    type: Literal["mlp"] = "mlp"
    hidden: list[DenseLayer] = Field(min_length=1, description="Hidden Dense layers, in order.")
    output: OutputLayer = OutputLayer()
    optimizer: Optimizer = Field(
        "adam", description="adam, adamw, sgd or rmsprop, or the name of a choice hyperparameter of them."
    )
    learning_rate: Annotated[float, Field(gt=0)] | HpRef = Field(
        1e-3, description="A number, or the name of a hyperparameter."
    )
    loss: str = "categorical_crossentropy"
    metrics: list[str] = Field(default_factory=lambda: ["accuracy"])

    def hp_refs(self) -> list[tuple[str, str]]:
        """(field path, hyperparameter name) for every field that names a hyperparameter."""
        refs = []
        for i, layer in enumerate(self.hidden):
            if isinstance(layer.units, str):
                refs.append((f"hidden[{i}].units", layer.units))
            if isinstance(layer.dropout, str):
                refs.append((f"hidden[{i}].dropout", layer.dropout))
        if isinstance(self.learning_rate, str):
            refs.append(("learningRate", self.learning_rate))
        if self.optimizer not in OPTIMIZERS:
            refs.append(("optimizer", self.optimizer))
        return refs


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
