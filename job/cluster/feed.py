"""From the chief's trials to cluster reports: progress on every change, an Event for each trial
that failed and for each new best trial."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from job.cluster.reporter import Reporter
from job.spec.objective import Direction, best_of

log = logging.getLogger(__name__)


class TrialLike(Protocol):
    """What `TrialFeed` reads of a Keras Tuner trial."""

    trial_id: str
    status: str
    score: float | None
    message: str | None


class Watchable(Protocol):
    """What `TrialFeed.follow` reads of the chief's coordinator."""

    def wait_for_change(self, version: int, timeout: float) -> int: ...

    def trials(self) -> Sequence[TrialLike]: ...


class TrialFeed:
    """Turns the chief's trials into reports: progress every time, an Event for each trial that
    failed since the last update and for each new best trial."""

    def __init__(self, reporter: Reporter, direction: Direction) -> None:
        self.reporter = reporter
        self.direction = direction
        self._failed: set[str] = set()
        self._best: str | None = None
        self._search: Watchable | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, trials: Sequence[TrialLike], announce: bool = True) -> None:
        """Report these trials. With announce false, failures and the best seen so far are taken as
        known (a resumed search does not repeat its Events)."""
        completed = [t for t in trials if t.status == "COMPLETED"]
        best = best_of(completed, lambda t: t.score, self.direction)
        for trial in trials:
            if trial.status == "FAILED" and trial.trial_id not in self._failed:
                self._failed.add(trial.trial_id)
                if announce:
                    self.reporter.trial_failed(trial.trial_id, getattr(trial, "message", None) or "")
        if best is not None and best.trial_id != self._best:
            self._best = best.trial_id
            if announce:
                self.reporter.new_best(best.trial_id, best.score or 0.0)
        self.reporter.progress(
            done=len([t for t in trials if t.status == "COMPLETED"]),
            failed=len(self._failed),
            running=len([t for t in trials if t.status == "RUNNING"]),
            best=best.score if best else None,
            best_trial=best.trial_id if best else None,
        )

    def follow(self, search: Watchable) -> TrialFeed:
        """Update after every change of the search (a trial started or ended), from a background
        thread, until `stop`. The trials already there (a resumed search) are not announced."""
        self._search = search
        seen = search.wait_for_change(-1, 0)  # the current version, at once
        self.update(search.trials(), announce=False)
        self._thread = threading.Thread(
            target=self._follow, args=(seen,), name="hptune-kube-feed", daemon=True
        )
        self._thread.start()
        return self

    def _follow(self, seen: int) -> None:
        assert self._search is not None
        while not self._stop.is_set():
            version = self._search.wait_for_change(seen, timeout=1.0)
            if version != seen and not self._stop.is_set():
                seen = version
                self._safely_update()

    def stop(self) -> None:
        """Stop following, and report the trials as they are now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._search is not None:
            self._safely_update()

    def _safely_update(self) -> None:
        try:
            self.update(self._search.trials())  # type: ignore[union-attr]
        except Exception as err:  # reporting never stops the search
            log.warning("cannot report the search's progress: %s", err)
