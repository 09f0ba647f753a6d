"""The job spec: pydantic models of a `TuningJob` document and its JSON Schema.

Keys are camelCase in YAML and snake_case in Python. Unknown keys are errors. Reading YAML is
`job.spec.loader`; turning validation errors into messages is `job.spec.errors`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from job.spec.errors import SpecError, suggest

API_VERSION = "hptune/v1"
MAX_SPEC_BYTES = 1024 * 1024
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
BUILDER_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# Spec keys that look like credentials. Credentials come from the environment, a mounted file or
# workload identity, never from the spec (see `docs/security.md`).
SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|credential|access[_-]?key|private[_-]?key|api[_-]?key)",
    re.IGNORECASE,
)


OUTPUT_SCHEMES = ("file", "s3", "s3a", "gs", "gcs", "memory")
BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs")


def _no_password(url: str) -> None:
    """Credentials never travel in a URL: they would be logged and written to search.json."""
    if "://" in url and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password is not None:
            raise ValueError(
                "holds a password in the URL; give credentials through the environment, a mounted "
                "file or workload identity, and write the URL without them"
            )


def _http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s)://host[:port] URL")


def _field_error(field: str, message: str) -> PydanticCustomError:
    """An error raised by a model validator that belongs to one of the model's fields."""
    return PydanticCustomError("spec", message.replace("{", "{{").replace("}", "}}"), {"field": field})


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


# --------------------------------------------------------------------------------------------------
# Hyperparameters


Sampling = Literal["linear", "log", "reverse_log"]


class _RangeHP(_Model):
    name: str = Field(min_length=1, description="The hyperparameter's name, unique in the spec.")
    sampling: Sampling = Field("linear", description="How values are drawn between min and max.")
    default: float | None = Field(None, description="The value used before the search picks one.")

    @model_validator(mode="after")
    def _check_range(self) -> _RangeHP:
        low, high, step = self.min, self.max, self.step  # type: ignore[attr-defined]
        if not low < high:
            raise _field_error("max", f"must be greater than min ({low}); got {high}")
        if step is not None and step <= 0:
            raise _field_error("step", f"must be greater than 0; got {step}")
        if self.sampling != "linear" and low <= 0:
            raise _field_error("min", f"must be greater than 0 with {self.sampling} sampling; got {low}")
        if self.sampling != "linear" and step is not None and step <= 1:
            raise _field_error(
                "step",
                f"is a multiplier with {self.sampling} sampling and must be greater than 1; got {step}",
            )
        if self.default is not None and not low <= self.default <= high:
            raise _field_error("default", f"must lie between min ({low}) and max ({high})")
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


class ChoiceHP(_Model):
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
            raise _field_error("values", "must list at least one value")
        kinds = {_value_kind(v) for v in self.values}
        if len(kinds) > 1:
            raise _field_error(
                "values",
                f"must all be of one type (numbers, strings or booleans); got {sorted(kinds)}",
            )
        if len(set(map(repr, self.values))) != len(self.values):
            raise _field_error("values", "must not repeat a value")
        if self.default is not None and self.default not in self.values:
            raise _field_error("default", f"must be one of the values {self.values}")
        if self.ordered and kinds != {"number"}:
            raise _field_error("ordered", "applies only to numeric values")
        return self

    @field_validator("values")
    @classmethod
    def _one_number_type(cls, values: list[Any]) -> list[Any]:
        """Keras Tuner wants one Python type: [1, 0.5] becomes [1.0, 0.5]."""
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if numbers and len(numbers) == len(values) and any(isinstance(v, float) for v in numbers):
            return [float(v) for v in values]
        return values


class BooleanHP(_Model):
    name: str = Field(min_length=1)
    type: Literal["boolean"]
    default: bool = False


class FixedHP(_Model):
    name: str = Field(min_length=1)
    type: Literal["fixed"]
    value: Annotated[bool, Field(strict=True)] | int | float | str


def _value_kind(value: object) -> str:
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

# --------------------------------------------------------------------------------------------------
# Model

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


class DenseLayer(_Model):
    units: Annotated[int, Field(gt=0)] | HpRef = Field(
        description="Number of units, or the name of an int/choice hyperparameter."
    )
    dropout: Annotated[float, Field(ge=0, lt=1)] | HpRef | None = Field(
        None, description="Dropout rate after the layer, or the name of a hyperparameter."
    )
    activation: str = "relu"


class OutputLayer(_Model):
    units: int | None = Field(None, gt=0, description="Output units; the number of classes if unset.")
    activation: str = "softmax"


