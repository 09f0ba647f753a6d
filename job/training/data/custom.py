"""source: custom: the user's own loader, imported as a model builder is (the spec's directory on the
import path) and called once per process with spec.data.args.

It returns ``((x_train, y_train), (x_val, y_val))`` as `keras.datasets` do, or a mapping with
``train`` and ``validation`` entries, each ``(x, y)`` arrays, a `tf.data.Dataset` or a
`keras.utils.PyDataset`. What it returned is checked here (kinds, lengths, shapes, element specs)
and reported, before any training. Arrays are kept as they are and go the resident fast path;
streams are passed to `fit` as they are, batched by the loader.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from job.spec.data import DataSpec
from job.training.data.dataset import DataError, Dataset, Streams
from job.training.imports import import_object, search_path, user_error

log = logging.getLogger(__name__)

FIELD = "spec.data.loader"
EXPECTED = (
    "expected ((x_train, y_train), (x_val, y_val)) arrays, or a mapping with train and validation "
    "entries that are (x, y) arrays, tf.data.Datasets or keras.utils.PyDatasets"
)


def load_custom(spec: DataSpec, spec_dir: Path | None) -> Dataset:
    assert spec.loader is not None
    reference = spec.loader
    load = import_object(reference, spec_dir, FIELD, DataError)
    if not callable(load):
        raise DataError(f"{FIELD}: {reference} is not a function")
    args = dict(spec.args or {})
    try:
        inspect.signature(load).bind(**args)
    except TypeError as err:
        raise DataError(f"spec.data.args: {reference} cannot be called with {sorted(args)}: {err}") from None
    except ValueError:  # no signature to check (a builtin): the call will tell
        pass
    with search_path(spec_dir):
        try:
            returned = load(**args)
        except Exception as err:
            raise DataError(user_error(FIELD, reference, err)) from None
    return check_returned(returned, reference, spec)


def check_returned(returned: object, reference: str, spec: DataSpec) -> Dataset:
    """The loader's result as a `Dataset`, or a DataError saying what is wrong with it."""
    where = f"{FIELD}: {reference} returned"
    if isinstance(returned, Mapping):
        keys = sorted(map(str, returned))
        if set(keys) != {"train", "validation"}:
            raise DataError(f"{where} a mapping with keys {keys}; it needs exactly train and validation")
        train, validation = returned["train"], returned["validation"]
    elif isinstance(returned, tuple | list) and len(returned) == 2:
        train, validation = returned
    else:
        raise DataError(f"{where} {_describe(returned)}; {EXPECTED}")
    kinds = (_kind(train), _kind(validation))
    for name, entry, kind in (("train", train, kinds[0]), ("validation", validation, kinds[1])):
        if kind is None:
            raise DataError(f"{where} {_describe(entry)} as its {name} data; {EXPECTED}")
    if kinds[0] != kinds[1]:
        raise DataError(
            f"{where} {kinds[0]} for train but {kinds[1]} for validation; both must be of one kind"
        )
    description = f"custom ({reference})"
    if kinds[0] == "arrays":
        return _arrays(train, validation, where, description, spec)
    if spec.max_train_samples or spec.max_validation_samples:
        raise DataError(
            f"spec.data.maxTrainSamples and maxValidationSamples apply to arrays; {reference} "
            f"returned {kinds[0]}s: take fewer batches in the loader"
        )
    if kinds[0] == "tf.data.Dataset":
        return _tf_data(train, validation, where, description)
    return _py_dataset(train, validation, where, description, reference)


def _kind(entry: object) -> str | None:
    if isinstance(entry, tuple | list) and len(entry) == 2:
        return "arrays"
    module = type(entry).__module__
    if module.startswith("tensorflow") and hasattr(entry, "element_spec"):
        return "tf.data.Dataset"
    import keras

    if isinstance(entry, keras.utils.PyDataset):
        return "keras.utils.PyDataset"
    return None


def _describe(value: object) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, Mapping):
        return f"a mapping with keys {sorted(map(str, value))}"
    return f"a {type(value).__module__}.{type(value).__qualname__}".replace("builtins.", "")


# -- arrays ---------------------------------------------------------------------------------------


