"""Each epoch's data order (job/training/data/order.py): drawn from the trial and the epoch alone,
and fed to fit whole: every sample once an epoch, in that order, the last batch partial."""

from __future__ import annotations

import numpy as np

from job.training.data.order import EpochOrder, feed


def test_an_epochs_order_depends_on_the_trial_and_the_epoch_only() -> None:
    order = EpochOrder.for_trial("7", 42)
    assert np.array_equal(order.permutation(3, 100), EpochOrder.for_trial("7", 42).permutation(3, 100))
    assert not np.array_equal(order.permutation(3, 100), order.permutation(4, 100)), "a new order each epoch"
    assert not np.array_equal(order.permutation(3, 100), EpochOrder.for_trial("8", 42).permutation(3, 100))
    assert not np.array_equal(order.permutation(3, 100), EpochOrder.for_trial("7", 1).permutation(3, 100))
    assert sorted(order.permutation(3, 100)) == list(range(100))


def test_the_feed_gives_every_sample_once_an_epoch_in_the_epochs_order() -> None:
    samples, batch = 10, 4
    x = np.arange(samples, dtype=np.float32).reshape(samples, 1)
    y = x * 10
    order = EpochOrder(5)
    (source,), kwargs = feed(x, y, order, batch, 2, 4)  # epochs 3 and 4 (a trial resumed after 2)
    assert kwargs == {"steps_per_epoch": 3, "shuffle": False}
    batches = [(np.asarray(a), np.asarray(b)) for a, b in source]
    assert [len(a) for a, _ in batches] == [4, 4, 2, 4, 4, 2]
    for epoch, chunk in ((2, batches[:3]), (3, batches[3:])):
        seen = np.concatenate([a[:, 0] for a, _ in chunk]).astype(int)
        assert list(seen) == list(order.permutation(epoch, samples))
    assert all(np.array_equal(b, a * 10) for a, b in batches), "targets stay with their samples"
