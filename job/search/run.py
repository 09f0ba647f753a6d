"""Run a search for this process's role: standalone, chief or worker."""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from job import __version__
from job.cluster.feed import TrialFeed
from job.cluster.reporter import Reporter, reporter_for
from job.distribution.recycle import MemoryWatch
from job.environment import Chief, Environment, Standalone, Worker
from job.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SEARCH_FAILED, SearchFailed
from job.kt_adapter import HyperParameters
from job.observability.metrics import SearchMetrics, WorkerMetrics, push_summary, serve
from job.observability.report import write_report_quietly
from job.retry import Backoff
from job.search.best import promote_best
from job.search.coordinator import Coordinator
from job.search.oracles import make_oracle
from job.search.ownership import OutputLease, OutputLost, chief_silence
from job.search.pruning import TrialPruner
from job.search.results import (
    ModelPruner,
    chief_record,
    leaderboard_csv,
    public_values,
    publish_attempt,
    ranked,
)
from job.search.snapshot import Snapshotter, load_snapshot, recorded_outcome
from job.search.worker import LocalAccess, OracleAccess
from job.search.worker import Worker as TrialLoop
from job.spec.models import JobSpec, MlpModel
from job.storage import ArtifactStore, StorageError, Store
from job.storage.layout import LEADERBOARD_KEY, trial_key
from job.training import device
from job.training.data import Dataset, load_dataset
from job.training.space import BuildModel, declared_space, make_builder, search_space
from job.training.trial import check_fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    """How a search (or this process's part of it) ended."""

    role: str
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
    restart: bool = False  # a worker that outgrew its memory: run it again (job/distribution/recycle.py)


@dataclass(frozen=True)
class Options:
    """How this process runs, beyond the spec (set by the command line)."""

    spec_dir: Path | None = None
    metrics_port: int | None = None  # overrides spec.metrics.port (hptune local picks free ports)
    oracle_port: int | None = None
    registry: CollectorRegistry | None = None  # the caller's, to read progress from
    workers: int | None = None  # the chief: workers to expect, overriding spec.distribution.workers


def run(job: JobSpec, env: Environment, options: Options = Options()) -> Summary:
    role = env.role
    if isinstance(role, Worker):
        return run_worker(job, env, role, options)
    if isinstance(role, Chief):
        return run_chief(job, env, role, options)
    assert isinstance(role, Standalone)
    return run_standalone(job, env, options)


def expected_workers(job: JobSpec, workers: int | None = None) -> set[str]:
    """The worker ids the chief should hear from: tuner<k>, or tuner<k>-<slot> when packed."""
    count = workers if workers is not None else job.spec.distribution.workers
    slots = job.spec.distribution.trials_per_gpu
    if slots == 1:
        return {f"tuner{k}" for k in range(count)}
    return {f"tuner{k}-{slot}" for k in range(count) for slot in range(slots)}


def open_output(job: JobSpec) -> Store:
    """The store for spec.output: its URI, endpoint and retry budget."""
    output = job.spec.output
    return Store(
        job.output_uri, retry=Backoff(seconds=output.retry_seconds), endpoint_url=output.endpoint_url
    )


def prepare_model(job: JobSpec, data: Dataset, spec_dir: Path | None) -> tuple[BuildModel, HyperParameters]:
    """The model builder and the full search space; builds one model, so a broken builder fails
    here, before any training."""
    if job.spec.training.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    check_fit(job.spec.training, data)
    build_model = make_builder(job, data.output_units, data.input_shape, spec_dir)
    return build_model, search_space(job, build_model)


def _registry(job: JobSpec, options: Options) -> tuple[CollectorRegistry, int | None]:
    registry = options.registry or CollectorRegistry()
    port = job.spec.metrics.port if options.metrics_port is None else options.metrics_port
    return registry, serve(registry, port) if port else None


