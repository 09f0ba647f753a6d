"""The order a trial sees its training samples in, epoch by epoch, drawn from (seed, epoch) alone.

Keras' own shuffling draws each epoch's order from a random state that has moved on with every
epoch before it, so a trial continued from a checkpoint at epoch k would see other batches than it
would have uninterrupted. With an `EpochOrder`, epoch k's permutation is the same whether the trial
got there in one run or was resumed: the same data order, hence the same weights to float
tolerance (tests/integration/test_resume.py).

`feed` hands `fit` these batches, one epoch per pass over the data, so Keras sees where each epoch
ends (the last call of several steps is cut short there, as for arrays): on TensorFlow a tf.data
pipeline that gathers each batch from the arrays (as Keras does for arrays), whose epoch order is
drawn each time the pipeline is started again (once an epoch, in order); elsewhere a
`keras.utils.PyDataset` that slices the arrays (as Keras' JAX path does) in the order of the epoch a
callback says `fit` is in.
"""

from __future__ import annotations

import hashlib
import itertools
import math
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
    x: Any, y: Any, order: EpochOrder, batch_size: int, first: int, last: int, skip: int = 0
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`fit`'s data arguments for epochs [first, last) in `order` (the arrays as numpy or backend
    tensors, `job/training/device.py`); `callbacks` among them, to be given to fit with the others.
    `skip`: each epoch's first batches left out (the rest of an epoch a trial was stopped in,
    fit as an epoch of its own)."""
    del last  # fit's epochs say where training ends; each pass is one epoch
    if keras.backend.backend() == "tensorflow":
        return (_tf_batches(x, y, order, batch_size, first, skip),), {"shuffle": False, "callbacks": []}
    batches = _SlicedBatches(x, y, order, batch_size, first, skip)
    return (batches,), {"shuffle": False, "callbacks": [_FollowEpochs(batches)]}


class _SlicedBatches(keras.utils.PyDataset):
    """Batches sliced from the arrays in numpy (a JAX array on the host is viewed, not copied), as
    Keras slices arrays for JAX, in the order of the epoch `fit` is in (`_FollowEpochs`)."""

    def __init__(self, x: Any, y: Any, order: EpochOrder, batch_size: int, first: int, skip: int = 0) -> None:
        super().__init__()
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.order, self.batch_size, self.skip = order, batch_size, skip
        self.permutation = order.permutation(first, len(self.x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size) - self.skip

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        index += self.skip
        indices = self.permutation[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[indices], self.y[indices]

    def start(self, epoch: int) -> None:
        self.permutation = self.order.permutation(epoch, len(self.x))


class _FollowEpochs(keras.callbacks.Callback):
    """Tells the batches which epoch begins: fit's own count (Keras may also read a batch before
    the first epoch, to build the model), before the epoch's first batch is read."""

    def __init__(self, batches: _SlicedBatches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches.start(epoch)


def _tf_batches(x: Any, y: Any, order: EpochOrder, batch_size: int, first: int, skip: int = 0) -> Any:
    import tensorflow as tf

    samples = int(x.shape[0])
    full = samples // batch_size
    epochs = itertools.count(first)  # one pass of the pipeline, one epoch, in the order passes start

    def next_order() -> np.ndarray:
        return order.permutation(next(epochs), samples).astype(np.int64)

    def epoch_batches(_: Any) -> Any:
        permutation = tf.numpy_function(next_order, [], tf.int64)
        permutation.set_shape([samples])
        # Full batches as rows of one tensor, then the partial one: the layout Keras uses for arrays.
        rows = tf.reshape(permutation[: full * batch_size], [full, batch_size])
        batches = tf.data.Dataset.from_tensor_slices(rows)
        if samples % batch_size:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(permutation[full * batch_size :]))
        return batches.skip(skip)

    indices = tf.data.Dataset.range(1).flat_map(epoch_batches)
    arrays = tf.data.Dataset.from_tensors((x, y)).repeat()
    gathered = tf.data.Dataset.zip((indices, arrays)).map(
        lambda i, data: (tf.gather(data[0], i), tf.gather(data[1], i)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    batches = math.ceil(samples / batch_size) - skip
    return gathered.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)
