"""Run one trial: build the model for a set of hyperparameter values, train it, keep its best epoch."""

from __future__ import annotations

import gc
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from job.search.objective import is_better
from job.spec.models import Objective, TrainingSpec
from job.training.data import Dataset
from job.training.space import BuildModel, check_model

EpochHook = Callable[[int, dict[str, float]], None]
# Hyperband asks a trial to continue from another trial's weights; this finds them.
WeightsLookup = Callable[[str], Path | None]


class TrialFailure(Exception):
    """A trial could not produce a result. The message explains why, for the trial record."""


class ObjectiveMissing(TrialFailure):
    pass


@dataclass
class Outcome:
    """What a trial produced: best-epoch metrics (averaged over executions) or an error."""

    metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    history: list[list[dict[str, float]]] = field(default_factory=list)
    error: str | None = None
    model: keras.Model | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class _BestEpoch(keras.callbacks.Callback):
    """Keeps the weights and metrics of the best epoch in memory, and reports every epoch."""

    def __init__(self, objective: Objective, on_epoch: EpochHook | None, should_stop: Callable[[], bool]):
        super().__init__()
        self.objective = objective
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.best: float | None = None
        self.best_epoch = 0
        self.best_logs: dict[str, float] = {}
        self.best_weights: list[np.ndarray] | None = None
        self.epochs: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        self.epochs.append(metrics)
        if self.objective.name not in metrics:
            raise ObjectiveMissing(
                f"the objective {self.objective.name!r} is not among the metrics this model "
                f"reports: {sorted(metrics)}; set spec.tuner.objective.name to one of them"
            )
        value = metrics[self.objective.name]
        for name in (self.objective.name, "loss"):
            if name in metrics and not math.isfinite(metrics[name]):
                raise TrialFailure(f"{name} became {metrics[name]} at epoch {epoch + 1}")
        better = self.best is None or (is_better(value, self.best, self.objective.direction))
        if better:
            self.best, self.best_epoch, self.best_logs = value, epoch, metrics
            self.best_weights = self.model.get_weights()
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)
        if self.should_stop():
            self.model.stop_training = True


def run_trial(
    hp: kt.HyperParameters,
    build_model: BuildModel,
    data: Dataset,
    training: TrainingSpec,
    objective: Objective,
    executions: int = 1,
    on_epoch: EpochHook | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    weights_of: WeightsLookup | None = None,
) -> Outcome:
    """Train `executions` models for these values; never raises for a failing trial."""
    started = time.perf_counter()
    outcome = Outcome()
    best_value: float | None = None
    per_execution: list[dict[str, float]] = []
    try:
        for _ in range(executions):
            keras.backend.clear_session()
            gc.collect()
            model = build_model(hp)
            check_model(model)
            tune_execution(model, training, len(data.x_train))
            epochs, initial_epoch = training.epochs, 0
            if "tuner/epochs" in hp.values:  # Hyperband's schedule
                epochs = int(hp.values["tuner/epochs"])
                initial_epoch = int(hp.values["tuner/initial_epoch"])
                parent = hp.values.get("tuner/trial_id")
                if parent and weights_of is not None:
                    path = weights_of(str(parent))
                    if path is not None:
                        model.load_weights(str(path))
            tracker = _BestEpoch(objective, on_epoch, should_stop)
            callbacks: list[keras.callbacks.Callback] = [tracker]
            if training.early_stopping is not None:
                stop = training.early_stopping
                callbacks.append(
                    keras.callbacks.EarlyStopping(
                        monitor=stop.monitor, patience=stop.patience, min_delta=stop.min_delta
                    )
                )
            model.fit(
                data.x_train,
                data.y_train,
                validation_data=(data.x_val, data.y_val),
                epochs=epochs,
                initial_epoch=initial_epoch,
                batch_size=training.batch_size,
                validation_batch_size=training.validation_batch_size,
                callbacks=callbacks,
                verbose=training.verbose,
            )
            if tracker.best is None:
                raise TrialFailure("training stopped before the first epoch ended")
            outcome.history.append(tracker.epochs)
            per_execution.append(tracker.best_logs)
            if best_value is None or is_better(tracker.best, best_value, objective.direction):
                best_value = tracker.best
                assert tracker.best_weights is not None
                model.set_weights(tracker.best_weights)
                outcome.model = model
                outcome.best_step = initial_epoch + tracker.best_epoch
        outcome.metrics = _average(per_execution)
    except TrialFailure as err:
        outcome.error = str(err)
        outcome.model = None
    except Exception:
        outcome.error = traceback.format_exc()
        outcome.model = None
    outcome.seconds = time.perf_counter() - started
    return outcome


AUTO_STEPS_PER_EXECUTION = 256


def tune_execution(model: keras.Model, training: TrainingSpec, samples: int) -> None:
    """Apply the fast trial path to a compiled model: several training steps per compiled call
    (the same updates, far fewer round trips from Python; on JAX one `lax.scan` per call, see
    `job/training/jax_steps.py`) and the XLA choice from the spec."""
    full_batches = max(1, samples // training.batch_size)
    if training.steps_per_execution == "auto":
        model.steps_per_execution = min(AUTO_STEPS_PER_EXECUTION, full_batches)
    else:
        model.steps_per_execution = training.steps_per_execution
    if training.jit_compile != "auto":
        model.jit_compile = training.jit_compile
    if keras.backend.backend() == "jax" and model.steps_per_execution > 1 and model.jit_compile:
        from job.training import jax_steps

        if training.scan_steps is True or (training.scan_steps == "auto" and jax_steps.on_accelerator()):
            model.train_function = jax_steps.scanned_train_function(model, model.steps_per_execution)


def _average(runs: list[dict[str, float]]) -> dict[str, float]:
    names = set.intersection(*(set(r) for r in runs)) if runs else set()
    return {name: float(np.mean([r[name] for r in runs])) for name in sorted(names)}
