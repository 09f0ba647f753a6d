"""A loader that streams: it returns tf.data.Datasets, batched and prefetched here, which hptune
checks (element specs, batch dimensions, a finite length) and passes to fit as they are. Use this
shape when the data does not fit in memory or comes from your own input pipeline.
"""

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits


def load_data(batch_size: int = 32, validation_fraction: float = 0.2):
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32").reshape(-1, 64)
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(x))
    cut = round(len(x) * (1 - validation_fraction))
    train = tf.data.Dataset.from_tensor_slices((x[order[:cut]], y[order[:cut]]))
    validation = tf.data.Dataset.from_tensor_slices((x[order[cut:]], y[order[cut:]]))
    return {
        "train": train.shuffle(cut, seed=0).batch(batch_size).prefetch(tf.data.AUTOTUNE),
        "validation": validation.batch(256).prefetch(tf.data.AUTOTUNE),
    }
