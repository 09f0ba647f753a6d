"""Epoch checkpoints of a running trial, so a trial that loses its worker continues where it was.

At the end of an epoch (at most every `spec.training.checkpointSeconds`), the worker stages the
trial's state under its own attempt keys, `trials/<id>/attempts/<worker>/`:

    resume-<n>a.weights.h5, resume-<n>b.weights.h5   the model's weights and optimizer state, in
        two slots taken in turn (so the one resume.json names is never half-written); <n> is the
        writer's own (a worker restarted on the trial writes beside its old checkpoint, not over it)
    resume-<n>a-best.npz, resume-<n>b-best.npz   the best epoch's weights, unless the model's are
    resume.json   written last: the epoch reached (and the step, mid-epoch), the history, the best
        epoch, early stopping's and the plateau rule's counts, the slot, the spec's fingerprint

Between checkpoints, the last finished epoch is kept in host memory (`Checkpointer.hold`). A stop
signal (job/supervision/stopping.py) lets the training call in progress end, holds the trial as it
is there (mid-epoch: the steps done and the epoch's running metrics with the weights), and writes
that before the worker hands the trial back (`write_held`); a call that does not end in time is
interrupted and the last finished epoch written. So a stopped trial loses at most one training call.

When the chief takes the trial back (its worker stopped responding, was told to stop, or restarted),
the worker that runs it next asks the chief, before it trains, to publish that checkpoint as
`trials/<id>/resume.json` (and its files); it reads it (`load_resume`) and continues at the next
epoch. A checkpoint that cannot be read, or was
written for another spec, is reported and the trial starts fresh. A store that refuses a checkpoint
is warned about once; the trial goes on without.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from job.output.layout import RESUME_STATE, attempt_key, trial_key
from job.spec.models import JobSpec
from job.storage import WorkerStore

log = logging.getLogger(__name__)


def fingerprint(job: JobSpec) -> str:
    """What a checkpoint must have been written under to be resumed: the model, training and data
    sections of the spec (a checkpoint of another model cannot be loaded into this one)."""
    spec = job.spec
    parts = [part.model_dump(mode="json") for part in (spec.model, spec.training, spec.data)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrialState:
    """What decides a trial's end, as of an epoch: its epochs' metrics, its best epoch, and
    early stopping's count."""

    epoch: int  # epochs done
    history: list[dict[str, float]]
    best: float | None
    best_epoch: int
    best_logs: dict[str, float]
    stopping: dict[str, Any] | None = None  # EarlyStopping: wait, best, best_epoch
    # Stopped inside epoch `epoch` (a stop signal; job/supervision/stopping.py): its first `step`
    # training steps are done, and its running metrics' variables hold these values.
    step: int = 0
    running_metrics: list[Any] | None = None
    plateau: dict[str, Any] | None = None  # ReduceLROnPlateau: wait, best, cooldown

    @property
    def ends_at_best(self) -> bool:
        """The model's weights are the best epoch's: it is the last, and no step followed it."""
        return self.best_epoch == self.epoch - 1 and not self.step

    def where(self) -> str:
        """Where the trial is, for logs: "epoch 3, step 120" or "after epoch 2"."""
        return f"epoch {self.epoch + 1}, step {self.step}" if self.step else f"after epoch {self.epoch}"


@dataclass
class Resume:
    """A checkpoint read back: the state, and the weights on local disk."""

    state: TrialState
    worker: str
    weights: Path  # model and optimizer
    best_weights: list[np.ndarray] | None  # the best epoch's, unless the model's are
    random_state: list[Any] | None = None  # the dropout layers' seed generators', as they were

    def load_into(self, model: keras.Model) -> None:
        """Put the checkpoint's weights, optimizer state and random state in `model`."""
        model.optimizer.build(model.trainable_variables)
        model.load_weights(str(self.weights))
        if self.random_state is not None:
            for variable, value in zip(_random_state(model), self.random_state, strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))