class MlpModel(_Model):
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


class CustomModel(_Model):
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


class HyperModelClass(_Model):
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

# --------------------------------------------------------------------------------------------------
# Data


class Validation(_Model):
    source: Literal["split", "test"] = Field(
        "split", description="split: hold out a fraction of the training set; test: the test set."
    )
    fraction: float = Field(0.2, gt=0, lt=1, description="Held-out fraction with source: split.")


class Preprocessing(_Model):
    flatten: bool = Field(True, description="Flatten images to vectors (28x28 -> 784).")
    scale: bool = Field(
        True,
        description="Scale pixel values to [0, 1]; table features to mean 0 and variance 1 (with the "
        "training split's statistics).",
    )
    one_hot: bool = Field(True, description="One-hot encode integer labels.")


# Which data fields apply to which sources (the others refuse them).
_SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "loader": ("custom",),
    "args": ("custom",),
    "image_size": ("images",),
    "color_mode": ("images",),
    "labels": ("images",),
    "label": ("table",),
    "features": ("table",),
    "categorical": ("table",),
    "task": ("table",),
    "format": ("table",),
    "max_fetch_bytes": ("images", "table"),
}
DEFAULT_MAX_FETCH_BYTES = 10 * 2**30


class DataSpec(_Model):
    source: Literal["mnist", "fashion_mnist", "digits", "npz", "custom", "images", "table"] = Field(
        description="mnist and fashion_mnist (Keras datasets), digits (scikit-learn, offline), npz "
        "(x_train, y_train, x_test, y_test arrays at any fsspec URI), custom (your own loader), images "
        "(a folder with a subdirectory per class) or table (CSV or Parquet), both at any fsspec URI."
    )
    path: str | None = Field(
        None,
        description="npz, images, table: the file's or folder's URI (required). mnist/fashion_mnist: a "
        "local file or directory to load instead of downloading (HPTUNE_DATA_DIR works too).",
    )
    loader: str | None = Field(
        None,
        description='custom: "package.module:load_data" (required), returning ((x_train, y_train), '
        "(x_val, y_val)) arrays, or a mapping with train and validation entries that are (x, y) arrays, "
        "tf.data.Datasets or keras.utils.PyDatasets. The spec file's directory is on the import path.",
    )
    args: dict[str, Any] | None = Field(None, description="custom: keyword arguments for the loader.")
    image_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] | None = Field(
        None, description="images: [height, width] every image is resized to; [256, 256] when unset."
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] | None = Field(
        None, description="images: the channels read (1, 3 or 4); rgb when unset."
    )
    labels: Literal["inferred"] | None = Field(
        None, description="images: inferred (the default): one class per subdirectory of path."
    )
    label: str | None = Field(None, min_length=1, description="table: the column to predict (required).")
    features: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        min_length=1,
        description="table: the feature columns; every numeric column but the label when unset.",
    )
    categorical: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="table: columns to one-hot encode (text or integer codes), as features."
    )
    task: Literal["classification", "regression"] | None = Field(
        None,
        description="table: classification (the default; the label's values are the classes) or "
        "regression (a numeric label).",
    )
    format: Literal["csv", "parquet"] | None = Field(
        None, description="table: csv or parquet; from the file name when unset (.csv, .csv.gz, .parquet)."
    )
    max_fetch_bytes: int | None = Field(
        None,
        gt=0,
        description="images, table: the most bytes fetched from a remote path, once per worker, into "
        "the temporary directory (TMPDIR); 10 GiB when unset.",
    )
    validation: Validation = Validation()
    preprocessing: Preprocessing = Preprocessing()
    max_train_samples: int | None = Field(None, gt=0, description="Use only the first N samples.")
    max_validation_samples: int | None = Field(None, gt=0)

    @field_validator("path")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is not None:
            _no_password(value)
        return value

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """Source fields left unset are not written out: a spec of another source dumps (and so
        fingerprints) as it did before they existed."""
        dumped: dict[str, Any] = handler(self)
        for name in _SOURCE_FIELDS:
            if getattr(self, name) is None:
                dumped.pop(to_camel(name) if info.by_alias else name, None)
        return dumped

    @field_validator("loader")
    @classmethod
    def _check_loader(cls, value: str | None) -> str | None:
        if value is not None and not BUILDER_REF.match(value):
            raise ValueError(f'must look like "package.module:load_data"; got {value!r}')
        return value

    @model_validator(mode="after")
    def _check_path(self) -> DataSpec:
        source = self.source
        for name, sources in _SOURCE_FIELDS.items():
            if getattr(self, name) is not None and source not in sources:
                raise _field_error(to_camel(name), f"applies only to source: {' or '.join(sources)}")
        if source in ("npz", "images", "table") and not self.path:
            kind = "folder" if source == "images" else "file"
            raise _field_error("path", f"is required with source: {source} (a {kind} URI)")
        if self.source == "digits" and self.path:
            raise _field_error("path", "is not used with source: digits (bundled with scikit-learn)")
        if source == "custom":
            if not self.loader:
                raise _field_error("loader", 'is required with source: custom ("package.module:load_data")')
            if self.path:
                raise _field_error("path", "is not used with source: custom; pass it to the loader in args")
            for name, default in (("validation", Validation()), ("preprocessing", Preprocessing())):
                if getattr(self, name) != default:
                    raise _field_error(
                        name,
                        "is not used with source: custom: the loader returns training and validation "
                        "data ready to train on",
                    )
        if source in ("images", "table") and self.validation.source == "test":
            raise _field_error(
                "validation.source",
                f"test is not available with source: {source} (no test set); use split",
            )
        if source == "table":
            self._check_columns()
        return self

    def _check_columns(self) -> None:
        if not self.label:
            raise _field_error("label", "is required with source: table (the column to predict)")
        for name in ("features", "categorical"):
            columns = getattr(self, name) or []
            if self.label in columns:
                raise _field_error(name, f"lists the label column {self.label!r}")
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            if repeated:
                raise _field_error(name, f"lists {repeated} more than once")
        if self.features is not None:
            outside = [c for c in self.categorical or [] if c not in self.features]
            if outside:
                raise _field_error("categorical", f"{outside} are not among spec.data.features")


