"""On TensorFlow, a new model's train step traced once instead of twice, training exactly as Keras'
own train function does."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from job.training import tf_steps

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow backend only")


class Counting(keras.Sequential):
    """Counts how often Keras traces (runs in Python) its train and test steps."""

    traces: dict[str, int]

    def train_step(self, data: Any) -> Any:
        self.traces["train"] = self.traces.get("train", 0) + 1
        return super().train_step(data)

    def test_step(self, data: Any) -> Any:
        self.traces["test"] = self.traces.get("test", 0) + 1
        return super().test_step(data)


def train(replace: bool) -> tuple[Counting, dict[str, list[float]]]:
    keras.backend.clear_session()
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(45, 6)).astype("float32"), rng.integers(0, 3, 45)
    weights = rng.uniform(0.5, 2.0, 45).astype("float32")
    layers = [keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.3), keras.layers.Dense(3)]
    model = Counting([keras.Input((6,)), *layers])
    model.traces = {}
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=5,
    )
    if replace:
        assert tf_steps.applies(model)
        tf_steps.build_before_tracing(model)
    # 45 samples in batches of 4: 12 batches, the last of one sample; executions of 5, 5 and 2.
    history = model.fit(
        x, y, sample_weight=weights, batch_size=4, epochs=3, validation_data=(x[:10], y[:10]), verbose=0
    )
    return model, history.history


def test_training_is_the_same_as_with_keras_own_functions() -> None:
    keras_model, keras_history = train(replace=False)
    model, history = train(replace=True)
    assert history.keys() == keras_history.keys()
    for name, values in keras_history.items():
        np.testing.assert_allclose(history[name], values, rtol=1e-5, err_msg=name)
    for ours, theirs in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert int(model.optimizer.iterations) == int(keras_model.optimizer.iterations) == 3 * 12


def test_the_train_step_is_traced_once_where_keras_alone_traces_it_twice() -> None:
    keras_model, _ = train(replace=False)
    model, _ = train(replace=True)
    assert keras_model.traces["train"] == 2
    assert model.traces == {"train": 1, "test": 1}


def test_an_eager_model_keeps_keras_own_function() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    assert not tf_steps.applies(model)
