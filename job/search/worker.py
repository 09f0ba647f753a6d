"""The trial loop every worker (and a standalone process) runs: ask for a trial, train, report."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from job.errors import last_line
from job.kt_adapter import Status, Trial
from job.observability.metrics import WorkerMetrics
from job.output.attempts import publish_attempt
from job.output.layout import attempt_key, member_id, trial_key
from job.output.records import TrialRecord, TrialStatus, inactive_names, public_values
from job.search.coordinator import Coordinator
from job.search.fusion import GroupWidth
from job.search.pruning import Pruned
from job.search.retention import save_model, worth_saving
from job.spec.models import JobSpec
from job.storage import ArtifactStore, WorkerStore
from job.supervision import stopping
from job.supervision.recycle import MemoryWatch
from job.training import device, fused
from job.training.checkpoint import Checkpointer, Resume, fingerprint, load_resume
from job.training.data import Dataset
from job.training.data.order import EpochOrder
from job.training.device import Replicas
from job.training.memory import out_of_memory
from job.training.space import BuildModel
from job.training.trial import Outcome, freeze_long_lived, run_trial

log = logging.getLogger(__name__)


class LeaseHandle(Protocol):
    def report(self, epoch: int, logs: dict[str, float]) -> None: ...

    @property
    def lost(self) -> bool: ...

    @property
    def pruned(self) -> Pruned | None:
        """The chief's decision to stop the trial early (spec.tuner.pruning), once made."""
        ...

    def confirm(self) -> bool:
        """Ask the chief, now, whether the trial is still this worker's."""
        ...


class OracleAccess(Protocol):
    """How a worker talks to the search: in process, or to a chief over gRPC (distribution.remote)."""

    # A plain Keras Tuner chief publishes nothing: the worker makes its attempts the trials' own.
    plain_chief: bool

    def create_trial(self, tuner_id: str) -> Trial: ...

    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int) -> None: ...

    def end_trial(self, trial: Trial) -> None: ...

    def get_best_trials(self, num_trials: int) -> list[Trial]: ...

    def lease(self, trial_id: str) -> contextlib.AbstractContextManager[LeaseHandle]: ...

    def give_back(self, trial_id: str) -> bool:
        """Hand a running trial back at once: this worker is stopping (SIGTERM)."""
        ...

    def hand_over(self, trial_id: str) -> None:
        """Before training: the checkpoint of the worker that lost this trial, published."""
        ...

    def member(self, tuner_id: str) -> OracleAccess:
        """The same search, spoken to as `tuner_id`: a fused group's other members (Keras Tuner's
        oracles keep one running trial per tuner id)."""
        ...


@dataclass(frozen=True)
class Assigned:
    """A trial this worker runs, and the id it runs it under."""

    trial: Trial
    tuner_id: str
    access: OracleAccess


class _LocalLease:
    def __init__(self, coordinator: Coordinator, tuner_id: str, trial_id: str) -> None:
        self.coordinator, self.tuner_id, self.trial_id = coordinator, tuner_id, trial_id
        self._lost = False
        self._pruned: Pruned | None = None

    def report(self, epoch: int, logs: dict[str, float]) -> None:
        self._lost = not self.coordinator.heartbeat(self.tuner_id, self.trial_id, epoch, logs)
        self._pruned = self.coordinator.pruned(self.trial_id)

    @property
    def lost(self) -> bool:
        return self._lost

    @property
    def pruned(self) -> Pruned | None:
        return self._pruned

    def confirm(self) -> bool:
        return not self._lost


class LocalAccess:
    """The coordinator in this process (standalone search)."""

    plain_chief = False

    def __init__(self, coordinator: Coordinator, tuner_id: str) -> None:
        self.coordinator, self.tuner_id = coordinator, tuner_id

    def create_trial(self, tuner_id: str) -> Trial:
        return self.coordinator.create_trial(tuner_id)

    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int) -> None:
        self.coordinator.update_trial(self.tuner_id, trial_id, metrics, step)

    def end_trial(self, trial: Trial) -> None:
        self.coordinator.end_trial(self.tuner_id, trial)

    def get_best_trials(self, num_trials: int) -> list[Trial]:
        return self.coordinator.get_best_trials(num_trials)

    @contextlib.contextmanager
    def lease(self, trial_id: str) -> Iterator[LeaseHandle]:
        yield _LocalLease(self.coordinator, self.tuner_id, trial_id)

    def member(self, tuner_id: str) -> LocalAccess:
        return LocalAccess(self.coordinator, tuner_id)

    def give_back(self, trial_id: str) -> bool:
        return self.coordinator.give_back(self.tuner_id, trial_id)

    def hand_over(self, trial_id: str) -> None:
        self.coordinator.hand_over_checkpoint(self.tuner_id, trial_id)