def _arrays(train: Any, validation: Any, where: str, description: str, spec: DataSpec) -> Dataset:
    checked = {}
    for name, (x, y) in (("train", train), ("validation", validation)):
        x, y = _array(x, f"{name} x", where), _array(y, f"{name} y", where)
        if len(x) == 0:
            raise DataError(f"{where} no {name} samples")
        if len(x) != len(y):
            raise DataError(f"{where} {name} x with {len(x)} samples but {name} y with {len(y)}")
        checked[name] = (x, y)
    (x_train, y_train), (x_val, y_val) = checked["train"], checked["validation"]
    for part, a, b in (("x", x_train, x_val), ("y", y_train, y_val)):
        if a.shape[1:] != b.shape[1:]:
            raise DataError(
                f"{where} train {part} samples of shape {a.shape[1:]} but validation {part} samples of "
                f"shape {b.shape[1:]}"
            )
    if spec.max_train_samples:
        x_train, y_train = x_train[: spec.max_train_samples], y_train[: spec.max_train_samples]
    if spec.max_validation_samples:
        x_val, y_val = x_val[: spec.max_validation_samples], y_val[: spec.max_validation_samples]
    num_classes, outputs = _outputs(y_train, y_val)
    log.info(
        "%s: arrays, train x %s %s, y %s %s; validation x %s, y %s; %s",
        description,
        x_train.shape,
        x_train.dtype,
        y_train.shape,
        y_train.dtype,
        x_val.shape,
        y_val.shape,
        f"{num_classes} classes" if num_classes else f"{outputs} target value(s) per sample",
    )
    return Dataset(x_train, y_train, x_val, y_val, num_classes, description, outputs=outputs)


