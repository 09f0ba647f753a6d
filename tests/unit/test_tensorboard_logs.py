"""TensorBoard logs never stop a search (job/observability/tensorboard.py): a record that cannot be
read, or a store that refuses the files, is warned about once; a readable record is written."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from job.observability.tensorboard import TensorBoardLogs
from job.spec.tuner import Objective
from job.storage import Store

RECORD = {
    "trialId": "3",
    "status": "completed",
    "hyperparameters": {"units": 8},
    "history": [[{"loss": 1.0, "val_accuracy": 0.5}]],
}


def missing() -> dict:
    raise FileNotFoundError("trials/3/trial.json")


def test_a_record_that_cannot_be_read_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logs = TensorBoardLogs(Store(str(tmp_path / "out")), [], Objective())
    with caplog.at_level(logging.WARNING):
        logs.trial_ended(missing)
        logs.trial_ended(missing)
        logs.trial_ended(lambda: RECORD)
    assert caplog.text.count("TensorBoard logs could not be written") == 1
    assert (tmp_path / "out" / "tensorboard" / "3" / "events.out.tfevents.0.hptune-trial").stat().st_size > 0
    assert (tmp_path / "out" / "tensorboard" / "events.out.tfevents.0.hptune-experiment").exists()
