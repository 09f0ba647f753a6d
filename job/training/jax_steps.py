"""Many training steps per device call on the JAX backend.

With `steps_per_execution = n`, Keras on JAX still calls its compiled train step once per batch from
a Python loop: for a small model every step is a host round trip (dispatch, state hand-over), and
the GPU idles between them. Here the n batches of one execution are stacked on the device and run
by one compiled `jax.lax.scan` over Keras' own `train_step`: the same updates in the same order,
one dispatch. Everything else about `fit` (epochs, callbacks, validation, metrics) is Keras' own:
only `model.train_function` is replaced.

On a CPU the host loop costs little next to the arithmetic and the scan's extra compilation does
not pay back within a short trial, so `spec.training.scanSteps: auto` uses it on GPUs and TPUs only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import keras

State = Any
Batch = Any
TrainFunction = Callable[[State, Iterator[Batch]], tuple[dict[str, Any], State]]


def on_accelerator() -> bool:
    return jax.default_backend() != "cpu"


def scanned_train_function(model: keras.Model, steps: int) -> TrainFunction:
    """A `train_function` for `model` that runs up to `steps` batches per compiled call."""
    step = jax.jit(model.train_step, donate_argnums=0)

    def scan_steps(state: State, stacked: Batch) -> tuple[dict[str, Any], State]:
        def body(carry: State, batch: Batch) -> tuple[State, dict[str, Any]]:
            logs, carry = model.train_step(carry, batch)
            return carry, logs

        state, logs = jax.lax.scan(body, state, stacked)
        return jax.tree.map(lambda history: history[-1], logs), state

    scanned = jax.jit(scan_steps, donate_argnums=0)

    def train_function(state: State, iterator: Iterator[Batch]) -> tuple[dict[str, Any], State]:
        logs: dict[str, Any] = {}
        taken = 0
        # Only full stacks are scanned, so the scan compiles once. The shorter rest at the end of an
        # epoch and a batch of another shape (the epoch's last, partial one) go one step at a time.
        for _, group in itertools.groupby(itertools.islice(iterator, steps), key=_shapes):
            batches = list(group)
            taken += len(batches)
            if len(batches) == steps:
                stacked = jax.tree.map(lambda *parts: jax.numpy.stack(parts), *batches)
                logs, state = scanned(state, stacked)
            else:
                for batch in batches:
                    logs, state = step(state, batch)
        if not taken:
            raise StopIteration  # as Keras' own train function does at the end of the data
        return logs, state

    return train_function


def _shapes(batch: Batch) -> tuple[Any, ...]:
    return tuple(getattr(leaf, "shape", None) for leaf in jax.tree.leaves(batch))