def _coordinator(
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
        model_pruner=ModelPruner(store, job.spec.output.keep_models),
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


def take_output(job: JobSpec, store: Store, identity: str) -> OutputLease:
    """The output's lease, before anything else touches the output (job/search/ownership.py)."""
    lease = OutputLease(store, identity, lease_seconds=job.spec.distribution.lease_seconds)
    lease.acquire()
    return lease


def run_standalone(job: JobSpec, env: Environment, options: Options) -> Summary:
    store = open_output(job)
    lease = take_output(
        job, store, env.chief_identity or f"standalone {socket.gethostname()} pid {os.getpid()}"
    )
    try:
        return ended_already(job, store, "standalone") or _standalone(job, env, options, store, lease)
    finally:
        lease.release()


def _standalone(
    job: JobSpec, env: Environment, options: Options, store: Store, lease: OutputLease
) -> Summary:
    store.check_writable()
    data = load_dataset(job.spec.data, env.data_dir, options.spec_dir)
    build_model, space = prepare_model(job, data, options.spec_dir)
    data = device.resident(data)
    registry, _ = _registry(job, options)
    coordinator = _coordinator(job, space, store, registry)
    worker_metrics = WorkerMetrics(registry, "tuner0")
    snapshots = Snapshotter(coordinator, store, job).start()
    lease.keep(on_lost=lambda: _stop_writing(coordinator, snapshots))
    reporter = reporter_for(env.cluster, objective=job.spec.tuner.objective.name)
    feed = TrialFeed(reporter, job.spec.tuner.objective.direction).follow(coordinator)
    loop = TrialLoop(
        "tuner0", LocalAccess(coordinator, "tuner0"), job, build_model, data, store, worker_metrics
    )
    stopped = False
    try:
        loop.run()
        _write_the_end_whole()
    except KeyboardInterrupt:
        stopped = _stopping("standalone")
    except SearchFailed:
        pass
    except StorageError as err:
        coordinator.fail(str(err), final=False)  # finish() still writes the leaderboard, locally if need be
    finally:
        feed.stop()
        snapshots.stop()
    return _conclude(job, coordinator, store, registry, "standalone", stopped, lease, reporter)


def run_chief(job: JobSpec, env: Environment, role: Chief, options: Options) -> Summary:
    store = open_output(job)
    dist = job.spec.distribution
    port = options.oracle_port or role.port or dist.oracle_port
    lease = take_output(job, store, env.chief_identity or f"chief {socket.gethostname()}:{port}")
    try:
        return ended_already(job, store, "chief") or _chief(job, env, role, options, store, lease, port)
    finally:
        lease.release()


def _chief(
    job: JobSpec, env: Environment, role: Chief, options: Options, store: Store, lease: OutputLease, port: int
) -> Summary:
    from job.distribution.chief import serve_oracle

    store.check_writable()
    if not isinstance(job.spec.model, MlpModel):
        # The builder (or HyperModel) may declare hyperparameters of its own; import it and discover them.
        space = search_space(job, make_builder(job, 0, (), options.spec_dir))
    else:
        space = declared_space(job)
    registry, _ = _registry(job, options)
    coordinator = _coordinator(job, space, store, registry)
    # Workers that have not shown up yet still hear "stop" (within lingerSeconds) when it ends.
    coordinator.awaited |= expected_workers(job, options.workers)
    snapshots = Snapshotter(coordinator, store, job).start()
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
        _write_the_end_whole()  # the search is over: what follows writes its end
    except KeyboardInterrupt:  # SIGTERM: a deadline, a drain; keep what is done
        stopped = _stopping("chief")
    finally:
        feed.stop()
        snapshots.stop()
    return _conclude(job, coordinator, store, registry, "chief", stopped, lease, reporter)


def _conclude(
    job: JobSpec,
    coordinator: Coordinator,
    store: Store,
    registry: CollectorRegistry,
    role: str,
    stopped: bool,
    lease: OutputLease,
    reporter: Reporter,
) -> Summary:
    """The end of a chief's (or standalone process's) search: nothing more written when another
    chief took the output over; else `finish`, and the cluster told only of an ended search (a
    chief that failed on its infrastructure is restarted and resumes)."""
    if lease.lost.is_set():
        raise OutputLost(f"another chief took over {store.uri}; this {role} stopped without writing more")
    summary = finish(job, coordinator, store, registry, role=role, stopped=stopped)
    if summary.exit_code in (EXIT_OK, EXIT_SEARCH_FAILED):
        reporter.search_ended(summary.ok, summary.reason)
    return summary


def run_worker(job: JobSpec, env: Environment, role: Worker, options: Options) -> Summary:
    from job.distribution.relay import ChiefStore
    from job.distribution.remote import RemoteOracle

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
    store: ArtifactStore = shared if shared is not None else ChiefStore(access, job.output_uri)
    try:
        return _worker(job, env, role, options, store, access)
    finally:
        access.close()


def _worker(
    job: JobSpec, env: Environment, role: Worker, options: Options, store: ArtifactStore, access: OracleAccess
) -> Summary:
    if (ended := ended_already(job, store, role.tuner_id)) is not None:
        return ended
    if env.restarts:
        log.info(
            "%s: restarted (%d) with its memory released; going on with the search",
            role.tuner_id,
            env.restarts,
        )
    data = load_dataset(job.spec.data, env.data_dir, options.spec_dir)
    build_model, _ = prepare_model(job, data, options.spec_dir)
    data = device.resident(data)
    registry, _ = _registry(job, options)
    metrics = WorkerMetrics(registry, role.tuner_id)
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
    )
    count = loop.run()
    return Summary(
        role=role.tuner_id, ok=True, trials_completed=count, output=store.url(""), restart=loop.outgrown
    )


def _stop_writing(coordinator: Coordinator, snapshots: Snapshotter) -> None:
    """Another chief holds the output now: write nothing more, end the trial loop."""
    snapshots.stop(wait=False)
    coordinator.fail("another chief took over this search's output")


