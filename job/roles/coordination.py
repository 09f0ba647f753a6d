"""The chief's coordinator (or a standalone process's), built from the spec and resumed from its
snapshot."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from job import __version__
from job.kt_adapter import HyperParameters
from job.observability.metrics import SearchMetrics
from job.output.attempts import publish_attempt
from job.output.layout import trial_key
from job.output.records import chief_record
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.search.pruning import TrialPruner
from job.search.retention import ModelRetention
from job.search.snapshot import load_snapshot
from job.spec.models import JobSpec
from job.storage import Store


def build_coordinator(
    job: JobSpec, space: HyperParameters, store: Store, registry: CollectorRegistry
) -> Coordinator:
    oracle = make_oracle(job, space)
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
    coordinator = Coordinator(
        oracle,
        lease_seconds=job.spec.distribution.lease_seconds,
        max_worker_losses=job.spec.distribution.max_worker_losses,
        model_retention=ModelRetention(store, job.spec.output.keep_models),
        metrics=metrics,
        plain_lease_seconds=job.spec.distribution.plain_worker_lease_seconds,
        trial_pruner=trial_pruner(job),
    )
    coordinator.publish = lambda trial_id, worker: publish_attempt(store, trial_id, worker)
    coordinator.record = lambda trial, worker, seconds: store.write_text(
        trial_key(trial.trial_id, "trial.json"), chief_record(trial, worker, seconds).to_json()
    )
    saved = load_snapshot(store, job)
    if saved is not None:
        coordinator.restore(saved)
    return coordinator


def trial_pruner(job: JobSpec) -> TrialPruner | None:
    """The pruning rule of spec.tuner.pruning, if any (job/search/pruning.py)."""
    tuner = job.spec.tuner
    if tuner.pruning is None:
        return None
    return TrialPruner(
        tuner.pruning, tuner.objective.name, tuner.objective.direction, job.spec.training.epochs
    )
