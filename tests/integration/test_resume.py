"""Preemption-safe trials (job/training/checkpoint.py): a trial interrupted after an epoch and
continued from its checkpoint ends as it would have uninterrupted; a checkpoint that cannot be
used is reported and the trial starts fresh; and with real processes, a worker SIGKILLed mid-trial
leaves a checkpoint the chief hands to the next worker, which continues at the next epoch."""

from __future__ import annotations

import json
import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from job.errors import EXIT_INTERRUPTED
from job.output.attempts import publish_checkpoint
from job.output.layout import trial_key
from job.storage import Store
from job.training.checkpoint import Checkpointer, fingerprint, load_resume
from job.training.data import Dataset
from job.training.data.order import EpochOrder
from job.training.space import make_builder
from job.training.trial import run_trial
from tests.support.commands import child_result
from tests.support.fused import MEMBERS, group_job, in_order, values
from tests.support.processes import Proc, search
from tests.support.stopped import stopped_mid_epoch_against_whole

LONG_TRIALS = {"tuner": {"maxTrials": 3}, "training": {"epochs": 20, "batchSize": 16, "checkpointSeconds": 0}}
# A worker killed for good (no Job to start it again): a spare waits for its trial to come back.
FAST_LEASES = {"heartbeatSeconds": 0.5, "leaseSeconds": 3, "lingerSeconds": 10, "spareWorkers": 1}


def _long_search(write_spec: Callable[..., Path], distribution: dict, **spec: dict) -> Path:
    """Three 20-epoch trials with a checkpoint every epoch."""
    return write_spec({"spec": {**LONG_TRIALS, "distribution": distribution, **spec}})


def _in_its_third_epoch(victim: Proc) -> str:
    """The id of the victim's first trial, once the trial has finished its second epoch."""
    trial_id = victim.wait_for_log(r"tuner0: running trial (\w+) \(", timeout=180).group(1)
    victim.wait_for_log(rf": trial {trial_id} epoch 2 done: ", timeout=120)
    return trial_id


def _records(out: Path) -> dict[str, dict]:
    return {
        r["trialId"]: r for r in (json.loads(p.read_text()) for p in (out / "trials").glob("*/trial.json"))
    }


class Preempted(Exception):
    """The worker's process is gone (what a SIGKILL does to a trial, in process)."""


