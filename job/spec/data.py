"""spec.data: the dataset (built-in, npz, custom loader, image folders, tables), its validation
split and preprocessing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from job.spec.base import BUILDER_REF, SpecModel, field_error, no_password


class Validation(SpecModel):
    source: Literal["split", "test"] = Field(
        "split", description="split: hold out a fraction of the training set; test: the test set."
    )
    fraction: float = Field(0.2, gt=0, lt=1, description="Held-out fraction with source: split.")


class Preprocessing(SpecModel):
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


class DataSpec(SpecModel):
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
            no_password(value)
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
                raise field_error(to_camel(name), f"applies only to source: {' or '.join(sources)}")
        if source in ("npz", "images", "table") and not self.path:
            kind = "folder" if source == "images" else "file"
            raise field_error("path", f"is required with source: {source} (a {kind} URI)")
        if self.source == "digits" and self.path:
            raise field_error("path", "is not used with source: digits (bundled with scikit-learn)")
        if source == "custom":
            if not self.loader:
                raise field_error("loader", 'is required with source: custom ("package.module:load_data")')
            if self.path:
                raise field_error("path", "is not used with source: custom; pass it to the loader in args")
            for name, default in (("validation", Validation()), ("preprocessing", Preprocessing())):
                if getattr(self, name) != default:
                    raise field_error(
                        name,
                        "is not used with source: custom: the loader returns training and validation "
                        "data ready to train on",
                    )
        if source in ("images", "table") and self.validation.source == "test":
            raise field_error(
                "validation.source",
                f"test is not available with source: {source} (no test set); use split",
            )
        if source == "table":
            self._check_columns()
        return self

    def _check_columns(self) -> None:
        if not self.label:
            raise field_error("label", "is required with source: table (the column to predict)")
        for name in ("features", "categorical"):
            columns = getattr(self, name) or []
            if self.label in columns:
                raise field_error(name, f"lists the label column {self.label!r}")
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            if repeated:
                raise field_error(name, f"lists {repeated} more than once")
        if self.features is not None:
            outside = [c for c in self.categorical or [] if c not in self.features]
            if outside:
                raise field_error("categorical", f"{outside} are not among spec.data.features")