# --------------------------------------------------------------------------------------------------
# Tuner


class Objective(_Model):
    name: str = Field("val_accuracy", min_length=1)
    direction: Literal["max", "min"] = "max"


class BayesianSettings(_Model):
    num_initial_points: int | None = Field(None, ge=1, description="Random trials before the GP.")
    alpha: float = Field(1e-4, gt=0)
    beta: float = Field(2.6, gt=0)


class HyperbandSettings(_Model):
    max_epochs: int = Field(ge=1, description="Most epochs any one model is trained for.")
    factor: int = Field(3, ge=2, description="Reduction factor between rounds.")
    iterations: int = Field(1, ge=1, description="Times the whole Hyperband algorithm runs.")


class PruningSpec(_Model):
    """Stopping clearly bad trials early (job/search/pruning.py), from the per-epoch objective."""

    type: Literal["median", "asha"] = Field(
        description="median: stop a trial whose best objective so far is worse than the median of "
        "completed trials at the same epoch; asha: asynchronous successive halving.",
    )
    min_epochs: int = Field(
        1, ge=1, description="Epochs every trial trains before it can be stopped (asha: the first rung)."
    )
    min_trials: int = Field(
        3, ge=1, description="Trials (completed, or recorded at an asha rung) needed before any decision."
    )
    reduction_factor: int = Field(
        3, ge=2, description="asha: rungs at minEpochs * reductionFactor^k; the top 1/reductionFactor go on."
    )


class TunerSpec(_Model):
    algorithm: Literal["random", "grid", "bayesian", "hyperband"] = "random"
    objective: Objective = Objective()
    max_trials: int | None = Field(10, ge=1, description="Unset only for grid and hyperband.")
    executions_per_trial: int = Field(1, ge=1)
    seed: int | None = None
    max_retries_per_trial: int = Field(0, ge=0)
    max_consecutive_failed_trials: int = Field(3, ge=1)
    bayesian: BayesianSettings | None = None
    hyperband: HyperbandSettings | None = None
    pruning: PruningSpec | None = None

    @model_validator(mode="after")
    def _check_algorithm(self) -> TunerSpec:
        if self.algorithm == "hyperband" and self.hyperband is None:
            raise _field_error("hyperband", "is required with algorithm: hyperband (maxEpochs, factor)")
        if self.pruning is not None and self.algorithm == "hyperband":
            raise _field_error(
                "pruning",
                "does not apply to algorithm: hyperband, which stops trials in its own brackets; use "
                "random, grid or bayesian with pruning",
            )
        if self.pruning is not None and self.executions_per_trial > 1:
            raise _field_error(
                "pruning",
                f"needs executionsPerTrial 1 (got {self.executions_per_trial}): a trial's epochs must "
                "be one learning curve",
            )
        for section in ("bayesian", "hyperband"):
            if getattr(self, section) is not None and self.algorithm != section:
                raise _field_error(section, f"applies only to algorithm: {section}")
        if self.max_trials is None and self.algorithm in ("random", "bayesian"):
            raise _field_error("maxTrials", f"is required with algorithm: {self.algorithm}")
        return self


