"""Specs for tests: small searches on the bundled digits data, and a builder that always fails."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

BASE_SPEC: dict[str, Any] = {
    "apiVersion": "hptune/v1",
    "kind": "TuningJob",
    "metadata": {"name": "digits-test"},
    "spec": {
        "data": {"source": "digits", "validation": {"source": "split", "fraction": 0.2}},
        "model": {
            "type": "mlp",
            "hidden": [{"units": "hidden1", "dropout": "dropout1"}],
            "learningRate": "learning_rate",
        },
        "hyperparameters": [
            {"name": "hidden1", "type": "int", "min": 16, "max": 64, "step": 16},
            {"name": "dropout1", "type": "float", "min": 0.1, "max": 0.3, "step": 0.1},
            {"name": "learning_rate", "type": "choice", "values": [0.001, 0.01]},
        ],
        "tuner": {"algorithm": "random", "maxTrials": 3, "seed": 1},
        "training": {"epochs": 2, "batchSize": 64},
        "metrics": {"port": 0},
    },
}


# The source of a custom builder (wrong.py: build_model) whose output does not fit the 10 digit
# classes: every trial fails in training.
WRONG_MODEL = (
    "import keras\n"
    "def build_model(hp):\n"
    "    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(hp.Int('units', 4, 8)),\n"
    "                              keras.layers.Dense(3, activation='softmax')])\n"
    "    model.compile('adam', 'categorical_crossentropy', metrics=['accuracy'])\n"
    "    return model\n"
)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge changes into a copy of base; a None value deletes the key."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
