"""Run one trial: build the model for a set of hyperparameter values, train it, keep its best epoch.

The batch size and epochs may be the trial's own hyperparameter values (`training_values`). A Keras
Tuner HyperModel that overrides `fit` trains the model itself, called as Keras Tuner calls it.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
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

from job.spec.objective import is_better
from job.spec.settings import TrainingSpec
from job.spec.tuner import Objective
from job.training.checkpoint import Checkpointer, Resume, TrialState
from job.training.data import DataError, Dataset
from job.training.data.order import EpochOrder
from job.training.device import Replicas
from job.training.returns import ReturnRefused, is_history, returned_metrics
from job.training.space import BuildModel, HyperModelBuilder, check_built

log = logging.getLogger(__name__)

EpochHook = Callable[[int, dict[str, float]], None]
# Hyperband asks a trial to continue from another trial's weights; this finds them.
WeightsLookup = Callable[[str], Path | None]


# Keras 3.6 and later collect garbage in clear_session (about 0.2 s a trial): not twice.
_CLEAR_SESSION_COLLECTS = "free_memory" in inspect.signature(keras.backend.clear_session).parameters


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
    resumed: dict[str, Any] | None = None  # {"epochs", "worker", "steps" mid-epoch}: from a checkpoint

    @property
    def ok(self) -> bool:
        return self.error is None


class _BestEpoch(keras.callbacks.Callback):
    """Keeps the weights and metrics of the best epoch in memory, and reports every epoch."""

    def __init__(
        self,
        objective: Objective,
        on_epoch: EpochHook | None,
        should_stop: Callable[[], bool],
        checkpointer: Checkpointer | None = None,
        stopping: _EarlyStopping | None = None,
        plateau: _ReduceOnPlateau | None = None,
        returns_result: bool = False,
        stop_requested: Callable[[], bool] = lambda: False,
        mid_epoch: bool = False,
    ):
        super().__init__()
        self.objective = objective
        # A stop signal waiting (job/supervision/stopping.py): with a checkpointer, the trial is held
        # at the end of the training call in progress, mid-epoch when `mid_epoch` (its data fed in
        # an EpochOrder, which a resumed trial can enter at any batch), and stopped.
        self.stop_requested = stop_requested
        self.mid_epoch = mid_epoch
        self.epoch = 0  # the epoch in progress
        self.first_step = 0  # of this epoch's first training call: a trial resumed mid-epoch
        self.running: tuple[int, list[Any]] | None = None  # the steps and metrics it resumes with
        # A HyperModel's own fit: the trial's result is what it returns (Keras Tuner's rules), so
        # epochs that do not report the objective are recorded, not refused.
        self.returns_result = returns_result
        self.on_epoch = on_epoch
        self.should_stop = should_stop
        self.checkpointer = checkpointer
        # Both run before this callback, so their counts are the epoch's.
        self.stopping, self.plateau = stopping, plateau
        self.best: float | None = None
        self.best_epoch = 0
        self.best_logs: dict[str, float] = {}
        self.best_weights: list[np.ndarray] | None = None
        self.epochs: list[dict[str, float]] = []

    def state(self, epochs_done: int, step: int = 0, running: list[Any] | None = None) -> TrialState:
        return TrialState(
            epochs_done,
            list(self.epochs),
            self.best,
            self.best_epoch,
            self.best_logs,
            None if self.stopping is None else self.stopping.counts(),
            step,
            running,
            None if self.plateau is None else self.plateau.counts(),
        )

    def restore(self, state: TrialState, best_weights: list[np.ndarray] | None) -> None:
        self.best, self.best_epoch, self.best_logs = state.best, state.best_epoch, dict(state.best_logs)
        self.epochs = list(state.history)
        self.best_weights = best_weights
        if state.step and state.running_metrics is not None:
            self.running = (state.step, state.running_metrics)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch, self.first_step = epoch, 0
        if self.running is not None:  # after fit reset the metrics: the epoch's first steps' sums
            self.first_step, values = self.running
            self.running = None
            for variable, value in zip(self.model.metrics_variables, values, strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))

    def hold_mid_epoch(self, steps_done: int) -> None:
        """Hold the trial where the training call that just ended left it, inside its epoch: the
        variables, the steps of the epoch done and the epoch's running metrics."""
        assert self.checkpointer is not None
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()  # the variables, as this call left them
        running = [keras.ops.convert_to_numpy(v).tolist() for v in self.model.metrics_variables]
        step = self.first_step + steps_done  # of the epoch: before this fit, and in it
        self.checkpointer.hold(self.model, self.state(self.epoch, step, running), self.best_weights)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        self.epochs.append(metrics)
        if self.objective.name not in metrics and not self.returns_result:
            raise ObjectiveMissing(
                f"the objective {self.objective.name!r} is not among the metrics this model "
                f"reports: {sorted(metrics)}; set spec.tuner.objective.name to one of them"
            )
        for name in (self.objective.name, "loss"):
            if name in metrics and not math.isfinite(metrics[name]):
                raise TrialFailure(f"{name} became {metrics[name]} at epoch {epoch + 1}")
        value = metrics.get(self.objective.name)
        if value is not None and (self.best is None or is_better(value, self.best, self.objective.direction)):
            self.best, self.best_epoch, self.best_logs = value, epoch, metrics
            self.best_weights = self.model.get_weights()
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics)
        if self.should_stop():
            self.model.stop_training = True
        if self.checkpointer is not None and not self.model.stop_training:
            if self.checkpointer.due():
                self.checkpointer.write(self.model, self.state(epoch + 1), self.best_weights)
            else:
                self.checkpointer.hold(self.model, self.state(epoch + 1), self.best_weights)
            if self.stop_requested():
                raise KeyboardInterrupt  # a stop signal in the epoch's last call or its validation

    def take(self, metrics: dict[str, float]) -> None:
        """The trial's result is what a HyperModel's fit returned (job/training/returns.py): its
        metrics replace the best epoch's; the weights kept are the best epoch's when the epochs
        reported the objective (as Keras Tuner's SaveBestEpoch keeps them), else the last."""
        self.best, self.best_logs = metrics[self.objective.name], metrics
        if not self.epochs:
            self.epochs = [metrics]


