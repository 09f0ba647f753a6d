"""A plain Keras Tuner search script, the kind a team already has: no hptune in it.

Run as a process by tests/integration/test_plain_keras_tuner.py, with Keras Tuner's own variables:
KERASTUNER_TUNER_ID=chief makes it the chief (serving its oracle), any other id a worker of the
chief at KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT. Its hyperparameters are the test spec's
(tests/support/specs.py BASE_SPEC). What the test varies comes from the environment:

    PLAIN_DIRECTORY     the tuner's project directory (required)
    PLAIN_MAX_TRIALS    the chief's maxTrials (default 3)
    PLAIN_EPOCHS        epochs per trial (default 2)
    PLAIN_EPOCH_SLEEP   seconds slept after each epoch, for trials longer than a lease (default 0)
    PLAIN_FAIL_FIRST    how many of this process's first trials raise (default 0)
"""

from __future__ import annotations

import os
import sys
import time

import keras
import keras_tuner as kt
import numpy as np
from sklearn.datasets import load_digits

FAIL_FIRST = int(os.environ.get("PLAIN_FAIL_FIRST", "0"))
EPOCH_SLEEP = float(os.environ.get("PLAIN_EPOCH_SLEEP", "0"))


def build_model(hp: kt.HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(64,)),
            keras.layers.Dense(hp.Int("hidden1", 16, 64, step=16), activation="relu"),
            keras.layers.Dropout(hp.Float("dropout1", 0.1, 0.3, step=0.1)),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [0.001, 0.01])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class Tuner(kt.RandomSearch):
    """RandomSearch, saying which trial it runs (the test counts runs per trial from the log)."""

    trials_run = 0

    def run_trial(self, trial: kt.engine.trial.Trial, *args: object, **kwargs: object) -> object:
        Tuner.trials_run += 1
        print(f"plain: running trial {trial.trial_id}", flush=True)
        if Tuner.trials_run <= FAIL_FIRST:
            raise RuntimeError(f"deliberate failure of trial {trial.trial_id} in a plain worker")
        return super().run_trial(trial, *args, **kwargs)


class Slow(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        time.sleep(EPOCH_SLEEP)


def main() -> int:
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    tuner = Tuner(
        build_model,
        objective="val_accuracy",
        max_trials=int(os.environ.get("PLAIN_MAX_TRIALS", "3")),
        seed=1,
        directory=os.environ["PLAIN_DIRECTORY"],
        project_name="plain",
    )
    tuner.search(
        x,
        y,
        epochs=int(os.environ.get("PLAIN_EPOCHS", "2")),
        batch_size=64,
        validation_split=0.2,
        callbacks=[Slow()],
        verbose=0,
    )
    print(f"plain: search over, {Tuner.trials_run} trials run here", flush=True)
    return 0


if __name__ == "__main__":
    np.random.seed(1)
    sys.exit(main())
