"""Shared fixtures: small specs on the bundled digits data, real MNIST where a test needs it."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto_s3 import BUCKET, CREDENTIALS, S3Server

REPO = Path(__file__).resolve().parents[1]

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


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a digits spec (BASE_SPEC with changes) into tmp_path; output goes there too."""

    def write(changes: dict[str, Any] | None = None, name: str = "spec.yaml") -> Path:
        doc = merge(BASE_SPEC, {"spec": {"output": {"uri": str(tmp_path / "out")}}})
        doc = merge(doc, changes or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding mnist.npz: HPTUNE_DATA_DIR, or ../shared/data beside the repo."""
    configured = os.environ.get("HPTUNE_DATA_DIR")
    candidate = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (candidate / "mnist.npz").exists():
        pytest.fail(f"MNIST is needed: set HPTUNE_DATA_DIR to a directory with mnist.npz ({candidate})")
    return candidate


def hptune_env(**extra: str) -> dict[str, str]:
    """The environment for an hptune child process: no role variables unless given."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_") and k != "JOB_COMPLETION_INDEX"
    }
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def hptune(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the hptune command in a child process and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "job", *args],
        env=env or hptune_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 API on a free loopback port with the test bucket, one per module (each test writes
    under its own prefix); the test credentials set and other AWS settings cleared meanwhile."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in CREDENTIALS.items():
                patch.setenv(name, value)
            for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
                patch.delenv(name, raising=False)
            server.client().create_bucket(Bucket=BUCKET)
            yield server
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """`cli.main` configures logging for a process; in-process CLI tests must not leave its
    handlers (bound to a captured stderr that closes) behind for the next test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
