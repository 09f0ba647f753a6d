"""Which trial models are kept (the best k: spec.output.keepModels), and saving a model to the store."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from job.kt_adapter import Trial
from job.output.layout import parse_trial_key, trial_key
from job.output.leaderboard import rank_key, ranked
from job.output.records import COMPLETED
from job.spec.objective import Direction
from job.storage import Store, WorkerStore

if TYPE_CHECKING:
    import keras


def save_model(store: WorkerStore, key: str, model: keras.Model) -> None:
    """Save a Keras model to the store under key (a .keras or .weights.h5 file)."""
    with tempfile.TemporaryDirectory(prefix="hptune-model-") as tmp:
        local = Path(tmp) / Path(key).name
        if key.endswith(".weights.h5"):
            model.save_weights(str(local))
        else:
            model.save(str(local))
        store.put_file(local, key)


def worth_saving(score: float, trial_id: str, best: Sequence[Trial], keep: int, direction: Direction) -> bool:
    """Could a trial that ended with `score` be among the best `keep`, given the best trials so far
    (the chief's answer)? Then its worker saves its model. Ranked as `ModelRetention` ranks, a tie
    by trial id: a result that ties the k-th best but ranks ahead of it is saved, or the top k
    would lose a model."""
    done = [
        rank_key(t.score, t.trial_id, direction)
        for t in best
        if t.status == COMPLETED and t.score is not None
    ]
    return len(done) < keep or rank_key(score, trial_id, direction) < max(done)


class ModelRetention:
    """Keeps trial models for the best k trials only, deleting those that fall out of the top k."""

    def __init__(self, store: Store, keep: int) -> None:
        self.store = store
        self.keep = keep
        self.top: set[str] = set()

    def top_ids(self, trials: Sequence[Trial], direction: Direction) -> set[str]:
        done = [t for t in ranked(trials, direction) if t.status == COMPLETED and t.score is not None]
        return {t.trial_id for t in done[: self.keep]}

    def after_end(self, ended: str, trials: Sequence[Trial], direction: Direction) -> None:
        top = self.top_ids(trials, direction)
        for trial_id in sorted((self.top | {ended}) - top):
            self.store.delete(trial_key(trial_id, "model.keras"))
        self.top = top

    def sweep(self, trials: Sequence[Trial], direction: Direction) -> None:
        """Delete every trial model outside the top k (models left by lost attempts too)."""
        top = self.top_ids(trials, direction)
        for key in self.store.list("trials"):
            parsed = parse_trial_key(key)
            if parsed is None:
                continue
            own_model = parsed.worker is None and parsed.name == "model.keras"
            outside_top = own_model and parsed.trial_id not in top
            never_counted = parsed.worker is not None  # staged by a stale attempt
            if outside_top or never_counted:
                self.store.delete(key)
        self.top = top
