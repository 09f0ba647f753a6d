"""Fused trials against the same trials trained alone: same initial weights, same batches in the
same order, dropout off. Runs on whichever Keras backend the process has (a JAX check runs it in a
child process with KERAS_BACKEND=jax)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from job.spec import validate_spec
from job.spec.models import JobSpec
from job.training.data import Dataset
from job.training.fused import train_group
from job.training.space import make_builder
from tests.support.specs import BASE_SPEC, merge

OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")

# Three members that differ in both widths and in learning rate.
MEMBERS = [
    {"h1": 8, "h2": 12, "learning_rate": 0.001},
    {"h1": 24, "h2": 4, "learning_rate": 0.01},
    {"h1": 16, "h2": 12, "learning_rate": 0.05},
]


@dataclasses.dataclass(frozen=True)
class InOrder(Dataset):
    """Arrays whose batches come in the same order every time (fit's shuffle off), unless an
    `EpochOrder` is given."""

    def fit_arguments(
        self, batch_size: int, validation_batch_size: int, *ordered: Any
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = super().fit_arguments(batch_size, validation_batch_size, *ordered)
        return args, {**kwargs, "shuffle": False}


def in_order(n: int = 80, features: int = 6, classes: int = 3) -> InOrder:
    rng = np.random.default_rng(0)
    x = rng.random((n, features), dtype=np.float32)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    cut = n * 4 // 5
    return InOrder(x[:cut], y[:cut], x[cut:], y[cut:], classes, "arrays in order")


def group_job(optimizer: str = "adam", epochs: int | str = 1, **training: Any) -> JobSpec:
    return validate_spec(
        merge(
            BASE_SPEC,
            {
                "spec": {
                    "model": {
                        "hidden": [{"units": "h1"}, {"units": "h2", "activation": "tanh"}],
                        "optimizer": optimizer,
                    },
                    "hyperparameters": [
                        {"name": "h1", "type": "int", "min": 4, "max": 32, "step": 4},
                        {"name": "h2", "type": "int", "min": 4, "max": 16, "step": 4},
                        {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01, 0.05]},
                        {"name": "ep", "type": "int", "min": 1, "max": 4},
                    ],
                    "training": {"epochs": epochs, "batchSize": 16, **training},
                    "tuner": {"maxTrials": 3},
                }
            },
        )
    )


def values(member: dict[str, Any]) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.values = dict(member)
    return hp


def fused_against_alone(optimizer: str) -> list[dict[str, float]]:
    """For each member: the largest difference in any weight after one epoch (4 steps), fused
    against alone, and in any metric of that epoch."""
    job = group_job(optimizer)
    data = in_order()
    build = make_builder(job, data.output_units, data.input_shape, None)
    initial: list[list[np.ndarray]] = []

    def recording(hp: kt.HyperParameters) -> keras.Model:
        model = build(hp)
        initial.append(model.get_weights())
        return model

    hps = [values(m) for m in MEMBERS]
    outcomes = train_group(hps, recording, job.spec.model, data, job.spec.training, job.spec.tuner.objective)  # type: ignore[arg-type]
    found = []
    for hp, start, outcome in zip(hps, initial, outcomes, strict=True):
        assert outcome.ok and outcome.model is not None, outcome.error
        alone = build(hp)
        alone.set_weights(start)
        args, kwargs = data.fit_arguments(16, 16)
        history = alone.fit(*args, **kwargs, epochs=1, verbose=0).history
        weights = max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(outcome.model.get_weights(), alone.get_weights(), strict=True)
        )
        metrics = max(abs(outcome.history[0][0][name] - history[name][0]) for name in history)
        found.append(
            {
                "weights": weights,
                "metrics": metrics,
                "moved": float(np.max(np.abs(start[0] - alone.get_weights()[0]))),
            }
        )
    return found


if __name__ == "__main__":
    print("RESULT " + json.dumps({o: fused_against_alone(o) for o in OPTIMIZERS}))