@pytest.mark.parametrize("signalled", [False, True], ids=["killed", "signalled"])
@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled"])
def test_a_resumed_trial_ends_as_it_would_have_uninterrupted(
    tmp_path: Path, shuffled: bool, signalled: bool
) -> None:
    # Five epochs; early stopping whose count (no epoch improves val_loss by 5) stops it after the
    # fourth, so its state must come back with the weights and the optimizer's. Shuffled: each
    # epoch's order drawn from the trial's EpochOrder, as a worker trains with checkpoints on.
    # Killed: a checkpoint every epoch, the process gone in epoch 3. Signalled: no checkpoint due
    # yet when a stop signal arrives in epoch 3; the worker writes the last finished epoch, kept in
    # memory, before it hands the trial back.
    job = group_job(epochs=5, earlyStopping={"monitor": "val_loss", "patience": 3, "minDelta": 5.0})
    data: Dataset = in_order()
    order = None
    if shuffled:
        data = Dataset(data.x_train, data.y_train, data.x_val, data.y_val, data.num_classes, "shuffled")
        order = EpochOrder.for_trial("0", 42)
    build = make_builder(job, data.output_units, data.input_shape, None)
    start = build(values(MEMBERS[1])).get_weights()

    def same_start(hp):
        model = build(hp)
        model.set_weights(start)
        return model

    hp, training, objective = values(MEMBERS[1]), job.spec.training, job.spec.tuner.objective
    whole = run_trial(hp, same_start, data, training, objective, order=order)
    assert whole.ok and len(whole.history[0]) == 4

    store, scratch = Store(str(tmp_path / "out")), tmp_path / "scratch"
    scratch.mkdir()
    writer = Checkpointer(store, "0", "tuner0", fingerprint(job), 3600.0 if signalled else 0.0, scratch)
    stop: type[BaseException] = KeyboardInterrupt if signalled else Preempted  # SIGTERM arrives as the first

    def stopped_in_epoch_3(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 2:  # the third epoch trained; the weights are past the second epoch's end
            raise stop

    def interrupted() -> None:
        first = run_trial(
            hp,
            same_start,
            data,
            training,
            objective,
            on_epoch=stopped_in_epoch_3,
            checkpointer=writer,
            order=order,
        )
        assert first.error is not None and "Preempted" in first.error

    if signalled:
        with pytest.raises(KeyboardInterrupt):
            interrupted()
        assert not publish_checkpoint(store, "0", "tuner0"), "none due yet"
        assert writer.write_held()
    else:
        interrupted()
    assert publish_checkpoint(store, "0", "tuner0")
    resume = load_resume(store, "0", fingerprint(job), scratch, "tuner1")
    assert resume is not None and resume.state.epoch == 2 and resume.worker == "tuner0"
    # Fresh weights from `build`: the checkpoint's replace them.
    rest = run_trial(hp, build, data, training, objective, resume=resume, order=order)
    assert rest.ok and rest.resumed == {"epochs": 2, "worker": "tuner0"}
    assert len(rest.history[0]) == 4, "early stopping's count came back with the checkpoint"
    for epoch, (a, b) in enumerate(zip(whole.history[0], rest.history[0], strict=True)):
        for name in a:
            assert abs(a[name] - b[name]) <= 1e-5, f"epoch {epoch + 1} {name}: {a[name]} against {b[name]}"
    assert rest.best_step == whole.best_step and rest.metrics == pytest.approx(whole.metrics, abs=1e-5)
    assert rest.model is not None and whole.model is not None
    for a, b in zip(whole.model.get_weights(), rest.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    ("calls", "where"),
    [(1, "epoch 3, step 2"), (3, "epoch 3, step 6"), (4, "after epoch 3")],
    ids=["first-call", "third-call", "last-call"],
)
def test_a_trial_stopped_mid_epoch_ends_as_it_would_have_uninterrupted(
    tmp_path: Path, calls: int, where: str
) -> None:
    # Four training calls an epoch, dropout on. A stop signal after the third epoch's first or
    # third call holds the trial there (its steps, running metrics, random state); after its last
    # call, the epoch is validated and held at its end.
    found = stopped_mid_epoch_against_whole(tmp_path, stop_after_calls=calls)
    assert found["stopped"] and found["where"] == where
    steps = {"steps": int(where.rsplit(" ", 1)[1])} if "step" in where else {}
    epochs = 2 if steps else 3
    assert found["resumed"] == {"epochs": epochs, "worker": "tuner0", **steps}
    assert found["epochs"] == [4, 4]
    assert found["metrics"] <= 1e-5 and found["weights"] <= 1e-5, found


def test_the_plateau_rules_rate_and_count_come_back_with_the_checkpoint(tmp_path: Path) -> None:
    # No epoch improves val_loss by 100: after the first, every epoch halves the rate. Stopped in
    # the third epoch, the resumed trial must go on from the halved rate and the rule's count.
    plateau = {"monitor": "val_loss", "patience": 0, "minDelta": 100.0, "factor": 0.5}
    found = stopped_mid_epoch_against_whole(tmp_path, training={"reduceLrOnPlateau": plateau})
    assert found["where"] == "epoch 3, step 4"
    assert found["rates"][0] == pytest.approx(0.01 * 0.5**3)
    assert found["rates"][1] == pytest.approx(found["rates"][0])
    assert found["metrics"] <= 1e-5 and found["weights"] <= 1e-5, found


def test_a_trial_stopped_mid_epoch_on_jax_ends_as_it_would_have_uninterrupted(tmp_path: Path) -> None:
    # hptune's scanned training calls (spec.training.scanSteps), stopped after the second.
    found = child_result("tests.support.stopped", str(tmp_path))
    assert found["where"] == "epoch 3, step 4" and found["resumed"]["steps"] == 4
    assert found["metrics"] <= 1e-5 and found["weights"] <= 1e-5, found


def test_a_checkpoint_that_cannot_be_used_is_reported_and_the_trial_starts_fresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = group_job(epochs=2)
    store, scratch = Store(str(tmp_path / "out")), tmp_path
    store.write_text(trial_key("0", "resume.json"), '{"fingerprint": "other", "epoch": 1}')
    store.write_text(trial_key("1", "resume.json"), '{"fingerprint": "' + fingerprint(job) + '", "epo')
    with caplog.at_level(logging.WARNING):
        assert load_resume(store, "0", fingerprint(job), scratch, "tuner1") is None
        assert load_resume(store, "1", fingerprint(job), scratch, "tuner1") is None
        assert load_resume(store, "2", fingerprint(job), scratch, "tuner1") is None  # none: silent
    assert "trial 0 has a checkpoint written for another spec" in caplog.text
    assert "trial 1: its checkpoint" in caplog.text and "cannot be read" in caplog.text
    assert "trial 2" not in caplog.text


def test_a_store_that_refuses_checkpoints_is_warned_about_once_and_the_trial_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = group_job(epochs=3)
    data = in_order()
    build = make_builder(job, data.output_units, data.input_shape, None)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the output's directories would be")
    writer = Checkpointer(Store(str(blocked)), "0", "tuner0", fingerprint(job), 0.0, tmp_path)
    with caplog.at_level(logging.WARNING):
        outcome = run_trial(
            values(MEMBERS[0]), build, data, job.spec.training, job.spec.tuner.objective, checkpointer=writer
        )
    assert outcome.ok and len(outcome.history[0]) == 3
    assert caplog.text.count("its checkpoint could not be written") == 1


def test_a_worker_killed_mid_trial_leaves_its_trial_to_continue_on_another(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = _long_search(write_spec, FAST_LEASES, output={"viaChief": True})
    with search(spec, tmp_path) as s:
        chief = s.chief()
        victim, other = s.worker(0), s.worker(1)
        trial_id = _in_its_third_epoch(victim)
        # An epoch is logged as done before its checkpoint is written: once the third is logged,
        # the second's checkpoint is whole.
        victim.wait_for_log(rf": trial {trial_id} epoch 3 done: ", timeout=120)
        victim.kill(signal.SIGKILL)
        other.wait_for_log(
            rf"tuner1: trial {trial_id} continues at epoch \d+ from tuner0's checkpoint", timeout=180
        )
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
        assert other.wait(timeout=60) == 0, other.log[-3000:]
    out = tmp_path / "out"
    records = _records(out)
    assert [r["status"] for r in records.values()] == ["completed"] * 3
    resumed = records[trial_id]["resumed"]
    assert resumed["worker"] == "tuner0" and resumed["epochs"] >= 2
    assert len(records[trial_id]["history"][0]) == 20, "the resumed trial's history is whole"
    assert not list(out.glob("trials/*/resume*")), "a finished trial keeps no checkpoint"
    assert keras.models.load_model(out / "best" / "model.keras") is not None


def test_a_worker_told_to_stop_hands_its_trial_back_at_once(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    # A lease of 10 minutes: had the stopped worker's trial waited for it, the search would not end
    # within the test's deadlines. No checkpoint falls due in an hour: the one the trial continues
    # from is the one the signal wrote.
    # Several training calls an epoch (stepsPerExecution): the signal lands inside an epoch, mostly.
    hourly = {**LONG_TRIALS["training"], "checkpointSeconds": 3600, "stepsPerExecution": 8}
    spec = _long_search(write_spec, {**FAST_LEASES, "leaseSeconds": 600}, training=hourly)
    with search(spec, tmp_path) as s:
        chief = s.chief()
        victim, other = s.worker(0), s.worker(1)
        trial_id = _in_its_third_epoch(victim)
        victim.kill(signal.SIGTERM)
        assert victim.wait(timeout=60) == EXIT_INTERRUPTED, victim.log[-3000:]
        stopping = f"tuner0: stopping (a signal): trial {trial_id}"
        held = re.search(
            rf"{re.escape(stopping)} checkpointed (epoch (\d+), step (\d+)|after epoch \d+)", victim.log
        )
        assert held is not None, victim.log[-3000:]
        assert f"{stopping} handed back to the chief" in victim.log
        chief.wait_for_log(
            rf"trial {trial_id} handed back by tuner0 \(it is stopping\); requeued", timeout=30
        )
        other.wait_for_log(
            rf"tuner1: trial {trial_id} continues at epoch \d+ from tuner0's checkpoint", timeout=240
        )
        assert chief.wait(timeout=300) == 0, chief.log[-3000:]
    records = _records(tmp_path / "out")
    assert sorted(r["status"] for r in records.values()) == ["completed"] * 3
    resumed = records[trial_id]["resumed"]
    assert resumed["worker"] == "tuner0"
    assert resumed["epochs"] >= 2, "the epochs finished before the signal"
    if held.group(2):  # stopped inside an epoch: continued at the step it had reached
        assert (resumed["epochs"] + 1, resumed["steps"]) == (int(held.group(2)), int(held.group(3)))
    assert len(records[trial_id]["history"][0]) == 20


def test_the_chief_restarted_while_a_resumed_trial_runs_loses_nothing(
    write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    spec = _long_search(write_spec, FAST_LEASES)
    with search(spec, tmp_path) as s:
        chief = s.chief()
        victim, other = s.worker(0), s.worker(1)
        trial_id = _in_its_third_epoch(victim)
        victim.kill(signal.SIGKILL)
        other.wait_for_log(rf"tuner1: trial {trial_id} continues at epoch (\d+) ", timeout=180)
        # The resumed trial trains on; the chief dies and a new one resumes from its snapshot.
        other.wait_for_log(rf"tuner1: trial {trial_id} epoch \d+ done: ", timeout=120)
        chief.kill(signal.SIGKILL)
        chief.wait(timeout=30)
        restarted = s.chief()
        assert restarted.wait(timeout=300) == 0, restarted.log[-3000:]
        assert other.wait(timeout=60) == 0, other.log[-3000:]
    records = _records(tmp_path / "out")
    assert sorted(r["status"] for r in records.values()) == ["completed"] * 3
    assert records[trial_id]["resumed"]["worker"] == "tuner0"
    assert len(records[trial_id]["history"][0]) == 20
