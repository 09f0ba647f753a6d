"""The chief's coordinator (or a standalone process's), built from the spec with its collaborators
(metrics, model retention, trial pruning, the events that write the output, TensorBoard logs among
them) and resumed from its snapshot."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from job import __version__
from job.kt_adapter import HyperParameters, Oracle, Trial
from job.observability.metrics import SearchMetrics
from job.observability.tensorboard import TensorBoardLogs
from job.output.attempts import publish_attempt, publish_checkpoint
from job.output.layout import trial_key
from job.output.records import chief_record
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.search.pruning import TrialPruner
from job.search.retention import ModelRetention
from job.search.snapshot import Snapshotter, load_snapshot
from job.spec.models import JobSpec
from job.storage import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputEvents:
    """The coordinator's events, written to the output: a counted attempt published as the
    trial's own, the chief's record of a plain worker's trial, the state made durable."""

    store: Store
    snapshots: Snapshotter
    tensorboard: TensorBoardLogs | None = None

    def attempt_counted(self, trial_id: str, tuner_id: str) -> None:
        publish_attempt(self.store, trial_id, tuner_id)
        if self.tensorboard is not None:
            self.tensorboard.trial_ended(
                lambda: json.loads(self.store.read_text(trial_key(trial_id, "trial.json")))
            )

    def plain_trial_recorded(self, trial: Trial, tuner_id: str, seconds: float | None) -> None:
        record = chief_record(trial, tuner_id, seconds).to_json()
        self.store.write_text(trial_key(trial.trial_id, "trial.json"), record)
        if self.tensorboard is not None:
            self.tensorboard.trial_ended(lambda: json.loads(record))

    def trial_ended(self) -> None:
        self.snapshots.flush()

    def trial_requeued(self, trial_id: str, tuner_id: str) -> None:
        if publish_checkpoint(self.store, trial_id, tuner_id):
            log.info(
                "trial %s: %s's last checkpoint is the trial's now, to continue from", trial_id, tuner_id
            )


@dataclass(frozen=True)
class Search:
    """A chief's (or standalone process's) search and everything that writes or counts it."""

    coordinator: Coordinator
    store: Store
    snapshots: Snapshotter  # started by the role once it serves the search
    metrics: SearchMetrics
    registry: CollectorRegistry
    model_retention: ModelRetention
    trial_pruner: TrialPruner | None


def build_search(
    job: JobSpec,
    space: HyperParameters,
    store: Store,
    registry: CollectorRegistry,
    oracle: Oracle | None = None,
) -> Search:
    """The coordinator with its collaborators, resumed from the output's snapshot if there is one.
    `oracle`: the one to coordinate, when not spec.tuner's (a benchmark's stock Keras Tuner oracle)."""
    oracle = oracle or make_oracle(job, space)
    tuner = job.spec.tuner
    metrics = SearchMetrics(
        registry,
        job.name,
        tuner.algorithm,
        tuner.objective.name,
        tuner.objective.direction,
        oracle.max_trials,
        __version__,
    )
    snapshots = Snapshotter(store, job)
    retention = ModelRetention(store, job.spec.output.keep_models)
    pruner = trial_pruner(job)
    tensorboard = None
    if job.spec.output.tensorboard:
        tensorboard = TensorBoardLogs(store, job.spec.hyperparameters, tuner.objective)
    coordinator = Coordinator(
        oracle,
        lease_seconds=job.spec.distribution.lease_seconds,
        max_worker_losses=job.spec.distribution.max_worker_losses,
        model_retention=retention,
        metrics=metrics,
        plain_lease_seconds=job.spec.distribution.plain_worker_lease_seconds,
        trial_pruner=pruner,
        events=OutputEvents(store, snapshots, tensorboard),
        spare_workers=job.spec.distribution.spare_workers,
    )
    saved = load_snapshot(store, job)
    if saved is not None:
        coordinator.restore(saved)
    return Search(coordinator, store, snapshots, metrics, registry, retention, pruner)


def trial_pruner(job: JobSpec) -> TrialPruner | None:
    """The pruning rule of spec.tuner.pruning, if any (job/search/pruning.py)."""
    tuner = job.spec.tuner
    if tuner.pruning is None:
        return None
    return TrialPruner(
        tuner.pruning, tuner.objective.name, tuner.objective.direction, job.spec.training.epochs
    )