def ended_already(job: JobSpec, store: ArtifactStore, role: str) -> Summary | None:
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
    log.info("%s: this search has already completed (%s); nothing to do", role, store.url("search.json"))
    return Summary(role=role, ok=True, reason="the search had already completed", output=store.url(""))


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


def _write_the_end_whole() -> None:
    """Once the search is over, a SIGTERM is ignored: the leaderboard, best/ and search.json are
    written whole within the grace period (a JobSet deletes the chief's Job as soon as a worker's
    exit 3 fails it, while the chief is writing the failed search's end)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stopping(role: str) -> bool:
    """A stop signal arrived: finish what is done (best/ from the completed trials), once."""
    _write_the_end_whole()  # a second SIGTERM must not cut best/ in half
    log.warning("%s: stopping (a signal): writing best/ from the trials completed so far", role)
    return True


def finish(
    job: JobSpec,
    coordinator: Coordinator,
    store: Store,
    registry: CollectorRegistry,
    role: str,
    stopped: bool = False,
) -> Summary:
    """Write the leaderboard and best/, the final search.json and the metrics summary.

    The state recorded (and the exit code) follows the exit-code contract: succeeded (0); failed
    for good (3: too many failed trials, none completed), which no chief runs again; interrupted
    (1: storage failed), which a restarted chief resumes; stopped by a signal (130: best/ holds the
    best trial completed so far), which a new chief resumes too.
    """
    objective = job.spec.tuner.objective
    trials = coordinator.trials()
    pruned = coordinator.trial_pruner.pruned if coordinator.trial_pruner is not None else None
    board = leaderboard_csv(trials, objective.name, objective.direction, pruned)
    local_copy: str | None = None
    best = next(
        (t for t in ranked(trials, objective.direction) if t.score is not None and t.status == "COMPLETED"),
        None,
    )
    if coordinator.failure is None and best is None and not stopped:
        coordinator.fail("no trial completed; see the trial errors in the log and trials/*/trial.json")
    failure = coordinator.failure
    state = "succeeded" if failure is None else ("failed" if coordinator.failure_final else "interrupted")
    if stopped and failure is None:
        state, failure = "stopped", "stopped by a signal before the search ended"
    try:
        store.write_text(LEADERBOARD_KEY, board)
        if coordinator.model_pruner is not None:
            coordinator.model_pruner.sweep(trials, objective.direction)
        if state in ("succeeded", "stopped") and best is not None:
            promote_best(store, best, trials, objective.name, objective.direction, _card(job, coordinator))
        Snapshotter(coordinator, store, job).write(state)
        write_report_quietly(store)  # report.html beside best/; a failure is logged, never raised
    except StorageError as err:
        coordinator.fail(str(err), final=False)
        failure, state = coordinator.failure or str(err), "interrupted"
        local_copy = _keep_locally(job, board)
        if local_copy is not None:
            log.error("%s; the leaderboard is saved locally at %s", err, local_copy)
        try:  # search.json ends in the state the process exits with, where the store still allows
            Snapshotter(coordinator, store, job).write(state)
        except StorageError as again:
            log.error("cannot record the state in search.json either: %s", again)
    if coordinator.metrics is not None:
        coordinator.metrics.end(failed=failure is not None)
    push = job.spec.metrics.pushgateway
    if push is not None:
        push_summary(registry, push.url, job.name, push.timeout_seconds)
    return Summary(
        role=role,
        ok=failure is None,
        reason=failure,
        trials_completed=sum(1 for t in trials if t.status == "COMPLETED"),
        trials_failed=sum(1 for t in trials if t.status == "FAILED"),
        best_trial=best.trial_id if best else None,
        best_score=best.score if best else None,
        best_hyperparameters=public_values(best.hyperparameters) if best else None,
        output=store.url(""),
        local_leaderboard=local_copy,
        exit_code={"succeeded": EXIT_OK, "failed": EXIT_SEARCH_FAILED, "stopped": EXIT_INTERRUPTED}.get(
            state, EXIT_FAILED
        ),
    )


def _keep_locally(job: JobSpec, board: str) -> str | None:
    """The leaderboard in the temporary directory (TMPDIR), when the output cannot take it; the
    working directory may be read-only (a pod's)."""
    name = f"hptune-{job.name}-leaderboard-{time.strftime('%Y%m%dT%H%M%S')}.csv"
    path = Path(tempfile.gettempdir()) / name
    try:
        path.write_text(board)
    except OSError as err:
        log.error("cannot keep the leaderboard locally either (%s): %s", path, err)
        return None
    return str(path)


def _card(job: JobSpec, coordinator: Coordinator) -> dict[str, object]:
    return {
        "name": job.name,
        "dataset": f"{job.spec.data.source} ({job.spec.data.model_dump(by_alias=True, exclude_none=True)})",
        "space": [hp.model_dump(by_alias=True, exclude_none=True) for hp in job.spec.hyperparameters],
        "version": __version__,
    }
