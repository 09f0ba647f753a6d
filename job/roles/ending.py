"""The end of a search, as the chief (or a standalone process) writes it: the leaderboard, best/,
the final search.json and the metrics summary, with the exit code of the contract."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from job import __version__
from job.cluster.reporter import Reporter
from job.environment import Role, role_name
from job.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SEARCH_FAILED
from job.observability.metrics import push_summary
from job.observability.report import write_report_quietly
from job.output.layout import LEADERBOARD_KEY
from job.output.leaderboard import leaderboard_csv, ranked
from job.output.records import public_values
from job.roles.common import (
    Summary,
)
from job.roles.coordination import Search
from job.search.best import promote_best
from job.search.ownership import OutputLease, OutputLost
from job.spec.models import JobSpec
from job.storage import StorageError

log = logging.getLogger(__name__)


def conclude(
    job: JobSpec,
    search: Search,
    role: Role,
    stopped: bool,
    lease: OutputLease,
    reporter: Reporter,
) -> Summary:
    """The end of a chief's (or standalone process's) search: nothing more written when another
    chief took the output over; else `finish`, and the cluster told only of an ended search (a
    chief that failed on its infrastructure is restarted and resumes)."""
    if lease.lost.is_set():
        raise OutputLost(
            f"another chief took over {search.store.uri}; this {role_name(role)} stopped without writing more"
        )
    summary = finish(job, search, role=role, stopped=stopped)
    if summary.exit_code in (EXIT_OK, EXIT_SEARCH_FAILED):
        reporter.search_ended(summary.ok, summary.reason)
    return summary


def finish(job: JobSpec, search: Search, role: Role, stopped: bool = False) -> Summary:
    """Write the leaderboard and best/, the final search.json and the metrics summary.

    The state recorded (and the exit code) follows the exit-code contract: succeeded (0); failed
    for good (3: too many failed trials, none completed), which no chief runs again; interrupted
    (1: storage failed), which a restarted chief resumes; stopped by a signal (130: best/ holds the
    best trial completed so far), which a new chief resumes too.
    """
    coordinator, store = search.coordinator, search.store
    objective = job.spec.tuner.objective
    trials = coordinator.trials()
    pruned = search.trial_pruner.pruned if search.trial_pruner is not None else None
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
        search.model_retention.sweep(trials, objective.direction)
        if state in ("succeeded", "stopped") and best is not None:
            promote_best(store, best, trials, objective.name, objective.direction, _card(job))
        search.snapshots.write(state)
        write_report_quietly(store)  # report.html beside best/; a failure is logged, never raised
    except StorageError as err:
        coordinator.fail(str(err), final=False)
        failure, state = coordinator.failure or str(err), "interrupted"
        local_copy = _keep_locally(job, board)
        if local_copy is not None:
            log.error("%s; the leaderboard is saved locally at %s", err, local_copy)
        try:  # search.json ends in the state the process exits with, where the store still allows
            search.snapshots.write(state)
        except StorageError as again:
            log.error("cannot record the state in search.json either: %s", again)
    search.metrics.end(failed=failure is not None)
    push = job.spec.metrics.pushgateway
    if push is not None:
        push_summary(search.registry, push.url, job.name, push.timeout_seconds)
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


def _card(job: JobSpec) -> dict[str, object]:
    return {
        "name": job.name,
        "dataset": f"{job.spec.data.source} ({job.spec.data.model_dump(by_alias=True, exclude_none=True)})",
        "space": [hp.model_dump(by_alias=True, exclude_none=True) for hp in job.spec.hyperparameters],
        "version": __version__,
    }
