"""The coordinator (job/search/coordinator.py) on a real Keras Tuner oracle, driven by a fake clock:
leases, ownership, lost workers, failures, the end of the search and snapshots, in process.

Workers are played the way the chief sees them over gRPC: each holds its own copy of its trial
(`received`) and reports through the coordinator's methods, as job/search/worker.py `_record` does.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from job.errors import SearchFailed
from job.kt_adapter import Status, Trial
from job.observability.metrics import SearchMetrics
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.spec import validate_spec
from job.spec.models import JobSpec
from job.training.memory import out_of_memory
from job.training.space import declared_space
from tests.support.coordination import FakeClock, ask, received
from tests.support.specs import BASE_SPEC, merge

LEASE = 60.0
PLAIN_LEASE = 600.0  # spec.distribution.plainWorkerLeaseSeconds
OBJECTIVE = "val_accuracy"  # BASE_SPEC keeps the default objective: val_accuracy, max
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "model.py", line 12, in build_model\n'
    '    raise ValueError("hidden1 must be positive")\n'
    "ValueError: hidden1 must be positive\n"
)


@dataclass
class RecordedEvents:
    """The coordinator's events (job/search/coordinator.py SearchEvents), as a list."""

    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def attempt_counted(self, trial_id: str, tuner_id: str) -> None:
        self.seen.append(("counted", trial_id, tuner_id))

    def plain_trial_recorded(self, trial: Trial, tuner_id: str, seconds: float | None) -> None:
        self.seen.append(("plain", trial.trial_id, tuner_id, trial.status, trial.message))

    def trial_ended(self) -> None:
        self.seen.append(("ended",))

    def trial_requeued(self, trial_id: str, tuner_id: str) -> None:
        self.seen.append(("requeued", trial_id, tuner_id))

    def plain(self) -> list[tuple[Any, ...]]:
        return [event[1:] for event in self.seen if event[0] == "plain"]


@dataclass
class Search:
    job: JobSpec
    clock: FakeClock
    registry: CollectorRegistry
    coordinator: Coordinator
    events: RecordedEvents

    def count(self, status: str) -> float:
        """hptune_trials_total{status=...}: trials ended with that outcome."""
        return self.registry.get_sample_value("hptune_trials_total", {"status": status}) or 0.0

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def build(job: JobSpec, clock: FakeClock, max_worker_losses: int) -> Search:
    """A coordinator on a fresh oracle built from the spec, with its own metrics registry."""
    registry = CollectorRegistry()
    tuner = job.spec.tuner
    metrics = SearchMetrics(
        registry, job.name, tuner.algorithm, OBJECTIVE, tuner.objective.direction, tuner.max_trials, "test"
    )
    coordinator = Coordinator(
        make_oracle(job, declared_space(job)),
        lease_seconds=LEASE,
        max_worker_losses=max_worker_losses,
        metrics=metrics,
        clock=clock,
        plain_lease_seconds=PLAIN_LEASE,
        events=(events := RecordedEvents()),
        spare_workers=job.spec.distribution.spare_workers,
    )
    return Search(job, clock, registry, coordinator, events)


def start(tmp_path: Path, max_worker_losses: int = 3, spare_workers: int = 0, **tuner: Any) -> Search:
    """A fresh search on BASE_SPEC (random, maxTrials 3) with spec.tuner changed by `tuner`."""
    doc = merge(
        BASE_SPEC,
        {
            "spec": {
                "output": {"uri": str(tmp_path / "out")},
                "tuner": tuner,
                "distribution": {"spareWorkers": spare_workers},
            }
        },
    )
    return build(validate_spec(doc), FakeClock(), max_worker_losses)


def resume(search: Search, clock: FakeClock) -> Search:
    """A restarted chief: a new oracle from the same spec, restored from the old one's snapshot."""
    text = search.coordinator.snapshot_text()
    resumed = build(search.job, clock, search.coordinator.max_worker_losses)
    resumed.coordinator.restore(json.loads(text))
    return resumed