class TrialLoop:
    def __init__(
        self,
        tuner_id: str,
        access: OracleAccess,
        job: JobSpec,
        build_model: BuildModel,
        data: Dataset,
        store: WorkerStore,
        metrics: WorkerMetrics | None = None,
        idle_seconds: float = 1.0,
        idle_max_seconds: float = 10.0,
        memory: MemoryWatch | None = None,
        gpus: tuple[str, ...] = (),
        replicas: Replicas | None = None,
    ) -> None:
        self.tuner_id = tuner_id
        self.gpus = gpus  # UUIDs of the GPUs this process trains on, for each trial's record
        self.replicas = replicas  # each trial data parallel over several devices (gpusPerTrial)
        self.access = access
        self.job = job
        self.build_model = build_model
        self.data = data  # device.resident(...) for the fast path: converted once, not per trial
        self.store = store
        self.metrics = metrics
        self.idle_seconds = idle_seconds
        # A waiting worker asks again at least this often, so the chief keeps counting it as live
        # and can tell it to stop before it leaves.
        self.idle_max_seconds = idle_max_seconds
        self.trials_run = 0
        self.memory = memory  # resident memory, checked between trials (job/supervision/recycle.py)
        self.outgrown = False  # set when this process should restart to release memory
        self.memory_exhausted = False  # a trial ran out of memory: restart before the next one
        self._scratch = tempfile.TemporaryDirectory(prefix="hptune-worker-")
        setting = job.spec.distribution.fuse_trials
        if setting != 1 and (reason := fused.blocker(job)) is not None:
            log.warning(
                "%s: spec.distribution.fuseTrials is %s, but %s: trials run one at a time",
                tuner_id,
                setting,
                reason,
            )
            setting = 1
        self.width = GroupWidth(setting)  # trials a fused group trains (job/search/fusion.py)
        self.fingerprint = fingerprint(job)  # what a checkpoint must match to be resumed

    def run(self) -> int:
        """Run trials until the search says stop. Returns how many trials this worker ran.

        A worker that has outgrown its memory restarts only when the search has more to do: it
        asks for its next trial first (a restarted worker is handed the same trial again)."""
        idle = self.idle_seconds
        outgrown = False
        freeze_long_lived()
        try:
            while True:
                trial = self.access.create_trial(self.tuner_id)
                if trial.status == Status.STOPPED:
                    log.info(
                        "%s: no more trials here (the search is over, or has none left to hand out); "
                        "%d trials run here",
                        self.tuner_id,
                        self.trials_run,
                    )
                    return self.trials_run
                if outgrown:
                    self.outgrown = True
                    return self.trials_run
                if trial.status != Status.RUNNING:
                    time.sleep(idle)
                    idle = min(idle * 1.5, self.idle_max_seconds)
                    continue
                idle = self.idle_seconds
                if self.width.setting != 1:
                    self.run_fused([Assigned(trial, self.tuner_id, self.access), *self._more_trials()])
                else:
                    self.run_one(trial)
                # A worker restarts itself (it has a MemoryWatch); a standalone search goes on.
                if self.memory_exhausted and self.memory is not None:
                    log.info(
                        "%s: a trial ran out of memory; restarting this worker to release the memory "
                        "it held if the search goes on",
                        self.tuner_id,
                    )
                    outgrown = True
                elif self.memory is not None and self.memory.outgrown():
                    log.info(
                        "%s: resident memory grew from %.0f to %.0f MiB over %d trials; restarting "
                        "this worker to release it if the search goes on",
                        self.tuner_id,
                        self.memory.baseline / 2**20,
                        self.memory.last / 2**20,
                        self.trials_run,
                    )
                    outgrown = True
        finally:
            self._scratch.cleanup()

    def run_one(self, trial: Trial) -> None:
        tuner = self.job.spec.tuner
        self._announce(trial, self.tuner_id)
        checkpointer, resume = self._checkpoints(trial)
        given_back = self._given_back_if_stopped([(trial, self.access)], checkpointer)
        # With a checkpointer, a stop signal waits for the end of the training call in progress.
        deferred = stopping.deferred() if checkpointer is not None else contextlib.nullcontext()
        with self.access.lease(trial.trial_id) as lease, given_back, deferred:
            outcome = run_trial(
                trial.hyperparameters,
                self.build_model,
                self.data,
                self.job.spec.training,
                tuner.objective,
                executions=tuner.executions_per_trial,
                on_epoch=self._epoch_reporter(trial, self.tuner_id, lease),
                should_stop=lambda: lease.lost or lease.pruned is not None,
                weights_of=self._weights_of,
                checkpointer=checkpointer,
                resume=resume,
                replicas=self.replicas,
                order=None if checkpointer is None else EpochOrder.for_trial(trial.trial_id, tuner.seed),
                stop_requested=stopping.requested,
            )
            if checkpointer is not None and checkpointer.seconds_spent:
                log.debug(
                    "%s: trial %s: %.2f s writing checkpoints",
                    self.tuner_id,
                    trial.trial_id,
                    checkpointer.seconds_spent,
                )
            if not self._still_ours(trial, self.tuner_id, lease):
                return
            self._record(trial, outcome, lease.pruned)
        self.trials_run += 1
        if stopping.requested():  # the signal came as the trial ended: kept, and now the stop
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def _given_back_if_stopped(
        self, running: list[tuple[Trial, OracleAccess]], checkpointer: Checkpointer | None = None
    ) -> Iterator[None]:
        """A stop signal (SIGTERM arrives as KeyboardInterrupt: a spot reclaim, a drain) hands the
        running trials back to the chief at once, with their last checkpoints, before this worker
        leaves. What the trial held is written first (`Checkpointer.write_held`: where the training
        call in progress ended, or its last finished epoch): the trial continues from there."""
        try:
            yield
        except KeyboardInterrupt:
            if checkpointer is not None and (where := checkpointer.write_held()):
                log.info(
                    "%s: stopping (a signal): trial %s checkpointed %s",
                    self.tuner_id,
                    checkpointer.trial_id,
                    where,
                )
            for trial, access in running:
                handed = access.give_back(trial.trial_id)
                log.warning(
                    "%s: stopping (a signal): trial %s %s",
                    self.tuner_id,
                    trial.trial_id,
                    "handed back to the chief" if handed else "left to its lease",
                )
            raise

    def _checkpoints(self, trial: Trial) -> tuple[Checkpointer | None, Resume | None]:
        """The trial's checkpoint writer, and the checkpoint it continues from if a lost worker
        left one (spec.training.checkpointSeconds; job/training/checkpoint.py)."""
        every = self.job.spec.training.checkpoint_seconds
        if every is None or self.job.spec.tuner.algorithm == "hyperband":
            return None, None
        scratch = Path(self._scratch.name)
        self.access.hand_over(trial.trial_id)
        resume = load_resume(self.store, trial.trial_id, self.fingerprint, scratch, self.tuner_id)
        if resume is not None:
            log.info(
                "%s: trial %s continues at epoch %d from %s's checkpoint",
                self.tuner_id,
                trial.trial_id,
                resume.state.epoch + 1,
                resume.worker,
            )
        return Checkpointer(
            self.store, trial.trial_id, self.tuner_id, self.fingerprint, every, scratch
        ), resume

    def _more_trials(self) -> list[Assigned]:
        """Up to fuseTrials - 1 more trials for a fused group, each under a member's own tuner id;
        fewer when the search has no more to hand out now."""
        more: list[Assigned] = []
        for index in range(1, self.width.size):
            tuner_id = member_id(self.tuner_id, index)
            access = self.access.member(tuner_id)
            trial = access.create_trial(tuner_id)
            if trial.status != Status.RUNNING:
                break
            more.append(Assigned(trial, tuner_id, access))
        return more

    def run_fused(self, assigned: list[Assigned]) -> None:
        """Train these trials in fused groups: one per batch size, optimizer and depth they need, one
        group after another (each trial keeps its lease meanwhile)."""
        model, training = self.job.spec.model, self.job.spec.training
        groups: dict[tuple[int, str, int], list[Assigned]] = {}
        for entry in assigned:
            key = fused.group_key(model, training, entry.trial.hyperparameters)  # type: ignore[arg-type]
            groups.setdefault(key, []).append(entry)
        if len(groups) > 1:
            log.info(
                "%s: %d trials need %d groups (batch size/optimizer/depth: %s); running one after another",
                self.tuner_id,
                len(assigned),
                len(groups),
                ", ".join("/".join(map(str, key)) for key in groups),
            )
        for group in groups.values():
            self._run_group(group)

    def _run_group(self, group: list[Assigned]) -> None:
        with contextlib.ExitStack() as stack:
            leases = [stack.enter_context(entry.access.lease(entry.trial.trial_id)) for entry in group]
            stack.enter_context(self._given_back_if_stopped([(e.trial, e.access) for e in group]))
            for entry in group:
                self._announce(entry.trial, entry.tuner_id)
            self._train_fused(list(zip(group, leases, strict=True)))

    def _train_fused(self, members: list[tuple[Assigned, LeaseHandle]]) -> None:
        """Train the members as one program and record each. A group that runs out of device memory
        is halved and tried again (and later groups are no larger), instead of failing its trials."""
        if len(members) > 1:
            log.info(
                "%s: trials %s train fused, as one program",
                self.tuner_id,
                ", ".join(entry.trial.trial_id for entry, _ in members),
            )
        reporters = [self._epoch_reporter(entry.trial, entry.tuner_id, lease) for entry, lease in members]
        started = time.perf_counter()
        outcomes = fused.train_group(
            [entry.trial.hyperparameters for entry, _ in members],
            self.build_model,
            self.job.spec.model,  # type: ignore[arg-type]
            self.data,
            self.job.spec.training,
            self.job.spec.tuner.objective,
            on_epoch=lambda index, epoch, logs: reporters[index](epoch, logs),
            should_stop=lambda index: members[index][1].lost or members[index][1].pruned is not None,
        )
        if len(members) > 1 and all(out_of_memory(o.error) for o in outcomes):
            half = len(members) // 2
            self.width.out_of_memory(len(members))
            log.warning(
                "%s: a fused group of %d ran out of device memory; trying groups of %d (at most %d a "
                "group from now on in this worker)",
                self.tuner_id,
                len(members),
                half,
                self.width.cap,
            )
            self._train_fused(members[:half])
            self._train_fused(members[half:])
            return
        epochs = sum(len(o.history[0]) for o in outcomes if o.history)
        self.width.measured(len(members), time.perf_counter() - started, epochs)
        for (entry, lease), outcome in zip(members, outcomes, strict=True):
            if self._still_ours(entry.trial, entry.tuner_id, lease):
                self._record(entry.trial, outcome, lease.pruned, entry.tuner_id, entry.access)
                self.trials_run += 1

    def _announce(self, trial: Trial, tuner_id: str) -> None:
        values = ", ".join(f"{k}={v}" for k, v in public_values(trial.hyperparameters).items())
        log.info("%s: running trial %s (%s)", tuner_id, trial.trial_id, values)

    def _epoch_reporter(
        self, trial: Trial, tuner_id: str, lease: LeaseHandle
    ) -> Callable[[int, dict[str, float]], None]:
        """Each epoch's log line, lease report (the chief's pruning decision comes back) and metrics."""
        epoch_started = time.perf_counter()

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            nonlocal epoch_started
            now = time.perf_counter()
            shown = " ".join(f"{name}={value:.4g}" for name, value in sorted(logs.items()))
            log.info("%s: trial %s epoch %d done: %s", tuner_id, trial.trial_id, epoch + 1, shown)
            lease.report(epoch + 1, logs)
            if self.metrics is not None:
                self.metrics.report_epoch(logs, self.data.train_samples, now - epoch_started)
                self.metrics.report_device_memory(device.memory_in_use())
            epoch_started = now

        return on_epoch

    def _still_ours(self, trial: Trial, tuner_id: str, lease: LeaseHandle) -> bool:
        if lease.lost or not lease.confirm():
            log.warning(
                "%s: trial %s was taken back by the chief (lease lost); result discarded",
                tuner_id,
                trial.trial_id,
            )
            return False
        return True

    def _record(
        self,
        trial: Trial,
        outcome: Outcome,
        pruned: Pruned | None = None,
        worker: str | None = None,
        access: OracleAccess | None = None,
    ) -> None:
        """Write the trial's record (and model, when it could be among the best) and end it; as
        `worker` (a fused member's id) through `access`, this worker's own by default."""
        worker = worker or self.tuner_id
        access = access or self.access
        model_saved = False
        if not outcome.ok and out_of_memory(outcome.error):
            outcome.error = self._out_of_memory(trial, outcome.error)
        pruned = pruned if outcome.ok else None
        if pruned is not None:
            log.info(
                "%s: trial %s stopped after epoch %d (pruned): %s",
                worker,
                trial.trial_id,
                pruned.epoch,
                pruned.reason,
            )
        if outcome.ok and outcome.model is not None:
            if self.job.spec.tuner.algorithm == "hyperband":
                save_model(self.store, self._staged(trial, worker, "checkpoint.weights.h5"), outcome.model)
            # A pruned trial's model is kept only if it is the best so far (it could still be best/).
            if self._is_candidate(trial.trial_id, outcome, keep=1 if pruned else None):
                save_model(self.store, self._staged(trial, worker, "model.keras"), outcome.model)
                model_saved = True
        status: TrialStatus = "failed" if not outcome.ok else "pruned" if pruned else "completed"
        record = TrialRecord(
            trial_id=trial.trial_id,
            worker=worker,
            status=status,
            hyperparameters=public_values(trial.hyperparameters),
            inactive=inactive_names(trial.hyperparameters),
            metrics=outcome.metrics,
            best_step=outcome.best_step,
            history=outcome.history,
            error=outcome.error,
            seconds=outcome.seconds,
            model_saved=model_saved,
            pruned={"epoch": pruned.epoch, "reason": pruned.reason} if pruned else None,
            resumed=outcome.resumed,
            gpus=list(self.gpus) or None,
        )
        self.store.write_text(self._staged(trial, worker, "trial.json"), record.to_json())
        if self.metrics is not None:
            self.metrics.trials.labels(worker, record.status).inc()
        if outcome.ok:
            access.update_trial(trial.trial_id, outcome.metrics, outcome.best_step)
            for name, value in outcome.metrics.items():
                trial.metrics.update(name, value, step=outcome.best_step)
            trial.status = Status.COMPLETED
        elif out_of_memory(outcome.error):
            # The point does not fit this machine: not retried; not counted toward
            # maxConsecutiveFailedTrials by the chief (it reads the same signs in the message).
            trial.status = Status.FAILED
            trial.message = outcome.error
            self.memory_exhausted = True  # the process is replaced before its next trial
            log.warning("%s: trial %s failed: %s", worker, trial.trial_id, last_line(outcome.error))
        else:
            trial.status = Status.INVALID  # retried while spec.tuner.maxRetriesPerTrial allows
            trial.message = outcome.error
            log.warning(
                "%s: trial %s failed: %s",
                worker,
                trial.trial_id,
                last_line(outcome.error),
            )
        outcome.model = None
        access.end_trial(trial)
        # A plain Keras Tuner chief publishes nothing: the worker does, on the store it shares (a
        # worker that writes through the chief never gets here: a plain chief refuses viaChief).
        if access.plain_chief and isinstance(self.store, ArtifactStore):
            publish_attempt(self.store, trial.trial_id, worker)

    def _out_of_memory(self, trial: Trial, error: str | None) -> str:
        """The error of a trial that ran out of memory, ending with a line that names its
        hyperparameters (the leaderboard shows a record's last line)."""
        values = ", ".join(f"{k}={v}" for k, v in public_values(trial.hyperparameters).items())
        return (
            f"{(error or '').rstrip()}\n"
            f"out of memory: the model of this trial ({values}) does not fit the memory of "
            f"{self.tuner_id}; recorded as failed, not retried, not counted toward "
            "maxConsecutiveFailedTrials"
        )

    def _staged(self, trial: Trial, worker: str, name: str) -> str:
        return attempt_key(trial.trial_id, worker, name)

    def _is_candidate(self, trial_id: str, outcome: Outcome, keep: int | None = None) -> bool:
        """Could this result be among the best `keep` (`keepModels`)? Then its model is worth saving."""
        objective = self.job.spec.tuner.objective
        keep = keep or self.job.spec.output.keep_models
        value = outcome.metrics.get(objective.name)
        if value is None:
            return False
        best = self.access.get_best_trials(keep)
        return worth_saving(value, trial_id, best, keep, objective.direction)

    def _weights_of(self, trial_id: str) -> Path | None:
        key = trial_key(trial_id, "checkpoint.weights.h5")
        local = Path(self._scratch.name) / f"{trial_id}.weights.h5"
        try:
            self.store.get_file(key, local)
        except Exception as err:
            log.warning("no checkpoint for trial %s to continue from (%s); starting fresh", trial_id, err)
            return None
        return local
