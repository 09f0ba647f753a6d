"""Fused trials in process (job/training/fused.py): a group learns what its trials learn alone, each
member keeps its own epochs, early stopping and stop decision, and what cannot be fused is refused
before any training or said once in the log."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from job.search.fusion import GroupWidth
from job.spec import validate_spec
from job.spec.errors import SpecError
from job.spec.model import MlpModel
from job.training.data import DataError
from job.training.fused import blocker, group_key, train_group
from job.training.space import make_builder
from job.training.trial import check_fit
from tests.support.fused import MEMBERS, fused_against_alone, group_job, in_order, values
from tests.support.specs import BASE_SPEC, merge


def test_a_fused_group_learns_what_each_trial_learns_alone() -> None:
    # AdamW: per-member learning rates in both the update and the weight decay. Every optimizer, and
    # the JAX backend, in tests/integration/test_fused.py.
    optimizer = "adamw"
    for member, found in zip(MEMBERS, fused_against_alone(optimizer), strict=True):
        assert found["moved"] > 2e-5, f"{member}: training moved nothing, so nothing was compared"
        assert found["weights"] <= 1e-6, f"{member} with {optimizer}: weights differ by {found['weights']}"
        assert found["metrics"] <= 1e-6, f"{member} with {optimizer}: metrics differ by {found['metrics']}"


def _group(job, hps, **kwargs):
    data = in_order()
    build = make_builder(job, data.output_units, data.input_shape, None)
    outcomes = train_group(
        hps, build, job.spec.model, data, job.spec.training, job.spec.tuner.objective, **kwargs
    )
    return outcomes, build, data


def test_each_member_trains_its_own_epochs_and_is_reported_as_itself() -> None:
    job = group_job(epochs="ep")
    hps = [values({**MEMBERS[0], "ep": 1}), values({**MEMBERS[1], "ep": 3}), values({**MEMBERS[2], "ep": 2})]
    reported: list[tuple[int, int]] = []
    outcomes, _, _ = _group(job, hps, on_epoch=lambda i, epoch, logs: reported.append((i, epoch)))
    assert [len(o.history[0]) for o in outcomes] == [1, 3, 2]
    assert sorted(reported) == [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    for outcome in outcomes:
        assert set(outcome.metrics) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert outcome.model is not None and outcome.model.count_params() > 0


def test_a_member_told_to_stop_is_fixed_while_the_others_train_on() -> None:
    job = group_job(epochs=3)
    hps = [values(m) for m in MEMBERS]
    outcomes, _, _ = _group(job, hps, should_stop=lambda index: index == 1)
    assert [len(o.history[0]) for o in outcomes] == [3, 1, 3]
    assert all(o.ok for o in outcomes)


def test_early_stopping_stops_each_member() -> None:
    # No epoch improves val_accuracy by 5: Keras stops after patience + 1 epochs (compared with
    # the trials alone in tests/integration/test_fused.py).
    stop = {"monitor": "val_accuracy", "patience": 1, "minDelta": 5.0}
    outcomes, _, _ = _group(group_job(epochs=4, earlyStopping=stop), [values(m) for m in MEMBERS])
    assert [len(o.history[0]) for o in outcomes] == [2, 2, 2]


def test_a_member_that_fails_fails_alone() -> None:
    job = group_job(epochs=2, optimizer="sgd")
    diverging = {**MEMBERS[1], "learning_rate": 1e38}
    hps = [values(MEMBERS[0]), values(diverging), values(MEMBERS[2])]
    outcomes, _, _ = _group(job, hps)
    assert outcomes[1].error is not None and "loss became" in outcomes[1].error
    assert outcomes[0].ok and outcomes[2].ok
    assert [len(outcomes[i].history[0]) for i in (0, 2)] == [2, 2]


def test_members_that_cannot_share_a_program_are_told_apart() -> None:
    job = validate_spec(
        merge(
            BASE_SPEC,
            {
                "spec": {
                    "model": {"optimizer": "opt"},
                    "hyperparameters": [
                        *BASE_SPEC["spec"]["hyperparameters"],
                        {"name": "opt", "type": "choice", "values": ["adam", "sgd"]},
                        {"name": "bs", "type": "choice", "values": [16, 32]},
                    ],
                    "training": {"batchSize": "bs"},
                }
            },
        )
    )
    model = job.spec.model
    assert isinstance(model, MlpModel)
    key = lambda **v: group_key(model, job.spec.training, values(v))  # noqa: E731
    assert key(opt="adam", bs=16) == key(opt="adam", bs=16) == (16, "adam", 1)  # one hidden layer
    assert len({key(opt="adam", bs=16), key(opt="sgd", bs=16), key(opt="adam", bs=32)}) == 3


def test_what_is_not_fused_is_said() -> None:
    builder = {"type": "custom", "builder": "m:build", "hidden": None, "learningRate": None}
    custom = validate_spec(merge(BASE_SPEC, {"spec": {"model": builder}}))
    assert "custom model" in (blocker(custom) or "")
    twice = validate_spec(merge(BASE_SPEC, {"spec": {"tuner": {"executionsPerTrial": 2}}}))
    assert "executionsPerTrial is 2" in (blocker(twice) or "")
    assert blocker(validate_spec(BASE_SPEC)) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"tuner": {"algorithm": "hyperband", "maxTrials": None, "hyperband": {"maxEpochs": 4}}},
            "continues trials from other trials' checkpoints",
        ),
        ({"tuner": {"maxTrials": 3}}, "more than the search's trials (tuner.maxTrials: 3)"),
    ],
)
def test_fusion_that_cannot_work_is_refused_naming_the_field(changes: dict, message: str) -> None:
    spec = merge(BASE_SPEC, {"spec": {**changes, "distribution": {"fuseTrials": 4}}})
    with pytest.raises(SpecError) as err:
        validate_spec(spec)
    assert "spec.distribution.fuseTrials: is 4" in str(err.value) and message in str(err.value)


def test_fusion_of_streamed_data_is_refused_before_training() -> None:
    import tensorflow as tf

    from job.training.data.dataset import Dataset, Streams

    x = np.zeros((8, 4), dtype="float32")
    y = keras.utils.to_categorical(np.arange(8) % 2, 2)
    stream = tf.data.Dataset.from_tensor_slices((x, y))
    data = Dataset(None, None, None, None, 2, "stream", streams=Streams(stream, stream, False, (4,)))
    job = validate_spec(merge(BASE_SPEC, {"spec": {"distribution": {"fuseTrials": 2}}}))
    with pytest.raises(
        DataError, match=r"spec.distribution.fuseTrials is set, but the data is tf.data.Datasets"
    ):
        check_fit(job.spec.training, data, fused=True)


def test_auto_doubles_the_group_while_the_time_per_trial_falls() -> None:
    width = GroupWidth("auto")
    assert width.size == 1
    width.measured(1, seconds=60.0, member_epochs=2)  # the first trial: a warm-up, not counted
    assert width.size == 1
    width.measured(1, seconds=6.0, member_epochs=2)  # 3.0 s a member-epoch
    assert width.size == 2
    width.measured(2, seconds=10.0, member_epochs=4)  # 2.5
    assert width.size == 4
    width.measured(3, seconds=1.0, member_epochs=6)  # a smaller group (the search ran short): no say
    assert width.size == 4
    width.measured(4, seconds=8.0, member_epochs=8)  # 1.0
    width.measured(8, seconds=8.5, member_epochs=16)  # 0.53: still 10 % better
    assert width.size == 16
    width.measured(16, seconds=17.0, member_epochs=32)  # 0.53: no better, back to 8 for good
    assert (width.size, width.settled) == (8, True)
    width.measured(8, seconds=100.0, member_epochs=16)
    assert width.size == 8


def test_auto_stays_at_one_trial_at_a_time_where_fusing_does_not_pay() -> None:
    width = GroupWidth("auto")
    width.measured(1, seconds=60.0, member_epochs=2)
    width.measured(1, seconds=4.6, member_epochs=2)
    width.measured(2, seconds=9.0, member_epochs=4)  # 2.25 a member-epoch against 2.3: not 10 % better
    assert (width.size, width.settled) == (1, True)


def test_a_group_out_of_memory_caps_the_size() -> None:
    width = GroupWidth("auto")
    for seconds in (60.0, 6.0, 4.0):
        width.measured(width.size, seconds=seconds, member_epochs=2 * width.size)
    assert width.size == 4
    width.out_of_memory(4)
    assert (width.size, width.cap) == (2, 2)
    fixed = GroupWidth(8)
    fixed.measured(8, seconds=1.0, member_epochs=16)
    assert fixed.size == 8
    fixed.out_of_memory(8)
    assert fixed.size == 4


def test_auto_is_a_setting_the_spec_takes() -> None:
    job = validate_spec(
        merge(BASE_SPEC, {"spec": {"distribution": {"fuseTrials": "auto"}, "tuner": {"maxTrials": 2}}})
    )
    assert job.spec.distribution.fuse_trials == "auto"
    with pytest.raises(SpecError, match="fuseTrials"):
        validate_spec(merge(BASE_SPEC, {"spec": {"distribution": {"fuseTrials": "many"}}}))
