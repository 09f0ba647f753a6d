"""Accelerators: the memory a trial process may use, and what the backend says it uses."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import keras

from job.environment import EXPECT_GPUS_VARIABLE, BadEnvironment
from job.errors import BadInput
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


@dataclasses.dataclass(frozen=True)
class Replicas:
    """One trial trained data parallel over several devices of this process (gpusPerTrial): each
    batch split across them, the gradients combined, every device holding the whole model."""

    devices: tuple[str, ...]
    scope: Callable[[], contextlib.AbstractContextManager[object]]  # models are built inside it

    @property
    def count(self) -> int:
        return len(self.devices)

    def trim(self, data: Dataset) -> Dataset:
        """The dataset cut to split evenly across the devices (`split_evenly`)."""
        return split_evenly(data, self.count)

    def batch_problem(self, batch_size: int) -> str | None:
        """Why a trial cannot train with this batch size here (None: it can)."""
        if batch_size % self.count:
            return (
                f"batch size {batch_size} does not split over {self.count} devices "
                f"(spec.distribution.gpusPerTrial): use a multiple of {self.count}"
            )
        return None


def split_evenly(data: Dataset, count: int) -> Dataset:
    """The dataset cut to a multiple of `count` samples (at most count - 1 fewer), so every batch of
    a size that `count` divides, the last one of an epoch included, splits evenly over `count`
    devices."""
    if data.streams is not None:
        raise BadInput(
            "spec.distribution.gpusPerTrial above 1 needs arrays (npz, table, builtin, a loader "
            "returning arrays), not streamed data: each batch must split evenly across the GPUs"
        )

    def cut(array: Any) -> Any:
        return array[: len(array) - len(array) % count]

    names = ("x_train", "y_train", "x_val", "y_val")
    return dataclasses.replace(data, **{name: cut(getattr(data, name)) for name in names})


def data_parallel(count: int, platform: str = "gpu") -> Replicas:
    """Train each trial of this process over `count` devices: Keras' DataParallel distribution on
    JAX (set for the process), a MirroredStrategy on TensorFlow (its scope around each model's
    building). `platform` "cpu" splits over CPU devices (tests: XLA's forced host device count,
    TensorFlow's logical CPUs). Raises BadEnvironment when the process has fewer devices."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        found = [str(d) for d in jax.devices(platform)] if _has_platform(jax, platform) else []
    elif backend == "tensorflow":
        import tensorflow as tf

        found = [d.name for d in tf.config.list_logical_devices(platform.upper())]
    else:
        raise BadEnvironment(
            f"spec.distribution.gpusPerTrial needs the jax or tensorflow backend, not {backend}"
        )
    if len(found) < count:
        raise BadEnvironment(
            f"spec.distribution.gpusPerTrial is {count}, but this trial process sees "
            f"{len(found)} {platform.upper()} device(s) ({', '.join(found) or 'none'})"
        )
    chosen = found[:count]
    if backend == "jax":
        import jax

        devices = [d for d in jax.devices(platform) if str(d) in chosen]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        log.info("each trial trained data parallel over %s", ", ".join(chosen))
        return Replicas(tuple(chosen), contextlib.nullcontext)
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(chosen)
    log.info("each trial trained data parallel over %s (MirroredStrategy)", ", ".join(chosen))
    return Replicas(tuple(chosen), strategy.scope)


def _has_platform(jax: Any, platform: str) -> bool:
    try:
        return bool(jax.devices(platform))
    except RuntimeError:  # no backend for this platform
        return False