@dataclass
class Checkpointer:
    """Writes a running trial's checkpoints under its worker's attempt keys."""

    store: WorkerStore
    trial_id: str
    worker: str
    fingerprint: str
    every_seconds: float
    scratch: Path
    _last: float = field(default=0.0, init=False)
    _refused: bool = field(default=False, init=False)
    # The last finished epoch not yet written: the model, its variables' values, the state and the
    # best weights, for a stop signal to write (`write_held`).
    _held: tuple[keras.Model, list[np.ndarray], TrialState, list[np.ndarray] | None] | None = field(
        default=None, init=False
    )
    seconds_spent: float = field(default=0.0, init=False)
    _writes: int = field(default=0, init=False)
    _prefix: str = field(default_factory=lambda: secrets.token_hex(3), init=False)

    def __post_init__(self) -> None:
        self._last = time.monotonic()  # the first after `every_seconds` of training (0: every epoch)

    def due(self) -> bool:
        return not self._refused and time.monotonic() - self._last >= self.every_seconds

    def hold(self, model: keras.Model, state: TrialState, best_weights: list[np.ndarray] | None) -> None:
        """Keep a finished epoch that is not written yet (its checkpoint is not due) in host memory:
        the model's and the optimizer's variables, copied. A stop signal writes it (`write_held`),
        so a trial handed back loses at most the epoch it was in."""
        if self._refused:
            return
        started = time.perf_counter()
        values = [keras.ops.convert_to_numpy(v) for v in _variables(model)]
        self._held = (model, values, state, best_weights)
        self.seconds_spent += time.perf_counter() - started

    def write_held(self) -> str | None:
        """Write the state `hold` kept, if one is newer than the last checkpoint written (a stop
        signal: the worker is about to hand the trial back). Where the trial is, when a checkpoint
        was written (`TrialState.where`)."""
        held, self._held = self._held, None
        if held is None or self._refused:
            return None
        model, values, state, best_weights = held
        for variable, value in zip(_variables(model), values, strict=True):
            variable.assign(value)  # the held point, not wherever training was interrupted
        self.write(model, state, best_weights)
        return None if self._refused else state.where()

    def write(self, model: keras.Model, state: TrialState, best_weights: list[np.ndarray] | None) -> None:
        started = time.perf_counter()
        self._held = None
        # Slots taken in turn: never the one resume.json names now.
        slot = f"{self._prefix}{'ab'[self._writes % 2]}"
        try:
            local = self.scratch / f"{self.trial_id}-resume-{slot}.weights.h5"
            model.save_weights(str(local))
            self.store.put_file(local, self._key(f"resume-{slot}.weights.h5"))
            best = None
            if best_weights is not None and not state.ends_at_best:
                buffer = io.BytesIO()
                np.savez(buffer, *best_weights)
                best = f"resume-{slot}-best.npz"
                self.store.write_bytes(self._key(best), buffer.getvalue())
            body = {
                "trialId": self.trial_id,
                "worker": self.worker,
                "fingerprint": self.fingerprint,
                "weights": f"resume-{slot}.weights.h5",
                "bestWeights": best,
                "epoch": state.epoch,
                "history": state.history,
                "best": state.best,
                "bestEpoch": state.best_epoch,
                "bestLogs": state.best_logs,
                "earlyStopping": state.stopping,
                "plateau": state.plateau,
                "step": state.step,
                "runningMetrics": state.running_metrics,
                "randomState": [keras.ops.convert_to_numpy(v).tolist() for v in _random_state(model)],
            }
            self.store.write_text(self._key(RESUME_STATE), json.dumps(body))
        except Exception as err:
            self._refused = True
            log.warning(
                "%s: trial %s: its checkpoint could not be written (%s: %s); it goes on without "
                "checkpoints, and would start again from epoch 1 if it lost this worker",
                self.worker,
                self.trial_id,
                type(err).__name__,
                err,
            )
            return
        self._last = time.monotonic()
        self._writes += 1
        self.seconds_spent += time.perf_counter() - started

    def _key(self, name: str) -> str:
        return attempt_key(self.trial_id, self.worker, name)


def _variables(model: keras.Model) -> list[Any]:
    """What a checkpoint holds of a model: its variables and its optimizer's."""
    optimizer = getattr(model, "optimizer", None)
    return [*model.variables, *(optimizer.variables if optimizer is not None else [])]


def _random_state(model: keras.Model) -> list[Any]:
    """What a model holds beyond its weights, which `save_weights` leaves out: its random state
    (the seed generators of its dropout layers), without which a resumed trial drops other units."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def load_resume(
    store: WorkerStore, trial_id: str, expected: str, scratch: Path, worker: str
) -> Resume | None:
    """The trial's published checkpoint, or None (none, unreadable or another spec's: said why)."""
    key = trial_key(trial_id, RESUME_STATE)
    try:
        if not store.exists(key):
            return None
        body = json.loads(store.read_text(key))
        if body.get("fingerprint") != expected:
            log.warning(
                "%s: trial %s has a checkpoint written for another spec (%s); starting it from epoch 1",
                worker,
                trial_id,
                store.url(key),
            )
            return None
        weights = scratch / f"{trial_id}-resumed.weights.h5"
        store.get_file(trial_key(trial_id, str(body["weights"])), weights)
        best = None
        if body.get("bestWeights"):
            with np.load(io.BytesIO(store.read_bytes(trial_key(trial_id, str(body["bestWeights"]))))) as npz:
                best = [npz[f"arr_{i}"] for i in range(len(npz.files))]
        state = TrialState(
            epoch=int(body["epoch"]),
            history=[{str(k): float(v) for k, v in epoch.items()} for epoch in body["history"]],
            best=None if body["best"] is None else float(body["best"]),
            best_epoch=int(body["bestEpoch"]),
            best_logs={str(k): float(v) for k, v in body["bestLogs"].items()},
            stopping=body.get("earlyStopping"),
            step=int(body.get("step", 0)),
            running_metrics=body.get("runningMetrics"),
            plateau=body.get("plateau"),
        )
        return Resume(state, str(body.get("worker", "?")), weights, best, body.get("randomState"))
    except Exception as err:
        log.warning(
            "%s: trial %s: its checkpoint %s cannot be read (%s: %s); starting it from epoch 1",
            worker,
            trial_id,
            store.url(key),
            type(err).__name__,
            err,
        )
        return None
