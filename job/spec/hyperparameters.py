"""spec.hyperparameters: int, float, choice, boolean and fixed hyperparameters."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from job.spec.base import SpecModel, field_error

Sampling = Literal["linear", "log", "reverse_log"]


class _RangeHP(SpecModel):
    name: str = Field(min_length=1, description="The hyperparameter's name, unique in the spec.")
    sampling: Sampling = Field("linear", description="How values are drawn between min and max.")
    default: float | None = Field(None, description="The value used before the search picks one.")

    @model_validator(mode="after")
    def _check_range(self) -> _RangeHP:
        low, high, step = self.min, self.max, self.step  # type: ignore[attr-defined]
        if not low < high:
            raise field_error("max", f"must be greater than min ({low}); got {high}")
        if step is not None and step <= 0:
            raise field_error("step", f"must be greater than 0; got {step}")
        if self.sampling != "linear" and low <= 0:
            raise field_error("min", f"must be greater than 0 with {self.sampling} sampling; got {low}")
        if self.sampling != "linear" and step is not None and step <= 1:
            raise field_error(
                "step",
                f"is a multiplier with {self.sampling} sampling and must be greater than 1; got {step}",
            )
        if self.default is not None and not low <= self.default <= high:
            raise field_error("default", f"must lie between min ({low}) and max ({high})")
        return self


class IntHP(_RangeHP):
    type: Literal["int"]
    min: int
    max: int
    step: int | None = Field(None, description="Distance between values; 1 when unset.")
    default: int | None = Field(None, description="The value used before the search picks one.")


class FloatHP(_RangeHP):
    type: Literal["float"]
    min: float
    max: float
    step: float | None = Field(None, description="Distance between values; continuous when unset.")

    @field_validator("min", "max", "step")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


ChoiceValue = Annotated[int | float | str | bool, Field(union_mode="left_to_right")]


class ChoiceHP(SpecModel):
    name: str = Field(min_length=1)
    type: Literal["choice"]
    values: list[Annotated[bool, Field(strict=True)] | int | float | str] = Field(
        description="The values to choose from: all numbers, all strings or all booleans."
    )
    ordered: bool | None = None
    default: int | float | str | bool | None = None

    @model_validator(mode="after")
    def _check_values(self) -> ChoiceHP:
        if not self.values:
            raise field_error("values", "must list at least one value")
        kinds = {value_kind(v) for v in self.values}
        if len(kinds) > 1:
            raise field_error(
                "values",
                f"must all be of one type (numbers, strings or booleans); got {sorted(kinds)}",
            )
        if len(set(map(repr, self.values))) != len(self.values):
            raise field_error("values", "must not repeat a value")
        if self.default is not None and self.default not in self.values:
            raise field_error("default", f"must be one of the values {self.values}")
        if self.ordered and kinds != {"number"}:
            raise field_error("ordered", "applies only to numeric values")
        return self

    @field_validator("values")
    @classmethod
    def _one_number_type(cls, values: list[Any]) -> list[Any]:
        """Keras Tuner wants one Python type: [1, 0.5] becomes [1.0, 0.5]."""
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values) and any(isinstance(v, float) for v in numbers):
            return [float(v) for v in values]
        return values


class BooleanHP(SpecModel):
    name: str = Field(min_length=1)
    type: Literal["boolean"]
    default: bool = False


class FixedHP(SpecModel):
    name: str = Field(min_length=1)
    type: Literal["fixed"]
    value: Annotated[bool, Field(strict=True)] | int | float | str


def value_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _hp_tag(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


HyperParameter = Annotated[
    Annotated[IntHP, Tag("int")]
    | Annotated[FloatHP, Tag("float")]
    | Annotated[ChoiceHP, Tag("choice")]
    | Annotated[BooleanHP, Tag("boolean")]
    | Annotated[FixedHP, Tag("fixed")],
    Discriminator(
        _hp_tag,
        custom_error_type="spec_hp_kind",
        custom_error_message="type must be one of int, float, choice, boolean, fixed",
    ),
]
