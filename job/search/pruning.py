"""Stopping clearly bad trials early (spec.tuner.pruning), from the objective workers report each epoch.

The chief sees every running trial's epochs in heartbeats. Each report goes through one rule:

- **median**: from epoch `minEpochs` on, a trial whose best objective so far is worse than the
  median of the completed trials' best-so-far at the same epoch stops (once `minTrials` completed
  trials reached that epoch);
- **asha** (asynchronous successive halving): rungs at `minEpochs * reductionFactor^k` epochs; a
  trial reaching a rung goes on only if its best so far is in the top 1/`reductionFactor` of the
  values recorded at that rung before it (once `minTrials` are recorded there).

A decision is final for that run of the trial: the worker stops at the epoch boundary and reports
its best score so far, as Keras Tuner treats a trial stopped by a callback. The curves, rung records
and decisions are plain JSON in the chief's snapshot, so a restarted chief decides as before.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict
from typing import Any

import numpy as np

from job.output.records import Pruned
from job.spec.objective import Direction, is_better
from job.spec.tuner import PruningSpec

log = logging.getLogger(__name__)


class TrialPruner:
    def __init__(
        self, settings: PruningSpec, objective: str, direction: Direction, epochs: int | str
    ) -> None:
        self.settings = settings
        self.objective = objective
        self.direction = direction
        self.epochs = epochs  # training.epochs: a count, or the hyperparameter that holds it
        self.curves: dict[str, list[float]] = {}  # trial -> best objective so far after each epoch
        self.completed: set[str] = set()  # trials that trained to their end (not pruned)
        self.rungs: dict[int, dict[str, float]] = {}  # asha: rung epoch -> trial -> value there
        self.pruned: dict[str, Pruned] = {}

    # -- what the coordinator tells it ------------------------------------------------------------

    def report(self, trial_id: str, epoch: int, value: float, planned: int | None = None) -> Pruned | None:
        """A trial finished `epoch` (1-based) with this objective value: the decision to stop it,
        new or already made, or None to go on. Repeated reports of an epoch change nothing; a
        trial at its last epoch (`planned`) is never pruned: it has nothing left to save."""
        if trial_id in self.pruned:
            return self.pruned[trial_id]
        curve = self.curves.setdefault(trial_id, [])
        if epoch <= len(curve) or not np.isfinite(value):
            return None
        best = value if not curve or is_better(value, curve[-1], self.direction) else curve[-1]
        while len(curve) < epoch:  # a report lost while the chief restarted: carry the best on
            curve.append(best)
        if planned is not None and epoch >= planned:
            return None
        decision = self._median(trial_id, epoch, best) if self.settings.type == "median" else None
        if self.settings.type == "asha":
            decision = self._asha(trial_id, epoch, best)
        if decision is not None:
            self.pruned[trial_id] = decision
            log.info("trial %s pruned after epoch %d: %s", trial_id, epoch, decision.reason)
        return decision

    def ended(self, trial_id: str, completed: bool) -> None:
        """A trial ended: a completed one (not pruned) joins the median's reference curves."""
        if completed and trial_id not in self.pruned:
            self.completed.add(trial_id)

    def forget(self, trial_id: str) -> None:
        """A trial that runs again (requeued, retried) starts a new curve."""
        self.curves.pop(trial_id, None)
        self.pruned.pop(trial_id, None)
        self.completed.discard(trial_id)
        for records in self.rungs.values():
            records.pop(trial_id, None)

    def planned(self, hp_values: dict[str, Any]) -> int:
        """The epochs a trial trains unless pruned: training.epochs, or its hyperparameter's value."""
        return int(hp_values.get(self.epochs, 0)) if isinstance(self.epochs, str) else self.epochs

    def epochs_saved(self, trial_id: str, hp_values: dict[str, Any]) -> int:
        """Epochs a pruned trial did not train."""
        pruned = self.pruned.get(trial_id)
        return 0 if pruned is None else max(0, self.planned(hp_values) - pruned.epoch)

    # -- the rules -------------------------------------------------------------------------------

    def _median(self, trial_id: str, epoch: int, best: float) -> Pruned | None:
        if epoch < self.settings.min_epochs:
            return None
        peers = [
            curve[epoch - 1]
            for other, curve in self.curves.items()
            if other in self.completed and other != trial_id and len(curve) >= epoch
        ]
        if len(peers) < self.settings.min_trials:
            return None
        median = statistics.median(peers)
        if not is_better(median, best, self.direction):
            return None
        return Pruned(
            epoch,
            f"best {self.objective} so far {best:.4g} is worse than the median {median:.4g} of "
            f"{len(peers)} completed trials after epoch {epoch} (median rule)",
        )

    def _asha(self, trial_id: str, epoch: int, best: float) -> Pruned | None:
        if not self._is_rung(epoch):
            return None
        records = self.rungs.setdefault(epoch, {})
        others = [value for other, value in records.items() if other != trial_id]
        records[trial_id] = best
        if len(others) < self.settings.min_trials:
            return None
        keep = 1 / self.settings.reduction_factor
        # The value a trial must reach to be in the top `keep` of the rung.
        if self.direction == "max":
            cutoff = float(np.percentile(others, 100 * (1 - keep)))
        else:
            cutoff = float(np.percentile(others, 100 * keep))
        if not is_better(cutoff, best, self.direction):
            return None
        return Pruned(
            epoch,
            f"best {self.objective} so far {best:.4g} is outside the top 1/{self.settings.reduction_factor} "
            f"(cutoff {cutoff:.4g}) of {len(others)} trials at the epoch-{epoch} rung (asha rule)",
        )

    def _is_rung(self, epoch: int) -> bool:
        rung = self.settings.min_epochs
        while rung < epoch:
            rung *= self.settings.reduction_factor
        return rung == epoch

    # -- the snapshot ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "curves": self.curves,
            "completed": sorted(self.completed),
            "rungs": {str(epoch): records for epoch, records in self.rungs.items()},
            "pruned": {trial_id: asdict(p) for trial_id, p in self.pruned.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.curves = {k: [float(v) for v in curve] for k, curve in state.get("curves", {}).items()}
        self.completed = set(state.get("completed", []))
        self.rungs = {int(k): dict(v) for k, v in state.get("rungs", {}).items()}
        self.pruned = {
            k: Pruned(int(v["epoch"]), str(v["reason"])) for k, v in state.get("pruned", {}).items()
        }
