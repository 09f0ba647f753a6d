"""Accelerators: the memory a trial process may use, and what the backend says it uses."""

from __future__ import annotations

import dataclasses
import logging

import keras

from job.training.data import Dataset

log = logging.getLogger(__name__)


def resident(data: Dataset) -> Dataset:
    """The dataset's arrays as backend tensors, converted once per process and reused by every
    trial (Keras would otherwise convert the arrays again on every `fit` and `evaluate`). Drop the
    numpy dataset afterwards: this is a copy.

    TensorFlow keeps them in host memory, where its input pipeline reads; JAX puts them on the
    default device (the GPU), so batches are sliced there. Other backends get the arrays as they are,
    and streamed data (tf.data, PyDataset) is passed to `fit` as it is.
    """
    if data.streams is not None:
        return data
    arrays = {name: getattr(data, name) for name in ("x_train", "y_train", "x_val", "y_val")}
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.device("CPU:0"):  # tf.identity copies once; convert_to_tensor keeps two copies
            converted = {name: tf.identity(array) for name, array in arrays.items()}
    elif backend == "jax":
        import jax

        converted = {name: jax.device_put(array) for name, array in arrays.items()}
    else:
        return data
    return dataclasses.replace(data, **converted)


def memory_in_use() -> dict[str, int]:
    """Bytes of accelerator memory in use per device; empty on CPU or when the backend can't tell."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return {
                f"{d.platform}:{d.id}": int(stats.get("bytes_in_use", 0))
                for d in jax.local_devices()
                if d.platform != "cpu" and (stats := d.memory_stats())
            }
        if backend == "tensorflow":
            import tensorflow as tf

            return {
                f"gpu:{i}": int(tf.config.experimental.get_memory_info(f"GPU:{i}")["current"])
                for i, _ in enumerate(tf.config.list_physical_devices("GPU"))
            }
    except Exception as err:  # a backend without memory statistics is not an error
        log.debug("no device memory statistics: %s", err)
    return {}
