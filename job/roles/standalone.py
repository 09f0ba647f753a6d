"""A standalone search: the coordinator and one trial loop in this process (no `KERASTUNER_*`
variables)."""

from __future__ import annotations

import os
import socket

from job.cluster.feed import TrialFeed
from job.cluster.reporter import reporter_for
from job.environment import Environment
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
    stopping,
    take_output,
    write_the_end_whole,
)
from job.roles.coordination import build_search
from job.roles.ending import conclude
from job.search.coordinator import Coordinator
from job.search.ownership import OutputLease
from job.search.snapshot import Snapshotter
from job.search.worker import LocalAccess, TrialLoop
from job.spec.models import JobSpec
from job.storage import StorageError, Store
from job.training import device
from job.training.data import load_dataset


def run_standalone(job: JobSpec, env: Environment, options: Options) -> Summary:
    store = open_output(job)
    lease = take_output(
        job, store, env.chief_identity or f"standalone {socket.gethostname()} pid {os.getpid()}"
    )
    try:
        return ended_already(job, store, env.role) or _standalone(job, env, options, store, lease)
    finally:
        lease.release()


def _standalone(
    job: JobSpec, env: Environment, options: Options, store: Store, lease: OutputLease
) -> Summary:
    store.check_writable()
    data = load_dataset(job.spec.data, env.data_dir, options.spec_dir)
    replicas, data = data_parallel(job, data)
    build_model, space = prepare_model(job, data, options.spec_dir)
    data = device.resident(data)
    registry, _ = metrics_registry(job, options)
    search = build_search(job, space, store, registry)
    coordinator, snapshots = search.coordinator, search.snapshots
    worker_metrics = WorkerMetrics(registry, "tuner0", [gpu.dcgm_labels() for gpu in options.gpus])
    snapshots.start(coordinator)
    lease.keep(on_lost=lambda: stop_writing(coordinator, snapshots))
    reporter = reporter_for(env.cluster, objective=job.spec.tuner.objective.name)
    feed = TrialFeed(reporter, job.spec.tuner.objective.direction).follow(coordinator)
    loop = TrialLoop(
        "tuner0",
        LocalAccess(coordinator, "tuner0"),
        job,
        build_model,
        data,
        store,
        worker_metrics,
        gpus=tuple(gpu.uuid for gpu in options.gpus),
        replicas=replicas,
    )
    stopped = False
    try:
        loop.run()
        write_the_end_whole()
    except KeyboardInterrupt:
        stopped = stopping("standalone")
    except SearchFailed:
        pass
    except StorageError as err:
        coordinator.fail(str(err), final=False)  # finish() still writes the leaderboard, locally if need be
    finally:
        feed.stop()
        snapshots.stop()
    return conclude(job, search, env.role, stopped, lease, reporter)


def stop_writing(coordinator: Coordinator, snapshots: Snapshotter) -> None:
    """Another chief holds the output now: write nothing more, end the trial loop."""
    snapshots.stop(wait=False)
    coordinator.fail("another chief took over this search's output")