# --------------------------------------------------------------------------------------------------
# Training, output, distribution, metrics


class EarlyStopping(_Model):
    monitor: str = "val_loss"
    patience: int = Field(3, ge=0)
    min_delta: float = Field(0.0, ge=0)


class TrainingSpec(_Model):
    epochs: Count = Field(
        2,
        description="Epochs each trial trains for, or the name of an int hyperparameter (not with "
        "hyperband, which schedules epochs itself).",
    )
    batch_size: Count = Field(
        32,
        description="Samples per training step, or the name of an int hyperparameter (an int choice or "
        "range). Streamed data (tf.data, PyDataset) comes batched: then it is not used.",
    )
    early_stopping: EarlyStopping | None = None
    verbose: Literal[0, 1, 2] = Field(0, description="Keras fit verbosity inside each trial.")
    # The fast trial path: none of these changes what a trial learns, only how fast it runs.
    steps_per_execution: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="Training steps per compiled call; auto: up to 256 (fewer calls, same updates).",
    )
    validation_batch_size: int | None = Field(
        1024,
        ge=1,
        description="Batch size for the per-epoch validation pass (evaluation only); null: batchSize.",
    )
    jit_compile: bool | Literal["auto"] = Field(
        "auto", description="XLA compilation of the train step; auto lets Keras decide per backend."
    )
    mixed_precision: bool = Field(
        False, description="mixed_float16 compute on GPUs (float32 weights); off on CPUs."
    )
    scan_steps: bool | Literal["auto"] = Field(
        "auto",
        description="JAX: run each call's steps in one compiled lax.scan, one dispatch instead of one "
        "per batch (same updates); auto: on GPUs and TPUs, where dispatch dominates small models.",
    )


