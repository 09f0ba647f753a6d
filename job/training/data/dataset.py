"""What trials train on: a `Dataset` of arrays (held once per process, the resident fast path) or of
streams (tf.data.Datasets, keras.utils.PyDatasets) passed to `fit`; and the preprocessing the
built-in sources share (a seeded validation split, scaling, flattening, one-hot labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from job.errors import BadInput
from job.spec.data import Preprocessing
from job.training.data.order import EpochOrder, feed


class DataError(BadInput):
    """The dataset cannot be loaded or is malformed. The message says what to do."""


# A numpy array as loaded; a backend tensor once made resident for training (`job/training/device.py`).
Array = Any


@dataclass(frozen=True)
class Streams:
    """Training and validation data that is not held as arrays.

    `batched`: the loader's own tf.data.Datasets or PyDatasets, which come batched and are passed to
    `fit` as they are. Not batched: hptune's own tf.data of (sample, target) pairs (an image folder
    too big to hold decoded), batched for each trial with the trial's batch size.
    """

    train: Any
    validation: Any
    batched: bool
    input_shape: tuple[int, ...]
    kind: str = "tf.data.Dataset"
    train_samples: int | None = None  # per epoch, when known
    train_batches: int | None = None  # per epoch, when known (batched streams)


@dataclass(frozen=True)
class Dataset:
    x_train: Array
    y_train: Array
    x_val: Array
    y_val: Array
    num_classes: int  # 0 when the targets are not classes (regression) or their number is unknown
    description: str
    streams: Streams | None = None  # instead of the arrays, which are then None
    outputs: int = 0  # the model's output units when not one per class (regression: the target's width)

    @property
    def streamed(self) -> bool:
        return self.streams is not None

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.streams is not None:
            return self.streams.input_shape
        return tuple(self.x_train.shape[1:])

    @property
    def output_units(self) -> int:
        """Units of the built-in MLP's output layer when the spec leaves them unset (0: unknown)."""
        return self.outputs or self.num_classes

    @property
    def train_samples(self) -> int:
        """Training samples per epoch (0 when a stream does not say)."""
        if self.streams is not None:
            return self.streams.train_samples or 0
        return len(self.x_train)

    def steps_per_epoch(self, batch_size: int) -> int | None:
        """Training steps per epoch at this batch size; None when a stream does not say."""
        if self.streams is not None and self.streams.batched:
            return self.streams.train_batches
        samples = self.train_samples
        return max(1, samples // batch_size) if samples else None

    def fit_arguments(
        self,
        batch_size: int,
        validation_batch_size: int,
        order: EpochOrder | None = None,
        epochs: tuple[int, int] = (0, 0),
        skip: int = 0,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The positional and keyword arguments of `model.fit` that carry the data. With an `order`,
        arrays are fed in that order for `epochs` [first, last), each entered at batch `skip` (the
        rest of an epoch a trial was stopped in; job/training/data/order.py); a stream keeps its
        own."""
        streams = self.streams
        if streams is None:
            validation = {
                "validation_data": (self.x_val, self.y_val),
                "validation_batch_size": validation_batch_size,
            }
            if order is not None:
                args, kwargs = feed(self.x_train, self.y_train, order, batch_size, *epochs, skip)
                return args, {**kwargs, **validation}
            return (self.x_train, self.y_train), {**validation, "batch_size": batch_size}
        # A stream is shuffled (or not) by whoever made it: fit's shuffle does not apply.
        if streams.batched:
            return (streams.train,), {"validation_data": streams.validation, "shuffle": False}
        import tensorflow as tf

        train = streams.train.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        validation = streams.validation.batch(validation_batch_size).prefetch(tf.data.AUTOTUNE)
        return (train,), {"validation_data": validation, "shuffle": False}


# -- shared by the built-in sources -----------------------------------------------------------------


def split(x: np.ndarray, y: np.ndarray, fraction: float, origin: str) -> tuple[np.ndarray, ...]:
    """Hold out `fraction` of the samples for validation, the same ones every time (seed 0)."""
    order = np.random.default_rng(0).permutation(len(x))
    cut = round(len(x) * (1 - fraction))
    if cut < 1 or cut >= len(x):
        raise DataError(
            f"{origin}: a validation fraction of {fraction} leaves no training or validation samples "
            f"out of {len(x)}"
        )
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def features(x: np.ndarray, pre: Preprocessing, pixel_max: float) -> np.ndarray:
    """Samples as contiguous float32, scaled by `pixel_max` and flattened as the spec says."""
    x = x.astype(np.float32)
    if pre.scale:
        x /= np.float32(pixel_max)
    if pre.flatten:
        x = x.reshape(len(x), -1)
    return np.ascontiguousarray(x)


def targets(y: np.ndarray, pre: Preprocessing, num_classes: int) -> np.ndarray:
    """Class labels, one-hot (float32) or as int32 indices."""
    y = y.reshape(-1).astype(np.int64)
    if pre.one_hot:
        return np.eye(num_classes, dtype=np.float32)[y]
    return y.astype(np.int32)


def human_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
