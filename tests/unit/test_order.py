"""Each epoch's data order (job/training/data/order.py): drawn from the trial and the epoch alone,
and fed to fit one epoch per pass, so Keras trains every epoch on exactly its own batches, even
when several steps run per call and the last call of an epoch is cut short."""

from __future__ import annotations

import keras
import numpy as np

from job.training.data.order import EpochOrder, feed


def test_an_epochs_order_depends_on_the_trial_and_the_epoch_only() -> None:
    order = EpochOrder.for_trial("7", 42)
    assert np.array_equal(order.permutation(3, 100), EpochOrder.for_trial("7", 42).permutation(3, 100))
    assert not np.array_equal(order.permutation(3, 100), order.permutation(4, 100)), "a new order each epoch"
    assert not np.array_equal(order.permutation(3, 100), EpochOrder.for_trial("8", 42).permutation(3, 100))
    assert not np.array_equal(order.permutation(3, 100), EpochOrder.for_trial("7", 1).permutation(3, 100))
    assert sorted(order.permutation(3, 100)) == list(range(100))


def _model(steps_per_execution: int) -> keras.Model:
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", steps_per_execution=steps_per_execution)
    return model


def test_fit_trains_each_epoch_on_exactly_its_own_batches() -> None:
    """10 samples in batches of 4 (two full, one partial) and 2 steps per call: the fed run ends
    with the weights of three fits of one epoch each on that epoch's permuted arrays."""
    rng = np.random.default_rng(0)
    x = rng.random((10, 3), dtype=np.float32)
    y = rng.random((10, 2), dtype=np.float32)
    order = EpochOrder(5)

    fed = _model(steps_per_execution=2)
    args, kwargs = feed(x, y, order, 4, 2, 5)  # epochs 3, 4 and 5: a trial resumed after 2
    history = fed.fit(*args, **kwargs, initial_epoch=2, epochs=5, verbose=0)  # callbacks: the feed's
    assert len(history.history["loss"]) == 3 and all(loss > 0 for loss in history.history["loss"])

    by_hand = _model(steps_per_execution=2)
    for epoch in (2, 3, 4):
        permutation = order.permutation(epoch, 10)
        by_hand.fit(x[permutation], y[permutation], batch_size=4, shuffle=False, epochs=1, verbose=0)
    for a, b in zip(fed.get_weights(), by_hand.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_each_pass_over_the_data_is_one_epoch() -> None:
    x = np.zeros((10, 3), dtype=np.float32)
    _, kwargs = feed(x, x, EpochOrder(1), 4, 0, 2)
    assert "steps_per_epoch" not in kwargs and kwargs["shuffle"] is False
