"""Fused trials: several trials of the built-in MLP trained as one Keras program on one device.

A trial of a small MLP keeps an accelerator a few per cent busy: per-step overheads (dispatch, the
input pipeline, the optimizer's bookkeeping) cost more than the arithmetic. A fused group trains K
trials' networks side by side in one model, so those overheads are paid once per step for K trials:

- the members' first layers share the input, so they are one Dense layer of all their units side by
  side (one matrix product); each member's later layers are its own, so nothing is padded and each
  member computes exactly its own network;
- members differ in widths, dropout rates (the first layer's per column), learning rates (the
  optimizer gives each variable its member's rate, a column's in the first layer) and epochs;
- the model has one output per member (`m0`, `m1`, ...) with the member's own loss and metrics, so
  Keras computes each member's loss, metrics and validation as it would for the member alone, and
  the summed loss gives each member's weights its own gradient.

Every member starts from the weights its own model would start from (it is built by the same
builder) and ends as an ordinary Keras model of its own shape, holding its best epoch's weights.
What cannot share one program (batch size, optimizer type, depth) is told apart by `group_key`; a member
that is done (its epochs, early stopping, pruning, a lost lease) stops reporting and its result is
fixed, while the group trains on for the others.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
from pydantic.alias_generators import to_camel

from job.spec.model import ACTIVATIONS, OPTIMIZERS, MlpModel
from job.spec.models import JobSpec
from job.spec.objective import is_better
from job.spec.settings import EarlyStopping as EarlyStoppingSpec
from job.spec.settings import TrainingSpec
from job.spec.tuner import Objective
from job.training.data import Dataset
from job.training.space import BuildModel
from job.training.trial import Outcome, run_trial, training_values, tune_execution

MemberEpochHook = Callable[[int, int, dict[str, float]], None]  # (member, epoch, logs)
MemberStop = Callable[[int], bool]  # should this member stop now (pruned, lease lost)?


def blocker(job: JobSpec) -> str | None:
    """Why this search's trials cannot be fused (None: they can)."""
    spec = job.spec
    if not isinstance(spec.model, MlpModel):
        return (
            f"spec.model is a {spec.model.type} model, whose trials' models may differ in structure; "
            "only the built-in MLP's trials are fused"
        )
    extras = sorted(_beyond_fusion(spec.model))
    if spec.training.reduce_lr_on_plateau is not None:
        extras.append("training.reduceLrOnPlateau")
    if extras:
        return (
            f"the spec sets {', '.join(extras)}: fused trials train the built-in MLP's depth, "
            "widths, dropouts, activations, optimizer type and learning rate only"
        )
    if spec.tuner.executions_per_trial > 1:
        executions = spec.tuner.executions_per_trial
        return f"spec.tuner.executionsPerTrial is {executions}; fused trials train once each"
    return None


def _beyond_fusion(model: MlpModel) -> set[str]:
    """The built-in model's settings a fused group does not train as each member alone would."""
    found = {f"model.{to_camel(name)}" for name in model.optimizer_settings()}
    if model.learning_rate_schedule is not None:
        found.add("model.learningRateSchedule")
    for i, layer in enumerate(model.hidden):
        if layer.activation not in ACTIVATIONS:
            found.add(f"model.hidden[{i}].activation (a hyperparameter)")
        for name in ("kernel_initializer", "l1", "l2"):
            if getattr(layer, name) is not None:
                found.add(f"model.hidden[{i}].{to_camel(name)}")
        if layer.batch_norm != "off":
            found.add(f"model.hidden[{i}].batchNorm")
    return found


def member_name(index: int) -> str:
    return f"m{index}"


def group_key(model: MlpModel, training: TrainingSpec, hp: kt.HyperParameters) -> tuple[int, str, int]:
    """What members of one group must share: the batch size, the optimizer's type and the depth
    (the number of hidden layers)."""
    batch, optimizer, depth = training.batch_size, model.optimizer, model.depth
    return (
        int(hp.get(batch)) if isinstance(batch, str) else batch,
        optimizer if optimizer in OPTIMIZERS else str(hp.get(optimizer)),
        len(model.hidden) if depth is None else int(hp.get(depth)) if isinstance(depth, str) else depth,
    )


