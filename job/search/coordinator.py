"""The chief's side of a search: a Keras Tuner oracle plus what a fault-tolerant search needs.

Keras Tuner's oracle chooses hyperparameter values; the coordinator adds:

- leases: a worker that stays silent longer than the lease loses its trial, which goes back to
  the queue (or fails after `maxWorkerLosses`), so a dead worker never blocks the search; a plain
  Keras Tuner worker (no hptune call metadata, no heartbeats) gets the longer
  `plainWorkerLeaseSeconds`, renewed by any call it makes about its trial;
- ownership: a result from a worker that no longer owns its trial is discarded;
- failure text: the worker's traceback is attached to the trial it explains;
- a clean end: too many consecutive failures end the whole search with that reason instead of
  raising inside the oracle and leaving its trial stuck;
- trial pruning (spec.tuner.pruning, job/search/pruning.py): each epoch a heartbeat reports goes
  through the pruning rule, and the decision rides back in the heartbeat's reply;
- top-k pruning of trial models, Prometheus metrics, and a state snapshot for resuming.

The standalone process calls it directly; the chief serves it over gRPC (`job/wire/chief.py`).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from job.errors import SearchFailed, last_line
from job.kt_adapter import (
    HyperParameters,
    Oracle,
    Status,
    Trial,
    end_uncounted,
    forget_ongoing,
    has_queued,
    new_trial,
    release_after_raise,
    requeue,
    trial_from_state,
)
from job.observability.metrics import SearchMetrics
from job.output.layout import is_member
from job.output.records import given_up
from job.search.pruning import Pruned, TrialPruner
from job.search.retention import ModelRetention
from job.training.memory import out_of_memory

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


class SearchEvents(Protocol):
    """What the coordinator tells the rest of the chief as trials end, in this order: an attempt
    was counted (its staged files become the trial's own), a plain Keras Tuner worker's trial
    ended (it wrote no record: the chief writes one), and then the state changed for good (make
    it durable before the worker hears its trial was recorded). `job/roles/coordination.py`
    writes them to the output; an exception from any of them fails the search (resumable)."""

    def attempt_counted(self, trial_id: str, tuner_id: str) -> None: ...

    def plain_trial_recorded(self, trial: Trial, tuner_id: str, seconds: float | None) -> None: ...

    def trial_ended(self) -> None: ...

    def trial_requeued(self, trial_id: str, tuner_id: str) -> None:
        """The trial, lost by `tuner_id`, is about to run again (on another worker, or on
        `tuner_id` restarted): the checkpoint `tuner_id` staged becomes the trial's, to continue
        from."""
        ...


class NoEvents:
    """Events that go nowhere: a coordinator in a test or a benchmark with no output."""

    def attempt_counted(self, trial_id: str, tuner_id: str) -> None:
        pass

    def plain_trial_recorded(self, trial: Trial, tuner_id: str, seconds: float | None) -> None:
        pass

    def trial_ended(self) -> None:
        pass

    def trial_requeued(self, trial_id: str, tuner_id: str) -> None:
        pass


@dataclass
class Lease:
    trial_id: str
    renewed: float
    seconds: float  # how long the worker may stay silent
    epoch: int = 0
    logs: dict[str, float] = field(default_factory=dict)


class Coordinator:
    def __init__(
        self,
        oracle: Oracle,
        lease_seconds: float,
        max_worker_losses: int,
        model_retention: ModelRetention | None = None,
        metrics: SearchMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        plain_lease_seconds: float | None = None,
        trial_pruner: TrialPruner | None = None,
        events: SearchEvents | None = None,
        spare_workers: int = 0,
    ) -> None:
        self.oracle = oracle
        # Once no trial is left to hand out, this many idle workers wait for one to come back; the
        # others are told to stop at once, so no GPU is held for nothing in a search's tail.
        self.spare_workers = spare_workers
        self.spares: set[str] = set()
        self.events: SearchEvents = events or NoEvents()
        self.trial_pruner = trial_pruner
        self.lease_seconds = lease_seconds
        self.plain_lease_seconds = max(plain_lease_seconds or lease_seconds, lease_seconds)
        self.plain: set[str] = set()  # workers that are plain Keras Tuner (no heartbeats, no error text)
        self.max_worker_losses = max_worker_losses
        self.model_retention = model_retention
        self.metrics = metrics
        self.clock = clock
        self.lock = threading.RLock()
        self.leases: dict[str, Lease] = {}
        self.last_seen: dict[str, float] = {}
        self.told_to_stop: set[str] = set()
        self.losses: dict[str, int] = {}
        self.started_at: dict[str, float] = {}
        self.exhausted = False
        self.failure: str | None = None
        # A failure for good (the search itself failed) or of the infrastructure (storage), after
        # which a restarted chief resumes.
        self.failure_final = True
        self.version = 0  # bumped on every state change worth a snapshot
        self.awaited: set[str] = set()  # workers a resumed chief must still tell to stop
        self._trial_json: dict[str, str] = {}
        # Trials taken back from a worker, by the worker whose checkpoint they continue from
        # (published when the next worker asks, `hand_over_checkpoint`).
        self.handed_over: dict[str, str] = {}
        self.changed = threading.Condition(self.lock)

    # -- the Keras Tuner oracle protocol, with ownership --------------------------------------

    def create_trial(self, tuner_id: str, plain: bool = False) -> Trial:
        """The next trial for tuner_id; `plain`: the call came from a plain Keras Tuner worker."""
        with self.lock:
            self._seen(tuner_id)
            if plain and tuner_id not in self.plain:
                log.info(
                    "%s is a plain Keras Tuner worker: no heartbeats (its trials have a %.0f s lease, "
                    "spec.distribution.plainWorkerLeaseSeconds), no error text, its models stay with it",
                    tuner_id,
                    self.plain_lease_seconds,
                )
                self.plain.add(tuner_id)
                self._changed()
            elif not plain:
                self.plain.discard(tuner_id)
            self.expire_leases()
            if self.failure is not None:
                self._stop_worker(tuner_id)
                raise SearchFailed(self.failure)
            if self.finished:
                self._stop_worker(tuner_id)
                return new_trial(self.oracle.get_space(), Status.STOPPED)
            trial = self.oracle.create_trial(tuner_id)
            if trial.status == Status.STOPPED:
                self.exhausted = True
                if not self.finished and self._keep_as_spare(tuner_id):
                    # Another worker's trial may still come back to the queue: wait for it.
                    return new_trial(self.oracle.get_space(), Status.IDLE)
                if not self.finished and not is_member(tuner_id):
                    log.info(
                        "%s released: no trial left to hand out (%d still running; "
                        "spec.distribution.spareWorkers %d)",
                        tuner_id,
                        len(self.oracle.ongoing_trials),
                        self.spare_workers,
                    )
                self._stop_worker(tuner_id)
                self._changed()
                return trial
            self.spares.discard(tuner_id)
            if trial.status == Status.RUNNING:
                lease = self.leases.get(tuner_id)
                if lease is None or lease.trial_id != trial.trial_id:
                    self.leases[tuner_id] = Lease(trial.trial_id, self.clock(), self._lease_for(tuner_id))
                    self.started_at[trial.trial_id] = time.time()
                    log.info("trial %s started on %s", trial.trial_id, tuner_id)
                else:
                    lease.renewed = self.clock()
                    log.info("trial %s handed again to %s (it restarted)", trial.trial_id, tuner_id)
                    self.handed_over[trial.trial_id] = tuner_id
                self._update_running()
                self._changed(trial.trial_id)
            return trial

    def heartbeat(self, tuner_id: str, trial_id: str, epoch: int, logs: dict[str, float]) -> bool:
        """Renew the lease. False means the trial is no longer this worker's: stop working on it."""
        with self.lock:
            self._seen(tuner_id)
            lease = self.leases.get(tuner_id)
            if lease is None or lease.trial_id != trial_id:
                return False
            lease.renewed = self.clock()
            if epoch > lease.epoch or logs:
                lease.epoch, lease.logs = epoch, dict(logs)
                if self.metrics is not None:
                    self.metrics.report_epoch(tuner_id, epoch, logs)
            objective = self.oracle.objective.name
            if self.trial_pruner is not None and epoch > 0 and objective in logs:
                known = trial_id in self.trial_pruner.pruned
                planned = self.trial_pruner.planned(self.oracle.trials[trial_id].hyperparameters.values)
                decided = self.trial_pruner.report(trial_id, epoch, logs[objective], planned or None)
                if decided is not None and not known:
                    self._changed(trial_id)  # the snapshot keeps the decision
            return self.failure is None

    def pruned(self, trial_id: str) -> Pruned | None:
        """The decision to stop this trial early, if the pruning rule made one."""
        with self.lock:
            return None if self.trial_pruner is None else self.trial_pruner.pruned.get(trial_id)

    def update_trial(
        self, tuner_id: str | None, trial_id: str, metrics: dict[str, float], step: int = 0
    ) -> Trial | None:
        """Record a trial's metrics; None (ignored) when the trial is not running on tuner_id."""
        with self.lock:
            owner = self._owner(trial_id)
            if owner is None or (tuner_id is not None and owner != tuner_id):
                log.warning("ignoring metrics for trial %s from %s: not running there", trial_id, tuner_id)
                return None
            self._renew(owner, trial_id)
            updated = self.oracle.update_trial(trial_id, metrics, step=step)
            self._changed(trial_id)
            return updated

    def end_trial(self, tuner_id: str | None, trial: Trial) -> bool:
        """Record a trial's end. Returns False for a stale or repeated report, which is ignored."""
        with self.lock:
            if tuner_id is None:
                tuner_id = self._owner(trial.trial_id)
            if tuner_id is not None:
                self._seen(tuner_id)
            ongoing = self.oracle.ongoing_trials.get(tuner_id) if tuner_id else None
            if tuner_id is None or ongoing is None or ongoing.trial_id != trial.trial_id:
                log.warning(
                    "ignoring the end of trial %s from %s: the trial is not running there "
                    "(its lease expired, or this report was already counted)",
                    trial.trial_id,
                    tuner_id,
                )
                return False
            self.leases.pop(tuner_id, None)  # no lease, no expiry: the trial stays this worker's
            plain = tuner_id in self.plain
        if not plain:
            try:
                self.events.attempt_counted(trial.trial_id, tuner_id)  # storage: outside the lock
            except Exception as err:
                self.fail(f"cannot publish trial {trial.trial_id}: {err}", final=False)
                return False
        with self.lock:
            if plain and trial.status != Status.COMPLETED and not trial.message:
                trial.message = (
                    f"reported {trial.status} by {tuner_id}, a plain Keras Tuner worker: Keras Tuner's "
                    "protocol carries no error text; the traceback is in that worker's own log"
                )
            self._adopt_metrics(trial)
            seconds = self._elapsed(trial.trial_id)
            self._end(trial, seconds=seconds)
            ended = copy.deepcopy(self.oracle.trials[trial.trial_id]) if plain else None
        if ended is not None:
            try:
                self.events.plain_trial_recorded(ended, tuner_id, seconds)  # the worker wrote nothing
            except Exception as err:
                self.fail(f"cannot record trial {trial.trial_id}: {err}", final=False)
        self._persist()
        return True

    def _persist(self) -> None:
        """Make a trial's end durable before the worker hears it was recorded, so a chief that
        restarts never hands out a finished trial again."""
        try:
            self.events.trial_ended()
        except Exception as err:
            self.fail(f"cannot save the search state: {err}", final=False)

    def fail(self, reason: str, final: bool = True) -> None:
        """End the whole search: workers are told on their next request, with this reason.

        `final`: the search failed for good; otherwise the infrastructure failed (storage) and a
        restarted chief resumes where this one stopped."""
        with self.lock:
            if self.failure is None:
                self.failure = reason
                self.failure_final = final
                log.error("search failed: %s", reason)
                self._changed()

    def _adopt_metrics(self, trial: Trial) -> None:
        """Take the metrics sent with the end report when the separate update never arrived
        (the chief restarted between the two calls)."""
        recorded = self.oracle.trials[trial.trial_id]
        objective = self.oracle.objective.name
        if recorded.metrics.exists(objective) or not trial.metrics.exists(objective):
            return
        values = {name: h.get_last_value() for name, h in trial.metrics.metrics.items()}
        self.oracle.update_trial(trial.trial_id, values, step=trial.metrics.get_history(objective)[-1].step)

    def get_space(self) -> HyperParameters:
        with self.lock:
            return self.oracle.get_space()

    def update_space(self, hyperparameters: HyperParameters) -> None:
        with self.lock:
            self.oracle.update_space(hyperparameters)

    def get_trial(self, trial_id: str) -> Trial:
        with self.lock:
            owner = self._owner(trial_id)
            if owner is not None:
                self._renew(owner, trial_id)
            return self.oracle.get_trial(trial_id)

    def get_best_trials(self, num_trials: int) -> list[Trial]:
        with self.lock:
            return self.oracle.get_best_trials(num_trials)

    # -- leases --------------------------------------------------------------------------------

    def expire_leases(self) -> list[str]:
        """Take back every trial whose worker has been silent longer than the lease."""
        now = self.clock()
        expired: list[str] = []
        with self.lock:
            for tuner_id, lease in list(self.leases.items()):
                if now - lease.renewed <= lease.seconds:
                    continue
                expired.append(lease.trial_id)
                del self.leases[tuner_id]
                ongoing = self.oracle.ongoing_trials.get(tuner_id)
                if ongoing is None or ongoing.trial_id != lease.trial_id:
                    continue
                self._take_back(tuner_id, ongoing, now - lease.renewed, lease.seconds)
            if expired:
                self._update_running()
                self._changed(*expired)
        return expired

    def give_back(self, tuner_id: str, trial_id: str) -> bool:
        """A worker that is stopping (SIGTERM: a spot reclaim, a drain) hands its running trial
        back: it goes to the queue at once, with its last checkpoint, not counted as a lost worker
        (the trial did nothing wrong). False when the trial is not running on `tuner_id`."""
        with self.lock:
            lease = self.leases.get(tuner_id)
            ongoing = self.oracle.ongoing_trials.get(tuner_id)
            if lease is None or ongoing is None or ongoing.trial_id != trial_id:
                return False
            del self.leases[tuner_id]
            if self.trial_pruner is not None:
                self.trial_pruner.forget(trial_id)
            self._requeue(tuner_id, ongoing)
            log.warning("trial %s handed back by %s (it is stopping); requeued", trial_id, tuner_id)
            self._update_running()
            self._changed(trial_id)
        return True

    def _take_back(self, tuner_id: str, trial: Trial, silent: float, lease_seconds: float) -> None:
        trial_id = trial.trial_id
        self.losses[trial_id] = self.losses.get(trial_id, 0) + 1
        if tuner_id in self.plain:
            reason = (
                f"worker {tuner_id} stopped responding (a plain Keras Tuner worker, no call for "
                f"{silent:.0f} s, lease {lease_seconds:.0f} s: spec.distribution.plainWorkerLeaseSeconds)"
            )
        else:
            reason = (
                f"worker {tuner_id} stopped responding (no heartbeat for {silent:.0f} s, "
                f"lease {lease_seconds:.0f} s)"
            )
        if self.metrics is not None:
            self.metrics.worker_seen(tuner_id, up=False)
        if self.trial_pruner is not None:
            self.trial_pruner.forget(trial_id)  # it trains again from the start elsewhere
        if self.losses[trial_id] < self.max_worker_losses:
            self._requeue(tuner_id, trial)
            log.warning("trial %s requeued: %s", trial_id, reason)
            return
        failed = copy.copy(trial)
        failed.status = Status.FAILED
        failed.message = given_up(reason, self.losses[trial_id])
        log.error("trial %s failed: %s", trial_id, failed.message)
        self._end(failed, seconds=self._elapsed(trial_id))

    def _requeue(self, tuner_id: str, trial: Trial) -> None:
        """Back to the queue, to continue from `tuner_id`'s checkpoint (`hand_over_checkpoint`)."""
        self.handed_over[trial.trial_id] = tuner_id
        requeue(self.oracle, tuner_id, trial)
        if self.metrics is not None:
            self.metrics.trial_ended("requeued", None)

    def hand_over_checkpoint(self, tuner_id: str, trial_id: str) -> None:
        """Asked by the worker that now runs a trial, before it trains: the checkpoint of the worker
        that lost the trial becomes the trial's (`SearchEvents.trial_requeued`), for it to continue
        from. Storage is written here, outside the lock; a failure means the trial starts over."""
        with self.lock:
            lease = self.leases.get(tuner_id)
            if lease is None or lease.trial_id != trial_id or trial_id not in self.handed_over:
                return
            previous = self.handed_over.pop(trial_id)
            self._changed()
        try:
            self.events.trial_requeued(trial_id, previous)
        except Exception as err:
            log.warning(
                "trial %s: %s's checkpoint could not be handed on (%s); it starts over",
                trial_id,
                previous,
                err,
            )

    def _end(self, trial: Trial, seconds: float | None) -> None:
        try:
            if trial.status == Status.FAILED and out_of_memory(trial.message):
                end_uncounted(self.oracle, trial)  # too big for the machine: not a broken search
            else:
                self.oracle.end_trial(trial)
        except RuntimeError as err:
            # Keras Tuner raised before finishing its bookkeeping, holding the oracle's lock;
            # finish both so nothing hangs.
            release_after_raise(self.oracle)
            if "consecutive failures" not in str(err):
                raise
            forget_ongoing(self.oracle, trial.trial_id)
            if self.failure is None:  # it raises again at every later end: the first reason stays
                limit = self.oracle.max_consecutive_failed_trials
                self.failure = (
                    f"{limit} trials failed in a row (spec.tuner.maxConsecutiveFailedTrials); "
                    f"the last one, trial {trial.trial_id}, failed with: {last_line(trial.message)}"
                )
                log.error("search failed: %s", self.failure)
        ended = self.oracle.trials[trial.trial_id]
        status = _status_name(ended.status)
        epochs_saved = 0
        if self.trial_pruner is not None:
            if status == "completed" and trial.trial_id in self.trial_pruner.pruned:
                status = "pruned"
                epochs_saved = self.trial_pruner.epochs_saved(trial.trial_id, ended.hyperparameters.values)
            if status == "retried":
                self.trial_pruner.forget(trial.trial_id)
            else:
                self.trial_pruner.ended(trial.trial_id, completed=status == "completed")
        if ended.status in (Status.COMPLETED, Status.FAILED):
            self.started_at.pop(trial.trial_id, None)
        if status == "failed":
            text = (ended.message or "").strip()
            log.error("trial %s failed:\n%s", trial.trial_id, text or "(no error text)")
        elif status == "retried":
            log.warning(
                "trial %s failed and will be retried: %s",
                trial.trial_id,
                last_line(ended.message),
            )
        if self.metrics is not None:
            self.metrics.trial_ended(status, seconds, epochs_saved=epochs_saved)
            best = self._best()
            if best is not None and best.score is not None:
                self.metrics.best_so_far(best.score)
        if ended.status == Status.COMPLETED:
            best = self._best()
            log.info(
                "trial %s completed: %s=%.6g (best so far %.6g, trial %s); %d of %s done",
                trial.trial_id,
                self.oracle.objective.name,
                ended.score,
                best.score if best else float("nan"),
                best.trial_id if best else "-",
                self.completed_count,
                self.oracle.max_trials or "?",
            )
        if self.model_retention is not None and ended.status == Status.COMPLETED:
            self.model_retention.after_end(
                trial.trial_id, list(self.oracle.trials.values()), self.oracle.objective.direction
            )
        self._update_running()
        self._changed(trial.trial_id)

    # -- state -----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """No more trials will start: the oracle is exhausted and nothing can come back."""
        with self.lock:
            return self.failure is not None or (
                self.exhausted and not self.oracle.ongoing_trials and not has_queued(self.oracle)
            )

    @property
    def completed_count(self) -> int:
        return sum(1 for t in self.oracle.trials.values() if t.status == Status.COMPLETED)

    def trials(self) -> list[Trial]:
        with self.lock:
            return list(self.oracle.trials.values())

    def live_workers(self) -> set[str]:
        now = self.clock()
        with self.lock:
            return {w for w, seen in self.last_seen.items() if now - seen <= self.lease_seconds}

    def all_told_to_stop(self) -> bool:
        with self.lock:
            return self.live_workers() | self.awaited <= self.told_to_stop

    def wait_for_change(self, version: int, timeout: float) -> int:
        with self.changed:
            if self.version == version:
                self.changed.wait(timeout)
            return self.version

    def snapshot_text(self) -> str:
        """Everything needed to resume, as JSON: the oracle's state and every trial.

        Each trial's JSON is cached until the trial changes, and the strings are joined outside the
        lock, so taking a snapshot holds up requests for little time however many trials finished.
        """
        with self.lock:
            trials = []
            for trial_id, trial in self.oracle.trials.items():
                entry = self._trial_json.get(trial_id)
                if entry is None:
                    entry = f"{json.dumps(trial_id)}: {json.dumps(trial.get_state())}"
                    self._trial_json[trial_id] = entry
                trials.append(entry)
            head = json.dumps(
                {
                    "version": SNAPSHOT_VERSION,
                    "losses": self.losses,
                    "exhausted": self.exhausted,
                    "workers": sorted((self.live_workers() | self.awaited) - self.told_to_stop),
                    "plainWorkers": sorted(self.plain),
                    "handedOver": self.handed_over,
                    **({"pruning": self.trial_pruner.state()} if self.trial_pruner is not None else {}),
                }
            )
            oracle = json.dumps(self.oracle.get_state(), default=list)
        return f'{head[:-1]}, "oracle": {oracle}, "trials": {{{", ".join(trials)}}}}}'

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Resume from a snapshot. Trials that were running keep a fresh lease: a worker that is
        still alive finishes them; otherwise they are requeued when the lease runs out."""
        with self.lock:
            self.oracle.trials = {tid: trial_from_state(state) for tid, state in snapshot["trials"].items()}
            self.oracle.set_state(snapshot["oracle"])
            self._trial_json.clear()
            self.losses = dict(snapshot.get("losses", {}))
            self.exhausted = bool(snapshot.get("exhausted", False))
            self.awaited = set(snapshot.get("workers", []))
            self.plain = set(snapshot.get("plainWorkers", []))
            # A trial requeued before the restart still continues from its lost worker's checkpoint.
            self.handed_over = {str(k): str(v) for k, v in snapshot.get("handedOver", {}).items()}
            if self.trial_pruner is not None:
                self.trial_pruner.restore(snapshot.get("pruning", {}))
            now = self.clock()
            for tuner_id, trial in self.oracle.ongoing_trials.items():
                self.leases[tuner_id] = Lease(trial.trial_id, now, self._lease_for(tuner_id))
                self.started_at[trial.trial_id] = time.time()
            log.info(
                "resumed: %d trials recorded (%d completed), %d were running and keep their lease",
                len(self.oracle.trials),
                self.completed_count,
                len(self.oracle.ongoing_trials),
            )
            if self.metrics is not None:
                for trial in self.oracle.trials.values():
                    if trial.status in (Status.COMPLETED, Status.FAILED):
                        pruned = self.trial_pruner is not None and trial.trial_id in self.trial_pruner.pruned
                        self.metrics.trial_ended("pruned" if pruned else _status_name(trial.status), None)
                best = self._best()
                if best is not None and best.score is not None:
                    self.metrics.best_so_far(best.score)
            self._update_running()

    # -- helpers ---------------------------------------------------------------------------

    def _stop_worker(self, tuner_id: str) -> None:
        """Record that a worker was told to stop; it no longer counts as up."""
        if tuner_id not in self.told_to_stop:
            self.told_to_stop.add(tuner_id)
            self._changed()  # the snapshot records it: a resumed chief does not wait for it
        if self.metrics is not None:
            self.metrics.worker_seen(tuner_id, up=False)

    def _keep_as_spare(self, tuner_id: str) -> bool:
        """Should this idle worker wait in the tail (a spare) rather than stop? Spares that went
        silent, were told to stop or took a trial since no longer count."""
        if is_member(tuner_id):
            return False  # a fused group's member asking for one more trial: the group stays smaller
        live = self.live_workers()
        self.spares = {w for w in self.spares if w in live and w not in self.told_to_stop}
        if tuner_id in self.spares or len(self.spares) < self.spare_workers:
            self.spares.add(tuner_id)
            return True
        return False

    def _lease_for(self, tuner_id: str) -> float:
        return self.plain_lease_seconds if tuner_id in self.plain else self.lease_seconds

    def _renew(self, tuner_id: str, trial_id: str) -> None:
        """Any call from the worker holding a trial renews its lease (plain Keras Tuner workers
        send no heartbeats)."""
        self._seen(tuner_id)
        lease = self.leases.get(tuner_id)
        if lease is not None and lease.trial_id == trial_id:
            lease.renewed = self.clock()

    def _seen(self, tuner_id: str) -> None:
        self.last_seen[tuner_id] = self.clock()
        if self.metrics is not None:
            self.metrics.worker_seen(tuner_id, up=True)

    def _owner(self, trial_id: str) -> str | None:
        for tuner_id, trial in self.oracle.ongoing_trials.items():
            if trial.trial_id == trial_id:
                return tuner_id
        return None

    def _elapsed(self, trial_id: str) -> float | None:
        started = self.started_at.get(trial_id)
        return None if started is None else time.time() - started

    def _best(self) -> Trial | None:
        best = self.oracle.get_best_trials(1)
        return best[0] if best and best[0].status == Status.COMPLETED else None

    def _update_running(self) -> None:
        if self.metrics is not None:
            self.metrics.trials_running(len(self.oracle.ongoing_trials))

    def _changed(self, *trial_ids: str) -> None:
        for trial_id in trial_ids:
            self._trial_json.pop(trial_id, None)
        self.version += 1
        self.changed.notify_all()


def _status_name(status: str) -> str:
    return {
        Status.COMPLETED: "completed",
        Status.FAILED: "failed",
        Status.INVALID: "retried",
    }.get(status, str(status).lower())
