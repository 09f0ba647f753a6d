"""Trial records: one attempt's account of a trial (trials/<id>/trial.json), as workers and the
chief write it and `hptune show` and the report read it."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from job.numbers import grid_value

if TYPE_CHECKING:
    from job.kt_adapter import HyperParameters, Trial

# Keras Tuner's TrialStatus.COMPLETED, spelled here so that reading an output imports no Keras
# (tests/unit/test_contracts.py checks the two agree).
COMPLETED = "COMPLETED"
TrialStatus = Literal["completed", "pruned", "failed"]
# The error of a trial the chief gave up on after its workers were lost, as the leaderboard holds it.
LOST_WORKER = "lost its worker"


def given_up(reason: str, losses: int) -> str:
    """The error recorded for a trial given up on after `losses` lost workers."""
    return f"{reason}; {LOST_WORKER} {losses} times, giving up"


def was_lost(error: str) -> bool:
    """Whether a trial's error says the chief gave up on it for lost workers (see `given_up`)."""
    return LOST_WORKER in error


@dataclass(frozen=True)
class Pruned:
    """Why a trial was stopped, and after which epoch (1-based)."""

    epoch: int
    reason: str


@dataclass(frozen=True)
class TrialRecord:
    """A worker's account of one attempt at a trial."""

    trial_id: str
    worker: str
    status: TrialStatus
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
    resumed: dict[str, Any] | None = (
        None  # {"epochs", "worker", "steps" mid-epoch}: from a lost worker's checkpoint
    )
    gpus: list[str] | None = None  # UUIDs of the GPUs (or MIG instances) the attempt trained on
    inactive: list[str] | None = None  # hyperparameters this trial did not use (`inactive_names`)

    def to_json(self) -> str:
        body = {
            "trialId": self.trial_id,
            "worker": self.worker,
            "status": self.status,
            "hyperparameters": self.hyperparameters,
            **({"inactive": self.inactive} if self.inactive else {}),
            "metrics": self.metrics,
            "bestStep": self.best_step,
            "history": self.history,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "modelSaved": self.model_saved,
            **({"modelLocation": self.model_location} if self.model_location else {}),
            **({"pruned": self.pruned} if self.pruned else {}),
            **({"resumed": self.resumed} if self.resumed else {}),
            **({"gpus": self.gpus} if self.gpus else {}),
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
        inactive=inactive_names(trial.hyperparameters),
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


def public_values(hp: HyperParameters) -> dict[str, Any]:
    """A trial's hyperparameter values as recorded and shown: without Keras Tuner's internal
    `tuner/...` entries, and a stepped Float on the grid the user wrote (0.3, not the
    0.30000000000000004 Keras Tuner computes as min + k * step; the oracle keeps its own value)."""
    space = {p.name: p for p in hp.space}
    return {k: _on_grid(v, space.get(k)) for k, v in hp.values.items() if not k.startswith("tuner/")}


def inactive_names(hp: HyperParameters) -> list[str]:
    """The space's hyperparameters this trial did not use: those in a conditional scope whose
    condition its values do not meet (a layer its depth did not build). Keras Tuner gives them no
    value; records list them, and show and the report say "inactive"."""
    return [p.name for p in hp.space if not p.name.startswith("tuner/") and not hp.is_active(p)]


def _on_grid(value: Any, definition: Any) -> Any:
    step = getattr(definition, "step", None)  # Int and Float have one; ints pass through unchanged
    return grid_value(
        value, getattr(definition, "min_value", None), step, getattr(definition, "sampling", None) or "linear"
    )