@dataclass
class _Member:
    """One trial of a group: its own model (for its initial and best weights) and its progress."""

    model: keras.Model
    epochs: int
    dense: list[keras.layers.Dense]
    rates: list[float]  # dropout after each hidden layer (0: none)
    best: float | None = None
    best_epoch: int = 0
    best_logs: dict[str, float] = field(default_factory=dict)
    best_weights: list[np.ndarray] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    done: bool = False
    seconds: float = 0.0
    stopping: _MemberEarlyStopping | None = None
    stop_training: bool = False  # set by `stopping`, as Keras' EarlyStopping sets it on a model


def _structure(model: keras.Model) -> tuple[list[keras.layers.Dense], list[float]]:
    """The Dense layers of a built-in MLP and the dropout rate after each hidden one."""
    dense: list[keras.layers.Dense] = []
    rates: list[float] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            dense.append(layer)
            rates.append(0.0)
        elif isinstance(layer, keras.layers.Dropout) and dense:
            rates[-1] = float(layer.rate)
    return dense, rates[:-1]


class ColumnDropout(keras.layers.Layer):
    """Dropout over the members' concatenated first layer, each column at its member's rate (a
    member with rate 0 is untouched)."""

    def __init__(self, rates: np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rates = rates  # one per column
        self.seed_generator = keras.random.SeedGenerator()

    def call(self, x: Any, training: bool | None = None) -> Any:
        if not training:
            return x
        rates = keras.ops.convert_to_tensor(self.rates, dtype=x.dtype)
        keep = keras.random.uniform(keras.ops.shape(x), seed=self.seed_generator, dtype=x.dtype) >= rates
        return keras.ops.where(keep, x / (1 - rates), keras.ops.zeros_like(x))


class Columns(keras.layers.Layer):
    """One member's columns of the concatenated first layer."""

    def __init__(self, start: int, stop: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, x: Any) -> Any:
        return x[:, self.start : self.stop]


def per_member_rates(
    optimizer: keras.optimizers.Optimizer, rates: dict[str, Any]
) -> keras.optimizers.Optimizer:
    """An optimizer of `optimizer`'s type and settings whose learning rate is each variable's own:
    `rates[variable.path]`, a number or an array broadcast over the variable (a column's rate)."""

    class PerMember(type(optimizer)):  # type: ignore[misc]
        def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> Any:
            return super().update_step(gradient, variable, self._rate(variable))

        def _apply_weight_decay(self, variables: list[Any]) -> None:  # AdamW
            if self.weight_decay is None:
                return
            for variable in variables:
                if self._use_weight_decay(variable):
                    decay = keras.ops.cast(self.weight_decay, variable.dtype)
                    variable.assign(variable - variable * decay * self._rate(variable))

        def _rate(self, variable: Any) -> Any:
            path = self._trainable_variables[self._get_variable_index(variable)].path
            return keras.ops.convert_to_tensor(rates[path], dtype=variable.dtype)

    PerMember.__name__ = type(optimizer).__name__
    return PerMember(**{**optimizer.get_config(), "learning_rate": 1.0})


@dataclass
class _Layout:
    """Where each member's weights are in the fused model."""

    first: keras.layers.Dense  # every member's first layer, side by side
    edges: np.ndarray  # member k's columns of `first`: edges[k]:edges[k + 1]
    later: list[list[keras.layers.Dense]]  # member k's later layers

    def weights(self, k: int) -> list[np.ndarray]:
        """Member k's weights, in its own model's order (kernel, bias, layer by layer)."""
        start, stop = int(self.edges[k]), int(self.edges[k + 1])
        arrays = [
            np.array(self.first.kernel.numpy()[:, start:stop]),
            np.array(self.first.bias.numpy()[start:stop]),
        ]
        for layer in self.later[k]:
            arrays += [np.array(w) for w in layer.get_weights()]
        return arrays


def fuse(members: list[_Member], input_shape: tuple[int, ...], spec: MlpModel) -> tuple[keras.Model, _Layout]:
    """One compiled model computing every member's network, starting from the members' weights.

    The members' first layers are one Dense layer of all their units side by side (they share the
    input); each member's later layers are its own. Nothing is padded, so each member computes
    exactly its own network."""
    widths = [m.dense[0].units for m in members]
    edges = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    first = keras.layers.Dense(int(edges[-1]), activation=members[0].dense[0].activation, name="first")
    x = first(x)
    column_rates = np.repeat([m.rates[0] for m in members], widths).astype("float32")
    if column_rates.any():
        x = ColumnDropout(column_rates)(x)
    outputs = []
    later: list[list[keras.layers.Dense]] = []  # later[k]: member k's own layers after the first
    for k, member in enumerate(members):
        y = Columns(int(edges[k]), int(edges[k + 1]))(x)
        later.append([])
        for depth, own in enumerate(member.dense[1:], start=1):
            last = depth == len(member.dense) - 1
            layer = keras.layers.Dense(
                own.units,
                activation=own.activation,
                dtype="float32" if last else None,
                name=member_name(k) if last else None,
            )
            y = layer(y)
            later[k].append(layer)
            if not last and member.rates[depth]:
                y = keras.layers.Dropout(member.rates[depth])(y)
        outputs.append(y)
    model = keras.Model(inputs, outputs)
    first.kernel.assign(np.concatenate([m.dense[0].kernel.numpy() for m in members], axis=1))
    first.bias.assign(np.concatenate([m.dense[0].bias.numpy() for m in members]))
    for member, layers in zip(members, later, strict=True):
        for layer, own in zip(layers, member.dense[1:], strict=True):
            layer.set_weights(own.get_weights())
    lrs = [float(keras.ops.convert_to_numpy(m.model.optimizer.learning_rate)) for m in members]
    column_lrs = np.repeat(lrs, widths).astype("float32")
    rates: dict[str, Any] = {first.kernel.path: column_lrs[None, :], first.bias.path: column_lrs}
    for rate, layers in zip(lrs, later, strict=True):
        for layer in layers:
            rates.update({v.path: rate for v in layer.trainable_variables})
    model.compile(
        optimizer=per_member_rates(members[0].model.optimizer, rates),
        loss=[spec.loss] * len(members),
        metrics=[list(spec.metrics) for _ in members],
    )
    return model, _Layout(first, edges, later)


def _member_logs(logs: dict[str, Any], index: int) -> dict[str, float]:
    """Member `index`'s metrics under the names its own model reports (`m1_loss` -> `loss`)."""
    prefix = f"{member_name(index)}_"
    metrics: dict[str, float] = {}
    for key, value in logs.items():
        if key.startswith(prefix):
            metrics[key[len(prefix) :]] = float(value)
        elif key.startswith(f"val_{prefix}"):
            metrics[f"val_{key[len(prefix) + 4 :]}"] = float(value)
    return dict(sorted(metrics.items()))


class _StandIn:
    """What a member's EarlyStopping stops: the member, not the group."""

    def __init__(self, member: _Member) -> None:
        self.member = member

    @property
    def stop_training(self) -> bool:
        return self.member.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.member.stop_training = value


class _Members(keras.callbacks.Callback):
    """Each member's epochs, as `trial._BestEpoch` and Keras' EarlyStopping keep them for one model."""

    def __init__(
        self,
        members: list[_Member],
        layout: _Layout,
        objective: Objective,
        on_epoch: MemberEpochHook | None,
        should_stop: MemberStop,
    ) -> None:
        super().__init__()
        self.members, self.layout, self.objective = members, layout, objective
        self.on_epoch, self.should_stop = on_epoch, should_stop
        self.epoch_started = time.perf_counter()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        for member in self.members:
            if member.stopping is not None:
                member.stopping.set_model(_StandIn(member))
                member.stopping.on_train_begin()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        active = [i for i, m in enumerate(self.members) if not m.done]
        share = (time.perf_counter() - self.epoch_started) / max(1, len(active))
        improved: list[int] = []
        for i in active:
            member = self.members[i]
            member.seconds += share
            metrics = _member_logs(logs or {}, i)
            member.history.append(metrics)
            problem = self._problem(metrics, epoch)
            if problem is not None:
                member.error, member.done = problem, True
                continue
            value = metrics[self.objective.name]
            if member.best is None or is_better(value, member.best, self.objective.direction):
                member.best, member.best_epoch, member.best_logs = value, epoch, metrics
                improved.append(i)
            if self.on_epoch is not None:
                self.on_epoch(i, epoch, metrics)
            if member.stopping is not None:
                member.stopping.on_epoch_end(epoch, metrics)
            if epoch + 1 >= member.epochs or member.stop_training or self.should_stop(i):
                member.done = True
        if improved:
            self._keep_best(improved)
        if all(m.done for m in self.members):
            self.model.stop_training = True

    def _problem(self, metrics: dict[str, float], epoch: int) -> str | None:
        name = self.objective.name
        if name not in metrics:
            return (
                f"the objective {name!r} is not among the metrics this model reports: "
                f"{sorted(metrics)}; set spec.tuner.objective.name to one of them"
            )
        for key in (name, "loss"):
            if key in metrics and not math.isfinite(metrics[key]):
                return f"{key} became {metrics[key]} at epoch {epoch + 1}"
        return None

    def _keep_best(self, improved: list[int]) -> None:
        self.model  # noqa: B018 -- on JAX, reading the model brings the trained state back to the layers
        for i in improved:
            self.members[i].best_weights = self.layout.weights(i)


def _direction(monitor: str, model: keras.Model) -> str:
    """EarlyStopping's mode, as Keras infers it for one model ("auto"): every member has the same
    metrics, so the first of that name tells."""
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    for metric in _flat_metrics(model):
        if metric.name == name and hasattr(metric, "_direction"):
            return "max" if metric._direction == "up" else "min"
    raise ValueError(
        f"EarlyStopping cannot tell whether {monitor!r} should be maximized or minimized; "
        "monitor loss or a metric Keras knows the direction of"
    )


class _MemberEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping for one member, its direction read from the member's metric (once the
    first epoch has built the metrics, as Keras reads it)."""

    def __init__(self, stop: EarlyStoppingSpec, model: keras.Model) -> None:
        super().__init__(monitor=stop.monitor, patience=stop.patience, min_delta=stop.min_delta)
        self.fused = model

    def _set_monitor_op(self) -> None:
        self.mode = _direction(self.monitor, self.fused)
        super()._set_monitor_op()


def _flat_metrics(model: keras.Model) -> list[keras.metrics.Metric]:
    found: list[keras.metrics.Metric] = []
    for metric in model.metrics:
        found += list(getattr(metric, "metrics", [])) or [metric]
    return found


def train_group(
    hps: list[kt.HyperParameters],
    build_model: BuildModel,
    spec: MlpModel,
    data: Dataset,
    training: TrainingSpec,
    objective: Objective,
    on_epoch: MemberEpochHook | None = None,
    should_stop: MemberStop = lambda index: False,
) -> list[Outcome]:
    """Train these trials (one `group_key`) as one program; one Outcome each, never raising for a
    failing trial. Each successful Outcome's model is the member's own, at its best epoch."""
    if len(hps) == 1:  # nothing to share: the trial's own path
        return [
            run_trial(
                hps[0],
                build_model,
                data,
                training,
                objective,
                on_epoch=None if on_epoch is None else lambda epoch, logs: on_epoch(0, epoch, logs),
                should_stop=lambda: should_stop(0),
            )
        ]
    started = time.perf_counter()
    outcomes = [Outcome() for _ in hps]
    try:
        keras.backend.clear_session()
        members: list[_Member] = []
        for hp in hps:
            model = build_model(hp)
            dense, rates = _structure(model)
            members.append(_Member(model, training_values(training, hp)[1], dense, rates))
        batch_size = training_values(training, hps[0])[0]
        fused, layout = fuse(members, tuple(data.x_train.shape[1:]), spec)
        tune_execution(fused, training, data.train_samples, batch_size, data.steps_per_epoch(batch_size))
        if training.early_stopping is not None:
            for member in members:
                member.stopping = _MemberEarlyStopping(training.early_stopping, fused)
        tracker = _Members(members, layout, objective, on_epoch, should_stop)
        args, kwargs = data.fit_arguments(batch_size, training.validation_batch_size or batch_size)
        x, y = args
        x_val, y_val = kwargs["validation_data"]
        kwargs.update(
            validation_data=(x_val, [y_val] * len(hps)),
            epochs=max(m.epochs for m in members),
            callbacks=[tracker],
            verbose=training.verbose,
        )
        fused.fit(x, [y] * len(hps), **kwargs)
        for member, outcome in zip(members, outcomes, strict=True):
            outcome.history = [member.history]
            outcome.seconds = member.seconds
            if member.error is not None:
                outcome.error = member.error
            elif member.best_weights is None:
                outcome.error = "training stopped before the first epoch ended"
            else:
                member.model.set_weights(member.best_weights)
                # Its optimizer's slots exist (a saved model loads without a warning), reset: the
                # group's optimizer state is the group's.
                member.model.optimizer.build(member.model.trainable_variables)
                outcome.model, outcome.metrics, outcome.best_step = (
                    member.model,
                    member.best_logs,
                    member.best_epoch,
                )
    except Exception:
        error = traceback.format_exc()
        for outcome in outcomes:
            outcome.error, outcome.model = error, None
    share = (time.perf_counter() - started - sum(o.seconds for o in outcomes)) / len(hps)
    for outcome in outcomes:
        outcome.seconds += max(0.0, share)
    return outcomes
