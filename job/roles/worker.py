"""A worker: trials from the chief, trained here, results staged where the chief publishes them."""

from __future__ import annotations

import logging

from job.environment import Environment, Worker
from job.errors import SearchFailed
from job.observability.metrics import WorkerMetrics
from job.roles.common import (
    Options,
    Summary,
    data_parallel,
    ended_already,
    metrics_registry,
    open_output,
    prepare_model,
)
from job.search.ownership import chief_silence
from job.search.snapshot import recorded_outcome
from job.search.worker import OracleAccess, TrialLoop
from job.spec.models import JobSpec
from job.storage import Store, WorkerStore
from job.supervision.recycle import MemoryWatch
from job.training import device
from job.training.data import load_dataset
from job.wire.relay import ChiefStore
from job.wire.remote import RemoteOracle

log = logging.getLogger(__name__)


def run_worker(job: JobSpec, env: Environment, role: Worker, options: Options) -> Summary:
    dist = job.spec.distribution
    # With viaChief the output is the chief's alone: when the chief is gone there is nothing to read
    # the end of the search from, so an unreachable chief is waited for (chiefWaitSeconds).
    shared = None if job.spec.output.via_chief else open_output(job)
    if shared is not None:
        shared.check_writable()
    access = RemoteOracle(
        role.target,
        role.tuner_id,
        wait_seconds=dist.chief_wait_seconds,
        heartbeat_seconds=dist.heartbeat_seconds,
        search_ended=lambda: shared is not None and search_over(job, shared),
        pruning=job.spec.tuner.pruning is not None,
    )
    store: WorkerStore = shared if shared is not None else ChiefStore(access, job.output_uri)
    try:
        return _worker(job, env, role, options, store, access)
    finally:
        access.close()


def _worker(
    job: JobSpec, env: Environment, role: Worker, options: Options, store: WorkerStore, access: OracleAccess
) -> Summary:
    if (ended := ended_already(job, store, role)) is not None:
        return ended
    if env.restarts:
        log.info(
            "%s: restarted (%d) with its memory released; going on with the search",
            role.tuner_id,
            env.restarts,
        )
    data = load_dataset(job.spec.data, env.data_dir, options.spec_dir)
    replicas, data = data_parallel(job, data)
    build_model, _ = prepare_model(job, data, options.spec_dir)
    data = device.resident(data)
    registry, _ = metrics_registry(job, options)
    metrics = WorkerMetrics(registry, role.tuner_id, [gpu.dcgm_labels() for gpu in options.gpus])
    dist = job.spec.distribution
    loop = TrialLoop(
        role.tuner_id,
        access,
        job,
        build_model,
        data,
        store,
        metrics,
        idle_seconds=min(1.0, dist.heartbeat_seconds),
        idle_max_seconds=dist.heartbeat_seconds,
        memory=MemoryWatch(dist.restart_on_memory_growth),
        gpus=tuple(gpu.uuid for gpu in options.gpus),
        replicas=replicas,
    )
    count = loop.run()
    return Summary(role=role, ok=True, trials_completed=count, output=store.url(""), restart=loop.outgrown)


def search_over(job: JobSpec, store: Store) -> bool:
    """Asked by a worker that cannot reach its chief between trials: True when the search ended
    well (the worker leaves, exit 0). Raises SearchFailed when it failed, or when no chief has
    renewed its lease on the output for `distribution.chiefGoneSeconds` (the chief Job is gone)."""
    ended = recorded_outcome(store, job)
    if ended is not None:
        if ended.state == "failed":
            raise SearchFailed(f"the search failed: {ended.reason or 'no reason recorded'}")
        return True
    silent = chief_silence(store)
    limit = job.spec.distribution.chief_gone_seconds
    if silent is not None and silent > limit:
        raise SearchFailed(
            f"no chief has renewed its lease on {store.uri} for {silent:.0f} s "
            f"(spec.distribution.chiefGoneSeconds {limit:g}): its Job is gone; this worker leaves"
        )
    return False
