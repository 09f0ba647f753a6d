"""`hptune lr-scan`: the learning-rate scan the study notes recommend ("a quick scan of values between
0.0001 and 0.1"), done the way fastai's `lr_find` does it.

One model (the spec's, at its hyperparameters' defaults) trains for a short run while its
learning rate rises exponentially, one step at a time, from `low` to `high`; the loss of every
step is kept, smoothed (an exponential moving average, bias-corrected), and the scan stops once the
smoothed loss passes four times its minimum (the rate is too high from there). The suggested range
for the search spans a decade either side of the rate to train at: the steepest descent of the
smoothed loss (past the first tenth of the steps), or a tenth of the rate at its minimum if that is
lower (fastai's two rules of thumb).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from job.training.data import Dataset
from job.training.space import BuildModel
from job.training.trial import training_values

SMOOTHING = 0.98
DIVERGED = 4.0  # the smoothed loss this many times its minimum: stop


@dataclass
class Scan:
    """Every step's rate and loss, the smoothed loss, and the suggestion."""

    rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    steepest: float = math.nan
    minimum: float = math.nan

    @property
    def suggested(self) -> float:
        """The rate to train at: the steepest descent, or a tenth of the minimum's rate if lower."""
        return min(self.steepest, self.minimum / 10)

    @property
    def range(self) -> tuple[float, float]:
        """The learning-rate range to search: a decade either side of the suggestion."""
        return self.suggested / 10, self.suggested * 10


class _RaiseRate(keras.callbacks.Callback):
    """Sets each step's rate, and keeps each step's own loss (Keras reports a running mean)."""

    def __init__(self, scan: Scan, low: float, high: float, steps: int) -> None:
        super().__init__()
        self.scan, self.low, self.high, self.steps = scan, low, high, steps
        self.step = 0
        self.mean = 0.0  # Keras' running mean of the loss over the epoch so far
        self.in_epoch = 0
        self.average = 0.0  # the exponential moving average of the steps' losses

    def rate(self, step: int) -> float:
        return self.low * (self.high / self.low) ** (step / max(1, self.steps - 1))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.in_epoch, self.mean = 0, 0.0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()  # JAX: the step's state back in the variables, so the new rate is read from them
        self.model.optimizer.learning_rate.assign(self.rate(self.step))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        mean = float((logs or {})["loss"])
        self.in_epoch += 1
        loss = self.in_epoch * mean - (self.in_epoch - 1) * self.mean  # this step's, from the running mean
        self.mean = mean
        scan = self.scan
        scan.rates.append(self.rate(self.step))
        scan.losses.append(loss)
        self.average = SMOOTHING * self.average + (1 - SMOOTHING) * loss  # from 0: biased low early
        scan.smoothed.append(self.average / (1 - SMOOTHING ** (len(scan.smoothed) + 1)))
        self.step += 1
        best = min(scan.smoothed)
        if self.step >= self.steps or not math.isfinite(loss) or scan.smoothed[-1] > DIVERGED * best:
            self.model.stop_training = True


def scan_rates(
    build_model: BuildModel,
    hp: kt.HyperParameters,
    data: Dataset,
    batch_size: int,
    low: float = 1e-6,
    high: float = 1.0,
    steps: int = 200,
) -> Scan:
    """Train one model for up to `steps` steps with the rate rising from `low` to `high`."""
    if data.streams is not None:
        raise ValueError("the learning-rate scan needs arrays, not streamed data")
    keras.backend.clear_session()
    model = build_model(hp)
    model.steps_per_execution = 1  # a rate per step, a loss per step
    scan = Scan()
    per_epoch = max(1, math.ceil(len(data.x_train) / batch_size))
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=batch_size,
        epochs=math.ceil(steps / per_epoch),
        callbacks=[_RaiseRate(scan, low, high, steps)],
        verbose=0,
    )
    _suggest(scan)
    return scan


def _suggest(scan: Scan) -> None:
    if len(scan.smoothed) < 5:
        raise ValueError(f"the scan ran {len(scan.smoothed)} steps; at least 5 are needed to suggest a rate")
    smoothed = np.array(scan.smoothed)
    rates = np.array(scan.rates)
    lowest = int(np.argmin(smoothed))
    scan.minimum = float(rates[lowest])
    # Steepest descent before the minimum, along log(rate), past the first tenth of the steps,
    # where the moving average has seen too few losses to mean much (fastai skips them too).
    start = min(max(1, len(smoothed) // 10), max(0, lowest - 2))
    upto = max(lowest, start + 2)
    slopes = np.gradient(smoothed[start : upto + 1], np.log(rates[start : upto + 1]))
    scan.steepest = float(rates[start + int(np.argmin(slopes))])


def scan_spec(
    job: Any, data: Dataset, build_model: BuildModel, hp: kt.HyperParameters, **settings: Any
) -> Scan:
    """The scan for a spec's model at its hyperparameters' defaults, at the spec's batch size."""
    batch_size, _ = training_values(job.spec.training, hp)
    return scan_rates(build_model, hp, data, batch_size, **settings)


def with_rate_range(document: dict[str, Any], low: float, high: float) -> dict[str, Any]:
    """A copy of a spec document whose learning rate is searched over [low, high], log-scaled: the
    hyperparameter model.learningRate names, or a new `learning_rate` one."""
    import copy

    doc = copy.deepcopy(document)
    spec = doc["spec"]
    name = spec["model"].get("learningRate")
    if not isinstance(name, str):
        name = "learning_rate"
        spec["model"]["learningRate"] = name
    searched = {
        "name": name,
        "type": "float",
        "min": float(f"{low:.3g}"),
        "max": float(f"{high:.3g}"),
        "sampling": "log",
    }
    hyperparameters = [hp for hp in spec.get("hyperparameters", []) if hp.get("name") != name]
    spec["hyperparameters"] = [*hyperparameters, searched]
    return doc