class _Counted(keras.callbacks.Callback):
    """A Keras callback whose counts decide a trial's course (early stopping's, the plateau
    rule's): they come back with a checkpoint (`restored`), and carry over between the two calls of
    fit of a trial resumed mid-epoch (Keras resets them at each train begin)."""

    COUNTS: dict[str, str] = {}  # attribute: its key in the checkpoint

    def __init__(self, restored: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restored = restored
        self.began = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.began:
            return
        self.began = True
        super().on_train_begin(logs)
        if self.restored is not None:
            for attribute, key in self.COUNTS.items():
                setattr(self, attribute, self.restored[key])

    def counts(self) -> dict[str, Any]:
        return {key: _plain(getattr(self, attribute)) for attribute, key in self.COUNTS.items()}


def _plain(value: Any) -> int | float | None:
    if value is None:
        return None
    return int(value) if isinstance(value, int | np.integer) else float(value)


class _StopAtCallEnd(keras.callbacks.Callback):
    """A stop signal waiting (job/supervision/stopping.py) is taken at the end of the training call
    in progress: the trial is held there, inside its epoch, and stopped. Only given to fit when a
    trial can be held mid-epoch, since a batch hook makes Keras read each call's logs at once
    (one host sync per call) instead of in the background."""

    def __init__(self, tracker: _BestEpoch) -> None:
        super().__init__()
        self.tracker = tracker

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        steps = self.params.get("steps")
        if not self.tracker.stop_requested() or steps is None or batch + 1 >= steps:
            return  # no signal; or the epoch's last call: stopped at its end, once validated
        self.tracker.hold_mid_epoch(batch + 1)
        raise KeyboardInterrupt  # the stop, now that the trial is held whole


class _EarlyStopping(_Counted, keras.callbacks.EarlyStopping):
    COUNTS = {"wait": "wait", "best": "best", "best_epoch": "bestEpoch"}


class _ReduceOnPlateau(_Counted, keras.callbacks.ReduceLROnPlateau):
    COUNTS = {"wait": "wait", "best": "best", "cooldown_counter": "cooldown"}


def training_values(training: TrainingSpec, hp: kt.HyperParameters) -> tuple[int, int]:
    """(batch size, epochs) for this trial: the spec's numbers, or the values of the
    hyperparameters it names."""

    def value(setting: int | str) -> int:
        return int(hp.get(setting)) if isinstance(setting, str) else setting

    return value(training.batch_size), value(training.epochs)


def freeze_long_lived() -> None:
    """Call once before the first trial: collect garbage, then take every object alive now (modules,
    the dataset, the builder) out of the collector's sight (`gc.freeze`). Each trial's collection
    then scans only what trials made: for the study notes' MLP, 0.19 s a trial becomes 0.015 s.
    Objects made later are collected as before."""
    gc.collect()
    gc.freeze()


def check_fit(training: TrainingSpec, data: Dataset, fused: bool = False) -> None:
    """Refuse, before any training, a tuned batch size that streamed data would ignore, and fused
    trials on streamed data (a group's members share each batch, which a stream hands out once)."""
    streams = data.streams
    if streams is not None and fused:
        raise DataError(
            f"spec.distribution.fuseTrials is set, but the data is {streams.kind}s: a fused "
            "group shares each batch among its trials, which needs arrays. Return arrays from the "
            "loader, or set fuseTrials: 1"
        )
    if streams is not None and streams.batched and isinstance(training.batch_size, str):
        raise DataError(
            f"spec.training.batchSize names hyperparameter {training.batch_size!r}, but the data is "
            f"{streams.kind}s, which come batched: a tuned batch size would not change them. Return "
            "arrays from the loader, or batch in a HyperModel's fit"
        )


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
    checkpointer: Checkpointer | None = None,
    resume: Resume | None = None,
    replicas: Replicas | None = None,
    order: EpochOrder | None = None,
    stop_requested: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Train `executions` models for these values; never raises for a failing trial.

    `checkpointer` writes epoch checkpoints and `resume` continues from one (job/training/
    checkpoint.py); both apply to one execution, through the callbacks `model.fit` is given (a
    HyperModel's own fit must pass them on), not to Hyperband's trials (which continue from other
    trials' weights).
    `replicas`: each model built in their scope and trained data parallel over their devices (the
    data already trimmed to split evenly, `Replicas.trim`). `order`: the training arrays are seen in
    this order, epoch by epoch, so a resumed trial sees the batches it would have uninterrupted
    (job/training/data/order.py; with a checkpointer, not for streams or a HyperModel's own fit).
    `stop_requested`: a stop signal waits (job/supervision/stopping.py); with a checkpointer, the
    trial is held at the end of the training call in progress and KeyboardInterrupt raised, for
    the caller to write the checkpoint (`Checkpointer.write_held`) and hand the trial back."""
    started = time.perf_counter()
    outcome = Outcome()
    best_value: float | None = None
    per_execution: list[dict[str, float]] = []
    try:
        for _ in range(executions):
            keras.backend.clear_session()
            if not _CLEAR_SESSION_COLLECTS:
                gc.collect()
            with replicas.scope() if replicas is not None else contextlib.nullcontext():
                model = build_model(hp)
            check_built(build_model, model)
            batch_size, epochs = training_values(training, hp)
            if replicas is not None and (problem := replicas.batch_problem(batch_size)):
                raise TrialFailure(problem)
            if model.compiled:
                tune_execution(
                    model,
                    training,
                    data.train_samples,
                    batch_size,
                    data.steps_per_epoch(batch_size),
                    replicated=replicas is not None,
                )
            initial_epoch = 0
            hyperband = "tuner/epochs" in hp.values
            if hyperband:  # Hyperband's schedule
                epochs = int(hp.values["tuner/epochs"])
                initial_epoch = int(hp.values["tuner/initial_epoch"])
                parent = hp.values.get("tuner/trial_id")
                if parent and weights_of is not None:
                    path = weights_of(str(parent))
                    if path is not None:
                        model.load_weights(str(path))
            own_fit = isinstance(build_model, HyperModelBuilder) and build_model.overrides_fit
            # A HyperModel's own fit is checkpointed through the callbacks it passes on to
            # model.fit (the usual `return model.fit(*args, **kwargs)`); it is given the arrays
            # as they are, in fit's own shuffled order.
            resumable = executions == 1 and not hyperband
            resumed = resume if resumable else None
            fed = order if resumable and not own_fit else None  # one the trial can enter mid-epoch
            first_epoch = initial_epoch  # where fit starts: Hyperband's schedule, or a checkpoint
            stopping, plateau = None, None
            if training.early_stopping is not None:
                stop = training.early_stopping
                stopping = _EarlyStopping(
                    resumed.state.stopping if resumed is not None else None,
                    monitor=stop.monitor,
                    patience=stop.patience,
                    min_delta=stop.min_delta,
                )
            if (rule := training.reduce_lr_on_plateau) is not None:
                plateau = _ReduceOnPlateau(
                    resumed.state.plateau if resumed is not None else None,
                    monitor=rule.monitor,
                    factor=rule.factor,
                    patience=rule.patience,
                    min_delta=rule.min_delta,
                    cooldown=rule.cooldown,
                    min_lr=rule.min_lr,
                )
            tracker = _BestEpoch(
                objective,
                on_epoch,
                should_stop,
                checkpointer if resumable else None,
                stopping,
                plateau,
                returns_result=own_fit,
                stop_requested=stop_requested,
                mid_epoch=fed is not None and data.streams is None,
            )
            callbacks: list[keras.callbacks.Callback] = [c for c in (stopping, plateau) if c is not None]
            callbacks.append(tracker)
            if tracker.mid_epoch and tracker.checkpointer is not None:
                callbacks.append(_StopAtCallEnd(tracker))
            if resumed is not None:
                resumed.load_into(model)
                state = resumed.state
                tracker.restore(state, model.get_weights() if state.ends_at_best else resumed.best_weights)
                first_epoch = state.epoch
                outcome.resumed = {"epochs": state.epoch, "worker": resumed.worker}
                if state.step:
                    outcome.resumed["steps"] = state.step

            if own_fit:
                args, kwargs = _arguments(data, training, batch_size, fed, callbacks, first_epoch, epochs)
                assert isinstance(build_model, HyperModelBuilder)
                returned = _hypermodel_fit(build_model, hp, model, args, kwargs, hyperband)
                if not tracker.epochs and checkpointer is not None:
                    _without_callbacks(build_model.reference)
                if not (is_history(returned) and tracker.best is not None):
                    # A number, a dict or a list of them (or a History whose epochs the callbacks
                    # did not see): the result, read by Keras Tuner's rules.
                    try:
                        tracker.take(returned_metrics(returned, objective, f"{build_model.reference}.fit"))
                    except ReturnRefused as err:
                        raise TrialFailure(str(err)) from None
            else:
                finished = False
                if resumed is not None and resumed.state.step and tracker.running is not None:
                    # Stopped mid-epoch: the rest of that epoch first, on its own, then the others.
                    # The metrics' state is built now (Keras builds it in the first step, after the
                    # epoch began), so the epoch's first steps' sums can be put back in it.
                    sample = (data.x_train[:batch_size], data.y_train[:batch_size])
                    model._symbolic_build(data_batch=sample)
                    args, kwargs = _arguments(
                        data,
                        training,
                        batch_size,
                        fed,
                        callbacks,
                        first_epoch,
                        first_epoch + 1,
                        resumed.state.step,
                    )
                    model.fit(*args, **kwargs)
                    first_epoch += 1
                    finished = model.stop_training or first_epoch >= epochs
                if not finished:
                    args, kwargs = _arguments(data, training, batch_size, fed, callbacks, first_epoch, epochs)
                    model.fit(*args, **kwargs)
            if tracker.best is None:
                raise TrialFailure("training stopped before the first epoch ended")
            outcome.history.append(tracker.epochs)
            per_execution.append(tracker.best_logs)
            if best_value is None or is_better(tracker.best, best_value, objective.direction):
                best_value = tracker.best
                if tracker.best_weights is not None:
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


def _arguments(
    data: Dataset,
    training: TrainingSpec,
    batch_size: int,
    order: EpochOrder | None,
    callbacks: list[keras.callbacks.Callback],
    first: int,
    last: int,
    skip: int = 0,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """fit's arguments for epochs [first, last), the first entered at batch `skip`: the data (and
    the data's own callbacks, job/training/data/order.py) and the callbacks given."""
    val_batch = training.validation_batch_size or batch_size
    args, kwargs = data.fit_arguments(batch_size, val_batch, order, (first, last), skip)
    kwargs.update(epochs=last, callbacks=[*callbacks, *kwargs.pop("callbacks", [])], verbose=training.verbose)
    if first:
        kwargs["initial_epoch"] = first
    return args, kwargs


def _hypermodel_fit(
    builder: HyperModelBuilder,
    hp: kt.HyperParameters,
    model: keras.Model,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    hyperband: bool,
) -> Any:
    """A HyperModel's own fit, called as Keras Tuner calls it: fit(hp, model, *args, **kwargs) with
    the data, callbacks and verbosity (and Hyperband's epochs). The spec's epochs and batch sizes (and
    shuffle=False for a stream) are model.fit's defaults meanwhile: a fit that chooses its own
    (batch_size=hp.Choice(...)) wins."""
    defaults: dict[str, Any] = {
        name: kwargs.pop(name)
        for name in ("batch_size", "validation_batch_size", "shuffle")
        if name in kwargs
    }
    if not hyperband and "initial_epoch" in kwargs:  # a checkpoint's, even if fit drops kwargs
        defaults["initial_epoch"] = kwargs.pop("initial_epoch")
    if not hyperband:
        defaults["epochs"] = kwargs.pop("epochs")
    original = model.fit

    def fit(*fit_args: Any, **fit_kwargs: Any) -> Any:
        for name, value in defaults.items():
            fit_kwargs.setdefault(name, value)
        return original(*fit_args, **fit_kwargs)

    object.__setattr__(model, "fit", fit)  # on this instance only, around the call
    try:
        return builder.fit(hp, model, *args, **kwargs)
    finally:
        object.__delattr__(model, "fit")


_WARNED_WITHOUT_CALLBACKS: set[str] = set()


def _without_callbacks(reference: str) -> None:
    """Say once per HyperModel that its fit trains without hptune's callbacks."""
    if reference not in _WARNED_WITHOUT_CALLBACKS:
        _WARNED_WITHOUT_CALLBACKS.add(reference)
        log.warning(
            "%s.fit does not pass the callbacks it is given on to model.fit: its trials are not "
            "checkpointed (a lost trial starts again from epoch 1) nor pruned during training; "
            "pass **kwargs (or callbacks=kwargs['callbacks']) on to model.fit",
            reference,
        )


AUTO_STEPS_PER_EXECUTION = 256


def tune_execution(
    model: keras.Model,
    training: TrainingSpec,
    samples: int,
    batch_size: int | None = None,
    steps: int | None = None,
    replicated: bool = False,
) -> None:
    """Apply the fast trial path to a compiled model: several training steps per compiled call
    (the same updates, far fewer round trips from Python; on JAX one `lax.scan` per call, see
    `job/training/jax_steps.py`) and the XLA choice from the spec. `batch_size` is the trial's
    (the spec's when not given); `steps` the steps per epoch when known otherwise (a stream).
    `replicated`: the model trains under a TensorFlow MirroredStrategy (gpusPerTrial), where
    Keras' own train function is kept, one step a call (its multi-step loop fails under the
    strategy)."""
    if replicated and keras.backend.backend() == "tensorflow":
        model.steps_per_execution = 1
        if training.jit_compile != "auto":
            model.jit_compile = training.jit_compile
        return
    if batch_size is None:
        assert isinstance(training.batch_size, int), "a tuned batch size is the trial's to give"
        batch_size = training.batch_size
    if steps is None:
        # A stream that does not say how long it is: one step per call, so no call runs past its end.
        steps = max(1, samples // batch_size) if samples else 1
    if training.steps_per_execution == "auto":
        model.steps_per_execution = min(AUTO_STEPS_PER_EXECUTION, steps)
    else:
        model.steps_per_execution = training.steps_per_execution
    if training.jit_compile != "auto":
        model.jit_compile = training.jit_compile
    if keras.backend.backend() == "tensorflow":
        from job.training import tf_steps

        if tf_steps.applies(model):
            tf_steps.build_before_tracing(model)
    if keras.backend.backend() == "jax" and model.steps_per_execution > 1 and model.jit_compile:
        from job.training import jax_steps

        if training.scan_steps is True or (training.scan_steps == "auto" and jax_steps.on_accelerator()):
            model.train_function = jax_steps.scanned_train_function(model, model.steps_per_execution)


def _average(runs: list[dict[str, float]]) -> dict[str, float]:
    names = set.intersection(*(set(r) for r in runs)) if runs else set()
    return {name: float(np.mean([r[name] for r in runs])) for name in sorted(names)}