def _array(value: Any, name: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as err:
        raise DataError(f"{where} {name} that is not an array ({type(err).__name__}: {err})") from None
    if array.ndim == 0:
        raise DataError(f"{where} {name} that is not an array (a {type(value).__name__})")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{where} {name} of dtype {array.dtype}; expected numbers")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError(f"{where} {name} holding NaN or infinite values")
    return array


def _outputs(y_train: np.ndarray, y_val: np.ndarray) -> tuple[int, int]:
    """(classes, output units) the targets imply: one-hot rows, integer labels, or values to regress."""
    if y_train.ndim == 2 and y_train.shape[1] > 1:
        return y_train.shape[1], 0  # one-hot (or several targets: the same units either way)
    if np.issubdtype(y_train.dtype, np.integer) and y_train.ndim <= 2:
        return int(max(y_train.max(), y_val.max())) + 1, 0
    return 0, int(np.prod(y_train.shape[1:])) or 1


# -- streams --------------------------------------------------------------------------------------


def _tf_data(train: Any, validation: Any, where: str, description: str) -> Dataset:
    import tensorflow as tf

    shapes = {}
    batches: dict[str, int | None] = {}
    for name, dataset in (("train", train), ("validation", validation)):
        spec = dataset.element_spec
        if not (isinstance(spec, tuple) and len(spec) in (2, 3)):
            raise DataError(
                f"{where} a tf.data.Dataset of {spec} for {name}; expected batches of (x, y) or "
                "(x, y, sample_weight)"
            )
        leaves = tf.nest.flatten(spec)
        if any(leaf.shape.rank == 0 for leaf in leaves):
            raise DataError(
                f"{where} an unbatched tf.data.Dataset for {name} (an element has shape ()); "
                "batch it in the loader: dataset.batch(32)"
            )
        leading = {leaf.shape[0] for leaf in leaves if leaf.shape.rank is not None} - {None}
        if len(leading) > 1:
            raise DataError(
                f"{where} a tf.data.Dataset for {name} whose x and y differ in their first dimension "
                f"({sorted(leading)}): is it batched? batch it in the loader: dataset.batch(32)"
            )
        cardinality = int(dataset.cardinality())
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise DataError(
                f"{where} an endless tf.data.Dataset for {name} (repeat()); an epoch must end: drop "
                "the repeat()"
            )
        if cardinality == 0:
            raise DataError(f"{where} an empty tf.data.Dataset for {name}")
        batches[name] = cardinality if cardinality > 0 else None
        shapes[name] = tf.nest.map_structure(_leaf_text, spec[:2])
    if shapes["train"] != shapes["validation"]:
        raise DataError(
            f"{where} train batches of {_shape_text(shapes['train'])} but validation batches of "
            f"{_shape_text(shapes['validation'])}; they must match"
        )
    x_spec, y_spec = train.element_spec[0], train.element_spec[1]
    known = isinstance(x_spec, tf.TensorSpec) and x_spec.shape.rank is not None
    input_shape = tuple(x_spec.shape[1:]) if known else ()
    num_classes, outputs = 0, 0
    if isinstance(y_spec, tf.TensorSpec) and y_spec.shape.rank is not None:
        num_classes, outputs = _stream_outputs(tuple(y_spec.shape[1:]), y_spec.dtype.is_integer)
    log.info(
        "%s: tf.data.Dataset, %s train batches and %s validation batches of %s",
        description,
        batches["train"] or "an unknown number of",
        batches["validation"] or "an unknown number of",
        _shape_text(shapes["train"]),
    )
    streams = Streams(train, validation, True, input_shape, train_batches=batches["train"])
    return Dataset(None, None, None, None, num_classes, description, streams=streams, outputs=outputs)


def _leaf_text(leaf: Any) -> tuple[Any, str]:
    shape = tuple(leaf.shape[1:]) if leaf.shape.rank is not None else "unknown"
    return shape, leaf.dtype.name


def _py_dataset(train: Any, validation: Any, where: str, description: str, reference: str) -> Dataset:
    shapes = {}
    batches = {}
    first: dict[str, tuple[np.ndarray, ...]] = {}
    for name, dataset in (("train", train), ("validation", validation)):
        try:
            count = len(dataset)
            batch = dataset[0] if count else None
        except Exception as err:
            raise DataError(user_error(FIELD, f"{reference}'s {name} PyDataset", err)) from None
        if not count:
            raise DataError(f"{where} an empty keras.utils.PyDataset for {name} (len 0)")
        if not (isinstance(batch, tuple | list) and len(batch) in (2, 3)):
            raise DataError(
                f"{where} a keras.utils.PyDataset for {name} whose batches are {_describe(batch)}; "
                "expected (x, y) or (x, y, sample_weight)"
            )
        arrays = tuple(np.asarray(part) for part in batch[:2])
        if any(a.ndim == 0 for a in arrays) or arrays[0].shape[0] != arrays[1].shape[0]:
            raise DataError(
                f"{where} a keras.utils.PyDataset for {name} whose first batch has x of shape "
                f"{arrays[0].shape} and y of shape {arrays[1].shape}; they must have as many samples"
            )
        batches[name] = count
        first[name] = arrays
        shapes[name] = tuple((a.shape[1:], a.dtype.name) for a in arrays)
    if shapes["train"] != shapes["validation"]:
        raise DataError(
            f"{where} train batches of {_shape_text(shapes['train'])} but validation batches of "
            f"{_shape_text(shapes['validation'])}; they must match"
        )
    x, y = first["train"]
    num_classes, outputs = _stream_outputs(y.shape[1:], np.issubdtype(y.dtype, np.integer))
    log.info(
        "%s: keras.utils.PyDataset, %d train batches and %d validation batches of %s",
        description,
        batches["train"],
        batches["validation"],
        _shape_text(shapes["train"]),
    )
    streams = Streams(
        train, validation, True, tuple(x.shape[1:]), "keras.utils.PyDataset", train_batches=batches["train"]
    )
    return Dataset(None, None, None, None, num_classes, description, streams=streams, outputs=outputs)


def _stream_outputs(y_shape: tuple[int | None, ...], integer: bool) -> tuple[int, int]:
    """(classes, output units) from the targets' per-sample shape. Integer labels in a stream do not
    say how many classes there are: 0, and the built-in MLP then needs spec.model.output.units."""
    if len(y_shape) == 1 and (y_shape[0] or 0) > 1:
        return int(y_shape[0] or 0), 0
    if integer:
        return 0, 0
    return 0, 1


def _shape_text(shapes: Any) -> str:
    """'x (64,) float32 and y () int32' from ((shape, dtype), (shape, dtype)); nested inputs as they are."""

    def text(part: Any) -> str:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], str):
            return f"{part[0]} {part[1]}"
        return str(part)

    return f"x {text(shapes[0])} and y {text(shapes[1])}"
