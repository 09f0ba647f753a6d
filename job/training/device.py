"""Accelerators: the memory a trial process may use, and what the backend says it uses."""

from __future__ import annotations

import dataclasses
import logging

import keras

from job.environment import EXPECT_GPUS_VARIABLE, BadEnvironment
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


def gpus_seen() -> list[str]:
    """The GPUs the backend itself will train on (starts the backend)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    return []


def require_gpus(expected: int | None) -> None:
    """Stop before any trial when this process was given GPUs (HPTUNE_EXPECT_GPUS: the chart's
    gpu.count, `hptune local --gpus`) and the backend sees fewer: a pod without the NVIDIA runtime
    or a CPU-only build would otherwise train on the CPU for hours and report success."""
    if not expected:
        return
    seen = gpus_seen()
    if len(seen) >= expected:
        log.info("training on %s", ", ".join(seen))
        return
    backend = keras.backend.backend()
    raise BadEnvironment(
        f"this process was given {expected} GPU(s) ({EXPECT_GPUS_VARIABLE}={expected}: the chart's "
        f"gpu.count, or `hptune local --gpus`), but the {backend} backend sees "
        f"{', '.join(seen) if seen else 'none'}: is the NVIDIA container runtime in use (runtimeClassName, "
        f"docker run --gpus), and is this a GPU build of {backend}? Set gpu.count: 0 (or --gpus none) "
        "to train on the CPU on purpose."
    )