def complete(coordinator: Coordinator, tuner_id: str, trial: Trial, value: float = 0.9) -> bool:
    """Report a successful trial the way a worker does: update, then end with the metrics."""
    coordinator.update_trial(tuner_id, trial.trial_id, {OBJECTIVE: value}, step=1)
    trial.metrics.update(OBJECTIVE, value, step=1)
    trial.status = Status.COMPLETED
    return coordinator.end_trial(tuner_id, trial)


def fail(
    coordinator: Coordinator, tuner_id: str, trial: Trial, error: str, status: str = Status.INVALID
) -> bool:
    trial.status = status
    trial.message = error
    return coordinator.end_trial(tuner_id, trial)


def completed_ids(coordinator: Coordinator) -> set[str]:
    return {t.trial_id for t in coordinator.trials() if t.status == Status.COMPLETED}


# -- leases --------------------------------------------------------------------------------------


def test_a_silent_worker_loses_its_trial_to_the_next_worker(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    assert trial.status == Status.RUNNING

    search.clock.advance(LEASE)
    assert coordinator.expire_leases() == []  # silent for exactly the lease: still its own
    search.clock.advance(1)
    assert coordinator.expire_leases() == [trial.trial_id]

    assert search.count("requeued") == 1
    assert search.gauge("hptune_worker_up", worker="w1") == 0
    assert search.gauge("hptune_trials_running") == 0
    again = ask(coordinator, "w2")
    assert again.trial_id == trial.trial_id
    assert again.status == Status.RUNNING
    assert again.hyperparameters.values == trial.hyperparameters.values
    assert search.gauge("hptune_trials_running") == 1
    assert coordinator.heartbeat("w1", trial.trial_id, 1, {}) is False  # tells w1 to stop
    assert coordinator.heartbeat("w2", trial.trial_id, 1, {}) is True


def test_heartbeats_within_the_lease_keep_the_trial(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")

    for epoch in (1, 2, 3):  # three times 0.9 lease: far longer than one lease in all
        search.clock.advance(0.9 * LEASE)
        assert coordinator.heartbeat("w1", trial.trial_id, epoch, {"val_accuracy": 0.5 + epoch / 10})
        assert coordinator.expire_leases() == []

    assert search.gauge("hptune_trial_epoch", worker="w1") == 3
    assert search.gauge("hptune_epoch_metric", worker="w1", metric="val_accuracy") == pytest.approx(0.8)
    other = ask(coordinator, "w2")
    assert other.trial_id != trial.trial_id
    assert complete(coordinator, "w1", trial)
    assert completed_ids(coordinator) == {trial.trial_id}
    assert search.count("requeued") == 0


def test_a_worker_that_is_stopping_hands_its_trial_back_at_once_not_counted_as_lost(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    assert coordinator.give_back("w2", trial.trial_id) is False, "not w2's trial"
    assert coordinator.give_back("w1", trial.trial_id) is True
    assert coordinator.heartbeat("w1", trial.trial_id, 1, {}) is False, "no longer w1's"
    assert ask(coordinator, "w2").trial_id == trial.trial_id, "at once: no lease to wait out"
    assert coordinator.losses.get(trial.trial_id, 0) == 0
    assert coordinator.give_back("w1", trial.trial_id) is False
    coordinator.hand_over_checkpoint("w3", trial.trial_id)  # not w3's trial: nothing handed over
    assert ("requeued", trial.trial_id, "w1") not in search.events.seen
    coordinator.hand_over_checkpoint("w2", trial.trial_id)
    assert search.events.seen[-1] == ("requeued", trial.trial_id, "w1"), "w1's checkpoint, to w2"
    coordinator.hand_over_checkpoint("w2", trial.trial_id)
    assert search.events.seen.count(("requeued", trial.trial_id, "w1")) == 1, "once"


def test_a_heartbeat_for_a_trial_not_owned_is_refused(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    other = ask(coordinator, "w2")

    assert coordinator.heartbeat("w1", other.trial_id, 1, {}) is False  # another worker's trial
    assert coordinator.heartbeat("w3", trial.trial_id, 1, {}) is False  # a worker with no trial
    assert complete(coordinator, "w1", trial)
    assert coordinator.heartbeat("w1", trial.trial_id, 2, {}) is False  # its trial has ended


# -- ownership -----------------------------------------------------------------------------------


def test_reports_from_a_worker_whose_trial_was_taken_back_are_ignored(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    stale = ask(coordinator, "w1")
    search.clock.advance(LEASE + 1)
    coordinator.expire_leases()
    owned = ask(coordinator, "w2")
    assert owned.trial_id == stale.trial_id

    assert coordinator.update_trial("w1", stale.trial_id, {OBJECTIVE: 0.99}, step=1) is None
    stale.metrics.update(OBJECTIVE, 0.99, step=1)
    stale.status = Status.COMPLETED
    assert coordinator.end_trial("w1", stale) is False
    assert completed_ids(coordinator) == set()
    assert search.count("completed") == 0
    assert coordinator.get_trial(stale.trial_id).status == Status.RUNNING
    assert coordinator.heartbeat("w2", owned.trial_id, 1, {}) is True  # still w2's

    assert complete(coordinator, "w2", owned, value=0.75)
    assert completed_ids(coordinator) == {owned.trial_id}
    assert coordinator.get_trial(owned.trial_id).score == pytest.approx(0.75)  # w2's result, not w1's
    assert search.count("completed") == 1
    assert search.gauge("hptune_best_objective") == pytest.approx(0.75)
    assert complete(coordinator, "w2", owned, value=0.8) is False  # a repeated report is not counted
    assert search.count("completed") == 1


def test_a_trial_lost_too_often_fails_naming_the_worker(tmp_path: Path) -> None:
    search = start(tmp_path, max_worker_losses=2)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    search.clock.advance(LEASE + 1)
    coordinator.expire_leases()
    assert search.count("requeued") == 1
    assert coordinator.get_trial(trial.trial_id).status == Status.IDLE

    assert ask(coordinator, "w2").trial_id == trial.trial_id
    search.clock.advance(LEASE + 5)
    assert coordinator.expire_leases() == [trial.trial_id]

    failed = coordinator.get_trial(trial.trial_id)
    assert failed.status == Status.FAILED
    assert failed.message is not None
    assert "worker w2 stopped responding" in failed.message
    assert "lost its worker 2 times" in failed.message
    assert search.count("requeued") == 1
    assert search.count("failed") == 1
    assert coordinator.losses == {trial.trial_id: 2}
    fresh = ask(coordinator, "w3")
    assert fresh.status == Status.RUNNING
    assert fresh.trial_id != trial.trial_id
    assert not coordinator.finished


def test_a_restarted_worker_gets_its_running_trial_again(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    other = ask(coordinator, "w2")
    search.clock.advance(LEASE / 2)

    again = ask(coordinator, "w1")  # the same tuner id, asking again after a restart
    assert again.trial_id == trial.trial_id
    assert again.status == Status.RUNNING
    assert again.hyperparameters.values == trial.hyperparameters.values
    assert coordinator.losses == {}
    assert search.count("requeued") == 0
    assert search.gauge("hptune_trials_running") == 2

    search.clock.advance(LEASE * 0.9)  # past the first lease, inside the one renewed on restart
    assert coordinator.expire_leases() == [other.trial_id]
    assert complete(coordinator, "w1", again)
    assert completed_ids(coordinator) == {trial.trial_id}


# -- failures ------------------------------------------------------------------------------------


def test_consecutive_failures_end_the_search_with_the_last_error(tmp_path: Path) -> None:
    search = start(tmp_path, maxTrials=10, maxConsecutiveFailedTrials=2)
    coordinator = search.coordinator
    first = ask(coordinator, "w1")
    assert fail(coordinator, "w1", first, TRACEBACK)  # INVALID: no retries left, so FAILED
    assert coordinator.failure is None
    assert coordinator.get_trial(first.trial_id).status == Status.FAILED
    assert coordinator.get_trial(first.trial_id).message == TRACEBACK

    second = ask(coordinator, "w1")
    nan = TRACEBACK.replace("ValueError: hidden1 must be positive", "RuntimeError: the loss is NaN")
    assert fail(coordinator, "w1", second, nan, status=Status.FAILED)

    reason = coordinator.failure
    assert reason is not None
    assert "2 trials failed in a row (spec.tuner.maxConsecutiveFailedTrials)" in reason
    assert f"trial {second.trial_id}" in reason
    assert reason.endswith("failed with: RuntimeError: the loss is NaN")
    assert "Traceback" not in reason
    assert coordinator.finished
    assert search.count("failed") == 2
    assert search.gauge("hptune_trials_running") == 0
    with pytest.raises(SearchFailed, match="2 trials failed in a row"):
        coordinator.create_trial("w1")
    with pytest.raises(SearchFailed):
        coordinator.create_trial("w2")
    assert coordinator.told_to_stop == {"w1", "w2"}


def test_a_trial_out_of_memory_neither_counts_as_a_failure_in_a_row_nor_resets_the_count(
    tmp_path: Path,
) -> None:
    search = start(tmp_path, maxTrials=10, maxConsecutiveFailedTrials=2)
    coordinator = search.coordinator
    assert fail(coordinator, "w1", ask(coordinator, "w1"), TRACEBACK, status=Status.FAILED)
    oom = TRACEBACK + "\ntensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating"
    for _ in range(3):
        too_big = ask(coordinator, "w1")
        assert fail(coordinator, "w1", too_big, oom, status=Status.FAILED)
        assert coordinator.failure is None, "a point too big for the machine ended the search"
        assert coordinator.get_trial(too_big.trial_id).status == Status.FAILED  # the oracle knows
    assert fail(coordinator, "w1", ask(coordinator, "w1"), TRACEBACK, status=Status.FAILED)
    assert coordinator.failure is not None and "2 trials failed in a row" in coordinator.failure


def test_only_the_libraries_own_words_say_a_trial_ran_out_of_memory() -> None:
    assert out_of_memory(
        "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying"
    )
    assert out_of_memory("ResourceExhaustedError: OOM when allocating tensor with shape[64,1073741824]")
    assert out_of_memory("numpy.core._exceptions._ArrayMemoryError: MemoryError: Unable to allocate 64 GiB")
    assert not out_of_memory("RuntimeError: out of memory building this model (the user's own words)")
    assert not out_of_memory(None)


def test_a_completed_trial_resets_the_failure_count(tmp_path: Path) -> None:
    search = start(tmp_path, maxTrials=10, maxConsecutiveFailedTrials=2)
    coordinator = search.coordinator
    assert fail(coordinator, "w1", ask(coordinator, "w1"), TRACEBACK, status=Status.FAILED)
    assert complete(coordinator, "w1", ask(coordinator, "w1"))
    assert fail(coordinator, "w1", ask(coordinator, "w1"), TRACEBACK, status=Status.FAILED)

    assert coordinator.failure is None
    assert ask(coordinator, "w1").status == Status.RUNNING


def test_a_failed_attempt_is_retried_on_the_next_worker(tmp_path: Path) -> None:
    search = start(tmp_path, maxRetriesPerTrial=1)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    assert fail(coordinator, "w1", trial, TRACEBACK)
    assert search.count("retried") == 1
    assert search.count("failed") == 0

    retry = ask(coordinator, "w2")
    assert retry.trial_id == trial.trial_id
    assert fail(coordinator, "w2", retry, TRACEBACK)
    assert coordinator.get_trial(trial.trial_id).status == Status.FAILED
    assert search.count("failed") == 1
    assert ask(coordinator, "w2").trial_id != trial.trial_id


def test_a_later_trial_end_keeps_the_failure_reason(tmp_path: Path) -> None:
    """The reason a user reads names the failure that ended the search, not a trial that
    completed afterwards on another worker."""
    search = start(tmp_path, maxTrials=10, maxConsecutiveFailedTrials=2)
    coordinator = search.coordinator
    running = ask(coordinator, "w2")
    for _ in range(2):
        assert fail(coordinator, "w1", ask(coordinator, "w1"), TRACEBACK, status=Status.FAILED)
    reason = coordinator.failure
    assert reason is not None

    complete(coordinator, "w2", running)

    assert coordinator.failure == reason
    assert coordinator.get_trial(running.trial_id).status == Status.COMPLETED


def test_a_failed_search_still_answers_reports_from_other_threads(tmp_path: Path) -> None:
    """The chief serves each worker from its own gRPC thread: after one thread's report ended the
    search, another worker's report must still get an answer (and not hold the coordinator's lock
    forever)."""
    search = start(tmp_path, maxTrials=10, maxConsecutiveFailedTrials=2)
    coordinator = search.coordinator
    running = ask(coordinator, "w2")
    for _ in range(2):
        assert fail(coordinator, "w1", ask(coordinator, "w1"), TRACEBACK, status=Status.FAILED)
    assert coordinator.failure is not None

    answered = threading.Event()

    def report() -> None:
        complete(coordinator, "w2", running)
        answered.set()

    threading.Thread(target=report, name="oracle_1", daemon=True).start()
    assert answered.wait(timeout=2.0), "w2's report never returned: the oracle stayed locked"


# -- the end -------------------------------------------------------------------------------------


def test_the_search_ends_after_max_trials(tmp_path: Path) -> None:
    search = start(tmp_path)  # maxTrials: 3
    coordinator = search.coordinator
    ids = []
    for value in (0.7, 0.9, 0.8):
        trial = ask(coordinator, "w1")
        ids.append(trial.trial_id)
        assert complete(coordinator, "w1", trial, value)
    assert len(set(ids)) == 3
    assert search.count("completed") == 3

    assert ask(coordinator, "w1").status == Status.STOPPED
    assert coordinator.finished
    assert coordinator.failure is None
    assert coordinator.told_to_stop == {"w1"}
    assert ask(coordinator, "w2").status == Status.STOPPED
    assert coordinator.told_to_stop == {"w1", "w2"}
    assert search.gauge("hptune_worker_up", worker="w2") == 0
    assert coordinator.get_best_trials(1)[0].trial_id == ids[1]
    assert search.gauge("hptune_best_objective") == pytest.approx(0.9)


def test_idle_workers_are_released_once_no_trial_is_left_to_hand_out(tmp_path: Path) -> None:
    search = start(tmp_path)  # maxTrials: 3, spareWorkers: 0
    coordinator = search.coordinator
    first, slow, third = (ask(coordinator, w) for w in ("w1", "w2", "w3"))
    assert complete(coordinator, "w1", first)
    assert complete(coordinator, "w3", third)

    # w2's trial still runs, but nothing is left to hand out: w1 and w3 stop and free their GPUs.
    assert ask(coordinator, "w1").status == Status.STOPPED
    assert ask(coordinator, "w3").status == Status.STOPPED
    assert not coordinator.finished and coordinator.told_to_stop == {"w1", "w3"}

    search.clock.advance(LEASE + 1)  # w2 died: its trial comes back to the queue
    assert not coordinator.finished
    retry = ask(coordinator, "w2")  # the worker the Job starts again in its place
    assert retry.trial_id == slow.trial_id
    assert complete(coordinator, "w2", retry)
    assert ask(coordinator, "w2").status == Status.STOPPED
    assert coordinator.finished
    assert completed_ids(coordinator) == {first.trial_id, slow.trial_id, third.trial_id}


def test_spare_workers_wait_for_a_trial_that_comes_back(tmp_path: Path) -> None:
    search = start(tmp_path, spare_workers=1)
    coordinator = search.coordinator
    first, slow, third = (ask(coordinator, w) for w in ("w1", "w2", "w3"))
    assert complete(coordinator, "w1", first)
    assert complete(coordinator, "w3", third)

    assert ask(coordinator, "w1").status == Status.IDLE  # the one spare
    assert ask(coordinator, "w3").status == Status.STOPPED  # no second one
    assert ask(coordinator, "w1").status == Status.IDLE  # still the spare when it asks again
    assert coordinator.told_to_stop == {"w3"}

    search.clock.advance(LEASE - 1)
    assert ask(coordinator, "w1").status == Status.IDLE  # asking keeps it live
    search.clock.advance(2)  # w2 went silent: its trial comes back to the queue
    retry = ask(coordinator, "w1")
    assert retry.trial_id == slow.trial_id
    assert complete(coordinator, "w1", retry)

    assert ask(coordinator, "w1").status == Status.STOPPED
    assert coordinator.finished
    assert completed_ids(coordinator) == {first.trial_id, slow.trial_id, third.trial_id}


# -- snapshots -----------------------------------------------------------------------------------


def test_a_restored_search_keeps_completed_and_running_trials(tmp_path: Path) -> None:
    search = start(tmp_path)  # maxTrials: 3
    done = ask(search.coordinator, "w1")
    assert complete(search.coordinator, "w1", done, 0.8)
    running = ask(search.coordinator, "w2")
    text = search.coordinator.snapshot_text()
    assert json.loads(text)["trials"].keys() == {done.trial_id, running.trial_id}

    clock = FakeClock(now=50.0)  # a new process: its monotonic clock starts elsewhere
    resumed = resume(search, clock)
    coordinator = resumed.coordinator
    assert completed_ids(coordinator) == {done.trial_id}
    assert coordinator.get_trial(done.trial_id).score == pytest.approx(0.8)
    assert resumed.count("completed") == 1
    assert resumed.gauge("hptune_best_objective") == pytest.approx(0.8)
    assert resumed.gauge("hptune_trials_running") == 1

    assert coordinator.expire_leases() == []  # the running trial keeps a fresh lease
    assert coordinator.heartbeat("w2", running.trial_id, 1, {}) is True
    new = ask(coordinator, "w3")
    assert new.trial_id not in (done.trial_id, running.trial_id)
    assert new.hyperparameters.values != done.hyperparameters.values
    assert complete(coordinator, "w3", new)

    clock.advance(LEASE + 1)  # w2 did not come back
    assert coordinator.expire_leases() == [running.trial_id]
    assert ask(coordinator, "w4").trial_id == running.trial_id
    assert resumed.count("requeued") == 1


def test_the_owner_of_a_running_trial_finishes_it_after_a_restore(tmp_path: Path) -> None:
    search = start(tmp_path)
    running = ask(search.coordinator, "w1")
    resumed = resume(search, FakeClock(now=0.0))
    coordinator = resumed.coordinator

    assert ask(coordinator, "w1").trial_id == running.trial_id
    assert complete(coordinator, "w1", running, 0.6)
    assert completed_ids(coordinator) == {running.trial_id}
    assert resumed.count("completed") == 1


def test_losses_survive_a_restore(tmp_path: Path) -> None:
    search = start(tmp_path, max_worker_losses=2)
    trial = ask(search.coordinator, "w1")
    search.clock.advance(LEASE + 1)
    search.coordinator.expire_leases()

    clock = FakeClock(now=0.0)
    coordinator = resume(search, clock).coordinator
    assert coordinator.losses == {trial.trial_id: 1}
    assert ask(coordinator, "w2").trial_id == trial.trial_id  # still queued after the restore
    clock.advance(LEASE + 1)
    coordinator.expire_leases()

    failed = coordinator.get_trial(trial.trial_id)
    assert failed.status == Status.FAILED
    assert failed.message is not None
    assert "lost its worker 2 times" in failed.message


def test_a_snapshot_taken_after_a_change_shows_it(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    before = json.loads(coordinator.snapshot_text())
    assert before["trials"][trial.trial_id]["status"] == Status.RUNNING

    assert complete(coordinator, "w1", trial)
    after = json.loads(coordinator.snapshot_text())
    assert after["trials"][trial.trial_id]["status"] == Status.COMPLETED
    assert after["oracle"]["ongoing_trials"] == {}


def test_wait_for_change_returns_a_new_version_after_a_trial_ends(tmp_path: Path) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = ask(coordinator, "w1")
    version = coordinator.wait_for_change(-1, timeout=0)
    assert coordinator.wait_for_change(version, timeout=0) == version  # nothing happened

    assert complete(coordinator, "w1", trial)
    assert coordinator.wait_for_change(version, timeout=0) > version


# -- plain Keras Tuner workers ---------------------------------------------------------------------
# A plain worker's calls carry no hptune metadata: the chief sees tuner_id None on UpdateTrial and
# EndTrial, and no heartbeats. Plain Keras Tuner reports once, when the trial ends.


def test_a_plain_workers_trial_outlives_the_heartbeat_lease_and_is_recorded_by_the_chief(
    tmp_path: Path,
) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = received(coordinator.create_trial("tuner0", plain=True))

    search.clock.advance(LEASE * 5)  # a long trial: no call at all meanwhile
    assert coordinator.expire_leases() == []
    coordinator.update_trial(None, trial.trial_id, {OBJECTIVE: 0.8}, step=3)
    trial.status = Status.COMPLETED
    assert coordinator.end_trial(None, trial)

    assert completed_ids(coordinator) == {trial.trial_id}
    assert coordinator.trials()[0].score == 0.8
    assert [event[:3] for event in search.events.plain()] == [(trial.trial_id, "tuner0", Status.COMPLETED)]
    assert search.events.seen[-1] == ("ended",), "made durable after the chief's record"
    assert not any(event[0] == "counted" for event in search.events.seen), "a plain worker stages nothing"


def test_any_call_from_a_plain_worker_renews_its_lease_and_a_dead_one_loses_its_trial(
    tmp_path: Path,
) -> None:
    search = start(tmp_path)
    coordinator = search.coordinator
    trial = received(coordinator.create_trial("tuner0", plain=True))
    search.clock.advance(PLAIN_LEASE - 1)
    coordinator.get_trial(trial.trial_id)  # plain Keras Tuner asks for its trial before ending it
    search.clock.advance(PLAIN_LEASE - 1)
    assert coordinator.expire_leases() == []

    search.clock.advance(2)  # then it died
    assert coordinator.expire_leases() == [trial.trial_id]
    again = ask(coordinator, "tuner1")  # an hptune worker takes the requeued trial
    assert again.trial_id == trial.trial_id
    search.clock.advance(LEASE + 1)  # and gets the ordinary lease
    assert coordinator.expire_leases() == [trial.trial_id]


def test_a_plain_workers_failure_is_explained_by_what_the_chief_knows(tmp_path: Path) -> None:
    search = start(tmp_path, maxRetriesPerTrial=0)
    coordinator = search.coordinator
    trial = received(coordinator.create_trial("tuner0", plain=True))
    trial.status = Status.INVALID  # what plain Keras Tuner sends for an exception; no message field
    assert coordinator.end_trial(None, trial)

    failed = coordinator.get_trial(trial.trial_id)
    assert failed.status == Status.FAILED
    assert "tuner0, a plain Keras Tuner worker" in (failed.message or "")
    assert "carries no error text" in (failed.message or "")
    assert [event[3] for event in search.events.plain()] == [failed.message]


def test_a_resumed_chief_still_knows_its_plain_workers(tmp_path: Path) -> None:
    search = start(tmp_path)
    trial = received(search.coordinator.create_trial("tuner0", plain=True))
    resumed = resume(search, FakeClock(5000.0))
    resumed.clock.advance(LEASE * 2)
    assert resumed.coordinator.expire_leases() == []  # the plain lease, not the heartbeat one
    trial.status = Status.COMPLETED
    resumed.coordinator.update_trial(None, trial.trial_id, {OBJECTIVE: 0.7}, step=1)
    assert resumed.coordinator.end_trial(None, trial)
    assert completed_ids(resumed.coordinator) == {trial.trial_id}


def test_a_trial_requeued_before_a_chief_restart_still_continues_from_its_checkpoint(tmp_path: Path) -> None:
    search = start(tmp_path)
    trial = ask(search.coordinator, "w1")
    assert search.coordinator.give_back("w1", trial.trial_id)

    resumed = resume(search, FakeClock(now=0.0))
    assert ask(resumed.coordinator, "w2").trial_id == trial.trial_id
    resumed.coordinator.hand_over_checkpoint("w2", trial.trial_id)
    assert resumed.events.seen[-1] == ("requeued", trial.trial_id, "w1"), "w1's checkpoint, after the restart"
    assert json.loads(resumed.coordinator.snapshot_text())["handedOver"] == {}, "handed over once"