class OutputSpec(_Model):
    uri: str | None = Field(
        None, description="Local path, file://, s3:// or gs://. Default ./hptune-output/<name>."
    )
    keep_models: int = Field(3, ge=1, description="Keep trial models for the best k trials only.")
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint (MinIO, Ceph); AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL "
        "in the environment work too.",
    )
    retry_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a storage operation is retried on transient errors (connection refused, "
        "timeouts, 5xx, throttling) before the job fails; 0 tries once.",
    )
    via_chief: bool = Field(
        False,
        description="Workers send their results (trial records, models) to the chief, which writes them: "
        "for an output only the chief can reach, such as a volume on the chief's pod. Otherwise "
        "every process writes to the output itself, which must then be shared (an object store).",
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _no_password(value)
        if "://" not in value:
            return value
        scheme, rest = value.split("://", 1)
        if scheme not in OUTPUT_SCHEMES:
            raise ValueError(
                f"{value!r} has the unknown scheme {scheme}://; use a local path, file://, s3:// or gs://"
            )
        if scheme in BUCKET_SCHEMES and not rest.split("/", 1)[0]:
            raise ValueError(f"{value!r} names no bucket; use {scheme}://BUCKET/PREFIX")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            _no_password(value)
            _http_url(value)
        return value


class DistributionSpec(_Model):
    workers: int = Field(2, ge=1, description="Worker pods (or local worker processes), one GPU each.")
    trials_per_gpu: int = Field(
        1,
        ge=1,
        le=16,
        description="Trial processes packed on each worker's GPU, each with a 1/n share of its memory.",
    )
    oracle_port: int = Field(8000, ge=1, le=65535)
    bind_address: str = Field("0.0.0.0", description="Address the chief's oracle listens on.")
    lease_seconds: float = Field(
        60.0, gt=0, description="A worker silent this long loses its trial to the queue."
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="How often a worker renews its lease.")
    plain_worker_lease_seconds: float = Field(
        3600.0,
        gt=0,
        description="The lease of a trial on a plain Keras Tuner worker, which sends no heartbeats "
        "(any call it makes renews it): a plain worker silent this long loses its trial to the queue. "
        "Never shorter than leaseSeconds.",
    )
    chief_wait_seconds: float = Field(
        300.0, gt=0, description="How long a worker keeps trying to reach an absent chief."
    )
    max_worker_losses: int = Field(
        3,
        ge=1,
        description="A trial whose worker is lost this many times fails (it may be the cause).",
    )
    linger_seconds: float = Field(
        30.0, ge=0, description="How long a finished chief keeps telling workers to stop."
    )
    restart_on_memory_growth: float = Field(
        0.08,
        ge=0,
        description="A worker whose resident memory has grown by this fraction since its first trial "
        "restarts itself between trials (same worker id; data loaded again); 0 never restarts.",
    )
    chief_gone_seconds: float = Field(
        900.0,
        gt=0,
        description="A worker that finds no chief, and no chief renewing its lease on the output for "
        "this long, takes the search as failed for good and leaves (exit 3).",
    )
    startup_timeout_seconds: float = Field(
        0.0,
        ge=0,
        description="The chief fails the search when no worker has reached it this long after it "
        "started (workers Pending for GPUs); 0: wait without limit.",
    )

    @model_validator(mode="after")
    def _check_heartbeat(self) -> DistributionSpec:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise _field_error(
                "heartbeatSeconds",
                f"must be at most half of leaseSeconds ({self.lease_seconds}); got {self.heartbeat_seconds}",
            )
        return self


class PushgatewaySpec(_Model):
    url: str = Field(min_length=1, description="http(s)://host:port of the Pushgateway.")
    timeout_seconds: float = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        _no_password(value)
        return value


class MetricsSpec(_Model):
    port: int = Field(9090, ge=0, le=65535, description="/metrics port; 0 turns the exporter off.")
    pushgateway: PushgatewaySpec | None = None


# --------------------------------------------------------------------------------------------------
# The document


class Metadata(_Model):
    name: str = Field(
        description="A DNS-1123 label: it names Kubernetes objects.",
        json_schema_extra={"pattern": DNS_LABEL.pattern, "maxLength": 63},
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > 63 or not DNS_LABEL.match(value):
            raise ValueError(
                "must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', "
                f"starting and ending with a letter or digit; got {value!r}"
            )
        return value


class Spec(_Model):
    data: DataSpec
    model: ModelSpec
    hyperparameters: list[HyperParameter] = Field(default_factory=list)
    tuner: TunerSpec = TunerSpec()
    training: TrainingSpec = TrainingSpec()
    output: OutputSpec = OutputSpec()
    distribution: DistributionSpec = DistributionSpec()
    metrics: MetricsSpec = MetricsSpec()

    @model_validator(mode="after")
    def _check_references(self) -> Spec:
        seen: dict[str, int] = {}
        for i, hp in enumerate(self.hyperparameters):
            if hp.name in seen:
                raise _field_error(
                    f"hyperparameters[{i}].name",
                    f"{hp.name!r} is already defined at hyperparameters[{seen[hp.name]}]",
                )
            seen[hp.name] = i
        if isinstance(self.model, MlpModel):
            for path, name in self.model.hp_refs():
                if name not in seen:
                    hint = suggest(name, seen)
                    also = f"; or name an optimizer: {', '.join(OPTIMIZERS)}" if path == "optimizer" else ""
                    raise _field_error(
                        f"model.{path}",
                        f"refers to hyperparameter {name!r}, which is not defined in "
                        f"spec.hyperparameters{hint}{also}",
                    )
                if path == "optimizer":
                    _check_optimizer_hp(self.hyperparameters[seen[name]], seen[name])
        self._check_training_refs(seen)
        self._check_pruning()
        if self.tuner.algorithm == "grid":
            for i, hp in enumerate(self.hyperparameters):
                if isinstance(hp, FloatHP) and hp.step is None:
                    raise _field_error(
                        f"hyperparameters[{i}].step",
                        "is required with algorithm: grid (a continuous float range has no grid)",
                    )
        objective = self.tuner.objective.name
        if isinstance(self.model, MlpModel):
            known = {"loss", *self.model.metrics}
            known |= {f"val_{m}" for m in known}
            if objective not in known:
                raise _field_error(
                    "tuner.objective.name",
                    f"{objective!r} is not a metric this model reports; one of {sorted(known)}",
                )
        return self

    def _check_pruning(self) -> None:
        """Pruning needs epochs after its warm-up: minEpochs below the fewest epochs a trial trains."""
        pruning = self.tuner.pruning
        if pruning is None:
            return
        epochs = self.training.epochs
        if isinstance(epochs, str):
            hp = next(h for h in self.hyperparameters if h.name == epochs)
            fewest = min(_count_values(hp))
            what = f"the fewest epochs hyperparameter {epochs!r} gives ({fewest})"
        else:
            fewest, what = epochs, f"training.epochs ({epochs})"
        if pruning.min_epochs >= fewest:
            raise _field_error(
                "tuner.pruning.minEpochs",
                f"is {pruning.min_epochs}, but trials train {what}: nothing would be left to stop; "
                f"set minEpochs below {fewest}",
            )

    def _check_training_refs(self, seen: dict[str, int]) -> None:
        """training.epochs and batchSize may name an int hyperparameter: a choice or range of counts."""
        training = self.training
        for field, ref in (("epochs", training.epochs), ("batchSize", training.batch_size)):
            if not isinstance(ref, str):
                continue
            if ref not in seen:
                raise _field_error(
                    f"training.{field}",
                    f"Input should be a valid integer or the name of a hyperparameter; {ref!r} is not "
                    f"defined in spec.hyperparameters{suggest(ref, seen)}",
                )
            index = seen[ref]
            kind = _count_kind(self.hyperparameters[index])
            if kind is not None:
                raise _field_error(
                    f"training.{field}",
                    f"names hyperparameter {ref!r} (hyperparameters[{index}]), {kind}; it must be an int "
                    "choice or int range of values of at least 1 (for example type: choice, "
                    "values: [32, 64, 128])",
                )
            if field == "epochs" and self.tuner.algorithm == "hyperband":
                raise _field_error(
                    "training.epochs",
                    "cannot name a hyperparameter with algorithm: hyperband, which sets each trial's "
                    "epochs itself (tuner.hyperband.maxEpochs)",
                )


def _count_values(hp: HyperParameter) -> list[int]:
    """The whole numbers an epochs (or batch size) hyperparameter takes (checked by _count_kind)."""
    match hp:
        case IntHP():
            return [hp.min, hp.max]
        case ChoiceHP():
            return [int(v) for v in hp.values]
        case FixedHP():
            return [int(hp.value)]
        case _:
            return [1]


def _count_kind(hp: HyperParameter) -> str | None:
    """None when `hp` only ever takes whole numbers of at least 1; else what it is, for the message."""
    match hp:
        case IntHP():
            return None if hp.min >= 1 else f"an int range from {hp.min}"
        case ChoiceHP():
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in hp.values)
            if not ints:
                return f"a choice of {sorted({_value_kind(v) for v in hp.values})} values {hp.values}"
            low = min(v for v in hp.values if isinstance(v, int))
            return None if low >= 1 else f"a choice including {low}"
        case FixedHP():
            value = hp.value
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            return None if ok else f"fixed at {value!r}"
        case _:
            return f"a {hp.type} hyperparameter"


def _check_optimizer_hp(hp: HyperParameter, index: int) -> None:
    values = hp.values if isinstance(hp, ChoiceHP) else [hp.value] if isinstance(hp, FixedHP) else None
    if values is None or any(v not in OPTIMIZERS for v in values):
        what = f"values {values}" if values is not None else f"a {hp.type} hyperparameter"
        raise _field_error(
            "model.optimizer",
            f"names hyperparameter {hp.name!r} (hyperparameters[{index}]), {what}; it must be a choice "
            f"(or fixed value) among {', '.join(OPTIMIZERS)}",
        )


class JobSpec(_Model):
    """A `TuningJob`: one Keras Tuner search, wherever it runs."""

    api_version: Literal["hptune/v1"] = Field(alias="apiVersion")
    kind: Literal["TuningJob"]
    metadata: Metadata
    spec: Spec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def output_uri(self) -> str:
        return self.spec.output.uri or f"./hptune-output/{self.metadata.name}"

    def with_output(self, uri: str, source: str = "--output") -> JobSpec:
        """The same job writing to another location (validated like the spec's own output.uri)."""
        doc = self.model_dump(mode="json", by_alias=True)
        doc["spec"]["output"]["uri"] = uri
        from job.spec.loader import validate_spec

        try:
            return validate_spec(doc, source)
        except SpecError as err:
            for issue in err.issues:
                issue.line = issue.column = None
            raise

    def fingerprint(self) -> str:
        """A stable digest of what decides the search's results (not where or how it runs)."""
        import hashlib

        decisive = self.spec.model_dump(
            mode="json", by_alias=True, exclude={"output", "distribution", "metrics"}
        )
        text = json.dumps(decisive, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a job spec document (also the base of the chart's values schema)."""
    schema = JobSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hptune TuningJob"
    return schema
