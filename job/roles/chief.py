"""The chief: the coordinator behind Keras Tuner's gRPC oracle service, until the search ends."""

from __future__ import annotations

import socket

from job.cluster.feed import TrialFeed
from job.cluster.reporter import reporter_for
from job.environment import Chief, Environment
from job.roles.common import (
    Options,
    Summary,
    ended_already,
    metrics_registry,
    open_output,
    stopping,
    take_output,
    write_the_end_whole,
)
from job.roles.coordination import build_search
from job.roles.ending import conclude
from job.search.ownership import OutputLease
from job.spec.model import MlpModel
from job.spec.models import JobSpec
from job.storage import Store
from job.training.space import declared_space, make_builder, search_space
from job.wire.chief import serve_oracle


def expected_workers(job: JobSpec, workers: int | None = None) -> set[str]:
    """The worker ids the chief should hear from: tuner<k>, or tuner<k>-<slot> when packed."""
    count = workers if workers is not None else job.spec.distribution.workers
    slots = job.spec.distribution.trials_per_gpu
    if slots == 1:
        return {f"tuner{k}" for k in range(count)}
    return {f"tuner{k}-{slot}" for k in range(count) for slot in range(slots)}


def run_chief(job: JobSpec, env: Environment, role: Chief, options: Options) -> Summary:
    store = open_output(job)
    dist = job.spec.distribution
    port = options.oracle_port or role.port or dist.oracle_port
    lease = take_output(job, store, env.chief_identity or f"chief {socket.gethostname()}:{port}")
    try:
        return ended_already(job, store, role) or _chief(job, env, role, options, store, lease, port)
    finally:
        lease.release()


def _chief(
    job: JobSpec, env: Environment, role: Chief, options: Options, store: Store, lease: OutputLease, port: int
) -> Summary:
    store.check_writable()
    if not isinstance(job.spec.model, MlpModel):
        # The builder (or HyperModel) may declare hyperparameters of its own; import it and discover them.
        space = search_space(job, make_builder(job, 0, (), options.spec_dir))
    else:
        space = declared_space(job)
    registry, _ = metrics_registry(job, options)
    search = build_search(job, space, store, registry)
    coordinator, snapshots = search.coordinator, search.snapshots
    # Workers that have not shown up yet still hear "stop" (within lingerSeconds) when it ends.
    coordinator.awaited |= expected_workers(job, options.workers)
    snapshots.start(coordinator)
    lease.keep(on_lost=lambda: snapshots.stop(wait=False))
    dist = job.spec.distribution
    address = role.address or dist.bind_address
    reporter = reporter_for(env.cluster, objective=job.spec.tuner.objective.name)
    feed = TrialFeed(reporter, job.spec.tuner.objective.direction).follow(coordinator)
    stopped = False
    try:
        serve_oracle(
            coordinator,
            address,
            port,
            linger_seconds=dist.linger_seconds,
            should_stop=lease.lost.is_set,
            startup_timeout=dist.startup_timeout_seconds,
            artifacts=store if job.spec.output.via_chief else None,
        )
        write_the_end_whole()  # the search is over: what follows writes its end
    except KeyboardInterrupt:  # SIGTERM: a deadline, a drain; keep what is done
        stopped = stopping("chief")
    finally:
        feed.stop()
        snapshots.stop()
    return conclude(job, search, role, stopped, lease, reporter)
