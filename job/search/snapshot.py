"""The chief's state under `state/`, and the live `search.json`, written off the request path.

`state/snapshot.json` is one object, written whole (a rename locally, one PUT on an object
store), each time the search's state changes; a writer thread coalesces bursts of changes, so an
RPC never waits for storage. A chief started again on the same output resumes from it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from job.errors import BadInput
from job.output.layout import SEARCH_STATUS_KEY, SNAPSHOT_KEY
from job.output.leaderboard import ranked
from job.output.records import finite_json, public_values
from job.search.coordinator import Coordinator
from job.spec.models import JobSpec
from job.storage import StorageError, Store, WorkerStore

log = logging.getLogger(__name__)


class ResumeConflict(BadInput):
    """The output holds a search started from a different spec."""


def load_snapshot(store: Store, job: JobSpec) -> dict[str, Any] | None:
    """The saved state of this search, or None for a fresh start."""
    try:
        text = store.read_text(SNAPSHOT_KEY)
    except FileNotFoundError:
        return None
    saved = json.loads(text)
    if saved.get("fingerprint") != job.fingerprint():
        raise ResumeConflict(
            f"{store.url('')} holds a search started from a different spec (its name or "
            f"search settings changed: fingerprint {saved.get('fingerprint')} there, "
            f"{job.fingerprint()} now). To start fresh, delete {store.url('state')} (and the old "
            "results) or set spec.output.uri to a new location; to resume, run the original spec"
        )
    return saved["state"]


TERMINAL_STATES = ("succeeded", "failed")


@dataclass(frozen=True)
class Outcome:
    """How a search ended, as recorded in its output: `state` succeeded or failed, and why."""

    state: str
    reason: str | None = None


def recorded_outcome(store: WorkerStore, job: JobSpec) -> Outcome | None:
    """The end this search (same spec) recorded, from its snapshot or search.json; None while it
    has not ended. A chief or worker started on an ended search leaves with that outcome."""
    for key in (SNAPSHOT_KEY, SEARCH_STATUS_KEY):
        try:
            saved = json.loads(store.read_text(key))
        except (FileNotFoundError, StorageError, ValueError) as err:
            log.debug("no recorded outcome in %s: %s", key, err)
            continue
        if saved.get("fingerprint") != job.fingerprint():
            continue
        ended = saved.get("outcome") if key == SNAPSHOT_KEY else saved
        if isinstance(ended, dict) and ended.get("state") in TERMINAL_STATES:
            return Outcome(str(ended["state"]), ended.get("reason"))
    return None


def search_status(coordinator: Coordinator, job: JobSpec, state: str) -> dict[str, Any]:
    trials = coordinator.trials()
    objective = job.spec.tuner.objective
    counts: dict[str, int] = {}
    for trial in trials:
        key = str(trial.status).lower()
        counts[key] = counts.get(key, 0) + 1
    best = next((t for t in ranked(trials, objective.direction) if t.status == "COMPLETED"), None)
    return finite_json(
        {
            "name": job.name,
            "state": state,
            "reason": coordinator.failure,
            "stoppedEarly": getattr(coordinator.oracle, "stopped_early", None),
            "fingerprint": job.fingerprint(),
            "maxTrials": coordinator.oracle.max_trials,
            "trials": counts,
            "best": None
            if best is None
            else {
                "trialId": best.trial_id,
                objective.name: best.score,
                "hyperparameters": public_values(best.hyperparameters),
            },
            "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "spec": job.model_dump(mode="json", by_alias=True),
        }
    )


class Snapshotter:
    """Writes the snapshot and search.json of a coordinator's search: after each change, in a
    background thread, from `start` until `stop`; at once when a trial ends (`flush`, through the
    coordinator's events, job/roles/coordination.py); and the end of the search (`write`)."""

    def __init__(self, store: Store, job: JobSpec, interval: float = 0.5) -> None:
        self.coordinator: Coordinator | None = None
        self.store = store
        self.job = job
        self.interval = interval
        self.written = -1
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hptune-snapshot", daemon=True)

    def start(self, coordinator: Coordinator) -> Snapshotter:
        """Follow the coordinator's search until `stop`."""
        self.coordinator = coordinator
        self._thread.start()
        return self

    def _loop(self) -> None:
        coordinator = self._following()
        seen = reported = coordinator.version
        while not self._stop.is_set():
            seen = coordinator.wait_for_change(seen, timeout=1.0)
            if seen == reported:
                continue
            reported = seen
            try:
                self.write("running")
            except StorageError as err:
                coordinator.fail(f"cannot save the search state: {err}", final=False)
                return
            self._stop.wait(self.interval)

    def flush(self, outcome: Outcome | None = None) -> None:
        """Make the current state durable (called when a trial ends, before the worker is told).

        Concurrent callers share one write: whoever finds the state already written returns.
        With an `outcome`, the snapshot records that the search ended, always written; without
        one, nothing is written once the snapshotter has stopped (another chief may own the output).
        """
        if outcome is None and (self._stop.is_set() or self.coordinator is None):
            return
        self._write_snapshot(outcome)

    def _write_snapshot(self, outcome: Outcome | None) -> None:
        coordinator = self._following()
        version = coordinator.version
        with self._write_lock:
            if self.written >= version and outcome is None:
                return
            version = coordinator.version
            text = coordinator.snapshot_text()
            head: dict[str, Any] = {"fingerprint": self.job.fingerprint(), "name": self.job.name}
            if outcome is not None:
                head["outcome"] = {"state": outcome.state, "reason": outcome.reason}
            encoded = json.dumps(head)
            self.store.write_text(SNAPSHOT_KEY, f'{encoded[:-1]}, "state": {text}}}')
            self.written = version

    def write(self, state: str) -> None:
        """The snapshot and search.json, with the search's state: running; succeeded or failed
        (terminal: recorded in the snapshot too); interrupted or stopped (a restarted chief
        resumes)."""
        coordinator = self._following()
        terminal = Outcome(state, coordinator.failure) if state in TERMINAL_STATES else None
        self._write_snapshot(terminal)
        status = search_status(coordinator, self.job, state)
        self.store.write_text(SEARCH_STATUS_KEY, json.dumps(status, indent=2))

    def stop(self, wait: bool = True) -> None:
        """No more writes from here on (a write under way finishes); wait for the thread."""
        self._stop.set()
        if wait and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    def _following(self) -> Coordinator:
        if self.coordinator is None:
            raise RuntimeError("Snapshotter.start(coordinator) was never called")
        return self.coordinator
