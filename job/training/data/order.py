"""The order a trial sees its training samples in, epoch by epoch, drawn from (seed, epoch) alone.

Keras' own shuffling draws each epoch's order from a random state that has moved on with every
epoch before it, so a trial continued from a checkpoint at epoch k would see other batches than it
would have uninterrupted. With an `EpochOrder`, epoch k's permutation is the same whether the trial
got there in one run or was resumed: the same data order, hence the same weights to float
tolerance (tests/integration/test_resume.py).

`feed` hands `fit` these batches for epochs [first, last): on TensorFlow a tf.data pipeline that
gathers each batch from the arrays (as Keras does for arrays), elsewhere a generator that slices
them (as Keras' JAX path does), with `steps_per_epoch` so one iterator runs across the epochs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np


@dataclass(frozen=True)
class EpochOrder:
    """Each epoch's permutation of the training samples, a function of the seed and the epoch."""

    seed: int

    @classmethod
    def for_trial(cls, trial_id: str, search_seed: int | None) -> EpochOrder:
        """A trial's order: its own (trials do not share one), the same on every worker that runs
        it, and set by the search's seed (spec.tuner.seed) when there is one."""
        digest = hashlib.sha256(f"{search_seed}/{trial_id}".encode()).digest()
        return cls(int.from_bytes(digest[:8], "little"))

    def permutation(self, epoch: int, samples: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(samples)


def feed(
    x: Any, y: Any, order: EpochOrder, batch_size: int, first: int, last: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`fit`'s data arguments for epochs [first, last) in `order` (the arrays as numpy or backend
    tensors, `job/training/device.py`)."""
    samples = int(x.shape[0])
    steps = math.ceil(samples / batch_size)
    if keras.backend.backend() == "tensorflow":
        source: Any = _tf_batches(x, y, order, batch_size, first, last)
    else:
        source = _sliced_batches(x, y, order, batch_size, first, last)
    return (source,), {"steps_per_epoch": steps, "shuffle": False}


def _sliced_batches(
    x: Any, y: Any, order: EpochOrder, batch_size: int, first: int, last: int
) -> Iterator[tuple[Any, Any]]:
    # Sliced in numpy (a JAX array on the host is viewed, not copied), as Keras slices arrays for JAX.
    x, y = np.asarray(x), np.asarray(y)
    samples = int(x.shape[0])
    for epoch in range(first, last):
        permutation = order.permutation(epoch, samples)
        for start in range(0, samples, batch_size):
            indices = permutation[start : start + batch_size]
            yield x[indices], y[indices]


def _tf_batches(x: Any, y: Any, order: EpochOrder, batch_size: int, first: int, last: int) -> Any:
    import tensorflow as tf

    samples = int(x.shape[0])
    full = samples // batch_size

    def epoch_batches(epoch: Any) -> Any:
        permutation = tf.numpy_function(
            lambda e: order.permutation(int(e), samples).astype(np.int64), [epoch], tf.int64
        )
        permutation.set_shape([samples])
        # Full batches as rows of one tensor, then the partial one: the layout Keras uses for arrays.
        rows = tf.reshape(permutation[: full * batch_size], [full, batch_size])
        batches = tf.data.Dataset.from_tensor_slices(rows)
        if samples % batch_size:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(permutation[full * batch_size :]))
        return batches

    indices = tf.data.Dataset.range(first, last).flat_map(epoch_batches)
    arrays = tf.data.Dataset.from_tensors((x, y)).repeat()
    gathered = tf.data.Dataset.zip((indices, arrays)).map(
        lambda i, data: (tf.gather(data[0], i), tf.gather(data[1], i)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return gathered.prefetch(tf.data.AUTOTUNE)
