"""A trial stopped by a stop signal in the middle of an epoch and continued from the checkpoint it
left, against the same trial uninterrupted: same seed (dropout on), same data order. Runs on
whichever Keras backend the process has (a JAX check runs it in a child process with
KERAS_BACKEND=jax: `python -m tests.support.stopped DIR` prints RESULT and a JSON object)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np

from job.output.attempts import publish_checkpoint
from job.spec import validate_spec
from job.storage import Store
from job.training.checkpoint import Checkpointer, fingerprint, load_resume
from job.training.data.order import EpochOrder
from job.training.space import make_builder
from job.training.trial import run_trial
from tests.support.fused import in_order
from tests.support.specs import BASE_SPEC, merge

# 64 training samples in batches of 8, two steps a training call: four calls an epoch.
STOPPED_SPEC = {
    "spec": {
        "model": {"hidden": [{"units": 16, "dropout": 0.3}, {"units": 8}], "optimizer": "adam"},
        "hyperparameters": [{"name": "learning_rate", "type": "fixed", "value": 0.01}],
        "training": {"epochs": 4, "batchSize": 8, "stepsPerExecution": 2, "scanSteps": True},
        "tuner": {"maxTrials": 1},
    }
}


def stopped_mid_epoch_against_whole(
    scratch: Path, stop_after_calls: int = 2, training: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train the trial whole; train it again, with a stop signal arriving in its third epoch after
    `stop_after_calls` training calls; continue it from its checkpoint on a fresh model. Returns
    where it stopped, what the record would say, the largest differences from the whole run, and
    each run's last learning rate. `training`: more of spec.training."""
    job = validate_spec(merge(merge(BASE_SPEC, STOPPED_SPEC), {"spec": {"training": training or {}}}))
    data = in_order()
    order = EpochOrder.for_trial("0", 42)
    build = make_builder(job, data.output_units, data.input_shape, None)
    settings, objective = job.spec.training, job.spec.tuner.objective
    hp = kt.HyperParameters()
    hp.values = {"learning_rate": 0.01}

    def seeded(values: kt.HyperParameters) -> keras.Model:
        keras.utils.set_random_seed(11)  # the same initial weights and dropout seed every time
        return build(values)

    whole = run_trial(hp, seeded, data, settings, objective, order=order)
    assert whole.ok, whole.error

    store = Store(str(scratch / "out"))
    writer = Checkpointer(store, "0", "tuner0", fingerprint(job), 3600.0, scratch)
    asked = {"armed": False, "calls": 0}

    def stop_requested() -> bool:  # asked at each training call's end, and each epoch's
        if asked["armed"]:
            asked["calls"] += 1
        return asked["calls"] > stop_after_calls

    def arm(epoch: int, logs: dict[str, float]) -> None:
        asked["armed"] = asked["armed"] or epoch == 1  # the second epoch ended

    stopped = False
    try:
        run_trial(
            hp,
            seeded,
            data,
            settings,
            objective,
            on_epoch=arm,
            checkpointer=writer,
            order=order,
            stop_requested=stop_requested,
        )
    except KeyboardInterrupt:
        stopped = True
    where = writer.write_held()
    assert publish_checkpoint(store, "0", "tuner0")
    resume = load_resume(store, "0", fingerprint(job), scratch, "tuner1")
    assert resume is not None

    def fresh(values: kt.HyperParameters) -> keras.Model:
        keras.utils.set_random_seed(99)  # other weights and another dropout seed: the checkpoint's win
        return build(values)

    rest = run_trial(hp, fresh, data, settings, objective, resume=resume, order=order)
    assert rest.ok, rest.error
    assert whole.model is not None and rest.model is not None
    return {
        "stopped": stopped,
        "where": where,
        "resumed": rest.resumed,
        "epochs": [len(whole.history[0]), len(rest.history[0])],
        "metrics": max(
            abs(a[name] - b[name])
            for a, b in zip(whole.history[0], rest.history[0], strict=True)
            for name in a
        ),
        "rates": [_rate(whole.model), _rate(rest.model)],
        "weights": max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(whole.model.get_weights(), rest.model.get_weights(), strict=True)
        ),
    }


def _rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


if __name__ == "__main__":
    print("RESULT " + json.dumps(stopped_mid_epoch_against_whole(Path(sys.argv[1]))))
