"""source: table: a CSV or Parquet file at any fsspec URI (fetched once per worker, `fetch.py`), read
with pyarrow into arrays: the `label` column to predict (classes or, with task: regression, numbers)
from the feature columns (every numeric column but the label, or the spec's list), `categorical`
columns one-hot encoded. Features are standardized with the training split's statistics
(preprocessing.scale), labels one-hot encoded for classification (preprocessing.oneHot).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from job.spec.data import DEFAULT_MAX_FETCH_BYTES, DataSpec
from job.spec.errors import suggest
from job.training.data import fetch
from job.training.data.dataset import DataError, Dataset, human_bytes, split, targets

log = logging.getLogger(__name__)

SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet"}


def load_table(spec: DataSpec) -> Dataset:
    assert spec.path is not None and spec.label is not None
    uri = spec.path
    where = f"spec.data.path={uri}"
    file_format = spec.format or _format_of(uri)
    path, size = fetch.local_copy(uri, spec.max_fetch_bytes or DEFAULT_MAX_FETCH_BYTES)
    table = _read(path, file_format, where)
    if table.num_rows == 0:
        raise DataError(f"{where}: has no rows")
    columns = list(table.column_names)
    label = spec.label
    if label not in columns:
        raise DataError(
            f"spec.data.label: no column {label!r} in {uri}{suggest(label, columns)}; its columns: {columns}"
        )
    categorical = list(spec.categorical or [])
    missing = [c for c in [*(spec.features or []), *categorical] if c not in columns]
    if missing:
        field = "features" if any(c in (spec.features or []) for c in missing) else "categorical"
        raise DataError(f"spec.data.{field}: no column(s) {missing} in {uri}; its columns: {columns}")
    if spec.features is not None:
        chosen = list(spec.features)
    else:
        chosen = [c for c in columns if c != label and (_numeric(table, c) or c in categorical)]
        ignored = [c for c in columns if c != label and c not in chosen]
        if ignored:
            log.info(
                "table %s: columns %s are not numeric and not used; list them under "
                "spec.data.categorical to one-hot encode them",
                uri,
                ignored,
            )
    numeric = [c for c in chosen if c not in categorical]
    for column in numeric:
        if not _numeric(table, column):
            raise DataError(
                f"spec.data.features: column {column!r} of {uri} holds {table.schema.field(column).type} "
                "values, not numbers; list it under spec.data.categorical to one-hot encode it, or leave "
                "it out of spec.data.features"
            )
    if not chosen:
        raise DataError(
            f"{where}: has no numeric feature columns besides the label {label!r}; its columns: {columns}"
        )
    for column in [*chosen, label]:
        _complete(table, column, uri)

    parts = [_column(table, c).astype(np.float32).reshape(-1, 1) for c in numeric]
    names = list(numeric)
    for column in categorical if spec.features is None else [c for c in chosen if c in categorical]:
        values = _column(table, column).astype(str)
        levels = np.unique(values)
        parts.append((values[:, None] == levels[None, :]).astype(np.float32))
        names.extend(f"{column}={level}" for level in levels)
    x = np.concatenate(parts, axis=1) if parts else np.zeros((table.num_rows, 0), np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: the feature columns hold infinite values")

    regression = spec.task == "regression"
    raw_y = _column(table, label)
    classes: list[Any] = []
    if regression:
        if not _numeric(table, label):
            raise DataError(
                f"spec.data.label: column {label!r} of {uri} holds {table.schema.field(label).type} values; "
                "task: regression predicts numbers"
            )
        y = raw_y.astype(np.float32).reshape(-1, 1)
        if not np.isfinite(y).all():
            raise DataError(f"spec.data.label: column {label!r} of {uri} holds infinite values")
    else:
        y, classes = _classes(raw_y, label, uri)

    x_train, y_train, x_val, y_val = split(x, y, spec.validation.fraction, where)
    if spec.max_train_samples:
        x_train, y_train = x_train[: spec.max_train_samples], y_train[: spec.max_train_samples]
    if spec.max_validation_samples:
        x_val, y_val = x_val[: spec.max_validation_samples], y_val[: spec.max_validation_samples]
    pre = spec.preprocessing
    if pre.scale and numeric:
        count = len(numeric)  # the numeric columns come first; one-hot columns stay 0/1
        mean = x_train[:, :count].mean(axis=0)
        std = x_train[:, :count].std(axis=0)
        std[std == 0] = 1.0
        x_train[:, :count] = (x_train[:, :count] - mean) / std
        x_val[:, :count] = (x_val[:, :count] - mean) / std
    if not regression:
        y_train, y_val = targets(y_train, pre, len(classes)), targets(y_val, pre, len(classes))
    log.info(
        "table %s: %s, %d rows (%d for training, %d for validation), %d features from %d columns; %s",
        uri,
        human_bytes(size),
        table.num_rows,
        len(x_train),
        len(x_val),
        x.shape[1],
        len(chosen),
        f"predicting {label!r} (regression)"
        if regression
        else f"classifying {label!r} into {len(classes)} classes {classes[:10]}",
    )
    return Dataset(
        np.ascontiguousarray(x_train),
        y_train,
        np.ascontiguousarray(x_val),
        y_val,
        0 if regression else len(classes),
        f"table ({uri})",
        outputs=1 if regression else 0,
    )


def _format_of(uri: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise DataError(
        f"spec.data.path={uri}: cannot tell CSV from Parquet by its name; set spec.data.format "
        "to csv or parquet"
    )


def _read(path: Path, file_format: str, where: str) -> Any:
    try:
        if file_format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    except ImportError as err:
        raise DataError(
            f"source: table reads CSV and Parquet with pyarrow, which is not installed: {err}"
        ) from None
    except Exception as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"{where}: not a readable {file_format} file: {type(err).__name__}: {text}") from None


def _numeric(table: Any, column: str) -> bool:
    import pyarrow as pa

    kind = table.schema.field(column).type
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind))


def _column(table: Any, column: str) -> np.ndarray:
    return np.asarray(table.column(column).to_numpy(zero_copy_only=False))


def _complete(table: Any, column: str, uri: str) -> None:
    """Refuse missing values (and NaN) in a column the search uses."""
    data = table.column(column)
    gaps = data.null_count
    if not gaps and _numeric(table, column):
        values = _column(table, column)
        gaps = int(np.isnan(values.astype(np.float64)).sum())
    if gaps:
        raise DataError(
            f"{uri}: column {column!r} has {gaps} missing value(s); fill them or drop those rows "
            "before the search"
        )


def _classes(values: np.ndarray, label: str, uri: str) -> tuple[np.ndarray, list[Any]]:
    """Class indices 0..k-1 for the label's values (sorted), and the values."""
    if np.issubdtype(values.dtype, np.floating) and not np.all(np.mod(values, 1) == 0):
        example = next(v for v in values if v % 1)
        raise DataError(
            f"spec.data.label: column {label!r} of {uri} holds numbers that are not whole ({example}); "
            "as classes they must be; to predict numbers set spec.data.task: regression"
        )
    if np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.int64)
    if values.dtype == object:
        values = values.astype(str)
    found, indices = np.unique(values, return_inverse=True)
    classes = [c.item() if hasattr(c, "item") else c for c in found]
    if len(classes) < 2:
        raise DataError(
            f"spec.data.label: column {label!r} of {uri} has a single class ({classes[0]!r}); "
            "classification needs at least two"
        )
    return indices.reshape(-1), classes
