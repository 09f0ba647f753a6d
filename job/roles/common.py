"""What every role shares: the end-of-run summary, options from the command line, the output
store and its lease, the model builder, the metrics registry, and a search that already ended."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from job.environment import Role, role_name
from job.errors import EXIT_OK, SearchFailed
from job.kt_adapter import HyperParameters
from job.observability.metrics import serve
from job.retry import Backoff
from job.search.ownership import OutputLease
from job.search.snapshot import recorded_outcome
from job.spec.models import JobSpec
from job.storage import Store, WorkerStore
from job.supervision.gpus import Gpu
from job.training import device
from job.training.data import Dataset
from job.training.device import Replicas
from job.training.space import BuildModel, make_builder, search_space
from job.training.trial import check_fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    """How a search (or this process's part of it) ended."""

    role: Role
    ok: bool
    reason: str | None = None
    trials_completed: int = 0
    trials_failed: int = 0
    best_trial: str | None = None
    best_score: float | None = None
    best_hyperparameters: dict[str, object] | None = None
    output: str = ""
    local_leaderboard: str | None = None
    exit_code: int = EXIT_OK  # the contract's code for how this process's part ended
    restart: bool = False  # a worker that outgrew its memory: run it again (job/supervision/recycle.py)


@dataclass(frozen=True)
class Options:
    """How this process runs, beyond the spec (set by the command line)."""

    spec_dir: Path | None = None
    metrics_port: int | None = None  # overrides spec.metrics.port (hptune local picks free ports)
    oracle_port: int | None = None
    registry: CollectorRegistry | None = None  # the caller's, to read progress from
    workers: int | None = None  # the chief: workers to expect, overriding spec.distribution.workers
    gpus: tuple[Gpu, ...] = ()  # the GPUs this process trains on (job/supervision/gpus.py)


def open_output(job: JobSpec) -> Store:
    """The store for spec.output: its URI, endpoint and retry budget."""
    output = job.spec.output
    return Store(
        job.output_uri, retry=Backoff(seconds=output.retry_seconds), endpoint_url=output.endpoint_url
    )


def data_parallel(job: JobSpec, data: Dataset) -> tuple[Replicas | None, Dataset]:
    """With spec.distribution.gpusPerTrial above 1: each trial of this process trained over that
    many of its GPUs, and the data cut to split evenly across them."""
    count = job.spec.distribution.gpus_per_trial
    if count == 1:
        return None, data
    replicas = device.data_parallel(count)
    return replicas, replicas.trim(data)


def prepare_model(job: JobSpec, data: Dataset, spec_dir: Path | None) -> tuple[BuildModel, HyperParameters]:
    """The model builder and the full search space; builds one model, so a broken builder fails
    here, before any training."""
    if job.spec.training.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    check_fit(job.spec.training, data, job.spec.distribution.fuse_trials != 1)
    build_model = make_builder(job, data.output_units, data.input_shape, spec_dir, data.train_samples)
    return build_model, search_space(job, build_model)


def metrics_registry(job: JobSpec, options: Options) -> tuple[CollectorRegistry, int | None]:
    registry = options.registry or CollectorRegistry()
    port = job.spec.metrics.port if options.metrics_port is None else options.metrics_port
    return registry, serve(registry, port) if port else None


def take_output(job: JobSpec, store: Store, identity: str) -> OutputLease:
    """The output's lease, before anything else touches the output (job/search/ownership.py)."""
    lease = OutputLease(store, identity, lease_seconds=job.spec.distribution.lease_seconds)
    lease.acquire()
    return lease


def ended_already(job: JobSpec, store: WorkerStore, role: Role) -> Summary | None:
    """A search that recorded its end is never run again: a chief (or worker) started on it leaves
    at once with that outcome (a Job retrying a failed chief does not bring the search back)."""
    ended = recorded_outcome(store, job)
    if ended is None:
        return None
    if ended.state == "failed":
        raise SearchFailed(
            f"it had already failed before this process started ({ended.reason or 'no reason recorded'}); "
            "a search that failed is not run again. "
            f"To run it anew, give it another spec.output.uri or delete {store.url('')}"
        )
    log.info(
        "%s: this search has already completed (%s); nothing to do", role_name(role), store.url("search.json")
    )
    return Summary(role=role, ok=True, reason="the search had already completed", output=store.url(""))


def write_the_end_whole() -> None:
    """Once the search is over, a SIGTERM is ignored: the leaderboard, best/ and search.json are
    written whole within the grace period (a JobSet deletes the chief's Job as soon as a worker's
    exit 3 fails it, while the chief is writing the failed search's end)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stopping(role: str) -> bool:
    """A stop signal arrived: finish what is done (best/ from the completed trials), once."""
    write_the_end_whole()  # a second SIGTERM must not cut best/ in half
    log.warning("%s: stopping (a signal): writing best/ from the trials completed so far", role)
    return True
