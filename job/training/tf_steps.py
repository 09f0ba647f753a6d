"""Trace a new model's train step once, not twice, on the TensorFlow backend.

Keras on TensorFlow, with no distribution strategy, creates a model's optimizer slots and metric
state while tracing its first train step. A `tf.function` that creates variables on its first trace
is traced again, so every new model's train step is traced twice. For a small model that second
trace is a large part of a short trial's fixed cost (0.25 to 0.6 s of about 1.3 s for the study
notes' MLP on one CPU core), paid again by every trial, because every trial builds a new model.

Here that state is built first, from the data's element spec, by the same build Keras runs itself
when a distribution strategy is set (`_symbolic_build`); then the trace creates nothing and happens
once. Training is otherwise Keras' own: the same train function, the same updates and logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

log = logging.getLogger(__name__)


def applies(model: keras.Model) -> bool:
    """Whether the first trace of `model`'s train step can be spared: traced into a graph, with the
    state-building Keras method this relies on."""
    return not model.run_eagerly and hasattr(model, "_symbolic_build")


def build_before_tracing(model: keras.Model) -> None:
    """Make `model`'s train function build its state before its first trace."""
    model.make_train_function(force=True)
    keras_function: Callable[[Any], Any] = model.train_function
    built = False

    def train_function(iterator: Any) -> Any:
        nonlocal built
        if not built and isinstance(iterator, tf.data.Iterator):
            built = True
            spec = keras.tree.map_structure(_absent_as_none, iterator.element_spec)
            try:
                model._symbolic_build(data_batch=spec)
            except Exception as err:  # the trace builds the state then, as it would have anyway
                log.debug("building %s before its first trace failed: %s", model.name, err)
        return keras_function(iterator)

    model.train_function = train_function


def _absent_as_none(part: Any) -> Any:
    # As Keras reads a batch: an absent part (say, no sample weights) is an Optional's spec.
    return None if isinstance(part, tf.OptionalSpec) else part
