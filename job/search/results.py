"""What a search records of its trials: each attempt's record, the ranking, the leaderboard, and
which trial models are kept (the layout is in `job.storage.layout`; best/ in `job.search.best`)."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from job.errors import last_line
from job.kt_adapter import HyperParameters, Status, Trial
from job.observability.numbers import grid_value
from job.spec.objective import Direction, sort_key
from job.storage import ArtifactStore, Store
from job.storage.layout import attempts_prefix, trial_key

if TYPE_CHECKING:
    import keras

    from job.search.pruning import Pruned

COMPLETED = Status.COMPLETED


def publish_attempt(store: ArtifactStore, trial_id: str, worker: str) -> None:
    """Make the attempt the chief counted the trial's own: its files are copied to trials/<id>/,
    trial.json last. A stale attempt (its worker lost the trial) is never published."""
    staged = store.list(attempts_prefix(trial_id, worker))
    staged.sort(key=lambda key: key.endswith("/trial.json"))
    for key in staged:
        store.copy(key, trial_key(trial_id, key.rsplit("/", 1)[1]))
    store.delete(attempts_prefix(trial_id, worker))


@dataclass(frozen=True)
class TrialRecord:
    """A worker's account of one attempt at a trial."""

    trial_id: str
    worker: str
    status: str  # completed | failed
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    best_step: int
    history: list[list[dict[str, float]]]
    error: str | None
    seconds: float
    model_saved: bool
    # Where the model is when not in the output: a plain Keras Tuner worker keeps its own.
    model_location: str | None = None
    pruned: dict[str, Any] | None = None  # {"epoch", "reason"} of a trial stopped early

    def to_json(self) -> str:
        body = {
            "trialId": self.trial_id,
            "worker": self.worker,
            "status": self.status,
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "bestStep": self.best_step,
            "history": self.history,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "modelSaved": self.model_saved,
            **({"modelLocation": self.model_location} if self.model_location else {}),
            **({"pruned": self.pruned} if self.pruned else {}),
            "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return json.dumps(finite_json(body), indent=2)


def plain_worker_model(trial_id: str, worker: str) -> str:
    """Where a plain Keras Tuner worker keeps a trial's model: its own project directory."""
    return (
        f"kept by {worker}, a plain Keras Tuner worker, in its own project directory: "
        f"trial_{trial_id}/checkpoint.weights.h5 (the weights; rebuild the model with the "
        "hyperparameters and load them)"
    )


def chief_record(trial: Trial, worker: str, seconds: float | None) -> TrialRecord:
    """The chief's account of a trial a plain Keras Tuner worker ran, which writes no trial.json:
    its hyperparameters, the metrics it reported (at its best step: plain workers report once, so
    there is no per-epoch history), its status and where its model is."""
    completed = trial.status == COMPLETED
    best_step = trial.best_step if completed and trial.best_step is not None else 0
    return TrialRecord(
        trial_id=trial.trial_id,
        worker=worker,
        status="completed" if completed else "failed",
        hyperparameters=public_values(trial.hyperparameters),
        metrics={
            name: float(value)
            for name, history in trial.metrics.metrics.items()
            if (value := history.get_last_value()) is not None
        },
        best_step=best_step,
        history=[],
        error=None if completed else trial.message,
        seconds=seconds or 0.0,
        model_saved=False,
        model_location=plain_worker_model(trial.trial_id, worker) if completed else None,
    )


def finite_json(value: Any) -> Any:
    """JSON has no NaN: write non-finite numbers as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def save_model(store: ArtifactStore, key: str, model: keras.Model) -> None:
    """Save a Keras model to the store under key (a .keras or .weights.h5 file)."""
    with tempfile.TemporaryDirectory(prefix="hptune-model-") as tmp:
        local = Path(tmp) / Path(key).name
        if key.endswith(".weights.h5"):
            model.save_weights(str(local))
        else:
            model.save(str(local))
        store.put_file(local, key)


def public_values(hp: HyperParameters) -> dict[str, Any]:
    """A trial's hyperparameter values as recorded and shown: without Keras Tuner's internal
    `tuner/...` entries, and a stepped Float on the grid the user wrote (0.3, not the
    0.30000000000000004 Keras Tuner computes as min + k * step; the oracle keeps its own value)."""
    space = {p.name: p for p in hp.space}
    return {k: _on_grid(v, space.get(k)) for k, v in hp.values.items() if not k.startswith("tuner/")}


def _on_grid(value: Any, definition: Any) -> Any:
    step = getattr(definition, "step", None)  # Int and Float have one; ints pass through unchanged
    return grid_value(
        value, getattr(definition, "min_value", None), step, getattr(definition, "sampling", None) or "linear"
    )


def ranked(trials: Sequence[Trial], direction: Direction) -> list[Trial]:
    """Completed trials best first, then the rest in id order."""
    done = [t for t in trials if t.status == COMPLETED and t.score is not None]
    done.sort(key=lambda t: (sort_key(t.score or 0.0, direction), t.trial_id))
    counted = {t.trial_id for t in done}  # a set: `t not in done` made this O(n^2) per call
    rest = sorted((t for t in trials if t.trial_id not in counted), key=lambda t: t.trial_id)
    return done + rest


def leaderboard_csv(
    trials: Sequence[Trial], objective: str, direction: Direction, pruned: Mapping[str, Pruned] | None = None
) -> str:
    """The leaderboard: completed trials best first (a pruned one ranked by its score so far, its
    status `pruned` and why in the error column), then the rest."""
    pruned = pruned or {}
    rows = ranked(trials, direction)
    names = sorted({k for t in rows for k in public_values(t.hyperparameters)})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["rank", "trial_id", "status", objective, "best_step", *names, "error"])
    rank = 0
    for t in rows:
        completed = t.status == COMPLETED and t.score is not None
        rank += completed
        values = public_values(t.hyperparameters)
        stopped = pruned.get(t.trial_id) if completed else None
        note = f"pruned after epoch {stopped.epoch}: {stopped.reason}" if stopped else last_line(t.message)
        writer.writerow(
            [
                rank if completed else "",
                t.trial_id,
                "pruned" if stopped else str(t.status).lower(),
                t.score if completed else "",
                t.best_step if completed else "",
                *[values.get(n, "") for n in names],
                note if (stopped or t.message) else "",
            ]
        )
    return out.getvalue()


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
            parts = key.split("/")
            outside_top = len(parts) == 3 and parts[2] == "model.keras" and parts[1] not in top
            never_counted = len(parts) > 3 and parts[2] == "attempts"  # staged by a stale attempt
            if outside_top or never_counted:
                self.store.delete(key)
        self.top = top
